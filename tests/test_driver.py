"""The one driver: one algorithm call per run, settings resolved once, two names for two seeds."""

import json

import pytest

from deap_lossgp import algorithms
from deap_lossgp.search import driver
from deap_lossgp.search.driver import make_config, resolve_config, run_search, search_seed


def test_the_search_seed_and_the_training_seed_are_two_settings():
    config = make_config("quick", search_seed=3, seed=1)
    fitness, _ = resolve_config(config)
    assert config["search_seed"] == 3 and fitness.seed == 1
    assert search_seed({"seed": 7}) == 7  # a config.json written before the rename
    with pytest.raises(ValueError, match="search seed"):
        make_config("quick", search_seed=-1)


def test_every_field_can_be_set_without_a_crash():
    fields = {"seed": 2, "split_seed": 4, "tasks": ["digits"], "rebreed": 3, "race_top": 2, "race_seeds": 2,
              "confirm_top": 1, "confirm_seeds": 2, "mode": "thesis"}
    fitness, search = resolve_config(make_config("quick", **fields))
    assert (fitness.seed, fitness.data_seed, search.rebreed, search.race_seeds) == (2, 4, 3, 2)
    assert fitness.validity == "thesis"  # the mode switched it; the fields given with it won
    assert fitness.replicate(2).seed == 4 and fitness.replicate(2).data_seed == 4


def test_the_benchmark_takes_a_training_seed_and_refuses_bad_settings_before_writing(tmp_path, capsys):
    from deap_lossgp.app.benchmark import arm_configs
    from deap_lossgp.app.cli import main

    configs = arm_configs(3, seed=1)
    assert {(config["search_seed"], resolve_config(config)[0].seed) for config in configs.values()} == {(3, 1)}
    assert main(["benchmark", "--set", "seed=1", "--set", "epochs=0", "--output", str(tmp_path / "out")]) == 2
    assert "epochs must be an integer >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_asynchronous_variants_inflight_is_stored_as_a_number():
    config = make_config("quick", algorithm="async-sample-tournament", backend="process", workers=3)
    assert resolve_config(json.loads(json.dumps(config)))[1].inflight == 6
    assert resolve_config(make_config("quick", backend="process", workers=3))[1].inflight is None


@pytest.mark.slow
def test_run_search_calls_the_algorithm_once_and_reads_no_checkpoint(tmp_path, monkeypatch):
    reads, calls = [], []
    real_load, real_algorithm = algorithms.load_checkpoint, algorithms.eaSampleTournament
    monkeypatch.setattr(algorithms, "load_checkpoint", lambda *a, **k: reads.append(a) or real_load(*a, **k))

    def counted(*args, **kwargs):
        calls.append(kwargs.get("on_generation"))
        return real_algorithm(*args, **kwargs)

    monkeypatch.setitem(driver.ALGORITHMS, "sample-tournament",
                        driver.Algorithm("sample-tournament", counted, "counted"))
    generations = []
    config = make_config("quick", backend="serial", population=4, generations=3, epochs=1, tasks=["digits"],
                         max_train_samples=100, confirm_top=0, race_top=0, race_seeds=1)
    run_search(tmp_path / "run", config, progress=False,
               on_generation=lambda run, logbook, halloffame: generations.append(len(logbook)))
    assert len(calls) == 1 and calls[0] is not None
    assert reads == []
    assert generations == [1, 2, 3, 4]

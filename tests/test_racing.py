"""Re-breeding, racing over paired seeds and confirmation: the search whose answer holds up.

Fast tests use a scripted or cheap deterministic fitness; the slow ones train
real tiny models.
"""

import hashlib
import json
import random

import pytest
from deap import base, creator, gp

from deap_lossgp.algorithms import eaSampleTournament
from deap_lossgp.evaluation import Evaluation, combine_replicates, replicate_summary
from deap_lossgp.fitness.compare import paired_interval
from deap_lossgp.gp.expression import canonical_key
from deap_lossgp.search.parallel import get_map

from conftest import build_toolbox, cheap_fitness, comparable, make_stats

creator.create("FitnessRace", base.Fitness, weights=(1.0, 1.0))
creator.create("IndividualRace", gp.PrimitiveTree, fitness=creator.FitnessRace)


def _unit(text):
    """A deterministic number in [0, 1) from text."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 2**32


class NoisyFitness:
    """cheap_fitness plus seed noise: replicate r of a tree adds noise drawn from (key, r)."""

    def key(self, individual):
        return canonical_key(individual)

    def __call__(self, individual, replicate=0):
        wins, score = cheap_fitness(individual)
        return wins, score + 0.2 * (_unit(f"{self.key(individual)}/{replicate}") - 0.5)


class RejectingScreen:
    """Rejects about 60 % of trees by their key, as the trainability screen rejects random trees."""

    def __call__(self, individual):
        return (0.0, float("-inf")) if _unit(canonical_key(individual)) < 0.6 else None


class Scripted:
    """Replicate r of tree 'name' scores SCRIPT[name][r]; records every call."""

    def __init__(self, script):
        self.script = script
        self.calls = []

    def key(self, individual):
        return individual.name

    def __call__(self, individual, replicate=0):
        self.calls.append((individual.name, replicate))
        return 1.0, self.script[individual.name][replicate]


def _named(name):
    individual = creator.IndividualRace([])
    individual.name = name
    return individual


def _race(script, top, seeds, names=None):
    fitness = Scripted(script)
    toolbox = base.Toolbox()
    toolbox.register("evaluate", fitness)
    toolbox.register("key", fitness.key)
    individuals = [_named(name) for name in names or script]
    evaluation = Evaluation(toolbox)
    evaluation(individuals)
    raced = evaluation.race(individuals, top=top, seeds=seeds)
    return evaluation, fitness, {individual.name: individual for individual in individuals}, raced


def test_a_contender_gets_seeds_a_clear_loser_none_and_a_lucky_incumbent_is_reestimated():
    script = {"steady": [0.5, 0.5, 0.5], "lucky": [0.9, 0.1, 0.1], "loser": [0.0, 0.0, 0.0],
              "close": [0.45, 0.45, 0.45]}
    evaluation, fitness, trees, raced = _race(script, top=2, seeds=3)
    seeds = {name: len(evaluation.replicates[name]) for name in script}
    # The lucky incumbent led on one seed; challenged, it was trained again and fell back.
    assert seeds["lucky"] == 3 and trees["lucky"].fitness.values[1] == pytest.approx(0.1 + 0.8 / 3)
    assert seeds["steady"] == 3 and seeds["close"] == 3  # the top two rest on 3 seeds each
    assert seeds["loser"] == 1 and ("loser", 1) not in fitness.calls  # never a contender
    assert raced == sum(seeds.values()) - len(script)
    ranked = sorted(trees.values(), key=lambda tree: tree.fitness, reverse=True)
    assert [tree.name for tree in ranked[:2]] == ["steady", "close"]


def test_racing_stops_at_the_seed_limit_and_without_racing_nothing_runs():
    script = {"a": [0.3, 0.2, 0.1, 0.0], "b": [0.2, 0.2, 0.2, 0.2]}
    evaluation, fitness, _, raced = _race(script, top=2, seeds=1)
    assert raced == 0 and len(fitness.calls) == 2
    evaluation, fitness, _, raced = _race(script, top=1, seeds=4)
    assert max(len(values) for values in evaluation.replicates.values()) <= 4
    assert all(replicate < 4 for _, replicate in fitness.calls)


def test_combined_fitness_is_the_mean_over_seeds_and_a_failed_seed_fails():
    assert combine_replicates([(3.0, 0.1), (2.0, 0.3)]) == (2.5, pytest.approx(0.2))
    assert combine_replicates([(3.0, 0.1), (0.0, float("-inf"))])[1] == float("-inf")
    summary = replicate_summary([(3.0, 0.1), (2.0, 0.3)])
    assert summary["seeds"] == 2 and summary["stderr"] == pytest.approx(0.1)
    assert replicate_summary([(3.0, 0.1)])["stderr"] is None


def test_paired_interval_excludes_zero_only_beyond_noise():
    clear = paired_interval([0.05, 0.06, 0.04, 0.05, 0.055])
    assert clear["low"] > 0
    noisy = paired_interval([0.05, -0.04, 0.02, -0.03, 0.01])
    assert noisy["low"] < 0 < noisy["high"]
    assert paired_interval([0.1])["low"] is None
    assert paired_interval([0.1, float("-inf")])["mean"] is None


def _search(seed, rebreed=0, race_top=0, race_seeds=1, map_=map, ngen=4, checkpoint=None, screen=True):
    random.seed(seed)
    fitness = NoisyFitness()
    toolbox = build_toolbox(8, fitness, map_)
    if screen:
        toolbox.register("screen", RejectingScreen())
    population = toolbox.population(n=8)
    population, logbook = eaSampleTournament(population, toolbox, ngen=ngen, stats=make_stats(), verbose=False,
                                             rebreed=rebreed, race_top=race_top, race_seeds=race_seeds,
                                             checkpoint=checkpoint)
    return population, logbook


def test_rebreeding_trains_n_children_every_generation():
    _, plain = _search(3)
    _, rebred = _search(3, rebreed=20)
    n = 3  # N = 3P/8 for P = 8
    assert sum(plain.select("nevals")[1:]) < 4 * n  # rejected children are lost without re-breeding
    assert rebred.select("nevals")[1:] == [n] * 4
    # Every attempt is counted: the rejected children too.
    assert sum(rebred.select("nrejected")[1:]) > sum(plain.select("nrejected")[1:])


def test_the_thesis_settings_are_algorithm_1_unchanged():
    random.seed(5)
    toolbox = build_toolbox(8, cheap_fitness)
    population = toolbox.population(n=8)
    default_population, default_logbook = eaSampleTournament(
        [toolbox.clone(ind) for ind in population], toolbox, ngen=3, stats=make_stats(), verbose=False)
    random.seed(5)
    toolbox = build_toolbox(8, cheap_fitness)
    population = toolbox.population(n=8)
    thesis_population, thesis_logbook = eaSampleTournament(
        population, toolbox, ngen=3, stats=make_stats(), verbose=False, rebreed=0, race_top=0, race_seeds=1)
    assert comparable(default_logbook) == comparable(thesis_logbook)
    assert list(map(str, default_population)) == list(map(str, thesis_population))
    assert set(thesis_logbook.select("nraced")) == {0}


def test_racing_counts_its_seeds_and_is_the_same_search_serially_and_in_processes():
    population, logbook = _search(11, rebreed=20, race_top=3, race_seeds=3)
    assert sum(logbook.select("nraced")) > 0
    with get_map("process", workers=2) as pmap:
        parallel_population, parallel_logbook = _search(11, rebreed=20, race_top=3, race_seeds=3, map_=pmap)
    assert comparable(logbook) == comparable(parallel_logbook)
    assert [(str(i), i.fitness.values) for i in population] == \
           [(str(i), i.fitness.values) for i in parallel_population]


def test_a_racing_search_resumed_from_its_checkpoint_is_the_uninterrupted_one(tmp_path):
    whole_population, whole_logbook = _search(13, rebreed=20, race_top=3, race_seeds=3)
    checkpoint = tmp_path / "race.pkl"
    _search(13, rebreed=20, race_top=3, race_seeds=3, ngen=2, checkpoint=checkpoint)
    random.seed(999)  # the resume must restore the random state, not take this one
    resumed_population, resumed_logbook = _search(13, rebreed=20, race_top=3, race_seeds=3, checkpoint=checkpoint)
    assert comparable(whole_logbook) == comparable(resumed_logbook)
    assert [(str(i), i.fitness.values) for i in whole_population] == \
           [(str(i), i.fitness.values) for i in resumed_population]


def test_a_missing_alias_is_one_line_naming_its_registration():
    toolbox = build_toolbox(8, cheap_fitness)
    toolbox.unregister("mutate_point")
    random.seed(1)
    population = build_toolbox(8, cheap_fitness).population(n=8)
    with pytest.raises(ValueError, match=r"no 'mutate_point' alias.*toolbox.register\(\"mutate_point\""):
        eaSampleTournament(population, toolbox, ngen=1, verbose=False)


def test_the_summary_says_use_it_only_for_a_loss_beyond_noise(capsys):
    from deap_lossgp.app.cli import _finish

    interval = {"n": 5, "mean": 0.01, "low": -0.01, "high": 0.03}
    confirmed = {"tasks": {"digits": {"difference": interval}}, "test_difference": interval}
    for verdict in ("better", "indistinguishable", "worse", "unconfirmed"):
        _finish({"expression": "neg(mul(y_true, log(y_pred)))", "formula": "-y_true*log(y_pred)",
                 "fitness": [2.0, 0.01], "verdict": verdict, "confirmed": confirmed}, "run")
        out = capsys.readouterr().out
        assert ("use it:" in out) == (verdict == "better"), verdict
        if verdict != "better":
            assert "verdict:" in out
    assert "[-0.0100, +0.0300]" in out


@pytest.mark.slow
def test_confirmation_of_cross_entropy_written_as_a_tree_is_not_a_win(tmp_path):
    from deap_lossgp.gp.expression import from_string
    from deap_lossgp.gp.losses import REFERENCE_EXPRESSIONS
    from deap_lossgp.gp.primitives import make_pset
    from deap_lossgp.search.confirm import confirm, confirmation_replicates
    from deap_lossgp.search.presets import get_preset

    config = get_preset("quick", epochs=2, tasks=["digits"], max_train_samples=300).fitness
    tree = creator.IndividualRace(from_string(REFERENCE_EXPRESSIONS["ce"], make_pset()))
    tree.fitness.values = (1.0, 0.01)
    records = tmp_path / "confirmation.jsonl"
    result = confirm([tree], config, seeds=3, records_path=records, baseline_dir=tmp_path / "baselines")
    assert result["replicates"] == confirmation_replicates(3)
    assert result["verdict"] in ("indistinguishable", "unconfirmed")  # CE is not better than itself
    candidate = result["candidates"][0]
    assert candidate["test_difference"]["n"] == 3
    lines = records.read_text().splitlines()
    assert len(lines) == 3 and {json.loads(line)["replicate"] for line in lines} == set(result["replicates"])
    # A resumed confirmation reads its records back instead of training again.
    again = confirm([tree], config, seeds=3, records_path=records, baseline_dir=tmp_path / "baselines")
    assert again == result and len(records.read_text().splitlines()) == 3


@pytest.mark.slow
def test_a_run_ends_with_the_confirmed_ranking_and_its_verdict(tmp_path, capsys):
    from deap_lossgp.app.cli import main

    output = tmp_path / "run"
    assert main(["evolve", "--population", "4", "--generations", "1", "--epochs", "1", "--set",
                 "max_train_samples=200", "--set", 'tasks=["digits"]', "--set", "confirm_top=2", "--set",
                 "confirm_seeds=3", "--set", "race_top=2", "--backend", "serial", "--quiet", "--output",
                 str(output)]) == 0
    out = capsys.readouterr().out
    best = json.loads((output / "best.json").read_text())
    confirmation = json.loads((output / "confirmation.json").read_text())
    assert best["expression"] == confirmation["candidates"][0]["expression"]
    assert best["verdict"] == confirmation["verdict"]
    assert ("use it:" in out) == (best["verdict"] == "better")
    records = [json.loads(line) for line in (output / "evaluations.jsonl").read_text().splitlines()]
    raced = [r for r in records if r.get("replicate", 0) > 0]
    assert raced and all(r["seed"] == r["replicate"] for r in raced)  # training seed 0 + replicate


SCOOP_RACE = """
import json, sys
from deap_lossgp.search.parallel import get_map
from test_racing import _search, comparable

if __name__ == "__main__":
    with get_map("scoop") as smap:
        population, logbook = _search(11, rebreed=20, race_top=3, race_seeds=3, map_=smap)
    with open(sys.argv[1], "w") as stream:
        json.dump([comparable(logbook), [(str(i), list(i.fitness.values)) for i in population]], stream)
"""


@pytest.mark.slow
def test_racing_under_scoop_is_the_serial_search(tmp_path):
    import os
    import pathlib
    import subprocess
    import sys

    script, output = tmp_path / "scoop_race.py", tmp_path / "out.json"
    script.write_text(SCOOP_RACE)
    tests = str(pathlib.Path(__file__).parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    completed = subprocess.run([sys.executable, "-m", "scoop", "-n", "2", str(script), str(output)], env=env,
                               cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    population, logbook = _search(11, rebreed=20, race_top=3, race_seeds=3)
    expected = [comparable(logbook), [(str(i), list(i.fitness.values)) for i in population]]
    assert json.loads(output.read_text()) == json.loads(json.dumps(expected))


def test_the_hall_of_fame_shows_how_many_seeds_a_fitness_rests_on():
    from deap_lossgp.gp.expression import from_string
    from deap_lossgp.gp.primitives import make_pset
    from deap_lossgp.search.halloffame import KeyedHallOfFame, hall_of_fame_rows

    tree = creator.IndividualRace(from_string("neg(mul(y_true, log(y_pred)))", make_pset()))
    tree.fitness.values = (2.0, 0.2)
    key = canonical_key(tree)
    records = [{"expression": str(tree), "key": key, "replicate": r, "fitness": [2.0, value], "tasks": {"t": {}},
                "status": "ok"} for r, value in enumerate((0.1, 0.2, 0.3))]
    halloffame = KeyedHallOfFame(3, key=canonical_key)
    halloffame.update([tree])
    (row,) = hall_of_fame_rows(halloffame, records)
    assert row["seeds"] == 3 and row["stderr"] == pytest.approx(0.1 / 3 ** 0.5)

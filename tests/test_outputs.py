"""What a researcher reads: quiet output, the hall of fame, the plot, repeated evaluations, messages."""

import argparse
import configparser
import json
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest
from deap import base, creator, gp, tools

from deap_lossgp.app.cli import build_parser, format_record, main
from deap_lossgp.app.plots import fitness_figure
from deap_lossgp.fitness import compare_with_ce, format_comparison
from deap_lossgp.search.driver import expected_evaluations, fitness_statistics, make_config, run_search
from deap_lossgp.search.halloffame import KeyedHallOfFame, format_fitness, read_hall_of_fame
from deap_lossgp.search.presets import get_preset
from deap_lossgp.search.rundir import read_records

ROOT = pathlib.Path(__file__).resolve().parent.parent
# TensorFlow's log lines: absl's C++ format, its import notices and Python loggers.
TF_LOG = re.compile(r"^[IWEF]\d{4} |absl|oneDNN|cpu_feature_guard|TF_ENABLE_ONEDNN_OPTS|^WARNING:tensorflow", re.M)
TINY = dict(population=4, generations=2, epochs=1, tasks=["digits"], max_train_samples=100, confirm_top=1,
            confirm_seeds=2)


def _help(command, option):
    parser = build_parser()
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return next(action.help for action in commands.choices[command]._actions if option in action.option_strings)


def _environment(**extra):
    # As a user's shell has it: without what an earlier in-process quiet_tensorflow() set.
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TF_CPP_MIN_LOG_LEVEL", "DEAP_LOSSGP_QUIET_TENSORFLOW")}
    environment.update(extra)
    return environment


@pytest.mark.slow
def test_evolve_prints_no_tensorflow_log_line_and_rows_do_not_share_the_bar_line(tmp_path):
    # A real search on the quick preset with a process pool: the main process and two workers import TensorFlow.
    result = subprocess.run(
        [sys.executable, "-m", "deap_lossgp.app.cli", "evolve", "--population", "4", "--generations", "1",
         "--epochs", "1", "--set", "max_train_samples=100", "--set", "confirm_seeds=2", "--workers", "2"],
        capture_output=True, text=True, cwd=tmp_path, env=_environment(), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert not TF_LOG.search(output), output[-3000:]
    # Logbook rows go above the bar (tqdm.write), never after a bar's text on the same line.
    assert not re.search(r"training/s\]\s*\d", output), output[-3000:]
    rows = [line for line in result.stdout.splitlines() if re.match(r"^[01]\s+\d", line)]
    assert len(rows) == 2, result.stdout
    # The bar counts trainings (3 tasks each, racing's and the confirmation's included) and ends at its total.
    done, total = re.findall(r"(\d+)/(\d+) \[", result.stderr)[-1]
    assert done == total and int(done) >= expected_evaluations("sample-tournament", get_preset(
        "quick", population=4, generations=1).search) * 3, result.stderr[-2000:]
    # The default run directory is the pattern that --output's help names.
    assert "runs/<YYYYmmdd-HHMMSS>-<preset>-<algorithm>-seed<seed>" in _help("evolve", "--output")
    (made,) = (tmp_path / "runs").iterdir()
    assert re.fullmatch(r"\d{8}-\d{6}-quick-sample-tournament-seed0", made.name)


@pytest.mark.slow
def test_tensorflow_logs_come_back_on_request():
    script = ("from deap_lossgp.fitness.runtime import quiet_tensorflow\n"
              "print(quiet_tensorflow())\nimport tensorflow as tf\ntf.constant(1.0) + 1\n")
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_environment(),
                           timeout=300)
    own = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=_environment(TF_CPP_MIN_LOG_LEVEL="0"), timeout=300)
    assert quiet.stdout.strip() == "True" and quiet.stderr == ""
    # The user's own TF_CPP_MIN_LOG_LEVEL wins: TensorFlow is left alone.
    assert own.stdout.strip() == "False"
    if not TF_LOG.search(own.stderr):
        pytest.skip("this TensorFlow build logs nothing at import, so there is nothing to hide")


def _statistics_logbook(fitnesses_per_generation):
    creator.create("FitnessOutputs", base.Fitness, weights=(1.0, 1.0))
    creator.create("TreeOutputs", gp.PrimitiveTree, fitness=creator.FitnessOutputs)
    stats = fitness_statistics()
    logbook = tools.Logbook()
    for gen, fitnesses in enumerate(fitnesses_per_generation):
        population = []
        for values in fitnesses:
            individual = creator.TreeOutputs([])
            individual.fitness.values = values
            population.append(individual)
        logbook.record(gen=gen, **stats.compile(population))
    return logbook


def test_the_plot_shows_wins_and_marks_failed_generations_instead_of_dropping_them():
    inf = float("-inf")
    logbook = _statistics_logbook([[(0.0, inf), (0.0, inf)], [(2.0, 0.1), (0.0, inf)], [(3.0, 0.2), (1.0, 0.05)]])
    figure = fitness_figure(logbook)
    wins, improvement = figure.axes
    assert wins.get_ylabel() == "tasks won"
    labels = [text.get_text() for text in improvement.get_legend().get_texts()]
    assert "-inf: nothing trained" in labels
    # Generation 0 has no finite improvement: it is drawn as a marker, not left out.
    marked = [line for line in improvement.get_lines() if line.get_label() == "-inf: nothing trained"]
    assert list(marked[0].get_xdata()) == [0]


def test_fitness_is_printed_readably():
    assert format_fitness([0.0, "-inf"]) == "0 wins, improvement -inf (nothing trained)"
    assert format_fitness((3.0, 0.04123)) == "3 wins, improvement +0.04123"
    assert format_fitness(("1.0", "-0.5")) == "1 win, improvement -0.5"


def test_the_evaluate_table_has_readable_headers():
    record = {"expression": "x", "fitness": [1.0, 0.1], "metric": "accuracy", "averaging": "thesis",
              "tasks": {"digits": {"val_accuracy": 0.9, "val_loss": 0.3, "val_ce": 0.3, "improvement": 0.1,
                                   "baseline": {"val_accuracy": 0.8, "val_ce": 0.4}}}}
    text = format_record(record)
    assert "CE(CE)" not in text and "CE xent" in text and "cross-entropy" in text


def test_the_hall_of_fame_keeps_distinct_keys_only():
    creator.create("FitnessHof", base.Fitness, weights=(1.0, 1.0))
    creator.create("TreeHof", list, fitness=creator.FitnessHof)
    individuals = []
    for name, values in (("a", (1.0, 0.3)), ("a-plus-constant", (1.0, 0.3)), ("b", (2.0, 0.1)), ("c", (0.0, 0.5))):
        individual = creator.TreeHof(name)
        individual.fitness.values = values
        individuals.append(individual)
    halloffame = KeyedHallOfFame(2, key=lambda individual: "".join(individual)[0])
    halloffame.update(individuals)
    assert ["".join(i) for i in halloffame] == ["b", "a"]


@pytest.mark.slow
def test_hall_of_fame_is_readable_while_the_search_runs_and_an_interrupted_run_exports(tmp_path, capsys):
    config = make_config("quick", backend="serial", seed=1, hall_of_fame=3, **TINY)
    run_dir = tmp_path / "run"
    seen = []

    def stop_after_generation_0(run, logbook, halloffame):
        rows = read_hall_of_fame(run.hall_of_fame)
        seen.append(rows)
        assert run.logbook.exists() and len(run.logbook.read_text().splitlines()) == len(logbook) + 1
        raise KeyboardInterrupt  # the run is still going: generations 1 and 2 remain

    with pytest.raises(KeyboardInterrupt):
        run_search(run_dir, config, progress=False, on_generation=stop_after_generation_0)
    (rows,) = seen
    assert 1 <= len(rows) <= 3
    assert [int(row["rank"]) for row in rows] == list(range(1, len(rows) + 1))
    fitnesses = [(float(row["wins"]), float(row["improvement"])) for row in rows]
    assert fitnesses == sorted(fitnesses, reverse=True)
    assert {"expression", "formula", "size", "height", "digits accuracy", "digits CE accuracy",
            "digits improvement"} <= set(rows[0])
    capsys.readouterr()

    assert main(["show", str(run_dir)]) == 0
    shown = capsys.readouterr().out
    assert "1 of 3 generations" in shown and "hall of fame" in shown and "[0.0" not in shown
    assert main(["export", str(run_dir), "--format", "json"]) == 0
    captured = capsys.readouterr()
    exported = json.loads(captured.out)
    assert exported["expression"] == rows[0]["expression"] and exported["finished"] is False
    assert "unfinished" in captured.err and "resume" in captured.err

    # Resumed, the bar starts at the trainings done so far (one per task of each record).
    done = sum(len(record["tasks"]) for record in read_records(run_dir / "evaluations.jsonl"))

    def stop_after_generation_1(run, logbook, halloffame):
        if len(logbook) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(run_dir, config, progress=True, on_generation=stop_after_generation_1)
    counts = re.findall(r"(\d+)/(\d+) \[", capsys.readouterr().err)
    now = sum(len(record["tasks"]) for record in read_records(run_dir / "evaluations.jsonl"))
    assert int(counts[0][0]) == done and int(counts[-1][0]) == now > done, counts

    # --quiet: the final summary and nothing else.
    assert main(["resume", str(run_dir), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    heads = [line.split(":")[0] for line in captured.out.splitlines()]
    assert heads[:4] == ["best loss", "formula", "fitness", "confirmed"] and heads[-1] == "more"
    assert heads[-2] in ("use it", "verdict") and [head.split()[0] for head in heads[4:-2]] == ["digits", "mean"]
    assert len(read_hall_of_fame(run_dir / "hall_of_fame.csv")) <= 3

    assert main(["resume", str(run_dir), "--quiet"]) == 0
    assert "is finished" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_repeats_pairs_the_candidate_and_cross_entropy_by_seed(tmp_path, capsys):
    settings = dict(epochs=1, tasks=["digits"], max_train_samples=100)
    comparison = compare_with_ce("neg(mul(y_true, log(y_pred)))", repeats=3, baseline_dir=tmp_path, **settings)
    assert comparison["seeds"] == [0, 1, 2] and len(comparison["records"]) == 3
    task = comparison["tasks"]["digits"]
    ce_values = task["ce"]["values"]
    assert len(set(ce_values)) > 1  # each seed trained its own cross-entropy model
    for record, candidate, ce, value in zip(comparison["records"], task["candidate"]["values"], ce_values,
                                            task["improvement"]["values"]):
        entry = record["tasks"]["digits"]
        assert (entry["val_accuracy"], entry["baseline"]["val_accuracy"], entry["improvement"]) == (candidate, ce,
                                                                                                   value)
    improvements = task["improvement"]["values"]
    assert math.isclose(task["improvement"]["mean"], sum(improvements) / 3)
    assert task["wins"] == sum(value > 0 for value in improvements)
    assert task["p_value"] is not None and task["exceeds_noise"] == (task["p_value"] < 0.05)
    text = format_comparison(comparison)
    assert "±" in text and "digits:" in text

    # The command line gives the same table (baselines from the default store, so only the shape is compared).
    assert main(["evaluate", "ce", "--repeats", "2", "--epochs", "1", "--set", "tasks=[\"digits\"]",
                 "--set", "max_train_samples=100"]) == 0
    out = capsys.readouterr().out
    assert "seeds: 0, 1" in out and "±" in out and "paired t-test" in out


def test_evaluate_refuses_zero_repeats(capsys):
    assert main(["evaluate", "ce", "--repeats", "0"]) == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err


def test_gpu_extra_adds_cuda_to_the_one_tensorflow_distribution():
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    requires = setup["options"]["install_requires"].split()
    extras = setup["options.extras_require"]
    # One distribution provides the tensorflow module in every install, so the GPU extra only adds to it.
    assert not any(line.startswith("tensorflow-cpu") for line in requires)
    assert "tensorflow>=2.16" in requires
    assert extras["gpu"].split() == ["tensorflow[and-cuda]>=2.16"]
    assert "tensorflow" not in extras["test"] + extras["docs"]

"""Trainings as the unit of parallel work, and the asynchronous variant.

An evaluation split into one unit per task must give the fitness of the whole
tree, whatever the backend and the order in which units complete; a failed
task cancels the units after it that have not started.  The asynchronous
variant must be the same search under every backend for a fixed ``inflight``,
and after a resume.
"""

import copy
import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy
import pytest
from deap import creator, tools

from deap_lossgp.algorithms import Evaluation, eaAsyncSampleTournament, eaNGL, eaSampleTournament
from deap_lossgp.checkpoint import CheckpointError, load_checkpoint
from deap_lossgp.checks import json_dumps
from deap_lossgp.gp.expression import evaluate_numpy, from_string, probe_batch
from deap_lossgp.gp.primitives import make_pset
from deap_lossgp.search.parallel import SerialFuture, SerialMap, get_map

from conftest import build_toolbox, comparable, make_stats

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
# Three "tasks": probe batches the cheap fitness ranks like cross-entropy.
PROBES = [probe_batch(seed=seed, batch=16) for seed in (7, 8, 9)]


def task_score(expression_tree, index):
    """How well a tree ranks the samples of probe *index* like cross-entropy (NaN if it cannot)."""
    y_true, y_pred = PROBES[index]
    per_sample = numpy.mean(evaluate_numpy(expression_tree, y_true, y_pred), axis=1)
    if not numpy.all(numpy.isfinite(per_sample)) or numpy.std(per_sample) == 0:
        return float("nan")
    ce = -numpy.sum(y_true * numpy.log(y_pred), axis=1)
    return float(numpy.corrcoef(per_sample, ce)[0, 1])


class _Unit:
    def __init__(self, tree, index, log):
        self.tree, self.index, self.log = tree, index, log

    def __call__(self):
        if self.log is not None:
            with open(self.log, "a") as stream:
                stream.write(f"{self.index}\n")
        score = task_score(self.tree, self.index)
        return {"score": score, "stop_reason": "nan" if math.isnan(score) else "completed"}


class _Trainings:
    def __init__(self, tree, log):
        self.units = [_Unit(tree, index, log) for index in range(len(PROBES))]

    @staticmethod
    def stops(result):
        return result["stop_reason"] == "nan"

    def assemble(self, results):
        scores = []
        for result in results:
            if self.stops(result):
                return 0.0, float("-inf")
            scores.append(result["score"])
        return float(sum(score > 0 for score in scores)), float(numpy.mean(scores))


class SplitFitness:
    """A cheap fitness of three tasks with LossEvaluator's protocol: ``key``,
    ``split`` (one unit per task) and ``__call__`` (the tasks in order,
    stopping at the first that fails)."""

    def __init__(self, log=None):
        self.log = log

    def key(self, individual):
        return str(individual)

    def split(self, individual):
        return _Trainings(individual, self.log)

    def __call__(self, individual):
        trainings = self.split(individual)
        results = []
        for unit in trainings.units:
            results.append(unit())
            if trainings.stops(results[-1]):
                break
        return trainings.assemble(results)


class ReversedMap(SerialMap):
    """Runs the most recently submitted unit first: the opposite completion order
    (with room for every unit at once)."""

    workers = 100

    def first_completed(self, futures):
        last = max(futures, key=lambda future: future.number)
        last.run()
        return last


def _search(algorithm, map_, seed=4, ngen=3, split=True, checkpoint=None, population_size=8, fitness=None,
            **kwargs):
    random.seed(seed)
    fitness = SplitFitness() if fitness is None else fitness
    toolbox = build_toolbox(population_size, fitness, map_)
    if split:
        toolbox.register("split", fitness.split)
    population = toolbox.population(n=population_size)
    hof = tools.HallOfFame(2)
    population, logbook = algorithm(population, toolbox, ngen=ngen, stats=make_stats(), halloffame=hof,
                                    verbose=False, checkpoint=checkpoint, **kwargs)
    return [str(ind) for ind in population], comparable(logbook), [str(ind) for ind in hof]


@pytest.mark.parametrize("algorithm", [eaSampleTournament, eaNGL])
def test_units_in_any_completion_order_give_the_whole_tree_search(algorithm):
    whole = _search(algorithm, map, split=False)
    assert _search(algorithm, SerialMap()) == whole
    assert _search(algorithm, ReversedMap()) == whole


def test_a_failed_task_cancels_the_units_after_it(tmp_path):
    pset = make_pset()
    texts = ["mul(y_true, log(y_pred))", "mul(sub(y_true, y_true), y_pred)", "neg(mul(y_true, log(y_pred)))"]
    assert math.isnan(task_score(from_string(texts[1], pset), 0))
    log = tmp_path / "units.log"
    fitness = SplitFitness(log=str(log))
    for map_, expected in ((SerialMap(), ["0", "1", "2", "0", "0", "1", "2"]),
                           (ReversedMap(), ["2", "1", "2", "1", "2", "1", "0", "0", "0"])):
        log.write_text("")
        toolbox = build_toolbox(3, fitness, map_)
        toolbox.register("split", fitness.split)
        individuals = [creator.IndividualCheap(from_string(text, pset)) for text in texts]
        assert Evaluation(toolbox)(individuals) == (3, 0, 0)
        # Serially the failed tree's later tasks never run.  All at once (first tasks first), in reverse
        # order, they ran before the failure was known.
        assert log.read_text().split() == expected
        assert individuals[1].fitness.values == (0.0, float("-inf"))
        assert [ind.fitness.values for ind in individuals] == [fitness(ind) for ind in individuals]


def test_serial_future_runs_once_and_cancels_before_running():
    calls = []
    future = SerialFuture(calls.append, 1)
    assert future.result() is None and future.result() is None and calls == [1]
    assert not future.cancel() and not future.cancelled()
    cancelled = SerialFuture(calls.append, 2)
    assert cancelled.cancel() and cancelled.cancelled()
    with pytest.raises(Exception):
        cancelled.result()
    assert calls == [1]


def test_process_pool_runs_units_and_gives_the_serial_search():
    expected = _search(eaSampleTournament, SerialMap())
    with get_map("process", workers=2, tf_threads=None) as pmap:
        assert _search(eaSampleTournament, pmap) == expected


def test_async_variant_is_the_same_search_under_every_map_for_a_fixed_inflight():
    expected = _search(eaAsyncSampleTournament, map, split=False, inflight=4)
    assert _search(eaAsyncSampleTournament, SerialMap(), inflight=4) == expected
    assert _search(eaAsyncSampleTournament, ReversedMap(), inflight=4) == expected
    with get_map("process", workers=2, tf_threads=None) as pmap:
        # Default inflight: twice the map's workers.
        assert _search(eaAsyncSampleTournament, pmap) == expected
    population, logbook, _ = expected
    assert [record["gen"] for record in logbook] == [0, 1, 2, 3]
    assert [record["nevals"] + record["ncached"] + record["nrejected"] for record in logbook] == [8, 3, 3, 3]


def test_async_variant_with_one_child_in_flight_is_a_steady_state_search():
    _, logbook, _ = _search(eaAsyncSampleTournament, SerialMap(), inflight=1, ngen=4, n_parents=2)
    assert [record["gen"] for record in logbook] == [0, 1, 2, 3, 4]
    maxima = [record["max"] for record in logbook]
    assert maxima == sorted(maxima)  # keeps the P best: never loses its best


def test_async_variant_rejects_bad_parameters():
    with pytest.raises(ValueError, match="inflight"):
        _search(eaAsyncSampleTournament, SerialMap(), inflight=0)
    with pytest.raises(ValueError, match="n_parents"):
        _search(eaAsyncSampleTournament, SerialMap(), n_parents=9)


class Interrupted(Exception):
    """Stands for a kill in the middle of a run."""


class _Fused:
    def __init__(self, unit, fuse):
        self.unit, self.fuse = unit, fuse

    def __call__(self):
        self.fuse[0] -= 1
        if self.fuse[0] < 0:
            raise Interrupted()
        return self.unit()


class FusedFitness(SplitFitness):
    """SplitFitness whose units raise after *units* of them ran (serial maps only)."""

    def __init__(self, units):
        super().__init__()
        self.fuse = [units]

    def split(self, individual):
        trainings = super().split(individual)
        trainings.units = [_Fused(unit, self.fuse) for unit in trainings.units]
        return trainings


def test_async_variant_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    expected = _search(eaAsyncSampleTournament, SerialMap(), ngen=5, inflight=4)
    path = tmp_path / "async.ckpt"
    with pytest.raises(Interrupted):
        _search(eaAsyncSampleTournament, SerialMap(), ngen=5, inflight=4, checkpoint=path, fitness=FusedFitness(40))
    state = load_checkpoint(path)
    # Interrupted between generations, with bred children still being evaluated.
    assert 1 < state["generation"] <= 5 and len(state["pending"]) == 3
    # Another seed proves the state comes from the checkpoint.
    assert _search(eaAsyncSampleTournament, SerialMap(), ngen=5, inflight=4, seed=99, checkpoint=path) == expected
    assert load_checkpoint(path)["pending"] == []
    assert _search(eaAsyncSampleTournament, SerialMap(), ngen=5, inflight=4, seed=7, checkpoint=path) == expected
    with pytest.raises(CheckpointError, match="parameters"):
        _search(eaAsyncSampleTournament, SerialMap(), ngen=5, inflight=2, checkpoint=path)


KILL_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from deap_lossgp.algorithms import eaAsyncSampleTournament
    from deap_lossgp.search.parallel import get_map
    from test_work_units import SplitFitness, _search
    import test_work_units

    class SlowUnitFitness(SplitFitness):
        def split(self, individual):
            trainings = super().split(individual)
            trainings.units = [Slow(unit) for unit in trainings.units]
            return trainings

    class Slow:
        def __init__(self, unit):
            self.unit = unit
        def __call__(self):
            time.sleep(0.05)
            return self.unit()

    test_work_units.SplitFitness = SlowUnitFitness

    if __name__ == "__main__":
        checkpoint, result = sys.argv[1], sys.argv[2]
        with get_map("process", workers=2, tf_threads=None) as pmap:
            outcome = _search(eaAsyncSampleTournament, pmap, seed=17, ngen=10,
                              checkpoint=None if checkpoint == "-" else checkpoint)
        with open(result, "w") as stream:
            json.dump(outcome, stream)
""")


def _start(tmp_path, *args):
    script = tmp_path / "async_search.py"
    script.write_text(KILL_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, str(script), *args], env=env, cwd=tmp_path, start_new_session=True)


def _generation(checkpoint):
    try:
        return load_checkpoint(checkpoint)["generation"]
    except CheckpointError:  # not written yet
        return 0


@pytest.mark.slow
def test_async_variant_killed_and_resumed_equals_uninterrupted(tmp_path):
    reference = tmp_path / "reference.json"
    assert _start(tmp_path, "-", str(reference)).wait(timeout=300) == 0
    checkpoint, result = tmp_path / "run.ckpt", tmp_path / "result.json"
    resumed_from = []
    for delay in (0.05, 0.2):
        resumed_from.append(_generation(checkpoint))
        process = _start(tmp_path, str(checkpoint), str(result))
        deadline = time.monotonic() + 300
        while _generation(checkpoint) <= resumed_from[-1] and process.poll() is None:
            assert time.monotonic() < deadline, "no generation finished in 300 s"
            time.sleep(0.02)
        time.sleep(delay)
        # The whole group: the pool's workers die with their parent, as on a node failure.
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert resumed_from == sorted(resumed_from) and len(set(resumed_from)) == 2
    assert _start(tmp_path, str(checkpoint), str(result)).wait(timeout=300) == 0
    assert json.loads(result.read_text()) == json.loads(reference.read_text())


# The real quick fitness: units trained in worker processes give the record of the whole tree.

CE = "neg(mul(y_true, log(y_pred)))"
# Overflows on the first task (see test_fitness): its other tasks are never counted.
EXPLODING = "add(3000.0, neg(mul(exp(div(mul(y_true, 0.001), y_pred)), exp(div(mul(y_true, 0.001), y_pred)))))"
UNLEARNING = "mul(y_true, y_pred)"


def _without_times(record):
    """The record as JSON text (NaN compares equal), without its times."""
    record = {name: value for name, value in record.items() if name not in ("time", "timestamp")}
    record["tasks"] = {name: {k: v for k, v in task.items() if k != "time"} for name, task in record["tasks"].items()}
    return json_dumps(record, sort_keys=True)  # as records are written: non-finite numbers as strings


def _records(path):
    with open(path, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


@pytest.mark.slow
def test_quick_fitness_units_in_workers_give_the_whole_tree_records(quick_fitness, tmp_path):
    from deap_lossgp.fitness import WORST_FITNESS, train_tasks
    from deap_lossgp.gp.expression import compile_loss
    from deap_lossgp.search.toolbox import LossIndividual, make_toolbox

    lenient = quick_fitness.config.replace(validity="thesis", divergence_factor=1e300)
    texts = [CE, EXPLODING, UNLEARNING]
    whole, split = (copy.deepcopy(quick_fitness) for _ in range(2))
    for fitness, name in ((whole, "whole.jsonl"), (split, "split.jsonl")):
        fitness.config, fitness.records_path = lenient, str(tmp_path / name)
    expected = [whole.evaluate_detailed(text) for text in texts]
    assert [r["status"] for r in expected[:2]] == ["ok", "failed"]
    assert list(expected[1]["tasks"]) == ["digits"] and tuple(expected[1]["fitness"]) == WORST_FITNESS
    # Before the split, one call trained all tasks of a tree: the same per-task records.
    tasks = [split._task_data(task) for task in lenient.resolved_tasks()]
    together = train_tasks(compile_loss(CE), tasks, chance_after=lenient.chance_after,
                           baseline_accuracy=[split.baseline(t.name)["history"]["accuracy"]
                                              for t in lenient.resolved_tasks()], **lenient.training_arguments())
    assert [{k: v for k, v in r.items() if k != "time"} for r in together] == [
        {k: v for k, v in task.items() if k not in ("time", "improvement", "baseline")}
        for task in expected[0]["tasks"].values()]
    with get_map("process", workers=2) as pmap:
        toolbox = make_toolbox(fitness=split, map=pmap)
        individuals = [LossIndividual(from_string(text, toolbox.pset)) for text in texts]
        assert Evaluation(toolbox)(individuals) == (3, 0, 0)
    assert [ind.fitness.values for ind in individuals] == [tuple(r["fitness"]) for r in expected]
    # The main process writes one record per tree, as each tree's fitness is assembled.
    assert sorted(_without_times(r) for r in _records(split.records_path)) == sorted(map(_without_times, expected))


def _quick_search(fitness, map_, algorithm=eaSampleTournament, **kwargs):
    from deap_lossgp.gp.losses import REFERENCE_EXPRESSIONS
    from deap_lossgp.search.presets import get_preset
    from deap_lossgp.search.toolbox import LossIndividual, make_toolbox

    search = get_preset("quick", population=4).search
    random.seed(1)
    toolbox = make_toolbox(fitness=copy.deepcopy(fitness), search=search, map=map_)
    population = toolbox.population(n=4)
    # Losses that train, so that finite fitness values are compared too.
    population[:2] = [LossIndividual(from_string(REFERENCE_EXPRESSIONS[name], toolbox.pset)) for name in ("ce", "ngl")]
    hof = tools.HallOfFame(1)
    population, logbook = algorithm(population, toolbox, ngen=1, halloffame=hof, verbose=False, **kwargs)
    return comparable(logbook), [str(i) for i in population], [list(i.fitness.values) for i in population], str(hof[0])


@pytest.mark.slow
def test_quick_search_is_the_same_with_whole_trees_and_with_units_in_processes(quick_fitness):
    before = _quick_search(quick_fitness, map)  # a plain map: whole trees, as before the split
    assert _quick_search(quick_fitness, SerialMap()) == before
    with get_map("process", workers=2) as pmap:
        assert _quick_search(quick_fitness, pmap) == before
    assert any(math.isfinite(values[1]) for values in before[2])


SCOOP_QUICK = textwrap.dedent("""
    import json, pickle, sys
    from deap_lossgp.search.parallel import get_map
    from test_work_units import _quick_search

    if __name__ == "__main__":
        with open(sys.argv[1], "rb") as stream:
            fitness = pickle.load(stream)
        with get_map("scoop") as smap:
            outcome = _quick_search(fitness, smap)
        with open(sys.argv[2], "w") as stream:
            json.dump(outcome, stream)
""")


@pytest.mark.slow
def test_quick_search_under_scoop_is_the_serial_one(quick_fitness, tmp_path):
    import pickle

    script, fitness_file, output = tmp_path / "scoop_quick.py", tmp_path / "fitness.pkl", tmp_path / "out.json"
    script.write_text(SCOOP_QUICK)
    fitness_file.write_bytes(pickle.dumps(quick_fitness))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")]))
    completed = subprocess.run([sys.executable, "-m", "scoop", "-n", "2", str(script), str(fitness_file), str(output)],
                               env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    expected = _quick_search(quick_fitness, map)
    assert json.loads(output.read_text()) == json.loads(json.dumps(expected))


@pytest.mark.slow
def test_the_command_line_runs_the_async_variant(tmp_path):
    import csv

    from deap_lossgp.app.cli import main

    output = tmp_path / "run"
    arguments = ["evolve", "--algorithm", "async-sample-tournament", "--population", "4", "--generations", "2",
                 "--epochs", "1", "--set", "max_train_samples=200", "--backend", "serial", "--seed", "3", "--quiet",
                 "--output", str(output)]
    assert main(arguments) == 0
    with (output / "logbook.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert [row["gen"] for row in rows] == ["0", "1", "2"]
    assert sum(int(row["nevals"]) + int(row["nrejected"]) + int(row["ncached"]) for row in rows[1:]) == 2
    state = load_checkpoint(output / "checkpoint.pkl")
    assert state["algorithm"] == "eaAsyncSampleTournament" and state["params"]["inflight"] == 2
    assert json.loads((output / "config.json").read_text())["algorithm"] == "async-sample-tournament"


@pytest.mark.slow
def test_a_kept_compiled_model_trains_bit_identically_to_a_fresh_one():
    from deap_lossgp.fitness import TaskSpec, load_task, training
    from deap_lossgp.fitness.runtime import configure_tensorflow
    from deap_lossgp.gp.expression import compile_loss

    configure_tensorflow(1)
    settings = {"epochs": 2, "batch_size": 32, "seed": 0}
    clean = load_task(TaskSpec("digits", max_train_samples=300))
    noisy = load_task(TaskSpec("digits", label_noise=0.4, max_train_samples=300))
    fresh = training.train_model(compile_loss(CE), noisy, **settings)
    training.train_model(compile_loss(CE), clean, reuse=CE, **settings)
    kept = training._kept[2]
    again = training.train_model(compile_loss(CE), noisy, reuse=CE, **settings)
    assert training._kept[2] is kept  # the same compiled model, not traced again
    assert {k: v for k, v in again.items() if k != "time"} == {k: v for k, v in fresh.items() if k != "time"}
    training.train_model(compile_loss(CE), clean, **settings)
    assert training._kept is None

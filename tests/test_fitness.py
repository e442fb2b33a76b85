"""LossEvaluator end to end: real small CNNs trained on the bundled digits.

The module shares one baseline directory, so the cross-entropy baselines of
the ``quick`` tasks are trained once.
"""

import json
import math
import os
import re
import pickle
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from deap_lossgp import LossEvaluator
from deap_lossgp.fitness import WORST_FITNESS, score
from deap_lossgp.gp.losses import REFERENCE_EXPRESSIONS
from deap_lossgp.search.presets import get_preset

CE = REFERENCE_EXPRESSIONS["ce"]
NGL = REFERENCE_EXPRESSIONS["ngl"]
TINY_CE = "mul(0.0001, neg(mul(y_true, log(y_pred))))"
# Pushes the true class's probability to zero until exp(.) * exp(.) overflows (positive on the probe).
EXPLODING = "add(3000.0, neg(mul(exp(div(mul(y_true, 0.001), y_pred)), exp(div(mul(y_true, 0.001), y_pred)))))"
QUICK_TASKS = ["digits", "digits-noise0.4", "digits-n300"]


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("baselines"))


@pytest.fixture(scope="module")
def records_path(tmp_path_factory):
    return str(tmp_path_factory.mktemp("records") / "evaluations.jsonl")


@pytest.fixture(scope="module")
def quick(baseline_dir, records_path):
    fitness = LossEvaluator(preset="quick", records_path=records_path, baseline_dir=baseline_dir)
    fitness.prepare()
    return fitness


@pytest.fixture(scope="module")
def ce_record(quick):
    return quick.evaluate_detailed(CE)


def _records(path):
    with open(path, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def _rescore(record, metric):
    entries = list(record["tasks"].values())
    return score(entries, [entry["baseline"] for entry in entries], metric=metric)


def test_baselines_are_stored_and_reused(quick, baseline_dir):
    files = sorted(os.listdir(baseline_dir))
    assert len(files) == len(QUICK_TASKS) and all(re.fullmatch(r"ce-[0-9a-f]{32}\.json", n) for n in files)
    stamps = {name: os.path.getmtime(os.path.join(baseline_dir, name)) for name in files}
    again = LossEvaluator(preset="quick", baseline_dir=baseline_dir).prepare()
    assert list(again) == QUICK_TASKS
    assert {name: os.path.getmtime(os.path.join(baseline_dir, name)) for name in files} == stamps
    record = again["digits"]
    assert record["stop_reason"] == "completed" and record["settings"]["epochs"] == 6
    assert 0.8 < record["val_accuracy"] <= 1.0 and 0.0 < record["test_accuracy"] <= 1.0


def test_changed_setting_trains_a_new_baseline(baseline_dir):
    before = set(os.listdir(baseline_dir))
    LossEvaluator(preset="quick", baseline_dir=baseline_dir, tasks=["digits"], epochs=1, max_train_samples=100).prepare()
    added = set(os.listdir(baseline_dir)) - before
    assert len(added) == 1 and next(iter(added)).startswith("ce-")


@pytest.mark.slow
def test_ce_as_a_tree_scores_about_zero(ce_record):
    assert ce_record["status"] == "ok" and ce_record["stop_reason"] == "completed"
    assert list(ce_record["tasks"]) == QUICK_TASKS
    for entry in ce_record["tasks"].values():
        assert abs(entry["improvement"]) <= 0.02
        assert entry["val_ce"] == pytest.approx(entry["baseline"]["val_ce"], rel=0.05)
    assert abs(ce_record["fitness"][1]) <= 0.02
    (_, average), improvements = _rescore(ce_record, "ce")
    assert all(abs(x) <= 0.05 for x in improvements)


@pytest.mark.slow
def test_ngl_trains_and_is_scored(quick, records_path):
    record = quick.evaluate_detailed(NGL, test=True)
    assert record["status"] == "ok" and record["reason"] is None
    wins, average = record["fitness"]
    improvements = [entry["improvement"] for entry in record["tasks"].values()]
    assert wins == sum(x > 0 for x in improvements)
    assert np.isfinite(average)
    for entry in record["tasks"].values():
        assert entry["epochs"] == 6 and entry["stop_reason"] == "completed"
        assert len(entry["history"]["val_accuracy"]) == 6
        assert 0.0 <= entry["test_accuracy"] <= 1.0
        assert set(entry["baseline"]) >= {"val_loss", "val_accuracy", "val_ce", "test_accuracy"}
    last = _records(records_path)[-1]
    assert last["expression"] == NGL and last["fitness"] == [wins, average]
    assert last["stop_reason"] == "completed" and last["time"] > 0
    assert quick(NGL) == (wins, average)  # cached


@pytest.mark.slow
def test_tiny_constant_times_ce_fools_only_the_loss_metric(quick, baseline_dir):
    literal = LossEvaluator(preset="quick", baseline_dir=baseline_dir, metric="loss", chance_after=0, validity="thesis")
    record = literal.evaluate_detailed(TINY_CE)
    wins, average = record["fitness"]
    assert wins == 3.0 and average > 0.99  # thesis §4.3: "better" by its tiny loss values
    for metric in ("ce", "accuracy"):
        (wins, average), _ = _rescore(record, metric)
        assert wins == 0.0 and average < -0.1
    # The screened default rejects it untrained: with Adam it barely moves the predictions.
    assert quick(TINY_CE)[0] == 0.0


def test_nan_gets_the_worst_fitness_and_divergence_a_graded_one(quick, baseline_dir, records_path):
    # Infinite near the edges: the screened default rejects it untrained; the thesis's rule lets it train.
    assert quick.evaluate_detailed(EXPLODING)["status"] == "invalid"
    lenient = LossEvaluator(preset="quick", baseline_dir=baseline_dir, records_path=records_path,
                          divergence_factor=1e300, validity="thesis")
    record = lenient.evaluate_detailed(EXPLODING)
    assert record["status"] == "failed" and record["stop_reason"] == "nan"
    assert record["reason"].startswith("digits: training loss became")
    assert tuple(record["fitness"]) == WORST_FITNESS
    assert list(record["tasks"]) == ["digits"]  # the other tasks are not trained
    assert _records(records_path)[-1]["reason"] == record["reason"]
    # On clean digits the divergence stop catches it while its metrics are still finite.
    strict = LossEvaluator(preset="quick", baseline_dir=baseline_dir, records_path=records_path, validity="thesis",
                         divergence_factor=10.0, tasks=["digits"])
    record = strict.evaluate_detailed(EXPLODING)
    assert record["status"] == "stopped" and record["stop_reason"] == "diverged"
    wins, average = record["fitness"]
    assert math.isfinite(average) and (wins, average) < quick(CE)


@pytest.mark.slow
def test_a_stopped_training_is_graded_below_a_better_completed_one(baseline_dir, records_path):
    graded = LossEvaluator(preset="quick", baseline_dir=baseline_dir, records_path=records_path, validity="thesis")
    record = graded.evaluate_detailed("mul(y_true, y_pred)")  # unlearns: stopped as hopeless
    assert record["status"] == "stopped" and record["stop_reason"] == "chance"
    assert all(2 <= task["epochs"] < 6 for task in record["tasks"].values())
    wins, average = record["fitness"]
    assert math.isfinite(average) and average < 0
    completed = graded.evaluate_detailed(CE)
    assert completed["status"] == "ok" and tuple(record["fitness"]) < tuple(completed["fitness"])
    literal = LossEvaluator(preset="quick", baseline_dir=baseline_dir, metric="loss", validity="thesis")
    assert tuple(literal.evaluate_detailed("mul(y_true, y_pred)")["fitness"]) == WORST_FITNESS


def test_trees_with_identical_gradients_share_a_key_except_under_the_loss_metric(quick):
    shifted = f"add({CE}, 0.5)"
    assert quick.key(CE) == quick.key(shifted) == quick.key(f"add({CE}, sin(y_true))")
    assert quick.key(CE) != quick.key(f"mul(2.0, {CE})")
    literal = LossEvaluator(preset="quick", metric="loss")
    assert literal.key(CE) != literal.key(shifted)


def test_invalid_trees_are_not_trained(quick, records_path):
    record = quick.evaluate_detailed("y_pred")
    assert record["status"] == "invalid" and record["tasks"] == {}
    assert "y_true" in record["reason"] and tuple(record["fitness"]) == WORST_FITNESS
    assert quick("add(y_true,") == WORST_FITNESS
    last = _records(records_path)[-1]
    assert last["status"] == "invalid" and "unreadable" in last["reason"]


def test_equivalent_trees_are_trained_once(quick, records_path):
    from deap_lossgp import Evaluation, LossIndividual, from_string, make_toolbox

    toolbox = make_toolbox(fitness=quick)
    trees = [LossIndividual(from_string(text, toolbox.pset)) for text in (CE, f"add({CE}, 0.5)", "mul(y_true, y_pred)")]
    count = len(_records(records_path))
    evaluation = Evaluation(toolbox)
    assert evaluation(trees) == (1, 1, 1)  # CE + 0.5 trains like CE; p_true is screened out
    assert trees[0].fitness.values == trees[1].fitness.values
    assert len(_records(records_path)) == count + 2  # one training, one rejection
    assert evaluation.cache[quick.key(CE)] == trees[0].fitness.values


@pytest.mark.slow
def test_same_fitness_again_and_global_random_state_untouched(quick, ce_record):
    random.seed(7)
    np.random.seed(7)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    assert quick(CE) == tuple(ce_record["fitness"])
    assert random.getstate() == python_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))


@pytest.mark.slow
def test_same_fitness_in_a_fresh_process(quick, baseline_dir, ce_record):
    import tensorflow as tf

    # Bit-identical results need the same thread pools as this process.
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    script = textwrap.dedent(
        f"""
        import warnings
        warnings.simplefilter("ignore")
        import tensorflow as tf
        from deap_lossgp.fitness import LossEvaluator, configure_tensorflow
        configure_tensorflow({threads})
        tf.reduce_sum(tf.ones(2)).numpy()
        print(repr(LossEvaluator(preset="quick", baseline_dir={baseline_dir!r})({CE!r})))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == repr(tuple(ce_record["fitness"]))


def test_pickles_without_a_cache_and_works_with_a_deap_toolbox(quick, ce_record):
    from deap import base, creator, gp

    from deap_lossgp import from_string, make_pset

    clone = pickle.loads(pickle.dumps(quick))
    # Workers receive the configuration and the baselines, never an evaluation cache.
    assert clone.config == quick.config and not hasattr(clone, "cache")
    creator.create("FitnessTest", base.Fitness, weights=(1.0, 1.0))
    creator.create("IndividualTest", gp.PrimitiveTree, fitness=creator.FitnessTest)
    try:
        toolbox = base.Toolbox()
        toolbox.register("evaluate", clone)
        individual = creator.IndividualTest(from_string(CE, make_pset()))
        individual.fitness.values = toolbox.evaluate(individual)
        assert individual.fitness.values == tuple(ce_record["fitness"])
    finally:
        del creator.IndividualTest, creator.FitnessTest


def test_construction_checks_settings():
    assert LossEvaluator(preset="quick", epochs=2).config.epochs == 2
    config = get_preset("paper-small").fitness
    assert LossEvaluator(preset=config).config == config
    assert LossEvaluator(preset=get_preset("quick").fitness, metric="ce").config.metric == "ce"
    with pytest.raises(ValueError, match="pass its .fitness"):
        LossEvaluator(preset=get_preset("quick"))
    with pytest.raises(ValueError, match="unknown FitnessConfig field.*population"):
        LossEvaluator(preset="quick", population=10)
    with pytest.raises(ValueError, match="epochs"):
        LossEvaluator(preset="quick", epochs=0)
    with pytest.raises(ValueError, match="unknown preset"):
        LossEvaluator(preset="huge")
    with pytest.raises(ValueError, match="unknown FitnessConfig field"):
        LossEvaluator(preset=config, population=3)
    with pytest.raises(ValueError, match="unknown FitnessConfig field"):
        LossEvaluator(preset=config, epoch=3)

"""Training one model with one loss: records, reproducibility, early stops.

These train real small CNNs on the bundled digits (a second or two each).
"""

import math
import random
import warnings

import numpy as np
import pytest

from deap_lossgp.gp.expression import compile_loss
from deap_lossgp.fitness.datasets import TaskSpec, load_task
from deap_lossgp.fitness.runtime import configure_tensorflow
from deap_lossgp.fitness.training import chance_threshold, is_hopeless, train_model, train_tasks

CE = "neg(mul(y_true, log(y_pred)))"
SETTINGS = {"epochs": 2, "batch_size": 32, "seed": 0}
# Pushes the true class's probability to zero until exp(.) * exp(.) overflows.
EXPLODING = "neg(mul(exp(div(mul(y_true, 0.001), y_pred)), exp(div(mul(y_true, 0.001), y_pred))))"


def _without_time(record):
    return {name: value for name, value in record.items() if name != "time"}


@pytest.fixture(scope="module")
def digits():
    return load_task(TaskSpec("digits", max_train_samples=600))


def test_record_of_a_completed_training(digits):
    record = train_model("categorical_crossentropy", digits, evaluate_test=True, **SETTINGS)
    assert record["stop_reason"] == "completed" and record["stop_detail"] is None
    assert record["epochs"] == 2
    history = record["history"]
    assert set(history) >= {"loss", "accuracy", "ce", "val_loss", "val_accuracy", "val_ce", "learning_rate"}
    assert all(len(values) == 2 for values in history.values())
    assert record["val_accuracy"] == history["val_accuracy"][-1]
    assert record["best_val_accuracy"] == max(history["val_accuracy"])
    # With Keras's cross-entropy as the loss, the loss and the CE metric agree.
    assert record["val_ce"] == pytest.approx(record["val_loss"], rel=1e-5)
    assert record["val_accuracy"] > 0.5
    assert 0.0 <= record["test_accuracy"] <= 1.0 and math.isfinite(record["test_ce"])
    assert record["time"] > 0


@pytest.mark.slow
def test_shared_model_is_bit_identical_to_fresh_ones(digits):
    noisy = load_task(TaskSpec("digits", label_noise=0.4, max_train_samples=600))
    loss = compile_loss(CE)
    together = train_tasks(loss, [digits, noisy], **SETTINGS)
    apart = [train_model(loss, data, **SETTINGS) for data in (digits, noisy)]
    assert [_without_time(r) for r in together] == [_without_time(r) for r in apart]
    assert together[0]["history"] != together[1]["history"]


@pytest.mark.slow
def test_same_seed_same_record_and_global_random_states_untouched(digits):
    random.seed(123)
    np.random.seed(123)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    first = train_model(compile_loss(CE), digits, **SETTINGS)
    assert random.getstate() == python_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))
    second = train_model(compile_loss(CE), digits, **SETTINGS)
    assert _without_time(first) == _without_time(second)
    other_seed = train_model(compile_loss(CE), digits, **{**SETTINGS, "seed": 1})
    assert other_seed["history"] != first["history"]


def test_nan_stops_training_cleanly(digits):
    settings = {**SETTINGS, "epochs": 6, "chance_after": 0}
    record = train_model(compile_loss(EXPLODING), digits, divergence_factor=1e300, **settings)
    assert record["stop_reason"] == "nan"
    assert "became nan" in record["stop_detail"] or "became -inf" in record["stop_detail"]
    assert record["epochs"] < 6
    assert not math.isfinite(record["val_loss"])
    diverged = train_model(compile_loss(EXPLODING), digits, **settings)
    assert diverged["stop_reason"] == "diverged" and "exceeds" in diverged["stop_detail"]
    assert diverged["epochs"] <= record["epochs"]


def test_a_loss_that_unlearns_stops_as_hopeless_after_two_epochs(digits):
    # Minimising the true class's probability: accuracy drops below chance.
    backwards = compile_loss("mul(y_true, y_pred)")
    settings = {**SETTINGS, "epochs": 4}
    record = train_model(backwards, digits, chance_after=1, **settings)
    assert record["stop_reason"] == "chance" and record["epochs"] == 2
    assert "chance level" in record["stop_detail"]
    # Not while cross-entropy itself was still at chance level at that epoch.
    record = train_model(backwards, digits, chance_after=2, baseline_accuracy=[0.1] * 4, **settings)
    assert record["stop_reason"] == "completed" and record["epochs"] == 4
    record = train_model(backwards, digits, chance_after=0, **settings)
    assert record["stop_reason"] == "completed" and record["epochs"] == 4


def test_is_hopeless_needs_two_flat_epochs_at_chance_while_ce_learned():
    threshold, noise = 0.12, 0.01
    assert not is_hopeless([0.1], threshold, noise)
    assert is_hopeless([0.1, 0.1], threshold, noise)
    assert not is_hopeless([0.08, 0.1], threshold, noise)  # still rising
    assert not is_hopeless([0.1, 0.13], threshold, noise)  # above chance
    assert not is_hopeless([0.1, 0.1], threshold, noise, first_epoch=3)
    assert is_hopeless([0.1, 0.1], threshold, noise, baseline=[0.5, 0.9])
    assert not is_hopeless([0.1, 0.1], threshold, noise, baseline=[0.15, 0.2])  # CE near chance too
    assert is_hopeless([0.1, 0.1, 0.1], threshold, noise, baseline=[0.5, 0.9])  # past CE's curve: its last epoch


def test_only_a_non_finite_training_skips_the_remaining_tasks(digits):
    backwards = compile_loss("mul(y_true, y_pred)")
    records = train_tasks(backwards, [digits, digits], chance_after=[2, 2], **SETTINGS)
    assert [r["stop_reason"] for r in records] == ["chance", "chance"]
    exploding = compile_loss(EXPLODING)
    records = train_tasks(exploding, [digits, digits], divergence_factor=1e300, **{**SETTINGS, "epochs": 6})
    assert [r["stop_reason"] for r in records] == ["nan"]
    with pytest.raises(ValueError, match="chance_after has 1 values for 2 tasks"):
        train_tasks(backwards, [digits, digits], chance_after=[1], **SETTINGS)
    with pytest.raises(ValueError, match="baseline_accuracy has 1 curves for 2 tasks"):
        train_tasks(backwards, [digits, digits], baseline_accuracy=[[0.5]], **SETTINGS)


@pytest.mark.slow
def test_repeated_trainings_release_their_graphs():
    import gc

    tiny = load_task(TaskSpec("digits", max_train_samples=64))

    def live_graphs():
        gc.collect()
        return sum(type(o).__name__ == "FuncGraph" for o in gc.get_objects())

    train_model("categorical_crossentropy", tiny, epochs=1, chance_after=0)
    before = live_graphs()
    for _ in range(3):
        train_model("categorical_crossentropy", tiny, epochs=1, chance_after=0)
    assert live_graphs() <= before


def test_chance_threshold():
    labels = np.repeat(np.arange(10), 100)
    assert chance_threshold(labels, 10) == pytest.approx(0.1 + 3 * math.sqrt(0.09 / 1000))
    assert chance_threshold(np.zeros(50, dtype=int), 10) == 1.0


def test_configure_tensorflow_after_start_only_warns():
    import tensorflow as tf

    tf.reduce_sum(tf.ones(2)).numpy()  # TensorFlow is running from here on
    current = tf.config.threading.get_intra_op_parallelism_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        configure_tensorflow(current)
    with pytest.warns(RuntimeWarning, match="already running"):
        configure_tensorflow(current + 3)
    from tensorflow.python.framework.config import is_op_determinism_enabled

    assert is_op_determinism_enabled()
    with pytest.raises(ValueError, match="threads"):
        configure_tensorflow(-1)


def test_zero_threads_keeps_a_count_set_earlier_in_the_process():
    import subprocess
    import sys

    script = (
        "from deap_lossgp.fitness import configure_tensorflow\n"
        "import tensorflow as tf\n"
        "configure_tensorflow(1)\n"
        "configure_tensorflow(0)\n"
        "print(tf.config.threading.get_intra_op_parallelism_threads())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "1"

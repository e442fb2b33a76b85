"""Stored cross-entropy baselines are keyed by what is trained, not by names."""

import errno
import os
import re
import sys
import textwrap

import numpy as np
import pytest

from deap_lossgp.fitness import baseline, datasets
from deap_lossgp.fitness.config import FitnessConfig
from deap_lossgp.fitness.datasets import DATASETS, Dataset, load_task, register_dataset
from deap_lossgp.fitness.models import MODELS

HASH_NAME = re.compile(r"ce-[0-9a-f]{32}\.json")


def _separable(seed=0, n=160, shuffle_labels=False):
    # Two classes a small CNN tells apart in one epoch: dark and bright 8x8 images.
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    images = (rng.integers(0, 60, size=(n, 8, 8, 1)) + 190 * labels[:, None, None, None]).astype(np.uint8)
    if shuffle_labels:
        labels = rng.permutation(labels)
    return images, labels.astype(np.int64)


@pytest.fixture
def tiny_dataset():
    """A registered dataset whose arrays the test can change under the same name."""
    holder = {"arrays": _separable()}

    def loader(data_dir=None):
        images, labels = holder["arrays"]
        return Dataset("stale_test", images[:128], labels[:128], images[128:], labels[128:], 2)

    register_dataset("stale_test", loader)
    yield holder
    del DATASETS["stale_test"]
    _forget_loaded_data()


def _forget_loaded_data():
    # What a new process sees: nothing loaded yet.
    datasets.load_dataset.cache_clear()
    datasets.load_task.cache_clear()


def _config(**changes):
    settings = dict(tasks=["stale_test"], epochs=2, batch_size=16, learning_rate=1e-2, threads=1)
    settings.update(changes)
    return FitnessConfig(**settings)


def _baseline(config, directory):
    task = config.resolved_tasks()[0]
    return baseline.get_baseline(task, load_task(task, config.seed, config.validation_split), config, directory)


@pytest.fixture
def trainings(monkeypatch):
    """Counts the cross-entropy trainings get_baseline starts."""
    calls = []
    real = baseline.train_model

    def counting(*args, **kwargs):
        calls.append(kwargs.get("model"))
        return real(*args, **kwargs)

    monkeypatch.setattr(baseline, "train_model", counting)
    return calls


@pytest.mark.slow
def test_changed_arrays_under_the_same_name_get_a_new_baseline(tiny_dataset, trainings, tmp_path):
    config = _config()
    learned = _baseline(config, tmp_path)
    _forget_loaded_data()
    assert _baseline(config, tmp_path)["val_accuracy"] == learned["val_accuracy"]
    assert len(trainings) == 1, "the same data reuses the stored baseline"

    tiny_dataset["arrays"] = _separable(shuffle_labels=True)
    _forget_loaded_data()
    retrained = _baseline(config, tmp_path)
    assert len(trainings) == 2
    assert learned["val_accuracy"] > 0.9 and retrained["val_accuracy"] < 0.8
    assert retrained["settings"]["data"] != learned["settings"]["data"]
    assert sorted(HASH_NAME.fullmatch(path.name) is not None for path in tmp_path.iterdir()) == [True, True]


@pytest.mark.slow
def test_a_model_builder_whose_body_changed_gets_a_new_baseline(tiny_dataset, trainings, tmp_path, monkeypatch):
    module = tmp_path / "stale_model_builders.py"
    body = """
        import keras

        def build(input_shape, num_classes):
            inputs = keras.Input(shape=input_shape)
            x = keras.layers.Flatten()(inputs)
            x = keras.layers.Dense({units}, activation="relu", trainable={trainable})(x)
            return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # a rewrite within one second must not reuse a .pyc
    config = _config(model="stale_model_builders:build")
    store = tmp_path / "baselines"

    module.write_text(textwrap.dedent(body.format(units=16, trainable=True)))
    learned = _baseline(config, store)
    # The user edits the builder and starts a new process: the module is imported afresh.
    module.write_text(textwrap.dedent(body.format(units=2, trainable=False)))
    del sys.modules["stale_model_builders"]
    changed = _baseline(config, store)
    assert len(trainings) == 2
    assert changed["settings"]["model_fingerprint"] != learned["settings"]["model_fingerprint"]
    assert changed["val_accuracy"] != learned["val_accuracy"]
    del sys.modules["stale_model_builders"]


def test_a_registered_model_replaced_under_its_name_is_fingerprinted_again(monkeypatch):
    import keras

    def narrow(input_shape, num_classes):
        inputs = keras.Input(shape=input_shape)
        outputs = keras.layers.Dense(num_classes, activation="softmax")(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, outputs)

    def wide(input_shape, num_classes):
        inputs = keras.Input(shape=input_shape)
        x = keras.layers.Dense(8)(keras.layers.Flatten()(inputs))
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))

    monkeypatch.setitem(MODELS, "fingerprint_test_model", narrow)
    config = FitnessConfig(tasks=["digits"], model="fingerprint_test_model")
    first = baseline.model_fingerprint(config, (4, 4, 1), 3)
    assert baseline.model_fingerprint(config, (4, 4, 1), 3) == first
    monkeypatch.setitem(MODELS, "fingerprint_test_model", wide)
    assert baseline.model_fingerprint(config, (4, 4, 1), 3) != first
    # Seeds give other initial weights, hence other fingerprints.
    assert baseline.model_fingerprint(config.replace(seed=1), (4, 4, 1), 3) != baseline.model_fingerprint(
        config, (4, 4, 1), 3)


def test_model_fingerprints_do_not_depend_on_the_models_built_before(monkeypatch):
    from deap_lossgp.fitness.models import build_model

    config = FitnessConfig(tasks=["digits"])
    first = baseline.model_fingerprint(config, (8, 8, 1), 10)
    for _ in range(2):  # shifts Keras's automatic layer names (dense -> dense_2, ...)
        build_model("small_cnn", (8, 8, 1), 10)
    monkeypatch.setattr(baseline, "_model_fingerprints", {})
    assert baseline.model_fingerprint(config, (8, 8, 1), 10) == first


class _FakeTraining:
    """Stands in for a training: the file handling is under test, not the training."""

    def __init__(self):
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return {"stop_reason": "completed", "val_accuracy": 0.5, "history": {"accuracy": [0.5]}}


def test_files_are_named_by_hashes_only_and_each_data_hash_is_computed_once(tmp_path, monkeypatch):
    fake = _FakeTraining()
    monkeypatch.setattr(baseline, "train_model", fake)
    hashed = []
    real = datasets.fingerprint_arrays
    monkeypatch.setattr(datasets, "fingerprint_arrays", lambda *arrays: hashed.append(1) or real(*arrays))
    store = tmp_path / "store"
    config = FitnessConfig(tasks=["digits"], max_train_samples=50)
    task = config.resolved_tasks()[0]
    datasets.load_task.cache_clear()
    data = load_task(task, config.seed, config.validation_split)
    for name in ("../../escaped", "/etc/cron.d/evil", "a/b"):
        task = task.__class__(dataset="digits", max_train_samples=50, name=name)
        baseline.get_baseline(task, data, config, store)
    for seed in (1, 2):  # the evaluator's repeated seeds on the same data
        baseline.get_baseline(task, data, config.replace(seed=seed), store)
    assert len(hashed) == 1
    assert all(HASH_NAME.fullmatch(path.name) for path in store.iterdir())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["store"]
    # The task name is not part of what is trained: one setting per seed.
    assert len(list(store.iterdir())) == 3 and fake.calls == 3


def _counted_digits(monkeypatch):
    """A small digits task, its setting, and counting fake trainings in place of get_baseline's."""
    fake = _FakeTraining()
    monkeypatch.setattr(baseline, "train_model", fake)
    config = FitnessConfig(tasks=["digits"], max_train_samples=50)
    task = config.resolved_tasks()[0]
    return fake, config, task, load_task(task, config.seed, config.validation_split)


def test_a_failed_write_names_the_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    _, config, task, data = _counted_digits(monkeypatch)
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, stream):
            self.stream = stream

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda *args, **kwargs: Full(real_fdopen(*args, **kwargs)))
    with pytest.raises(OSError) as caught:
        baseline.get_baseline(task, data, config, tmp_path)
    monkeypatch.undo()
    expected = baseline.baseline_path(baseline.baseline_settings(task, data, config), tmp_path)
    assert caught.value.filename == expected and caught.value.errno == errno.ENOSPC
    assert expected in str(caught.value) and "baseline directory" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_stored_baseline_is_trained_again(tmp_path, monkeypatch):
    fake, config, task, data = _counted_digits(monkeypatch)
    baseline.get_baseline(task, data, config, tmp_path)
    (stored,) = tmp_path.iterdir()
    stored.write_text("{not json")
    assert baseline.get_baseline(task, data, config, tmp_path)["val_accuracy"] == 0.5
    assert fake.calls == 2


def test_a_symbolic_link_planted_in_the_cache_is_refused_not_read(tmp_path, monkeypatch):
    fake, config, task, data = _counted_digits(monkeypatch)
    path = baseline.baseline_path(baseline.baseline_settings(task, data, config), tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.json"
    outside.write_text('{"settings": null}')
    os.symlink(outside, path)
    with pytest.raises(OSError, match="refusing to read through a symbolic link") as caught:
        baseline.get_baseline(task, data, config, tmp_path)
    assert caught.value.filename == path and fake.calls == 0
    assert outside.read_text() == '{"settings": null}'

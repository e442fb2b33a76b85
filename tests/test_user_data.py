"""Your data and your model: arrays, .npz files, image folders, a builder in the current directory."""

import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from deap_lossgp.fitness import datasets
from deap_lossgp.fitness.datasets import (
    DATASETS,
    TaskSpec,
    load_dataset,
    load_task,
    read_image_folder,
    read_npz,
    register_arrays,
    task_from_path,
)
from deap_lossgp.fitness.models import get_model_builder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def forget_registrations():
    """Each test starts from the built-in registry, as a new process does."""
    before = dict(DATASETS)
    yield
    DATASETS.clear()
    DATASETS.update(before)
    datasets.load_dataset.cache_clear()
    datasets.load_task.cache_clear()


def _arrays(n=60, shape=(6, 6), classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape)), np.arange(n) % classes


# ---- arrays ----

def test_float_images_in_unit_range_are_kept_and_a_test_split_is_recorded():
    x, y = _arrays()
    task = register_arrays("floats", x, y)
    dataset = load_dataset(task.dataset)
    assert dataset.x_train.dtype == np.float32 and dataset.pixel_max == 1.0
    assert dataset.x_train.shape == (48, 6, 6, 1) and len(dataset.x_test) == 12
    assert dataset.test_split == {"fraction": 0.2, "seed": 0, "stratified": True}
    np.testing.assert_array_equal(np.bincount(dataset.y_test), [4, 4, 4])
    # The split is seeded: the same arrays give the same split.
    expected = np.sort(x.astype(np.float32).reshape(60, -1), axis=0)
    together = np.concatenate([dataset.x_train, dataset.x_test]).reshape(60, -1)
    np.testing.assert_array_equal(np.sort(together, axis=0), expected)
    data = load_task(task, validation_split=0.25)
    assert data.num_classes == 3 and data.x_train.dtype == np.float32


def test_float_images_on_another_scale_are_mapped_to_the_unit_range():
    from sklearn.datasets import load_digits

    bunch = load_digits()  # float64 images, 0..16
    x_test = bunch.images[:100] * 2.0  # beyond the training range: scaled with the training constants
    task = register_arrays("float_digits", bunch.images[100:], bunch.target[100:], x_test, bunch.target[:100])
    dataset = load_dataset(task.dataset)
    assert dataset.test_split is None and dataset.pixel_max == 1.0 and dataset.x_train.dtype == np.float32
    assert dataset.x_train.min() == 0.0 and dataset.x_train.max() == 1.0
    np.testing.assert_allclose(dataset.x_test, x_test[..., None] / 16.0, rtol=1e-6)
    standardised = (bunch.images[100:] - 8.0) / 4.0
    centred = load_dataset(register_arrays("standardised", standardised, bunch.target[100:]).dataset)
    assert centred.x_train.min() >= 0.0 and centred.x_train.max() == 1.0


def test_integer_images_one_hot_and_column_labels():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(40, 5, 5, 3), dtype=np.int64)
    x[0, 0, 0, 0] = 255
    one_hot = np.eye(4)[np.arange(40) % 4]
    dataset = load_dataset(register_arrays("ints", x, one_hot).dataset)
    assert dataset.x_train.dtype == np.uint8 and dataset.pixel_max == 255.0 and dataset.num_classes == 4
    column = (np.arange(40) % 4).reshape(-1, 1).astype(np.float64)
    same = load_dataset(register_arrays("ints_column", x, column).dataset)
    np.testing.assert_array_equal(same.y_train, dataset.y_train)
    wide = np.full((40, 4, 4), 1000, dtype=np.uint16)
    wide[:20] = 0
    wide_set = load_dataset(register_arrays("wide", wide, np.arange(40) % 2, num_classes=3).dataset)
    assert wide_set.pixel_max == 1000.0 and wide_set.x_train.dtype == np.uint16 and wide_set.num_classes == 3


def test_registering_the_same_arrays_again_is_allowed_other_data_is_not():
    x, y = _arrays()
    register_arrays("again", x, y)
    assert register_arrays("again", x, y) == TaskSpec("again")
    with pytest.raises(ValueError, match="already registered with other data; register yours under another name"):
        register_arrays("again", x[::-1], y)
    with pytest.raises(ValueError, match="already registered"):
        register_arrays("digits", x, y)


@pytest.mark.parametrize("change, message", [
    (lambda x, y: (x.reshape(len(x), -1), y), r"got shape \(60, 36\); reshape flat images"),
    (lambda x, y: (x.reshape(60, 1, 6, 6), y), r"look channels-first; move the channels last with np.moveaxis"),
    (lambda x, y: (x, np.zeros(60)), r"single class \(0\); a classifier needs images of at least 2 classes"),
    (lambda x, y: (np.where(x > 0.99, np.nan, x), y), r"NaN or infinite pixel value\(s\); drop or repair"),
    (lambda x, y: (x, y - 1), r"labels out of range: found -1; labels are class indices 0..C-1"),
    (lambda x, y: (x, y[:-1]), r"59 training labels for 60 images; give exactly one label per image"),
    (lambda x, y: (x, y + 0.5), r"whole class indices"),
    (lambda x, y: (x, np.stack([y, y], axis=1)), r"not one-hot .*give integer class labels"),
    (lambda x, y: (x.astype(str), y), r"must be numeric"),
    (lambda x, y: (np.zeros_like(x), y), r"every training pixel is 0.0; the images carry nothing"),
    (lambda x, y: (x[:3], y[:3]), r"3 training images are too few; give at least 5"),
])
def test_bad_arrays_are_refused_with_the_fix(change, message):
    x, y = change(*_arrays())
    with pytest.raises(ValueError, match=message) as caught:
        register_arrays("bad", x, y)
    assert "\n" not in str(caught.value)
    assert "bad" not in DATASETS


def test_bad_test_splits_and_class_counts_are_refused():
    x, y = _arrays()
    with pytest.raises(ValueError, match="out of range: found class 2 with num_classes=2; labels must lie in 0..1"):
        register_arrays("bad", x, y, num_classes=2)
    with pytest.raises(ValueError, match="give both x_test and y_test, or neither"):
        register_arrays("bad", x, y, x_test=x)
    with pytest.raises(ValueError, match=r"test images are \(5, 5, 1\) but training images \(6, 6, 1\)"):
        register_arrays("bad", x, y, x[:, :5, :5], y)
    with pytest.raises(ValueError, match="labels out of range: found class 7 with num_classes=3"):
        register_arrays("bad", x, y, x, np.full(60, 7), num_classes=3)


# ---- .npz files ----

def test_npz_with_and_without_a_test_split(tmp_path):
    x, y = _arrays()
    images = (x * 255).astype(np.uint8)
    np.savez(tmp_path / "split.npz", x_train=images[:50], y_train=y[:50], x_test=images[50:], y_test=y[50:])
    np.savez(tmp_path / "whole.npz", x_train=images, y_train=y)
    given = load_dataset(task_from_path(tmp_path / "split.npz").dataset)
    assert given.test_split is None and len(given.x_test) == 10
    held = task_from_path(tmp_path / "whole.npz", label_noise=0.2, max_train_samples=20)
    assert held.label_noise == 0.2 and held.max_train_samples == 20 and held.path == str(tmp_path / "whole.npz")
    assert load_dataset(held.dataset).test_split["fraction"] == 0.2
    assert load_task(held).x_train.shape[0] == 20


def test_npz_names_come_from_the_content_and_the_file_name(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "my data.npz", x_train=x, y_train=y)
    first = task_from_path(tmp_path / "my data.npz")
    assert first.dataset.startswith("my_data-") and len(first.dataset) == len("my_data-") + 12
    assert task_from_path(str(tmp_path / "my data.npz")).dataset == first.dataset
    np.savez(tmp_path / "my data.npz", x_train=x[::-1], y_train=y[::-1])
    assert task_from_path(tmp_path / "my data.npz").dataset != first.dataset


def test_a_path_task_is_read_again_in_a_new_process_and_refused_if_the_data_changed(tmp_path):
    x, y = _arrays()
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x, y_train=y)
    task = task_from_path(path, label_noise=0.1)
    expected = load_task(task).x_train
    shipped = pickle.dumps(task)  # how a worker process receives it
    stored = task.to_dict()  # how a run's config.json keeps it

    del DATASETS[task.dataset]
    datasets.load_dataset.cache_clear()
    datasets.load_task.cache_clear()
    np.testing.assert_array_equal(load_task(pickle.loads(shipped)).x_train, expected)

    del DATASETS[task.dataset]
    datasets.load_dataset.cache_clear()
    datasets.load_task.cache_clear()
    resumed = TaskSpec.from_value(stored)
    assert resumed == task
    np.savez(path, x_train=x[::-1], y_train=y[::-1])
    with pytest.raises(ValueError, match="changed since dataset 'mine-[0-9a-f]{12}' was made from it; put the"):
        load_task(resumed)


def test_a_spawned_worker_reads_a_path_task(tmp_path):
    import concurrent.futures
    import multiprocessing

    x, y = _arrays()
    np.savez(tmp_path / "mine.npz", x_train=x, y_train=y)
    task = task_from_path(tmp_path / "mine.npz")
    # A worker of the process pool: a fresh interpreter that was never told about the dataset.
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        shipped = pool.submit(load_task, task).result(timeout=300)
    np.testing.assert_array_equal(shipped.x_train, load_task(task).x_train)


def test_a_builtin_task_stores_no_path():
    assert TaskSpec("digits").to_dict() == {"dataset": "digits", "label_noise": 0.0, "max_train_samples": None,
                                            "name": "digits"}


def test_bad_npz_files_are_refused_with_the_fix(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "keys.npz", images=x, labels=y)
    with pytest.raises(ValueError, match="holds the keys images, labels; a dataset file holds x_train and y_train"):
        read_npz(tmp_path / "keys.npz")
    np.savez(tmp_path / "extra.npz", x_train=x, y_train=y, x_val=x)
    with pytest.raises(ValueError, match="holds the keys x_train, x_val, y_train"):
        task_from_path(tmp_path / "extra.npz")
    np.savez(tmp_path / "objects.npz", x_train=np.array([x, "a"], dtype=object), y_train=y)
    with pytest.raises(ValueError, match="object arrays, which are not read"):
        task_from_path(tmp_path / "objects.npz")
    (tmp_path / "text.npz").write_text("x_train,y_train\n")
    with pytest.raises(ValueError, match="is not a .npz file; write one with np.savez"):
        task_from_path(tmp_path / "text.npz")
    np.savez(tmp_path / "half.npz", x_train=x, y_train=y, x_test=x)
    with pytest.raises(ValueError, match="give both x_test and y_test"):
        task_from_path(tmp_path / "half.npz")
    with pytest.raises(ValueError, match="does not exist; give a .npz file or a folder of images"):
        task_from_path(tmp_path / "missing.npz")


# ---- image folders ----

def _write_images(folder, classes, count=6, size=(7, 5), mode="L"):
    rng = np.random.default_rng(len(str(folder)))
    for label, name in enumerate(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            pixels = rng.integers(0, 100, size=shape, dtype=np.uint8) + 100 * label
            Image.fromarray(pixels.astype(np.uint8), mode=None).save(folder / name / f"{index}.png")


def test_an_image_folder_gives_classes_in_alphabetical_order(tmp_path):
    _write_images(tmp_path / "pets", ["dog", "cat"])
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")
    read = read_image_folder(tmp_path / "pets")
    assert read["classes"] == ["cat", "dog"] and read["x_train"].shape == (12, 5, 7, 1)
    assert list(read["y_train"]) == [0] * 6 + [1] * 6
    task = task_from_path(tmp_path / "pets")
    assert task.dataset.startswith("pets-") and load_dataset(task.dataset).num_classes == 2


def test_an_image_folder_with_train_and_test_and_colour(tmp_path):
    _write_images(tmp_path / "data" / "train", ["a", "b", "c"], mode="RGB")
    _write_images(tmp_path / "data" / "test", ["a", "b", "c"], count=2, mode="RGB")
    Image.fromarray(np.zeros((5, 7), dtype=np.uint8)).save(tmp_path / "data" / "train" / "a" / "gray.png")
    dataset = load_dataset(task_from_path(tmp_path / "data").dataset)
    assert dataset.x_train.shape == (19, 5, 7, 3) and dataset.x_test.shape == (6, 5, 7, 3)
    assert dataset.test_split is None and dataset.pixel_max == float(dataset.x_train.max())


@pytest.mark.parametrize("make, message", [
    (lambda folder: None, "has no class subfolders; put each class's images in a subfolder named after the class"),
    (lambda folder: (folder / "cat").mkdir(), "holds no images"),
    (lambda folder: (_write_images(folder, ["cat"]), (folder / "dog").mkdir()),
     "class folder .*dog holds no images .*; add some or remove the folder"),
    (lambda folder: _write_images(folder, ["cat"]), r"single class \(0\)"),
    (lambda folder: (_write_images(folder, ["cat"]), _write_images(folder, ["dog"], size=(8, 8))),
     r"images differ in size: .* is 7x5, .* is 8x8; resize them to one size"),
    (lambda folder: (_write_images(folder, ["cat", "dog"]), (folder / "dog" / "broken.png").write_text("no")),
     r"cannot read the image .*broken.png .*; repair or remove it"),
])
def test_bad_image_folders_are_refused_with_the_fix(tmp_path, make, message):
    folder = tmp_path / "images"
    folder.mkdir()
    make(folder)
    with pytest.raises(ValueError, match=message) as caught:
        task_from_path(folder)
    assert "\n" not in str(caught.value)


@pytest.mark.slow
def test_a_folder_task_trains(tmp_path):
    from deap_lossgp.fitness.training import train_model

    _write_images(tmp_path / "shapes", ["dark", "light"], count=20)
    data = load_task(task_from_path(tmp_path / "shapes"))
    record = train_model("categorical_crossentropy", data, epochs=1, batch_size=8, chance_after=0)
    assert record["stop_reason"] == "completed" and record["epochs"] == 1


# ---- your model ----

def test_a_missing_builder_module_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the current directory, once searched, stays on the path
    with pytest.raises(ValueError, match=r"No module named 'not_here_xyz' \(not installed, not in .*\); run from "
                                         r"the folder holding not_here_xyz.py or add its folder to PYTHONPATH"):
        get_model_builder("not_here_xyz:build")
    (tmp_path / "needs_more_xyz.py").write_text("import missing_dependency_xyz\n")
    with pytest.raises(ValueError, match=r"No module named 'missing_dependency_xyz'$"):
        get_model_builder("needs_more_xyz:build")


@pytest.mark.slow
def test_the_console_script_imports_a_builder_from_the_current_directory(tmp_path):
    (tmp_path / "mystuff.py").write_text(textwrap.dedent("""
        import keras

        def tiny(input_shape, num_classes):
            inputs = keras.Input(shape=input_shape)
            x = keras.layers.Flatten()(inputs)
            return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x), name="mystuff_tiny")
    """))
    environment = {**os.environ, "PYTHONPATH": ROOT, "HOME": str(tmp_path)}
    command = [shutil.which("deap-lossgp") or "deap-lossgp", "evaluate", "-y_true*log(y_pred)", "--epochs", "1",
               "--set", 'tasks=["digits"]', "--set", "max_train_samples=50", "--set", "model=mystuff:tiny", "--json"]
    result = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert '"fitness"' in result.stdout
    # The baselines went to the cache under $HOME, named by hashes only.
    stored = list((tmp_path / ".cache" / "deap_lossgp" / "baselines").iterdir())
    assert stored and all(path.name.startswith("ce-") for path in stored)


@pytest.mark.slow
def test_the_docs_example_shows_every_way_in(tmp_path):
    example = os.path.join(ROOT, "docs", "examples", "your_data.py")
    result = subprocess.run([sys.executable, example], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    assert "float32 pixels 0..1" in lines["arrays"] and "'stratified': True" in lines["arrays"]
    assert re.fullmatch(r" digits-[0-9a-f]{12} test images: 397", lines["npz"])
    assert re.fullmatch(r" digit_images-[0-9a-f]{12}-noise0.2-n200 classes: 10", lines["folder"])
    # Cross-entropy written as a tree matches the baseline trained with Keras's cross-entropy.
    assert lines["cross-entropy as a tree"].endswith("improvement +0.000")
    assert result.stderr == ""


# ---- the command line ----

@pytest.mark.slow
def test_the_command_line_takes_data_and_gives_one_verdict(tmp_path, capsys):
    from deap_lossgp.app.cli import main

    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(tmp_path / "mine.npz", x_train=digits.images[:300].astype("uint8"), y_train=digits.target[:300])
    assert main(["evaluate", "ce", "--data", str(tmp_path / "mine.npz"), "--epochs", "1", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^mine-[0-9a-f]{12} ", out, re.M), out  # the task from the file, named by its content
    verdict = [line for line in out.splitlines() if line.startswith("verdict:")]
    assert len(verdict) == 1 and "not distinguishable from cross-entropy over 2 seeds" in verdict[0]

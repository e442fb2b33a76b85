"""Dataset loaders, splits and task variants.

The CIFAR and Fashion-MNIST tests write small archives in the official
formats (CIFAR python pickles, IDX files gzipped) and load them through the
real loaders, from ``data_dir`` and from Keras's cache layout.
"""

import gzip
import io
import os
import pickle
import random
import tarfile

import numpy as np
import pytest

from deap_lossgp.fitness import datasets
from deap_lossgp.fitness.datasets import (
    DATASETS,
    Dataset,
    DatasetNotFoundError,
    TaskSpec,
    load_cifar10,
    load_cifar100,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_task,
    read_cifar_batch,
    read_idx,
    register_dataset,
)


def _cifar_images(n, seed):
    # Channel c of image i holds the value 10 * i + c everywhere, to check the layout.
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 3, 32, 32), dtype=np.uint8)
    for i in range(n):
        for c in range(3):
            images[i, c] = (10 * i + c) % 256
    images[:, :, 0, 1] = rng.integers(0, 256, size=(n, 3))
    return images


def _cifar_batch_bytes(images, labels, label_key):
    # The official files: Python 2 pickles of a dict with byte-string keys.
    batch = {
        b"batch_label": b"training batch 1 of 5",
        label_key.encode(): list(int(label) for label in labels),
        b"data": images.reshape(len(images), 3072),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    if label_key == "fine_labels":
        batch[b"coarse_labels"] = [int(label) // 5 for label in labels]
    return pickle.dumps(batch, protocol=2)


def _cifar10_files(per_batch=20):
    files = {}
    for i in range(1, 6):
        labels = np.arange(per_batch) % 10
        files[f"data_batch_{i}"] = (_cifar_images(per_batch, i), labels)
    files["test_batch"] = (_cifar_images(10, 9), np.arange(10) % 10)
    return files


def _write_cifar(directory, files, label_key):
    os.makedirs(directory, exist_ok=True)
    for name, (images, labels) in files.items():
        with open(os.path.join(directory, name), "wb") as stream:
            stream.write(_cifar_batch_bytes(images, labels, label_key))


def _write_tar(path, folder, files, label_key):
    with tarfile.open(path, "w:gz") as tar:
        for name, (images, labels) in files.items():
            content = _cifar_batch_bytes(images, labels, label_key)
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def _idx_bytes(array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def _write_fashion(directory, n_train=30, n_test=10):
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, size=(n_train, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, size=(n_test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(n_test) % 10,
    }
    for name, array in arrays.items():
        with open(os.path.join(directory, name), "wb") as stream:
            stream.write(_idx_bytes(array))
    return arrays


def _check_cifar10(dataset, files):
    assert dataset.x_train.shape == (100, 32, 32, 3)
    assert dataset.x_test.shape == (10, 32, 32, 3)
    assert dataset.x_train.dtype == np.uint8
    assert dataset.num_classes == 10
    first_images, first_labels = files["data_batch_1"]
    # channels-last: pixel (5, 7) of image 3 holds channel values 30, 31, 32.
    assert list(dataset.x_train[3, 5, 7]) == [30, 31, 32]
    np.testing.assert_array_equal(dataset.x_train[:20], first_images.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(dataset.y_train[:20], first_labels)
    np.testing.assert_array_equal(dataset.y_test, files["test_batch"][1])


def test_digits_dataset_is_bundled_with_a_fixed_test_split():
    dataset = load_digits()
    assert dataset.x_train.shape[1:] == (8, 8, 1)
    assert dataset.x_train.dtype == np.uint8
    assert dataset.pixel_max == 16.0 and dataset.x_train.max() == 16
    assert len(dataset.x_train) + len(dataset.x_test) == 1797
    assert len(dataset.x_test) == 360
    assert sorted(np.unique(dataset.y_test)) == list(range(10))
    again = load_digits()
    np.testing.assert_array_equal(again.y_test, dataset.y_test)


def test_load_dataset_caches_per_process_and_freezes_arrays():
    first = load_dataset("digits")
    assert load_dataset("digits") is first
    with pytest.raises(ValueError):
        first.x_train[0, 0, 0, 0] = 1


def test_task_splits_are_seeded_stratified_and_shared():
    task = load_task(TaskSpec("digits"), seed=0, validation_split=0.1)
    assert len(task.x_val) == round(0.1 * 1437)
    assert len(task.x_train) + len(task.x_val) == 1437
    counts = np.bincount(task.y_val, minlength=10)
    assert counts.min() >= 13 and counts.max() <= 15
    same = load_task(TaskSpec("digits", label_noise=0.4, max_train_samples=100), seed=0, validation_split=0.1)
    np.testing.assert_array_equal(same.y_val, task.y_val)
    np.testing.assert_array_equal(same.x_test, task.x_test)
    other = load_task(TaskSpec("digits"), seed=1, validation_split=0.1)
    assert not np.array_equal(other.y_val, task.y_val)
    np.testing.assert_array_equal(other.y_test, task.y_test)


def test_max_train_samples_keeps_a_stratified_subset():
    task = load_task(TaskSpec("digits", max_train_samples=200), seed=3)
    assert len(task.x_train) == 200
    counts = np.bincount(task.y_train, minlength=10)
    assert counts.min() >= 17 and counts.max() <= 23
    assert task.input_shape == (8, 8, 1)


def test_label_noise_flips_exactly_the_fraction_to_other_classes():
    clean = load_task(TaskSpec("digits"), seed=0)
    noisy = load_task(TaskSpec("digits", label_noise=0.4), seed=0)
    np.testing.assert_array_equal(noisy.x_train, clean.x_train)
    flipped = noisy.y_train != clean.y_train
    assert flipped.sum() == round(0.4 * len(clean.y_train))
    np.testing.assert_array_equal(noisy.y_val, clean.y_val)
    assert noisy.y_train.min() >= 0 and noisy.y_train.max() <= 9


def test_loading_leaves_global_random_states_alone():
    random.seed(11)
    np.random.seed(11)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    load_task(TaskSpec("digits", label_noise=0.3, max_train_samples=321), seed=5)
    assert random.getstate() == python_state
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"dataset": "mnist"}, "unknown dataset 'mnist'"),
        ({"dataset": "digits", "label_noise": 1.0}, "label_noise"),
        ({"dataset": "digits", "label_noise": -0.1}, "label_noise"),
        ({"dataset": "digits", "max_train_samples": 0}, "max_train_samples"),
        ({"dataset": "digits", "max_train_samples": 2.5}, "max_train_samples"),
    ],
)
def test_invalid_tasks_are_rejected(fields, message):
    with pytest.raises(ValueError, match=message):
        TaskSpec(**fields)


def test_task_names_and_conversions():
    assert TaskSpec("digits").name == "digits"
    assert TaskSpec("digits", label_noise=0.4, max_train_samples=300).name == "digits-noise0.4-n300"
    assert TaskSpec("digits", name="mine").name == "mine"
    task = TaskSpec.from_value({"dataset": "digits", "label_noise": 0.2})
    assert TaskSpec.from_value(task.to_dict()) == task
    assert TaskSpec.from_value("digits") == TaskSpec("digits")
    with pytest.raises(ValueError, match="unknown task field"):
        TaskSpec.from_value({"dataset": "digits", "noise": 0.2})
    with pytest.raises(ValueError, match="validation_split"):
        load_task("digits", validation_split=1.0)


def test_cifar10_from_extracted_folder(tmp_path):
    files = _cifar10_files()
    _write_cifar(tmp_path / "cifar-10-batches-py", files, "labels")
    _check_cifar10(load_cifar10(str(tmp_path)), files)
    # data_dir may also name the folder itself.
    _check_cifar10(load_cifar10(str(tmp_path / "cifar-10-batches-py")), files)


def test_cifar10_from_official_archive(tmp_path):
    files = _cifar10_files()
    _write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", files, "labels")
    _check_cifar10(load_cifar10(tmp_path), files)


def test_cifar10_from_keras_cache(tmp_path, monkeypatch):
    files = _cifar10_files()
    _write_cifar(tmp_path / "datasets" / "cifar-10-batches-py-target" / "cifar-10-batches-py", files, "labels")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    _check_cifar10(load_cifar10(), files)


def test_cifar100_uses_fine_labels(tmp_path):
    train_labels = np.arange(50) % 100 + 50
    files = {"train": (_cifar_images(50, 1), train_labels), "test": (_cifar_images(10, 2), np.arange(10))}
    _write_tar(tmp_path / "cifar-100-python.tar.gz", "cifar-100-python", files, "fine_labels")
    dataset = load_cifar100(tmp_path)
    assert dataset.num_classes == 100
    assert dataset.x_train.shape == (50, 32, 32, 3)
    np.testing.assert_array_equal(dataset.y_train, train_labels)
    np.testing.assert_array_equal(dataset.y_test, np.arange(10))


def test_fashion_mnist_from_idx_files(tmp_path, monkeypatch):
    arrays = _write_fashion(tmp_path / "data")
    dataset = load_fashion_mnist(tmp_path / "data")
    assert dataset.x_train.shape == (30, 28, 28, 1)
    assert dataset.num_classes == 10 and dataset.pixel_max == 255.0
    np.testing.assert_array_equal(dataset.x_train[..., 0], arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(dataset.y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    _write_fashion(tmp_path / "home" / "datasets" / "fashion-mnist")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    np.testing.assert_array_equal(load_fashion_mnist().y_train, dataset.y_train)


def test_task_on_a_written_archive(tmp_path):
    files = _cifar10_files(per_batch=40)
    _write_cifar(tmp_path / "cifar-10-batches-py", files, "labels")
    task = load_task(TaskSpec("cifar10", max_train_samples=50), seed=0, data_dir=str(tmp_path))
    assert task.x_val.shape == (20, 32, 32, 3)
    assert task.x_train.shape == (50, 32, 32, 3)
    assert task.x_test.shape == (10, 32, 32, 3)
    assert task.num_classes == 10 and task.pixel_max == 255.0


@pytest.mark.parametrize(
    "loader, names",
    [
        (load_cifar10, ["cifar-10-python.tar.gz", "cifar-10-batches-py/", "data_batch_1", "test_batch"]),
        (load_cifar100, ["cifar-100-python.tar.gz", "cifar-100-python/"]),
        (load_fashion_mnist, ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]),
    ],
)
def test_missing_files_name_what_to_put_where(tmp_path, loader, names):
    with pytest.raises(DatasetNotFoundError) as caught:
        loader(str(tmp_path))
    message = str(caught.value)
    for name in names:
        assert name in message
    assert str(tmp_path) in message and "data_dir" in message


def test_cifar_pickles_cannot_run_code(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    payload = pickle.dumps({b"data": Exploit(), b"labels": [0]}, protocol=2)
    with pytest.raises(ValueError, match="refusing to load"):
        read_cifar_batch(io.BytesIO(payload), "labels")


def test_archive_without_the_official_members_is_rejected(tmp_path):
    files = _cifar10_files()
    del files["test_batch"]
    _write_tar(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py", files, "labels")
    with pytest.raises(ValueError, match="test_batch"):
        load_cifar10(tmp_path)


def test_idx_reader_checks_the_header():
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(read_idx(io.BytesIO(_idx_bytes(array))), array)
    np.testing.assert_array_equal(read_idx(io.BytesIO(gzip.decompress(_idx_bytes(array)))), array)
    with pytest.raises(ValueError, match="magic"):
        read_idx(io.BytesIO(b"\x00\x00\x0d\x01" + bytes(8)))
    with pytest.raises(ValueError, match="size"):
        read_idx(io.BytesIO(gzip.decompress(_idx_bytes(array))[:-1]))


def test_registered_dataset_is_usable_in_tasks():
    def tiny(data_dir=None):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, size=(60, 4, 4, 1), dtype=np.uint8)
        labels = np.arange(60) % 3
        return Dataset("tiny", images[:50], labels[:50], images[50:], labels[50:], 3)

    register_dataset("tiny_test_dataset", tiny)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_dataset("tiny_test_dataset", load_digits)
        task = load_task(TaskSpec("tiny_test_dataset"), validation_split=0.2)
        assert task.x_train.shape == (40, 4, 4, 1) and task.num_classes == 3
    finally:
        del DATASETS["tiny_test_dataset"]
        datasets.load_dataset.cache_clear()
        datasets.load_task.cache_clear()

"""Where the standard datasets go for an offline machine.

This script writes miniature archives in the official formats (a few random
images each) into a temporary directory laid out as the real files should be,
then loads them the way a search does. Put the real files the same way.
"""

import gzip
import os
import pickle
import struct
import tarfile
import tempfile

import numpy

from deap_lossgp.fitness.datasets import load_cifar10, load_cifar100, load_fashion_mnist, load_task

rng = numpy.random.default_rng(0)


def cifar_batch(path, label_key, n, classes):
    # The official batches: pickled dicts of flat uint8 rows (3 x 32 x 32) and label lists.
    batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=numpy.uint8),
             label_key: rng.integers(0, classes, size=n).tolist()}
    with open(path, "wb") as stream:
        pickle.dump(batch, stream)


def idx_gz(path, array):
    # IDX: zero bytes, type 0x08 (unsigned byte), dimension count, big-endian sizes.
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", size) for size in array.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.astype(numpy.uint8).tobytes())


with tempfile.TemporaryDirectory() as data_dir:
    # CIFAR-10 as the extracted folder of cifar-10-python.tar.gz.
    folder = os.path.join(data_dir, "cifar-10-batches-py")
    os.makedirs(folder)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        cifar_batch(os.path.join(folder, name), b"labels", 20, 10)

    # CIFAR-100 as the official archive itself, unextracted.
    staging = os.path.join(data_dir, "staging", "cifar-100-python")
    os.makedirs(staging)
    for name in ("train", "test"):
        cifar_batch(os.path.join(staging, name), b"fine_labels", 200, 100)
    with tarfile.open(os.path.join(data_dir, "cifar-100-python.tar.gz"), "w:gz") as archive:
        archive.add(staging, arcname="cifar-100-python")

    # Fashion-MNIST as its four gzipped IDX files, directly in the directory.
    for split, n in (("train", 60), ("t10k", 20)):
        idx_gz(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"), rng.integers(0, 256, size=(n, 28, 28)))
        idx_gz(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"), rng.integers(0, 10, size=n))

    for loader in (load_cifar10, load_cifar100, load_fashion_mnist):
        dataset = loader(data_dir=data_dir)
        print(f"{dataset.name:14} train {dataset.x_train.shape}, test {dataset.x_test.shape}, "
              f"{dataset.num_classes} classes")

    # What a fitness task sees: a seeded, stratified 10 % validation split of the training data.
    task = load_task("fashion_mnist", seed=0, validation_split=0.1, data_dir=data_dir)
    print("fashion_mnist task: train", task.x_train.shape, "validation", task.x_val.shape)
    assert len(task.x_train) + len(task.x_val) == 60

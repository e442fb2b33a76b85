"""Datasets for fitness evaluation: loading, splitting and task variants.

A *dataset* is a named loader returning a :class:`Dataset` (images as
``uint8`` plus integer labels, with the dataset's own train/test partition).
A *task* (:class:`TaskSpec`) is a dataset plus how the search uses it: the
seeded validation split the fitness is measured on, an optional training
subset (a cheap proxy) and optional label noise.  :func:`load_task` turns a
task into the arrays training needs (:class:`TaskData`).

Built-in datasets:

``digits``
    scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes);
    works offline.  Its fixed test split is 20 % (stratified, seed 0), so
    final test figures are comparable across searches.
``cifar10``, ``cifar100``, ``fashion_mnist``
    The standard archives, read from ``data_dir`` when given, otherwise from
    Keras's dataset cache (``~/.keras/datasets`` or ``$KERAS_HOME/datasets``),
    downloading with Keras's loaders when they are missing.  Offline and
    missing, loading raises :class:`DatasetNotFoundError` naming the files and
    where to put them.

CIFAR archives are Python pickles; they are read with an unpickler that only
rebuilds NumPy arrays, so a tampered file cannot execute code.

Loading is lazy and cached per process (each worker process loads a dataset
once, on first use).
"""

import dataclasses
import functools
import gzip
import hashlib
import io
import os
import pickle
import tarfile

import numpy as np

__all__ = [
    "Dataset",
    "TaskSpec",
    "TaskData",
    "DatasetNotFoundError",
    "DATASETS",
    "register_dataset",
    "load_dataset",
    "load_task",
    "load_digits",
    "load_cifar10",
    "load_cifar100",
    "load_fashion_mnist",
    "read_cifar_batch",
    "read_idx",
    "fingerprint_arrays",
]

#: Seed of the fixed held-out test split of datasets that have no standard one.
TEST_SPLIT_SEED = 0
#: Fraction held out as test data for datasets that have no standard test split.
TEST_FRACTION = 0.2


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are neither in ``data_dir`` nor in Keras's cache and cannot be downloaded."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset with its own train/test partition.

    :param name: registry name.
    :param x_train: training images, ``uint8``, shape ``(n, height, width, channels)``.
    :param y_train: integer training labels, shape ``(n,)``.
    :param x_test: test images, same layout.
    :param y_test: integer test labels.
    :param num_classes: number of classes.
    :param pixel_max: the largest pixel value (images are divided by it for training).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    pixel_max: float = 255.0


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One fitness task: a dataset and how the search trains on it.

    :param dataset: a registered dataset name (see :data:`DATASETS`).
    :param label_noise: fraction of training labels replaced, seeded, by a
                        different random class (validation and test labels
                        stay clean), in ``[0, 1)``.
    :param max_train_samples: keep at most this many training samples
                              (stratified, seeded); ``None`` keeps all.
    :param name: a name for reports; derived from the other fields if empty.
    """

    dataset: str
    label_noise: float = 0.0
    max_train_samples: int = None
    name: str = ""

    def __post_init__(self):
        if not isinstance(self.dataset, str) or self.dataset not in DATASETS:
            raise ValueError(
                f"unknown dataset {self.dataset!r}; choose from {', '.join(sorted(DATASETS))} "
                "or add one with deap_lossgp.fitness.register_dataset()"
            )
        if isinstance(self.label_noise, bool) or not isinstance(self.label_noise, (int, float)) or not (
            0.0 <= self.label_noise < 1.0
        ):
            raise ValueError(f"label_noise must lie in [0, 1), got {self.label_noise!r}")
        if self.max_train_samples is not None and (
            isinstance(self.max_train_samples, bool)
            or not isinstance(self.max_train_samples, int)
            or self.max_train_samples < 1
        ):
            raise ValueError(f"max_train_samples must be a positive integer or None, got {self.max_train_samples!r}")
        if not self.name:
            parts = [self.dataset]
            if self.label_noise:
                parts.append(f"noise{self.label_noise:g}")
            if self.max_train_samples is not None:
                parts.append(f"n{self.max_train_samples}")
            object.__setattr__(self, "name", "-".join(parts))

    def to_dict(self):
        """The task as a JSON-ready dict.

        :returns: a dict accepted by :meth:`from_value`.
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_value(cls, value):
        """Build a task from a dataset name, a dict of fields or a task.

        :param value: ``"digits"``, ``{"dataset": "digits", "label_noise": 0.4}``
                      or a :class:`TaskSpec`.
        :returns: a :class:`TaskSpec`.
        :raises ValueError: on an unknown field or an invalid value.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls(dataset=value)
        if isinstance(value, dict):
            fields = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(value) - fields)
            if unknown:
                raise ValueError(f"unknown task field(s) {unknown}; valid fields: {', '.join(sorted(fields))}")
            return cls(**value)
        raise ValueError(f"a task is a dataset name, a dict or a TaskSpec, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TaskData:
    """The arrays of one task, ready for training.

    Images stay ``uint8`` (divide by ``pixel_max`` for training) to keep large
    datasets small in memory; labels are integers.

    :param task: the task these arrays belong to.
    :param x_train: training images.
    :param y_train: training labels (noisy if the task asks for it).
    :param x_val: validation images (the fitness is measured on them).
    :param y_val: validation labels.
    :param x_test: held-out test images (never used by the search).
    :param y_test: test labels.
    :param num_classes: number of classes.
    :param pixel_max: the largest pixel value.
    """

    task: TaskSpec
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    pixel_max: float

    @property
    def input_shape(self):
        """Shape of one image, ``(height, width, channels)``."""
        return tuple(self.x_train.shape[1:])

    def fingerprint(self):
        """A hash of exactly what training sees: every split's images and labels.

        It covers the arrays' values, shapes and dtypes, the number of
        classes and the pixel scale, so any change of the data (a dataset
        edited under the same name, another split, other label noise) gives
        another fingerprint.  Computed once per object when its arrays are
        read-only (as :func:`load_task` returns them).

        :returns: a SHA-256 hex digest.
        """
        cached = self.__dict__.get("_fingerprint")
        if cached is not None:
            return cached
        arrays = (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test)
        value = fingerprint_arrays(*arrays, np.asarray([self.num_classes, self.pixel_max], dtype=np.float64))
        if not any(array.flags.writeable for array in arrays):
            # Frozen dataclass: the cache goes into __dict__ directly; writable arrays could change under it.
            self.__dict__["_fingerprint"] = value
        return value


def fingerprint_arrays(*arrays):
    """A hash of NumPy arrays: their dtypes, shapes and values, in order.

    :param arrays: numeric arrays.
    :returns: a SHA-256 hex digest.
    """
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.reshape(-1).view(np.uint8))
    return digest.hexdigest()


def _split(labels, held_out, seed):
    """Seeded ``(kept, held_out)`` index arrays; ``held_out`` is a fraction (float) or a count (int)."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    counts = np.bincount(labels)
    n_held = int(round(held_out * len(labels))) if isinstance(held_out, float) else held_out
    classes = int(np.count_nonzero(counts))
    # Stratified when every class can appear on both sides, plain otherwise.
    stratify = labels if counts[counts > 0].min() >= 2 and classes <= n_held <= len(labels) - classes else None
    return train_test_split(indices, test_size=held_out, random_state=seed, stratify=stratify)


def _readonly(*arrays):
    for array in arrays:
        array.flags.writeable = False
    return arrays


def load_digits(data_dir=None):
    """scikit-learn's bundled digits, with a fixed 20 % test split.

    :param data_dir: ignored (the data ships with scikit-learn).
    :returns: a :class:`Dataset` of 8x8x1 images with pixel values 0..16.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype(np.uint8)[..., np.newaxis]
    labels = bunch.target.astype(np.int64)
    train, test = _split(labels, TEST_FRACTION, TEST_SPLIT_SEED)
    return Dataset("digits", images[train], labels[train], images[test], labels[test], 10, pixel_max=16.0)


class _ArrayUnpickler(pickle.Unpickler):
    # The CIFAR pickles hold dicts of lists, bytes and NumPy arrays only;
    # _codecs.encode is how Python 3 writes bytes in protocol-2 pickles.
    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file (corrupted or tampered?)")


def read_cifar_batch(stream, label_key):
    """Read one CIFAR python batch (the pickled dict of the official archives).

    :param stream: a binary file object.
    :param label_key: ``"labels"`` (CIFAR-10) or ``"fine_labels"`` (CIFAR-100).
    :returns: ``(images, labels)``: ``uint8`` ``(n, 32, 32, 3)`` and ``int64`` ``(n,)``.
    :raises ValueError: if the file is not a CIFAR batch.
    """
    try:
        batch = _ArrayUnpickler(stream, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError) as error:
        raise ValueError(f"not a CIFAR python batch: {error}") from None
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or label_key not in batch:
        raise ValueError(f"not a CIFAR python batch: keys {sorted(batch)} lack 'data' or {label_key!r}")
    data = np.asarray(batch["data"], dtype=np.uint8)
    images = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(batch[label_key], dtype=np.int64)


def read_idx(stream):
    """Read an IDX file (the MNIST/Fashion-MNIST format), optionally gzipped.

    :param stream: a binary file object; gzip data is detected by its magic bytes.
    :returns: the array, ``uint8``, shaped by the file's header.
    :raises ValueError: if the header is not an unsigned-byte IDX header or the size does not match.
    """
    raw = stream.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + int(np.prod(shape)):
        raise ValueError(f"IDX file size does not match its header shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _keras_cache():
    # Keras's own rule (keras.src.backend.config), read at call time.
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "datasets")


@dataclasses.dataclass(frozen=True)
class _Archive:
    title: str
    url: str
    files: tuple  # members needed, relative to `folder`
    folder: str = ""  # the folder the files sit in, inside the archive or the cache
    archive: str = ""  # the official .tar.gz, if the files come packed
    keras_dir: str = ""  # where Keras's loader extracts the folder, inside its cache


_CIFAR10 = _Archive(
    "CIFAR-10",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",),
    folder="cifar-10-batches-py",
    archive="cifar-10-python.tar.gz",
    keras_dir="cifar-10-batches-py-target",
)
_CIFAR100 = _Archive(
    "CIFAR-100",
    "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    ("train", "test"),
    folder="cifar-100-python",
    archive="cifar-100-python.tar.gz",
    keras_dir="cifar-100-python-target",
)
_FASHION = _Archive(
    "Fashion-MNIST",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ),
    keras_dir="fashion-mnist",
)


def _read_archive(spec, root):
    """The needed files' bytes from ``root``, or ``None`` if they are not all there."""
    bases = [root, os.path.join(root, spec.keras_dir)] if spec.keras_dir else [root]
    for base in bases:
        for directory in dict.fromkeys([os.path.join(base, spec.folder), base]):
            paths = [os.path.join(directory, name) for name in spec.files]
            if all(os.path.isfile(path) for path in paths):
                contents = {}
                for name, path in zip(spec.files, paths):
                    with open(path, "rb") as stream:
                        contents[name] = stream.read()
                return contents
    packed = os.path.join(root, spec.archive) if spec.archive else None
    if packed and os.path.isfile(packed):
        with tarfile.open(packed, "r:gz") as tar:
            members = {member.name: member for member in tar.getmembers() if member.isfile()}
            wanted = {name: f"{spec.folder}/{name}" for name in spec.files}
            missing = [member for member in wanted.values() if member not in members]
            if missing:
                raise ValueError(f"{packed} is not the official {spec.title} archive: it lacks {', '.join(missing)}")
            return {name: tar.extractfile(members[member]).read() for name, member in wanted.items()}
    return None


def _missing(spec, root, reason):
    if spec.archive:
        what = f"the archive {spec.archive} (or its extracted folder {spec.folder}/ with {', '.join(spec.files)})"
    else:
        what = ", ".join(spec.files)
    return DatasetNotFoundError(
        f"{spec.title} is not available ({reason}). Put {what} into {root} (download from {spec.url}), "
        "or pass data_dir= naming a directory that holds them."
    )


def _load_archive(spec, data_dir, keras_module):
    """The raw files of a standard dataset, from ``data_dir``, Keras's cache or a download."""
    if data_dir is not None:
        root = os.path.expanduser(str(data_dir))
        contents = _read_archive(spec, root)
        if contents is None:
            raise _missing(spec, root, f"not found in data_dir {root}")
        return contents, None
    root = _keras_cache()
    contents = _read_archive(spec, root)
    if contents is not None:
        return contents, None
    import keras

    try:
        return None, getattr(keras.datasets, keras_module).load_data()
    except Exception as error:  # Keras raises bare Exceptions for failed downloads.
        raise _missing(spec, root, f"not in Keras's cache and the download failed: {error}") from None


def _from_keras(name, loaded, num_classes):
    (x_train, y_train), (x_test, y_test) = loaded
    x_train, x_test = (np.asarray(x, dtype=np.uint8) for x in (x_train, x_test))
    if x_train.ndim == 3:
        x_train, x_test = x_train[..., np.newaxis], x_test[..., np.newaxis]
    y_train, y_test = (np.asarray(y, dtype=np.int64).reshape(-1) for y in (y_train, y_test))
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes)


def _cifar(name, spec, num_classes, label_key, train_files, test_file, data_dir):
    contents, loaded = _load_archive(spec, data_dir, name)
    if loaded is not None:
        return _from_keras(name, loaded, num_classes)
    parts = [read_cifar_batch(io.BytesIO(contents[f]), label_key) for f in train_files]
    x_test, y_test = read_cifar_batch(io.BytesIO(contents[test_file]), label_key)
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    return Dataset(name, x_train, y_train, x_test, y_test, num_classes)


def load_cifar10(data_dir=None):
    """CIFAR-10 (50,000 + 10,000 colour 32x32 images, 10 classes).

    :param data_dir: a directory holding ``cifar-10-python.tar.gz`` or its
                     extracted ``cifar-10-batches-py/``; ``None`` uses Keras's
                     cache (downloading if needed).
    :returns: a :class:`Dataset`.
    :raises DatasetNotFoundError: if the files are missing and cannot be downloaded.
    """
    files = _CIFAR10.files
    return _cifar("cifar10", _CIFAR10, 10, "labels", files[:5], files[5], data_dir)


def load_cifar100(data_dir=None):
    """CIFAR-100 with its 100 fine labels (50,000 + 10,000 colour 32x32 images).

    :param data_dir: a directory holding ``cifar-100-python.tar.gz`` or its
                     extracted ``cifar-100-python/``; ``None`` uses Keras's
                     cache (downloading if needed).
    :returns: a :class:`Dataset`.
    :raises DatasetNotFoundError: if the files are missing and cannot be downloaded.
    """
    return _cifar("cifar100", _CIFAR100, 100, "fine_labels", ("train",), "test", data_dir)


def load_fashion_mnist(data_dir=None):
    """Fashion-MNIST (60,000 + 10,000 grayscale 28x28 images, 10 classes).

    :param data_dir: a directory holding the four ``*-idx?-ubyte.gz`` files;
                     ``None`` uses Keras's cache (downloading if needed).
    :returns: a :class:`Dataset` of 28x28x1 images.
    :raises DatasetNotFoundError: if the files are missing and cannot be downloaded.
    """
    contents, loaded = _load_archive(_FASHION, data_dir, "fashion_mnist")
    if loaded is not None:
        return _from_keras("fashion_mnist", loaded, 10)
    x_train, y_train, x_test, y_test = (read_idx(io.BytesIO(contents[name])) for name in _FASHION.files)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError("Fashion-MNIST image and label files disagree on the number of samples")
    return Dataset(
        "fashion_mnist",
        x_train[..., np.newaxis],
        y_train.astype(np.int64),
        x_test[..., np.newaxis],
        y_test.astype(np.int64),
        10,
    )


#: name -> loader ``loader(data_dir) -> Dataset``.
DATASETS = {
    "digits": load_digits,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "fashion_mnist": load_fashion_mnist,
}


def register_dataset(name, loader):
    """Add a dataset to the registry.

    Register it at import time of a module every worker process imports, so
    parallel evaluations find it too.

    :param name: the name tasks refer to.
    :param loader: ``loader(data_dir) -> Dataset`` (``uint8`` images
                   ``(n, height, width, channels)``, integer labels).
    :returns: ``loader`` (so this works as a decorator via :func:`functools.partial`).
    :raises ValueError: if ``name`` is taken or ``loader`` is not callable.
    """
    if not callable(loader):
        raise ValueError(f"the loader of dataset {name!r} must be callable")
    if name in DATASETS and DATASETS[name] is not loader:
        raise ValueError(f"dataset {name!r} is already registered")
    DATASETS[name] = loader
    load_dataset.cache_clear()
    return loader


@functools.lru_cache(maxsize=None)
def load_dataset(name, data_dir=None):
    """Load a registered dataset once per process.

    :param name: a name from :data:`DATASETS`.
    :param data_dir: where the standard archives are, or ``None`` for Keras's cache.
    :returns: the :class:`Dataset` (its arrays are read-only).
    :raises ValueError: for an unknown name.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(sorted(DATASETS))}")
    dataset = DATASETS[name](data_dir)
    _readonly(dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test)
    return dataset


def _flip_labels(labels, fraction, num_classes, rng):
    labels = labels.copy()
    chosen = rng.choice(len(labels), size=int(round(fraction * len(labels))), replace=False)
    # Adding 1..C-1 modulo C always lands on a different class, uniformly.
    labels[chosen] = (labels[chosen] + rng.integers(1, num_classes, size=len(chosen))) % num_classes
    return labels


@functools.lru_cache(maxsize=16)
def load_task(task, seed=0, validation_split=0.1, data_dir=None):
    """The train/validation/test arrays of a task, cached per process.

    The validation split is stratified and seeded and does not depend on the
    task's subsetting or noise, so all tasks on one dataset share it.

    :param task: a :class:`TaskSpec` (or a dataset name).
    :param seed: seed of the validation split, the training subset and the label noise.
    :param validation_split: fraction of the training data held out for validation, in ``(0, 1)``.
    :param data_dir: where the standard archives are, or ``None`` for Keras's cache.
    :returns: a :class:`TaskData` (read-only arrays).
    :raises ValueError: on an invalid split.
    """
    task = TaskSpec.from_value(task)
    if not 0.0 < validation_split < 1.0:
        raise ValueError(f"validation_split must lie in (0, 1), got {validation_split!r}")
    dataset = load_dataset(task.dataset, data_dir)
    train, val = _split(dataset.y_train, float(validation_split), seed)
    if task.max_train_samples is not None and task.max_train_samples < len(train):
        keep, _ = _split(dataset.y_train[train], len(train) - task.max_train_samples, seed)
        train = train[keep]
    y_train = dataset.y_train[train]
    if task.label_noise:
        y_train = _flip_labels(y_train, task.label_noise, dataset.num_classes, np.random.default_rng(seed))
    arrays = _readonly(dataset.x_train[train], y_train, dataset.x_train[val], dataset.y_train[val])
    return TaskData(task, *arrays, dataset.x_test, dataset.y_test, dataset.num_classes, dataset.pixel_max)

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

Your data (see the docs page "Your data, your model"):

:func:`register_arrays`
    NumPy arrays, registered under a name of yours (this process only).
:func:`task_from_path`
    A ``.npz`` file (:data:`NPZ_KEYS`) or a folder of images with one
    subfolder per class (:func:`read_image_folder`), registered under a name
    derived from its content; the task carries the path, so every process
    can read it.

Both check the arrays (shapes, NaN pixels, label range, at least two
classes; every error names the fix), accept float images without
quantisation, and hold out a seeded test split when the data has none.

CIFAR archives are Python pickles; they are read with an unpickler that only
rebuilds NumPy arrays, so a tampered file cannot execute code.  ``.npz``
files are read without unpickling.

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
import re
import tarfile

import numpy as np

from .runtime import import_keras

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
    "IMAGE_EXTENSIONS",
    "NPZ_KEYS",
    "dataset_from_arrays",
    "register_arrays",
    "read_npz",
    "read_image_folder",
    "task_from_path",
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
    :param x_train: training images, shape ``(n, height, width, channels)``:
                    ``uint8`` (or a wider unsigned integer type), or
                    ``float32`` in ``[0, 1]`` (see :func:`register_arrays`).
    :param y_train: integer training labels, shape ``(n,)``.
    :param x_test: test images, same layout.
    :param y_test: integer test labels.
    :param num_classes: number of classes.
    :param pixel_max: the largest pixel value (images are divided by it for training).
    :param test_split: how the test split was held out when the data had
                       none (``{"fraction": 0.2, "seed": 0, "stratified":
                       True}``), or ``None`` when it came with the data.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    pixel_max: float = 255.0
    test_split: dict = None


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
    :param path: the ``.npz`` file or image folder the dataset is read from,
                 when it is your data (:func:`task_from_path` sets it): any
                 process that meets the task, a worker or a resumed search,
                 reads the data from there, and refuses it if its content
                 changed since the task was made.  ``None`` for a registered
                 dataset.
    """

    dataset: str
    label_noise: float = 0.0
    max_train_samples: int = None
    name: str = ""
    path: str = None

    def __post_init__(self):
        if self.path is not None:
            if not isinstance(self.path, (str, os.PathLike)):
                raise ValueError(f"a task's path is a file or folder name, got {self.path!r}")
            path = os.path.abspath(os.path.expanduser(os.fspath(self.path)))
            object.__setattr__(self, "path", path)
            if isinstance(self.dataset, str):
                _register_path(self.dataset, path)
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

        :returns: a dict accepted by :meth:`from_value` (without ``path``
                  when there is none, as stored before it existed).
        """
        fields = dataclasses.asdict(self)
        if fields["path"] is None:
            del fields["path"]
        return fields

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
            if "dataset" not in value:
                raise ValueError(f"a task dict needs a 'dataset', got {value!r}; e.g. {{\"dataset\": \"digits\"}}")
            return cls(**value)
        raise ValueError(f"a task is a dataset name, a dict or a TaskSpec, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TaskData:
    """The arrays of one task, ready for training.

    Images stay as the dataset stores them, usually ``uint8`` (divide by
    ``pixel_max`` for training), to keep large datasets small in memory;
    labels are integers.

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


def _stratifiable(labels, held_out):
    """Whether a split holding out *held_out* (a fraction or a count) can put every class on both sides."""
    counts = np.bincount(labels)
    n_held = int(round(held_out * len(labels))) if isinstance(held_out, float) else held_out
    classes = int(np.count_nonzero(counts))
    return bool(counts[counts > 0].min() >= 2 and classes <= n_held <= len(labels) - classes)


def _split(labels, held_out, seed):
    """Seeded ``(kept, held_out)`` index arrays; ``held_out`` is a fraction (float) or a count (int)."""
    from sklearn.model_selection import train_test_split

    indices = np.arange(len(labels))
    # Stratified when every class can appear on both sides, plain otherwise.
    stratify = labels if _stratifiable(labels, held_out) else None
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
    split = {"fraction": TEST_FRACTION, "seed": TEST_SPLIT_SEED, "stratified": _stratifiable(labels, TEST_FRACTION)}
    return Dataset("digits", images[train], labels[train], images[test], labels[test], 10, pixel_max=16.0,
                   test_split=split)


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
    keras = import_keras()

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


# ---- Your own data: arrays, .npz files, image folders ----

#: The file name extensions read from an image folder (those Keras's ``image_dataset_from_directory`` reads).
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
#: The arrays a ``.npz`` file may hold; ``x_test`` and ``y_test`` are optional.
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# Fewest images to hold out test and validation samples from and still train on some.
_MIN_SAMPLES = 5


def _images(x, what):
    """*x* as a numeric ``(n, height, width, channels)`` array, or a ValueError naming the problem."""
    x = np.asarray(x)
    if x.dtype != np.bool_ and not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{what} must be numeric, got dtype {x.dtype}; convert them with "
                         "np.asarray(images, dtype=np.float32)")
    if x.ndim == 3:
        x = x[..., np.newaxis]
    if x.ndim != 4:
        raise ValueError(f"{what} must be shaped (samples, height, width) or (samples, height, width, channels), "
                         f"got shape {x.shape}; reshape flat images with x.reshape(len(x), height, width)")
    if x.shape[1] in (1, 3, 4) and x.shape[3] not in (1, 3, 4):
        raise ValueError(f"{what} of shape {x.shape} look channels-first; move the channels last with "
                         "np.moveaxis(x, 1, -1)")
    if np.iscomplexobj(x):
        raise ValueError(f"{what} hold complex numbers; give real pixel values")
    if not x.size:
        raise ValueError(f"{what} are empty (shape {x.shape}); give at least one image of at least one pixel")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(f"{what} hold {bad} NaN or infinite pixel value(s); drop or repair those images "
                         "(e.g. np.nan_to_num) first")
    return x


def _labels(y, what, count):
    """Integer labels of shape ``(count,)`` and the classes one-hot labels imply (or 0)."""
    y = np.asarray(y)
    width = 0
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2:
        if y.dtype == np.bool_ or np.issubdtype(y.dtype, np.number):
            one_hot = np.isin(y, (0, 1)).all() and np.all(y.sum(axis=1) == 1)
        else:
            one_hot = False
        if not one_hot:
            raise ValueError(f"{what} of shape {y.shape} are not one-hot (one 1 per row, zeros elsewhere); give "
                             "integer class labels of shape (samples,) instead")
        width, y = y.shape[1], y.argmax(axis=1)
    if y.ndim != 1:
        raise ValueError(f"{what} must be shaped (samples,) or one-hot (samples, classes), got shape {y.shape}")
    if len(y) != count:
        raise ValueError(f"{len(y)} {what} for {count} images; give exactly one label per image")
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.number) or np.iscomplexobj(y):
        raise ValueError(f"{what} must be integer class indices, got dtype {y.dtype}; map your classes to "
                         "0..C-1, e.g. with np.unique(labels, return_inverse=True)[1]")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError(f"{what} must be whole class indices 0..C-1, got values such as "
                             f"{y[~(np.isfinite(y) & (y == np.round(y)))][0]!r}")
    y = y.astype(np.int64)
    if len(y) and y.min() < 0:
        raise ValueError(f"{what} out of range: found {y.min()}; labels are class indices 0..C-1 (map your "
                         "classes with np.unique(labels, return_inverse=True)[1])")
    return y, width


def _pixels(x_train, x_test):
    """Images ready to store and their ``pixel_max`` (training divides by it), see :func:`register_arrays`."""
    if x_train.dtype == np.bool_:
        return x_train.astype(np.uint8), x_test.astype(np.uint8), 1.0
    low, high = x_train.min(), x_train.max()
    if low == high:
        raise ValueError(f"every training pixel is {low}; the images carry nothing to learn from")
    if np.issubdtype(x_train.dtype, np.integer) and np.issubdtype(x_test.dtype, np.integer) and low >= 0:
        kind = np.uint8 if max(high, x_test.max(initial=0)) <= 255 else np.min_scalar_type(max(high, x_test.max()))
        return x_train.astype(kind), x_test.astype(kind), float(high)
    if low >= 0.0 and high <= 1.0:
        return x_train.astype(np.float32), x_test.astype(np.float32), 1.0
    # Floats on another scale (0..255, 0..16, standardised): mapped linearly so the training images span [0, 1].
    low, span = np.float64(low), np.float64(high) - np.float64(low)
    return ((x_train - low) / span).astype(np.float32), ((x_test - low) / span).astype(np.float32), 1.0


def dataset_from_arrays(name, x_train, y_train, x_test=None, y_test=None, num_classes=None,
                        test_fraction=TEST_FRACTION, split_seed=TEST_SPLIT_SEED):
    """Check arrays and turn them into a :class:`Dataset` (see :func:`register_arrays`).

    :param name: the dataset's name.
    :param x_train: training images, ``(n, height, width)`` or ``(n, height, width, channels)``.
    :param y_train: training labels, integer ``(n,)`` or one-hot ``(n, classes)``.
    :param x_test: test images, or ``None`` to hold out a test split.
    :param y_test: test labels, or ``None`` with ``x_test``.
    :param num_classes: the number of classes; ``None`` infers it from the labels.
    :param test_fraction: the share of the images held out for testing when no test split is given.
    :param split_seed: the seed of that split.
    :returns: a :class:`Dataset`.
    :raises ValueError: naming the problem and its fix.
    """
    if (x_test is None) != (y_test is None):
        raise ValueError("give both x_test and y_test, or neither (then a test split is held out)")
    x_train = _images(x_train, "training images")
    y_train, width = _labels(y_train, "training labels", len(x_train))
    if x_test is not None:
        x_test = _images(x_test, "test images")
        y_test, test_width = _labels(y_test, "test labels", len(x_test))
        width = max(width, test_width)
        if x_test.shape[1:] != x_train.shape[1:]:
            raise ValueError(f"test images are {x_test.shape[1:]} but training images {x_train.shape[1:]}; "
                             "give both splits the same height, width and channels")
    if len(x_train) < _MIN_SAMPLES:
        raise ValueError(f"{len(x_train)} training images are too few; give at least {_MIN_SAMPLES} "
                         "(the search holds out validation samples from them)")
    if len(np.unique(y_train)) < 2:
        raise ValueError(f"the training labels hold a single class ({y_train[0]}); a classifier needs images "
                         "of at least 2 classes")
    largest = int(max(y_train.max(), -1 if y_test is None or not len(y_test) else y_test.max()))
    if num_classes is None:
        num_classes = max(width, largest + 1)
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    elif largest >= num_classes or width > num_classes:
        raise ValueError(f"labels out of range: found class {max(largest, width - 1)} with num_classes="
                         f"{num_classes}; labels must lie in 0..{num_classes - 1} (raise num_classes or fix the "
                         "labels)")
    split = None
    if x_test is None:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
        train, test = _split(y_train, float(test_fraction), split_seed)
        split = {"fraction": float(test_fraction), "seed": int(split_seed),
                 "stratified": _stratifiable(y_train, float(test_fraction))}
        x_train, y_train, x_test, y_test = x_train[train], y_train[train], x_train[test], y_train[test]
    x_train, x_test, pixel_max = _pixels(x_train, x_test)
    return Dataset(name, x_train, y_train, x_test, y_test, int(num_classes), pixel_max, split)


def _dataset_fingerprint(dataset):
    return fingerprint_arrays(dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test,
                              np.asarray([dataset.num_classes, dataset.pixel_max], dtype=np.float64))


class _Prepared:
    """The loader of a dataset made from arrays: it returns them."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __call__(self, data_dir=None):
        return self.dataset


def register_arrays(name, x_train, y_train, x_test=None, y_test=None, num_classes=None,
                    test_fraction=TEST_FRACTION, split_seed=TEST_SPLIT_SEED):
    """Register NumPy arrays as a dataset and return a task on it.

    Images are ``(n, height, width)`` (grayscale) or ``(n, height, width,
    channels)``, integer, boolean or float:

    * integer images are kept as they are (``uint8`` when they fit) and
      divided by the largest training pixel value for training (255 for
      8-bit images, 16 for scikit-learn's digits);
    * float images are stored as ``float32``; they are used as they are
      when the training pixels lie in ``[0, 1]``, and otherwise mapped
      linearly so the training images span ``[0, 1]`` (the test images with
      the same two constants).  No quantisation to ``uint8`` is needed.

    Labels are integer class indices ``0..C-1`` (``(n,)`` or ``(n, 1)``) or
    one-hot ``(n, C)``.  Without a test split, one is held out: a seeded
    share (stratified when every class allows it), recorded in the
    dataset's ``test_split``.  The search never sees the test split.

    Registrations live in this process: for a parallel search register at
    the top of your script (worker processes import it), or save the arrays
    with ``numpy.savez`` and use :func:`task_from_path`.

    :param name: the dataset's name; registering the same arrays again under
                 it is allowed, other data under a taken name is not.
    :param x_train: training images.
    :param y_train: training labels.
    :param x_test: test images, or ``None`` to hold out a test split.
    :param y_test: test labels (with ``x_test``).
    :param num_classes: the number of classes; ``None`` infers it from the labels.
    :param test_fraction: the share held out for testing when no test split is given.
    :param split_seed: the seed of that split.
    :returns: a :class:`TaskSpec` on the dataset.
    :raises ValueError: naming the problem and its fix (shapes, NaN pixels,
                        labels out of range, a single class, mismatched lengths).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a dataset name must be a non-empty string, got {name!r}")
    dataset = dataset_from_arrays(name, x_train, y_train, x_test, y_test, num_classes, test_fraction, split_seed)
    existing = DATASETS.get(name)
    if isinstance(existing, _Prepared) and _dataset_fingerprint(existing.dataset) == _dataset_fingerprint(dataset):
        return TaskSpec(name)
    if existing is not None:
        raise ValueError(f"dataset {name!r} is already registered with other data; register yours under "
                         "another name (baselines are keyed by content, so a new name costs nothing)")
    register_dataset(name, _Prepared(dataset))
    return TaskSpec(name)


def read_npz(path):
    """Read the arrays of a ``.npz`` file written by ``numpy.savez`` (no pickles).

    :param path: the file.
    :returns: a dict with ``x_train`` and ``y_train``, and ``x_test`` and
              ``y_test`` if the file holds them.
    :raises ValueError: for another kind of file, missing or unexpected keys, or object arrays.
    """
    import zipfile

    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a .npz file; write one with np.savez(path, x_train=..., y_train=...)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            unexpected = sorted(set(keys) - set(NPZ_KEYS))
            if unexpected or not {"x_train", "y_train"} <= set(keys):
                raise ValueError(f"{path} holds the keys {', '.join(sorted(keys)) or 'none'}; a dataset file holds "
                                 "x_train and y_train, and optionally x_test and y_test (np.savez(path, "
                                 "x_train=..., y_train=..., x_test=..., y_test=...))")
            return {key: archive[key] for key in keys}
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise ValueError(f"{path} holds object arrays, which are not read (unpickling can run code); save "
                             "plain numeric arrays") from None
        raise
    except (OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"{path} cannot be read as a .npz file ({error}); write it again with np.savez") from None


def _image_files(folder):
    # A class's images, in the order Keras lists them (sorted, subfolders included).
    found = []
    for root, directories, files in os.walk(folder):
        directories.sort()
        found += [os.path.join(root, name) for name in sorted(files)
                  if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")]
    return found


def _class_folders(folder):
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))


def _read_class_folders(folder, classes=None):
    """``(images, labels, classes)`` of a folder with one subfolder per class."""
    from PIL import Image

    names = _class_folders(folder)
    if not names:
        example = ", ".join(os.path.join(folder, name, "1.png") for name in ("cat", "dog"))
        raise ValueError(f"{folder} has no class subfolders; put each class's images in a subfolder named after "
                         f"the class ({example}, ...)")
    classes = names if classes is None else classes
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise ValueError(f"{folder} has class folders {', '.join(unknown)} that the training folder lacks; "
                         "give both the same classes")
    images, labels, first = [], [], None
    for label, name in enumerate(classes):
        files = _image_files(os.path.join(folder, name)) if name in names else []
        if name in names and not files:
            raise ValueError(f"class folder {os.path.join(folder, name)} holds no images "
                             f"({', '.join(IMAGE_EXTENSIONS)}); add some or remove the folder")
        for path in files:
            try:
                with Image.open(path) as image:
                    image = image.convert("L" if image.mode in ("1", "L", "LA", "I;16", "I") else "RGB")
                    pixels = np.asarray(image, dtype=np.uint8)
            except OSError as error:
                raise ValueError(f"cannot read the image {path} ({error}); repair or remove it") from None
            if first is None:
                first = (path, pixels.shape[:2])
            elif pixels.shape[:2] != first[1]:
                raise ValueError(f"images differ in size: {first[0]} is {first[1][1]}x{first[1][0]}, {path} is "
                                 f"{pixels.shape[1]}x{pixels.shape[0]}; resize them to one size (e.g. with "
                                 "PIL's Image.resize)")
            images.append(pixels if pixels.ndim == 3 else pixels[..., np.newaxis])
            labels.append(label)
    if not images:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in its class subfolders")
    if any(image.shape[2] == 3 for image in images):
        # Mixed grayscale and colour: grayscale is repeated into the three channels, as RGB conversion does.
        images = [np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image for image in images]
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


def read_image_folder(folder):
    """Read a folder of images in the layout Keras's ``image_dataset_from_directory`` reads.

    One subfolder per class (``folder/cat/*.png``, ``folder/dog/*.png``);
    labels number the classes in alphabetical order of their folders, as
    Keras does.  A folder holding just ``train/`` and ``test/``, each in that
    layout, gives its own test split.  Images are ``.bmp``, ``.gif``,
    ``.jpeg``, ``.jpg`` or ``.png`` of one size; grayscale images give one
    channel, anything else three (RGB, alpha dropped).

    :param folder: the folder.
    :returns: a dict with ``x_train``, ``y_train`` (and ``x_test``,
              ``y_test`` for a ``train``/``test`` layout) and ``classes``
              (the class names, in label order).
    :raises ValueError: for an empty folder, an empty class folder, an
                        unreadable image or images of different sizes.
    """
    parts = [os.path.join(folder, part) for part in ("train", "test")]
    if _class_folders(folder) == ["test", "train"] and all(_class_folders(part) for part in parts):
        x_train, y_train, classes = _read_class_folders(parts[0])
        x_test, y_test, _ = _read_class_folders(parts[1], classes)
        if x_test.shape[1:] != x_train.shape[1:]:
            raise ValueError(f"the test images are {x_test.shape[1:]} but the training images {x_train.shape[1:]}; "
                             "give both the same size and colour mode")
        return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "classes": classes}
    x_train, y_train, classes = _read_class_folders(folder)
    return {"x_train": x_train, "y_train": y_train, "classes": classes}


def _read_path(path, name):
    """The :class:`Dataset` stored at *path* (a ``.npz`` file or an image folder), named *name*."""
    if os.path.isdir(path):
        arrays = read_image_folder(path)
        num_classes = len(arrays.pop("classes"))
    elif os.path.isfile(path):
        arrays, num_classes = read_npz(path), None
    else:
        raise ValueError(f"{path} does not exist; give a .npz file or a folder of images")
    return dataset_from_arrays(name, num_classes=num_classes, **arrays)


def _content_name(path, dataset):
    # Readable (the file or folder's name) and unique to the content (its hash).
    stem = os.path.basename(os.path.normpath(path))
    stem = stem[:-4] if stem.lower().endswith(".npz") else stem
    stem = re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_")[:32] or "data"
    return f"{stem}-{_dataset_fingerprint(dataset)[:12]}"


def _register_path(name, path):
    # Lazily: reading the data waits until a process trains on it.
    if name not in DATASETS:
        DATASETS[name] = _PathLoader(name, path)


class _PathLoader:
    """The loader of a dataset read from a path, checked against the content its name was made from."""

    def __init__(self, name, path, dataset=None):
        self.name, self.path, self.dataset = name, path, dataset

    def __call__(self, data_dir=None):
        if self.dataset is None:
            dataset = _read_path(self.path, self.name)
            if _content_name(self.path, dataset) != self.name:
                raise ValueError(f"the data at {self.path} changed since dataset {self.name!r} was made from it; "
                                 "put the original back, or start a new search on it (task_from_path)")
            self.dataset = dataset
        return self.dataset


def task_from_path(path, label_noise=0.0, max_train_samples=None):
    """A task on your data: a ``.npz`` file or a folder of images.

    A ``.npz`` file holds ``x_train`` and ``y_train`` and optionally
    ``x_test`` and ``y_test`` (``np.savez("my.npz", x_train=..., ...)``);
    a folder holds one subfolder of images per class
    (:func:`read_image_folder`).  The arrays are checked and scaled as
    :func:`register_arrays` describes, and registered under a name made of
    the file's name and a hash of the content (``my-3f9a1c2b4d5e``).  The
    task records the path, so worker processes and a resumed search read
    the data again from there (and refuse it if it changed).

    :param path: a ``.npz`` file or a folder.
    :param label_noise: as :class:`TaskSpec`'s.
    :param max_train_samples: as :class:`TaskSpec`'s.
    :returns: a :class:`TaskSpec` with ``path`` set.
    :raises ValueError: naming the problem with the data and its fix.
    """
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    dataset = _read_path(path, "")
    name = _content_name(path, dataset)
    if name not in DATASETS:
        DATASETS[name] = _PathLoader(name, path, dataclasses.replace(dataset, name=name))
        load_dataset.cache_clear()
    return TaskSpec(name, label_noise=label_noise, max_train_samples=max_train_samples, path=path)


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
    if task.path is not None:
        # A task that reached this process pickled (a worker) was not constructed here.
        _register_path(task.dataset, task.path)
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

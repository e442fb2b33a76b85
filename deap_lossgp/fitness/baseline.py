"""The cross-entropy baseline: trained once per setting, stored on disk.

Every candidate is compared with a model trained with Keras's categorical
cross-entropy under exactly the candidate's training setting (task, model,
epochs, batch size, learning rate, seed, validation split, threads, input
pipeline, precision, XLA) and the same TensorFlow and Keras versions.  The
setting names the data and the model by *content*, not only by name: a
fingerprint of the arrays trained on (every split's images and labels,
:meth:`~deap_lossgp.fitness.TaskData.fingerprint`) and one of the model as
built with the seed (its architecture and initial weights,
:func:`model_fingerprint`).  A dataset whose arrays changed under the same
name, or a model builder whose body changed, therefore gets a new baseline
instead of a stale one.

Its record is stored as JSON in the baseline directory under a hash of that
setting, reused by later runs and retrained whenever any part of the setting
changes.  File names are hashes only, so no task or dataset name can place a
file outside the directory.  Files are written atomically, so parallel
workers cannot leave a half-written baseline, and a failed write leaves no
temporary file behind.
"""

import hashlib
import json
import os
import tempfile

from ..checks import json_dumps, json_loads, open_for_reading
from .datasets import fingerprint_arrays
from .models import build_model, get_model_builder
from .runtime import import_keras, import_tensorflow
from .training import seeded, train_model

__all__ = ["DEFAULT_BASELINE_DIR", "baseline_settings", "baseline_path", "get_baseline", "model_fingerprint"]

#: Where baselines are stored unless a directory is given.
DEFAULT_BASELINE_DIR = os.path.join("~", ".cache", "deap_lossgp", "baselines")
# Bump when the stored record or the training procedure changes meaning.
# 2: the setting holds the data's and the model's fingerprints; files are named by hash only.
_FORMAT = 2

# (id of the builder, model settings) -> (builder, fingerprint); the builder is kept so its id is not reused.
_model_fingerprints = {}


def _canonical_architecture(model):
    """The model's JSON with layer and model names replaced by their order of appearance.

    Keras numbers automatic names per process (``dense``, ``dense_3``), so
    the same builder gives other names in another process or after other
    models; the names say nothing about what the model computes.
    """
    config = json.loads(model.to_json())
    names = {config.get("config", {}).get("name"): "model"}

    def collect(node):
        if isinstance(node, dict):
            if "inbound_nodes" in node and isinstance(node.get("name"), str):
                names.setdefault(node["name"], f"layer{len(names)}")
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    def rename(node):
        if isinstance(node, dict):
            return {key: rename(value) for key, value in node.items()}
        if isinstance(node, list):
            return [rename(value) for value in node]
        return names.get(node, node) if isinstance(node, str) else node

    collect(config)
    return json.dumps(rename(config), sort_keys=True)


def model_fingerprint(config, input_shape, num_classes):
    """A hash of the model a training starts from: its architecture and initial weights.

    The model is built as training builds it (the configured builder and
    input pipeline, seeded with ``config.seed``, under ``config.precision``)
    but not compiled, once per process for each builder and setting; the
    fingerprint is kept in memory.  Python's and NumPy's global random states
    are left as they were.

    :param config: the :class:`~deap_lossgp.fitness.FitnessConfig`.
    :param input_shape: ``(height, width, channels)`` of the task's images.
    :param num_classes: the task's number of classes.
    :returns: a SHA-256 hex digest.
    """
    builder = get_model_builder(config.model)
    setting = (config.model, tuple(input_shape), int(num_classes), config.upsample, config.augment, config.seed,
               config.precision)
    key = (id(builder), setting)
    if key not in _model_fingerprints:
        keras = import_keras()
        with seeded(config.seed):
            policy = keras.config.dtype_policy()
            keras.config.set_dtype_policy(config.precision)
            try:
                model = build_model(config.model, input_shape, num_classes, config.upsample, config.augment,
                                    config.seed)
            finally:
                keras.config.set_dtype_policy(policy)
        digest = hashlib.sha256(_canonical_architecture(model).encode())
        digest.update(fingerprint_arrays(*model.get_weights()).encode())
        _model_fingerprints[key] = (builder, digest.hexdigest())
    return _model_fingerprints[key][1]


def baseline_settings(task, data, config):
    """Everything the baseline's result depends on.

    :param task: a :class:`~deap_lossgp.fitness.TaskSpec` (with caps applied).
    :param data: its :class:`~deap_lossgp.fitness.TaskData` (the arrays trained on).
    :param config: the :class:`~deap_lossgp.fitness.FitnessConfig`.
    :returns: a JSON-ready dict.
    """
    keras = import_keras()
    tf = import_tensorflow()
    return {
        "format": _FORMAT,
        "dataset": task.dataset,
        "label_noise": task.label_noise,
        "max_train_samples": task.max_train_samples,
        "data": data.fingerprint(),
        "model": config.model,
        "model_fingerprint": model_fingerprint(config, data.input_shape, data.num_classes),
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "seed": config.seed,
        "split_seed": config.data_seed,
        "validation_split": config.validation_split,
        "threads": config.threads,
        "upsample": config.upsample,
        "augment": config.augment,
        "precision": config.precision,
        "xla": config.xla,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def baseline_path(settings, directory=None):
    """The file a baseline is stored in.

    :param settings: :func:`baseline_settings`' output.
    :param directory: the baseline directory; ``None`` for :data:`DEFAULT_BASELINE_DIR`.
    :returns: the path of ``ce-<hash of settings>.json`` in the directory.
    """
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]
    return os.path.join(os.path.expanduser(directory or DEFAULT_BASELINE_DIR), f"ce-{digest}.json")


def _stored(path, settings):
    # The stored record of exactly this setting, or None (absent, unreadable or another setting).
    try:
        with open_for_reading(path) as stream:
            record = json_loads(stream.read())
    except FileNotFoundError:
        return None
    except ValueError:  # damaged: training again overwrites it
        return None
    return record if isinstance(record, dict) and record.get("settings") == settings else None


def _write(path, record):
    """Write *record* to *path* atomically; an error names the file and leaves no temporary file."""
    directory = os.path.dirname(path)
    text = json_dumps(record, indent=1)
    temporary = None
    try:
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".ce-", suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise OSError(error.errno, f"{error.strerror or error} while writing the cross-entropy baseline; "
                          "free disk space or choose another baseline directory", path) from None
        raise


def get_baseline(task, data, config, directory=None):
    """The cross-entropy record of a task: loaded if stored, else trained and stored.

    :param task: a :class:`~deap_lossgp.fitness.TaskSpec` (with caps applied).
    :param data: its :class:`~deap_lossgp.fitness.TaskData`.
    :param config: the :class:`~deap_lossgp.fitness.FitnessConfig`.
    :param directory: the baseline directory; ``None`` for :data:`DEFAULT_BASELINE_DIR`.
    :returns: the training record (see :func:`~deap_lossgp.fitness.train_model`),
              with held-out test metrics and the ``settings`` it was trained under.
    :raises RuntimeError: if cross-entropy itself fails to train (then the setting is broken).
    :raises OSError: if the record cannot be stored (the error names the file).
    """
    keras = import_keras()
    settings = baseline_settings(task, data, config)
    path = baseline_path(settings, directory)
    record = _stored(path, settings)
    if record is not None:
        return record
    record = train_model(
        keras.losses.CategoricalCrossentropy(),
        data,
        chance_after=0,
        evaluate_test=True,
        **config.training_arguments(),
    )
    if record["stop_reason"] != "completed":
        raise RuntimeError(
            f"the cross-entropy baseline of task {task.name!r} did not train ({record['stop_detail']}); "
            "check the learning rate, model and data"
        )
    record["settings"] = settings
    _write(path, record)
    return record

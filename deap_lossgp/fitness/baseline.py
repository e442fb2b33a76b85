"""The cross-entropy baseline: trained once per setting, stored on disk.

Every candidate is compared with a model trained with Keras's categorical
cross-entropy under exactly the candidate's training setting (task, model,
epochs, batch size, learning rate, seed, validation split, threads, input
pipeline, precision, XLA) and the
same TensorFlow and Keras versions.  Its record is stored as JSON in the
baseline directory under a hash of that setting, reused by later runs and
retrained whenever any part of the setting changes.  Files are written
atomically, so parallel workers cannot leave a half-written baseline.
"""

import hashlib
import json
import os
import tempfile

from ..checks import json_dumps, json_loads
from .training import train_model

__all__ = ["DEFAULT_BASELINE_DIR", "baseline_settings", "baseline_path", "get_baseline"]

#: Where baselines are stored unless a directory is given.
DEFAULT_BASELINE_DIR = os.path.join("~", ".cache", "deap_lossgp", "baselines")
# Bump when the stored record or the training procedure changes meaning.
_FORMAT = 2


def baseline_settings(task, config):
    """Everything the baseline's result depends on.

    :param task: a :class:`~deap_lossgp.fitness.TaskSpec` (with caps applied).
    :param config: the :class:`~deap_lossgp.fitness.FitnessConfig`.
    :returns: a JSON-ready dict.
    """
    import keras
    import tensorflow as tf

    return {
        "format": _FORMAT,
        "dataset": task.dataset,
        "label_noise": task.label_noise,
        "max_train_samples": task.max_train_samples,
        "model": config.model,
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


def baseline_path(task, settings, directory=None):
    """The file a baseline is stored in.

    :param task: the task (its name makes the file recognisable).
    :param settings: :func:`baseline_settings`' output.
    :param directory: the baseline directory; ``None`` for :data:`DEFAULT_BASELINE_DIR`.
    :returns: the path of ``<task name>-<hash of settings>.json``.
    """
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(os.path.expanduser(directory or DEFAULT_BASELINE_DIR), f"{task.name}-{digest}.json")


def get_baseline(task, data, config, directory=None):
    """The cross-entropy record of a task: loaded if stored, else trained and stored.

    :param task: a :class:`~deap_lossgp.fitness.TaskSpec` (with caps applied).
    :param data: its :class:`~deap_lossgp.fitness.TaskData`.
    :param config: the :class:`~deap_lossgp.fitness.FitnessConfig`.
    :param directory: the baseline directory; ``None`` for :data:`DEFAULT_BASELINE_DIR`.
    :returns: the training record (see :func:`~deap_lossgp.fitness.train_model`),
              with held-out test metrics and the ``settings`` it was trained under.
    :raises RuntimeError: if cross-entropy itself fails to train (then the setting is broken).
    """
    import keras

    settings = baseline_settings(task, config)
    path = baseline_path(task, settings, directory)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as stream:
            record = json_loads(stream.read())
        if record.get("settings") == settings:
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
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(json_dumps(record, indent=1))
    os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
    os.replace(temporary, path)
    return record

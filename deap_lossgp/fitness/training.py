"""Train models with one loss on the fitness tasks, reproducibly.

Every training starts from a model built from the same seed, so every
candidate loss and the cross-entropy baseline start from the same weights
and see the same batches in the same order (common random numbers):
fitness differences are the loss's, not the seed's.  Training stops early
and cleanly on a non-finite value, on divergence and, optionally, when the
training is hopeless (:func:`is_hopeless`: at chance level, not rising, while
cross-entropy had clearly learned by the same epoch).  Python's and NumPy's global random
states are restored afterwards, so DEAP's random stream is untouched, and
the Keras session is cleared so that many evaluations in one process do not
accumulate memory.

The setup follows the NGL paper: Adam and
``ReduceLROnPlateau(monitor='val_accuracy', factor=0.2, patience=5, min_lr=1e-4)``.
For bit-identical results call
:func:`~deap_lossgp.fitness.runtime.configure_tensorflow` first (the
evaluator does).
"""

import contextlib
import functools
import math
import random
import time

import numpy as np

from .models import build_model
from .runtime import import_keras

__all__ = [
    "STOP_REASONS",
    "seeded",
    "chance_threshold",
    "chance_noise",
    "is_hopeless",
    "train_tasks",
    "train_model",
]

#: Why training ended: ``completed`` is the only success.
STOP_REASONS = ("completed", "nan", "diverged", "chance")

# (name, shape, network, variables, initial values) of the model train_tasks(reuse=name) kept.
_kept = None


@contextlib.contextmanager
def seeded(seed):
    """Seed Python, NumPy, TensorFlow and Keras, restoring Python's and NumPy's global states afterwards.

    :param seed: the seed for :func:`keras.utils.set_random_seed`.
    :returns: a context manager.
    """
    keras = import_keras()

    python_state = random.getstate()
    numpy_state = np.random.get_state()
    try:
        keras.utils.set_random_seed(int(seed))
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def chance_noise(labels, num_classes):
    """One standard error of an accuracy measured at the majority-class rate.

    :param labels: integer training labels.
    :param num_classes: number of classes.
    :returns: the standard error, the noise :func:`is_hopeless` tolerates.
    """
    rate = float(np.bincount(labels, minlength=num_classes).max()) / len(labels)
    return math.sqrt(rate * (1.0 - rate) / len(labels))


#: How far above the chance threshold cross-entropy's training accuracy must
#: be at an epoch before a candidate at chance level may be stopped there.
HOPELESS_MARGIN = 0.1


def is_hopeless(accuracies, threshold, noise, baseline=None, first_epoch=2, margin=HOPELESS_MARGIN):
    """Whether a training is hopeless after its latest epoch (the chance-level stop).

    A training is hopeless when, after at least two epochs, its training
    accuracy is at chance level (at most *threshold*), it did not rise over
    the last epoch by more than *noise*, and cross-entropy, trained on the
    same task from the same start, was more than *margin* above chance level
    at the same epoch.  A slow loss whose accuracy still rises is kept.

    :param accuracies: the candidate's training accuracy per epoch so far.
    :param threshold: the chance level (:func:`chance_threshold`).
    :param noise: one standard error of an accuracy at chance level.
    :param baseline: cross-entropy's training accuracy per epoch, or ``None``
                     to judge without it.
    :param first_epoch: the first epoch at which a training may be called
                        hopeless (at least 2).
    :param margin: how far above *threshold* cross-entropy must be.
    :returns: a bool.
    """
    epoch = len(accuracies)
    if epoch < max(2, first_epoch):
        return False
    latest, previous = accuracies[-1], accuracies[-2]
    if latest > threshold or latest > previous + noise:
        return False
    if baseline:
        reference = baseline[min(epoch, len(baseline)) - 1]
        if reference < threshold + margin:
            return False
    return True


def chance_threshold(labels, num_classes):
    """The training accuracy below which a model is indistinguishable from guessing.

    It is the majority-class rate plus three standard errors of an accuracy
    measured on ``len(labels)`` samples.

    :param labels: integer training labels.
    :param num_classes: number of classes.
    :returns: the threshold in ``[0, 1]``.
    """
    rate = float(np.bincount(labels, minlength=num_classes).max()) / len(labels)
    return min(1.0, rate + 3.0 * chance_noise(labels, num_classes))


@functools.lru_cache(maxsize=None)
def _adam_class():
    import keras
    import tensorflow as tf

    class Adam(keras.optimizers.Adam):
        # On one replica, summing gradients across replicas is the identity. Skipping it matters:
        # TensorFlow's all-reduce registers a gradient function globally at every trace, which
        # keeps each traced training graph (several MB) alive for the life of the process.
        def _all_reduce_sum_gradients(self, grads_and_vars):
            if tf.distribute.get_strategy().num_replicas_in_sync == 1:
                return list(grads_and_vars)
            return super()._all_reduce_sum_gradients(grads_and_vars)

    return Adam


def _dataset(x, y, num_classes, pixel_max, batch_size, shuffle_seed=None):
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        data = data.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    scale = 1.0 / float(pixel_max)

    @tf.autograph.experimental.do_not_convert  # no control flow to convert
    def prepare(images, labels):
        return tf.cast(images, tf.float32) * scale, tf.one_hot(labels, num_classes)

    return data.batch(batch_size).map(prepare).prefetch(tf.data.AUTOTUNE)


def _guard_callback(threshold, noise, chance_after, baseline, divergence_factor):
    import keras

    class TrainingGuard(keras.callbacks.Callback):
        # Stops training with a reason; Keras finishes the current step cleanly.

        def __init__(self):
            super().__init__()
            self.reason = "completed"
            self.detail = None
            self._scale = None
            self._epoch = 0
            self._accuracies = []

        def _stop(self, reason, detail):
            if self.reason == "completed":
                self.reason, self.detail = reason, detail
            self.model.stop_training = True

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch + 1

        def on_train_batch_end(self, batch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is None:
                return
            if not math.isfinite(loss):
                self._stop("nan", f"training loss became {loss} at step {batch + 1} of epoch {self._epoch}")
            elif self._scale is None:
                self._scale = max(abs(loss), 1.0)
            elif abs(loss) > divergence_factor * self._scale:
                self._stop(
                    "diverged",
                    f"training loss {loss:.4g} exceeds {divergence_factor:g} x its start in epoch {self._epoch}",
                )

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            bad = sorted(name for name, value in logs.items() if name != "learning_rate" and not math.isfinite(value))
            self._accuracies.append(logs.get("accuracy", 1.0))
            if bad:
                self._stop("nan", f"non-finite {', '.join(bad)} after epoch {epoch + 1}")
            elif chance_after and is_hopeless(self._accuracies, threshold, noise, baseline, chance_after):
                self._stop(
                    "chance",
                    f"training accuracy {self._accuracies[-1]:.4f} at chance level (<= {threshold:.4f}) and not "
                    f"rising after epoch {epoch + 1}, while cross-entropy had learned",
                )

    return TrainingGuard()


def _fit(network, data, epochs, batch_size, seed, chance_after, baseline, divergence_factor, evaluate_test):
    import keras

    train = _dataset(data.x_train, data.y_train, data.num_classes, data.pixel_max, batch_size, shuffle_seed=seed)
    val = _dataset(data.x_val, data.y_val, data.num_classes, data.pixel_max, batch_size)
    guard = _guard_callback(chance_threshold(data.y_train, data.num_classes),
                            chance_noise(data.y_train, data.num_classes), chance_after, baseline, divergence_factor)
    reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy", factor=0.2, patience=5, min_lr=1e-4)
    history = network.fit(
        train, validation_data=val, epochs=epochs, callbacks=[reduce_lr, guard], shuffle=False, verbose=0
    ).history
    record = {"history": {name: [float(v) for v in values] for name, values in history.items()}}
    if evaluate_test and guard.reason == "completed":
        test = _dataset(data.x_test, data.y_test, data.num_classes, data.pixel_max, batch_size)
        measured = network.evaluate(test, verbose=0, return_dict=True)
        record.update({f"test_{name}": float(measured[name]) for name in ("loss", "accuracy", "ce")})
    last = {name: values[-1] for name, values in record["history"].items()}
    nan = float("nan")
    record.update(
        {
            "val_loss": last.get("val_loss", nan),
            "val_accuracy": last.get("val_accuracy", nan),
            "val_ce": last.get("val_ce", nan),
            "best_val_accuracy": max(
                (v for v in record["history"].get("val_accuracy", []) if math.isfinite(v)), default=nan
            ),
            "epochs": len(history.get("loss", [])),
            "stop_reason": guard.reason,
            "stop_detail": guard.detail,
        }
    )
    return record


def train_tasks(
    loss,
    tasks,
    model="small_cnn",
    epochs=5,
    batch_size=32,
    learning_rate=1e-3,
    seed=0,
    chance_after=2,
    baseline_accuracy=None,
    divergence_factor=1e4,
    evaluate_test=False,
    stop_on_failure=True,
    upsample=1,
    augment=False,
    precision="float32",
    xla=None,
    reuse=None,
):
    """Train a fresh model with ``loss`` on each task and measure it.

    Consecutive tasks with the same input shape and class count share one
    compiled model, reset to its initial weights and optimizer state before
    each task: bit-identical to building it anew, without tracing the
    training graph again.

    :param loss: anything ``model.compile(loss=...)`` accepts (a Keras loss,
                 a function of ``(y_true, y_pred)`` with one-hot labels and
                 probabilities, or a loss name).
    :param tasks: a list of :class:`~deap_lossgp.fitness.datasets.TaskData`.
    :param model: a model name or ``"package.module:function"`` (see :mod:`.models`).
    :param epochs: maximum number of epochs.
    :param batch_size: samples per step.
    :param learning_rate: Adam's initial learning rate.
    :param seed: seed of the initial weights, the dropout masks and the batch order.
    :param chance_after: the first epoch (at least 2) after which a hopeless
                         training (:func:`is_hopeless`) is stopped; ``0``
                         never stops for that.  An integer, or a list with
                         one value per task.
    :param baseline_accuracy: cross-entropy's training accuracy per epoch on
                              each task (a list per task), which the stop
                              compares with; ``None`` to stop without it.
    :param divergence_factor: stop when the magnitude of the running training
                              loss exceeds this multiple of its first value
                              (at least 1).
    :param evaluate_test: also measure the trained models on the held-out test splits.
    :param stop_on_failure: skip the remaining tasks once one's training
                            became non-finite (``nan``); tasks stopped as
                            hopeless or diverged still have measurements,
                            so the others are trained too.
    :param upsample: the model's input upsampling factor (see
                     :func:`~deap_lossgp.fitness.models.build_model`).
    :param augment: augment training images inside the model, seeded with *seed*.
    :param precision: ``"float32"`` or ``"mixed_float16"`` (the model's
                      output and the loss stay float32).
    :param xla: ``model.compile``'s ``jit_compile``; ``None`` for Keras's choice.
    :param reuse: a hashable name of *loss* (e.g. its expression), or
                  ``None``.  With a name, the compiled model of the last task
                  stays in this process and the next call with the same name
                  and model settings (``model``, ``learning_rate``,
                  ``seed``, ``upsample``, ``augment``, ``precision``,
                  ``xla``) starts from it (reset, as
                  between tasks) instead of tracing the training graph again:
                  one evaluation split into single-task trainings costs no
                  more than one call with all its tasks.  Any other call
                  releases it.
    :returns: one JSON-ready dict per task trained: ``history`` (per epoch
              ``loss``, ``accuracy``, ``ce``, ``val_loss``, ``val_accuracy``,
              ``val_ce``, ``learning_rate``), the final ``val_loss`` (the
              model's own loss), ``val_accuracy``, ``val_ce`` (its
              cross-entropy), ``best_val_accuracy``, ``epochs``, ``time``
              (seconds), ``stop_reason`` (one of :data:`STOP_REASONS`),
              ``stop_detail`` and, if asked, ``test_loss``, ``test_accuracy``,
              ``test_ce``.
    """
    keras = import_keras()

    chance_afters = list(chance_after) if isinstance(chance_after, (list, tuple)) else [chance_after] * len(tasks)
    if len(chance_afters) != len(tasks):
        raise ValueError(f"chance_after has {len(chance_afters)} values for {len(tasks)} tasks")
    baselines = [None] * len(tasks) if baseline_accuracy is None else list(baseline_accuracy)
    if len(baselines) != len(tasks):
        raise ValueError(f"baseline_accuracy has {len(baselines)} curves for {len(tasks)} tasks")
    global _kept
    records = []
    shape = network = state = initial = None
    name = None if reuse is None else (reuse, model, learning_rate, seed, upsample, augment, precision, xla)
    if _kept is not None and name is not None and _kept[0] == name:
        _, shape, network, state, initial = _kept
    else:
        # Collect a kept model's memory now, as a call that keeps none does when it ends.
        dropped, _kept = _kept is not None, None
        keras.backend.clear_session(free_memory=dropped)
    with seeded(seed):
        for data, after, baseline in zip(tasks, chance_afters, baselines):
            start = time.perf_counter()
            if (data.input_shape, data.num_classes) != shape:
                shape = (data.input_shape, data.num_classes)
                network = None  # release the previous model before building the next
                keras.utils.set_random_seed(int(seed))
                policy = keras.config.dtype_policy()
                keras.config.set_dtype_policy(precision)
                try:
                    network = build_model(model, data.input_shape, data.num_classes, upsample, augment, seed)
                    network.compile(
                        optimizer=_adam_class()(learning_rate=learning_rate),
                        loss=loss,
                        metrics=["accuracy", keras.metrics.CategoricalCrossentropy(name="ce")],
                        jit_compile="auto" if xla is None else xla,
                    )
                finally:
                    keras.config.set_dtype_policy(policy)
                network.optimizer.build(network.trainable_variables)
                state = network.variables + network.optimizer.variables
                initial = [variable.numpy() for variable in state]
            else:
                for variable, value in zip(state, initial):
                    variable.assign(value)
            keras.utils.set_random_seed(int(seed))
            record = _fit(network, data, epochs, batch_size, seed, after, baseline, divergence_factor, evaluate_test)
            record["time"] = time.perf_counter() - start
            records.append(record)
            if stop_on_failure and record["stop_reason"] == "nan":
                break
    if name is not None and network is not None:
        _kept = (name, shape, network, state, initial)
        return records
    del network, state, initial
    keras.backend.clear_session()
    return records


def train_model(loss, data, **settings):
    """Train a fresh model with ``loss`` on one task and measure it.

    :param loss: anything ``model.compile(loss=...)`` accepts.
    :param data: the task's :class:`~deap_lossgp.fitness.datasets.TaskData`.
    :param settings: ``model``, ``epochs``, ``batch_size``, ``learning_rate``,
                     ``seed``, ``chance_after``, ``baseline_accuracy`` (one
                     curve), ``divergence_factor``, ``evaluate_test``,
                     ``upsample``, ``augment``, ``precision``, ``xla`` as for
                     :func:`train_tasks`.
    :returns: the task's record (see :func:`train_tasks`).
    """
    if settings.get("baseline_accuracy") is not None:
        settings = {**settings, "baseline_accuracy": [settings["baseline_accuracy"]]}
    return train_tasks(loss, [data], **settings)[0]

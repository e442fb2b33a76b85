"""How a candidate loss is trained and scored: :class:`FitnessConfig`.

It validates on construction and round-trips through JSON (``to_dict`` /
``from_dict``), so a run stores it next to its results and a resumed run
is rebuilt from that copy.
"""

import dataclasses
import math

from ..checks import Settings, check_int, check_positive, check_probability
from ..gp.validity import VALIDITY_RULES
from .datasets import TaskSpec
from .models import check_model_name
from .scoring import AVERAGING, METRICS

__all__ = ["PRECISIONS", "FitnessConfig", "FITNESS_MODES", "FITNESS_PRESETS", "fitness_preset"]

#: Training precisions: ``mixed_float16`` computes in float16 on a GPU, with
#: float32 weights, model output and loss.
PRECISIONS = ("float32", "mixed_float16")


@dataclasses.dataclass(frozen=True)
class FitnessConfig(Settings):
    """How a candidate loss is trained and scored.

    The default metric is ``accuracy``: the validation accuracy of the model
    trained with the candidate, relative to the cross-entropy model's.  It is
    what a loss is chosen for, it cannot be gamed by rescaling the loss (a
    tiny constant times cross-entropy learns no better, so it cannot win,
    unlike under the thesis's ``loss`` metric, §4.3), and unlike ``ce`` it
    does not favour losses whose predictions look like cross-entropy's (on
    the ``quick`` tasks NGL beats cross-entropy on accuracy but not on
    ``ce``: its predictions are less confident).  Its granularity is one
    validation sample, so small differences are ties, which do not count as
    wins.

    :param tasks: the tasks (dataset names, dicts or
                  :class:`~deap_lossgp.fitness.TaskSpec`), at least one,
                  with distinct names.
    :param model: ``"small_cnn"``, ``"inception_v3"``, a registered name or
                  ``"package.module:function"``.
    :param epochs: training epochs per task (>= 1).
    :param batch_size: samples per step (>= 1).
    :param learning_rate: Adam's initial learning rate (> 0).
    :param metric: ``accuracy``, ``ce``, ``loss`` or ``weighted`` (see
                   :mod:`deap_lossgp.fitness.scoring`; under ``loss`` only
                   positive loss values are compared).
    :param averaging: ``thesis`` or ``all``.
    :param weight: the accuracy's weight in the ``weighted`` metric, in ``[0, 1]``.
    :param seed: the training seed: the initial weights and the batch order
                 (shared by every candidate and the baseline), and the
                 data split unless *split_seed* is given.  Replicate *r* of
                 an evaluation (racing, confirmation) trains under
                 ``seed + r`` on the same split (:meth:`replicate`).
    :param split_seed: seed of the validation split and of the label noise;
                       ``None``: *seed*.
    :param validation_split: fraction of the training data held out to
                             measure fitness, in ``(0, 1)`` (the thesis: 0.1).
    :param threads: TensorFlow threads per evaluation; ``0`` lets TensorFlow
                    choose.  Results are bit-identical only for the same value.
    :param max_train_samples: cap on every task's training samples (a cheap
                              proxy); ``None`` for no cap.
    :param data_dir: directory of the CIFAR/Fashion-MNIST archives; ``None``
                     uses Keras's dataset cache.
    :param chance_after: the first epoch (at least 2) after which a hopeless
                         training is stopped: training accuracy at chance
                         level and not rising while cross-entropy's had
                         clearly left chance level by that epoch
                         (:func:`~deap_lossgp.fitness.training.is_hopeless`).
                         The stopped candidate is scored from what it
                         reached (see :mod:`deap_lossgp.fitness.scoring`).
                         ``0`` disables the stop.
    :param validity: ``"screened"`` (default: the thesis's rules plus
                     finiteness at the edges, a non-zero gradient and the
                     trainability screen) or ``"thesis"`` (the thesis's rules
                     unchanged); see :mod:`deap_lossgp.gp.validity`.  It checks
                     random trees and every child before it is trained.
    :param divergence_factor: stop a candidate whose training loss grows in
                              magnitude beyond this multiple of its first
                              value (> 1).
    :param upsample: integer factor by which the model enlarges its input
                     images (nearest neighbour, like ``UpSampling2D``); NGL's
                     pipeline uses 8 (CIFAR's 32x32 becomes 256x256,
                     Fashion-MNIST's 28x28 224x224).  ``1``: images as they are.
    :param augment: augment training images inside the model, seeded, as NGL
                    does (zoom 0.2, width and height shifts 0.1, horizontal
                    flips; see :func:`~deap_lossgp.fitness.models.build_model`).
    :param precision: one of :data:`PRECISIONS`.
    :param xla: compile training steps with XLA (``True``), without
                (``False``), or Keras's choice (``None``: off when
                TensorFlow's deterministic ops are on, as the evaluator sets them).
    """

    tasks: tuple = ("digits",)
    model: str = "small_cnn"
    epochs: int = 6
    batch_size: int = 32
    learning_rate: float = 1e-3
    metric: str = "accuracy"
    averaging: str = "all"
    weight: float = 0.5
    seed: int = 0
    validation_split: float = 0.1
    threads: int = 0
    max_train_samples: int = None
    data_dir: str = None
    chance_after: int = 2
    divergence_factor: float = 1e4
    validity: str = "screened"
    upsample: int = 1
    augment: bool = False
    precision: str = "float32"
    xla: bool = None
    split_seed: int = None

    def __post_init__(self):
        tasks = self.tasks
        if isinstance(tasks, (str, dict, TaskSpec)):
            tasks = (tasks,)
        if not isinstance(tasks, (list, tuple)) or not tasks:
            raise ValueError(f"tasks must be a non-empty list of tasks, got {self.tasks!r}")
        tasks = tuple(TaskSpec.from_value(task) for task in tasks)
        names = [task.name for task in tasks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"task names must be distinct, repeated: {duplicates}; give the tasks a 'name'")
        object.__setattr__(self, "tasks", tasks)
        check_model_name(self.model)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_positive("learning_rate", self.learning_rate)
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; choose from {', '.join(METRICS)}")
        if self.averaging not in AVERAGING:
            raise ValueError(f"unknown averaging {self.averaging!r}; choose from {', '.join(AVERAGING)}")
        check_probability("weight", self.weight)
        check_int("seed", self.seed, 0)
        if self.split_seed is not None:
            check_int("split_seed", self.split_seed, 0)
        if isinstance(self.validation_split, bool) or not isinstance(self.validation_split, (int, float)) or not (
            0.0 < self.validation_split < 1.0
        ):
            raise ValueError(f"validation_split must lie in (0, 1), got {self.validation_split!r}")
        check_int("threads", self.threads, 0)
        if self.max_train_samples is not None:
            check_int("max_train_samples", self.max_train_samples, 1)
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            object.__setattr__(self, "data_dir", str(self.data_dir))
        check_int("chance_after", self.chance_after, 0)
        check_positive("divergence_factor", self.divergence_factor, above=1.0)
        if self.validity not in VALIDITY_RULES:
            raise ValueError(f"unknown validity {self.validity!r}; choose from {', '.join(VALIDITY_RULES)}")
        check_int("upsample", self.upsample, 1)
        if not isinstance(self.augment, bool):
            raise ValueError(f"augment must be true or false, got {self.augment!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.xla is not None and not isinstance(self.xla, bool):
            raise ValueError(f"xla must be true, false or null (Keras's choice), got {self.xla!r}")

    @property
    def data_seed(self):
        """The seed of the data split: *split_seed*, or *seed* when it is ``None``."""
        return self.seed if self.split_seed is None else self.split_seed

    def replicate(self, replicate):
        """The configuration of replicate *replicate*: training seed ``seed +
        replicate`` on this configuration's data split.

        :param replicate: A non-negative integer (0: this configuration).
        :returns: A :class:`FitnessConfig`.
        """
        if replicate == 0:
            return self
        return self.replace(seed=self.seed + replicate, split_seed=self.data_seed)

    def resolved_tasks(self):
        """The tasks with the global ``max_train_samples`` cap applied.

        :returns: a tuple of :class:`~deap_lossgp.fitness.TaskSpec`.
        """
        if self.max_train_samples is None:
            return self.tasks
        return tuple(
            dataclasses.replace(task, max_train_samples=min(task.max_train_samples or math.inf, self.max_train_samples))
            for task in self.tasks
        )

    def training_arguments(self):
        """The keyword arguments of :func:`~deap_lossgp.fitness.training.train_model`
        (and ``train_tasks``) that this configuration fixes.

        :returns: a dict of ``model``, ``epochs``, ``batch_size``,
                  ``learning_rate``, ``seed``, ``divergence_factor``,
                  ``upsample``, ``augment``, ``precision`` and ``xla``.
        """
        return {
            "model": self.model,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "divergence_factor": self.divergence_factor,
            "upsample": self.upsample,
            "augment": self.augment,
            "precision": self.precision,
            "xla": self.xla,
        }


_QUICK_TASKS = (
    TaskSpec("digits"),
    TaskSpec("digits", label_noise=0.4),
    TaskSpec("digits", max_train_samples=300),
)
_PAPER_TASKS = (TaskSpec("cifar10"), TaskSpec("fashion_mnist"), TaskSpec("cifar100"))


#: The fitness fields of the two modes (see :data:`deap_lossgp.search.presets.MODES`):
#: the thesis's rules, or our improvements.
FITNESS_MODES = {
    # The thesis: its signed validity rule, loss values, every candidate trained for all epochs.
    "thesis": {"validity": "thesis", "metric": "loss", "averaging": "thesis", "chance_after": 0},
    "ours": {"validity": "screened", "metric": "accuracy", "averaging": "all", "chance_after": 2},
}


def _paper(epochs):
    # NGL's input pipeline: x8 upsampling, augmentation (the model adds preprocess_input's scaling).
    return FitnessConfig(
        tasks=_PAPER_TASKS, model="inception_v3", epochs=epochs, batch_size=64, upsample=8, augment=True,
        **FITNESS_MODES["thesis"],
    )


#: The fitness settings of the named presets (see :mod:`deap_lossgp.search.presets`).
FITNESS_PRESETS = {
    "quick": FitnessConfig(tasks=_QUICK_TASKS, model="small_cnn", epochs=6, batch_size=32, threads=1),
    "paper-small": _paper(epochs=6),
    "paper-large": _paper(epochs=10),
}


def fitness_preset(name, **overrides):
    """A preset's fitness settings with some fields changed.

    :param name: one of :data:`FITNESS_PRESETS`' names.
    :param overrides: :class:`FitnessConfig` fields, e.g. ``epochs=2``.
    :returns: a validated :class:`FitnessConfig`.
    :raises ValueError: for an unknown preset or field, or an invalid value.
    """
    if name not in FITNESS_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(FITNESS_PRESETS)}")
    return FITNESS_PRESETS[name].replace(**overrides)

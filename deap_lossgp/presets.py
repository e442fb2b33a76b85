"""Named configurations of a loss search: ``quick``, ``paper-small``, ``paper-large``.

A :class:`Preset` holds the fitness settings (:class:`FitnessConfig`: tasks,
model, training, scoring) and the search settings (:class:`SearchConfig`:
population, generations, variation probabilities, tree sizes).  Both
validate on construction and round-trip through JSON (``to_dict`` /
``from_dict``), so a run can store its configuration next to its results.

``quick``
    Bundled digits, a small CNN, 6 epochs: one evaluation (three trainings)
    takes seconds on a laptop CPU.  Three tasks, so that "wins" mean
    something: clean digits, digits with 40 % of the training labels flipped
    (robustness to label noise) and digits with 300 training samples (data
    efficiency): settings where the choice of loss matters.
``paper-small`` / ``paper-large``
    The thesis's experiments (Table 4.1): CIFAR-10, Fashion-MNIST and
    CIFAR-100, InceptionV3 from scratch, batch size 64, 6 / 10 epochs,
    4 / 12 generations of 8 trees, and its metric (loss values, Algorithm 3
    averaging).  Meant for a GPU.  Override ``metric="accuracy"`` to avoid
    the thesis's §4.3 failure.

Override any field by name: ``get_preset("quick", epochs=2, population=12)``.
"""

import dataclasses
import math

from .fitness.datasets import TaskSpec
from .fitness.models import get_model_builder
from .fitness.scoring import AVERAGING, METRICS
from .validity import VALIDITY_RULES

__all__ = ["FitnessConfig", "SearchConfig", "Preset", "PRESETS", "get_preset"]


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_probability(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def _from_dict(cls, data):
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid fields: {', '.join(sorted(fields))}")
    return cls(**data)


@dataclasses.dataclass(frozen=True)
class FitnessConfig:
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
                   :mod:`deap_lossgp.fitness.scoring`).
    :param averaging: ``thesis`` or ``all``.
    :param weight: the accuracy's weight in the ``weighted`` metric, in ``[0, 1]``.
    :param seed: seed of the splits, the initial weights and the batch order
                 (shared by every candidate and the baseline).
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
                     unchanged); see :mod:`deap_lossgp.validity`.  It checks
                     random trees and every child before it is trained.
    :param divergence_factor: stop a candidate whose training loss grows in
                              magnitude beyond this multiple of its first
                              value (> 1).
    """

    tasks: tuple = ("digits",)
    model: str = "small_cnn"
    epochs: int = 6
    batch_size: int = 32
    learning_rate: float = 1e-3
    metric: str = "accuracy"
    averaging: str = "thesis"
    weight: float = 0.5
    seed: int = 0
    validation_split: float = 0.1
    threads: int = 0
    max_train_samples: int = None
    data_dir: str = None
    chance_after: int = 2
    divergence_factor: float = 1e4
    validity: str = "screened"

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
        get_model_builder(self.model)
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, (int, float)) or not (
            self.learning_rate > 0 and math.isfinite(self.learning_rate)
        ):
            raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; choose from {', '.join(METRICS)}")
        if self.averaging not in AVERAGING:
            raise ValueError(f"unknown averaging {self.averaging!r}; choose from {', '.join(AVERAGING)}")
        _check_probability("weight", self.weight)
        _check_int("seed", self.seed, 0)
        if isinstance(self.validation_split, bool) or not isinstance(self.validation_split, (int, float)) or not (
            0.0 < self.validation_split < 1.0
        ):
            raise ValueError(f"validation_split must lie in (0, 1), got {self.validation_split!r}")
        _check_int("threads", self.threads, 0)
        if self.max_train_samples is not None:
            _check_int("max_train_samples", self.max_train_samples, 1)
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            object.__setattr__(self, "data_dir", str(self.data_dir))
        _check_int("chance_after", self.chance_after, 0)
        if isinstance(self.divergence_factor, bool) or not isinstance(self.divergence_factor, (int, float)) or not (
            self.divergence_factor > 1
        ):
            raise ValueError(f"divergence_factor must be a number > 1, got {self.divergence_factor!r}")
        if self.validity not in VALIDITY_RULES:
            raise ValueError(f"unknown validity {self.validity!r}; choose from {', '.join(VALIDITY_RULES)}")

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
                  ``learning_rate``, ``seed`` and ``divergence_factor``.
        """
        return {
            "model": self.model,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
            "divergence_factor": self.divergence_factor,
        }

    def to_dict(self):
        """The configuration as a JSON-ready dict.

        :returns: a dict accepted by :meth:`from_dict`.
        """
        data = dataclasses.asdict(self)
        data["tasks"] = [task.to_dict() for task in self.tasks]
        return data

    @classmethod
    def from_dict(cls, data):
        """Rebuild a configuration from :meth:`to_dict`'s output.

        :param data: a dict of fields.
        :returns: a :class:`FitnessConfig`.
        :raises ValueError: on unknown fields or invalid values.
        """
        return _from_dict(cls, data)


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Parameters of the genetic programming search (thesis Algorithm 1).

    :param population: number of trees ``P`` (>= 2; the thesis: 8).
    :param generations: number of generations ``T`` (>= 1).
    :param crossover_pb: ``Cr``, probability to cross with another selected
                         tree instead of a new random one.
    :param mutpb_subtree: ``M_ST``, probability of a subtree mutation.
    :param mutpb_point: ``M_N``, probability of a one-point mutation.
    :param init_min_height: minimum height of random trees (>= 1).
    :param init_max_height: maximum height of random trees.
    :param max_height: height limit of trees made by variation.
    :param max_size: node-count limit of trees made by variation.
    :param constant_range: ``(low, high)`` of random constants.
    """

    population: int = 8
    generations: int = 4
    crossover_pb: float = 0.5
    mutpb_subtree: float = 0.3
    mutpb_point: float = 0.1
    init_min_height: int = 2
    init_max_height: int = 6
    max_height: int = 17
    max_size: int = 60
    constant_range: tuple = (-1.0, 1.0)

    def __post_init__(self):
        _check_int("population", self.population, 2)
        _check_int("generations", self.generations, 1)
        for name in ("crossover_pb", "mutpb_subtree", "mutpb_point"):
            _check_probability(name, getattr(self, name))
        _check_int("init_min_height", self.init_min_height, 1)
        _check_int("init_max_height", self.init_max_height, self.init_min_height)
        _check_int("max_height", self.max_height, self.init_max_height)
        _check_int("max_size", self.max_size, 1)
        try:
            low, high = (float(v) for v in self.constant_range)
        except (TypeError, ValueError):
            raise ValueError(f"constant_range must be (low, high), got {self.constant_range!r}") from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"constant_range must be finite (low, high) with low < high, got {self.constant_range!r}")
        object.__setattr__(self, "constant_range", (low, high))

    def to_dict(self):
        """The configuration as a JSON-ready dict.

        :returns: a dict accepted by :meth:`from_dict`.
        """
        data = dataclasses.asdict(self)
        data["constant_range"] = list(self.constant_range)
        return data

    @classmethod
    def from_dict(cls, data):
        """Rebuild a configuration from :meth:`to_dict`'s output.

        :param data: a dict of fields.
        :returns: a :class:`SearchConfig`.
        :raises ValueError: on unknown fields or invalid values.
        """
        return _from_dict(cls, data)


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named pair of fitness and search settings.

    :param name: the preset's name.
    :param description: one line saying what it is for.
    :param fitness: a :class:`FitnessConfig`.
    :param search: a :class:`SearchConfig`.
    """

    name: str
    description: str
    fitness: FitnessConfig
    search: SearchConfig

    def to_dict(self):
        """The preset as a JSON-ready dict.

        :returns: a dict accepted by :meth:`from_dict`.
        """
        return {
            "name": self.name,
            "description": self.description,
            "fitness": self.fitness.to_dict(),
            "search": self.search.to_dict(),
        }

    @classmethod
    def from_dict(cls, data):
        """Rebuild a preset from :meth:`to_dict`'s output.

        :param data: a dict with ``name``, ``description``, ``fitness``, ``search``.
        :returns: a :class:`Preset`.
        :raises ValueError: on unknown or missing fields or invalid values.
        """
        missing = sorted({"name", "description", "fitness", "search"} - set(data))
        if missing:
            raise ValueError(f"preset dict lacks {missing}")
        return _from_dict(
            cls,
            {
                **data,
                "fitness": FitnessConfig.from_dict(data["fitness"]),
                "search": SearchConfig.from_dict(data["search"]),
            },
        )


_QUICK_TASKS = (
    TaskSpec("digits"),
    TaskSpec("digits", label_noise=0.4),
    TaskSpec("digits", max_train_samples=300),
)
_PAPER_TASKS = (TaskSpec("cifar10"), TaskSpec("fashion_mnist"), TaskSpec("cifar100"))


def _paper(name, epochs, generations):
    return Preset(
        name=name,
        description=(
            f"the thesis's {name.split('-')[1]}-scale experiment: CIFAR-10, Fashion-MNIST, CIFAR-100, "
            f"InceptionV3, {epochs} epochs, {generations} generations, loss-value metric (GPU)"
        ),
        fitness=FitnessConfig(
            tasks=_PAPER_TASKS,
            model="inception_v3",
            epochs=epochs,
            batch_size=64,
            metric="loss",
            averaging="thesis",
            # The thesis trains every candidate for all epochs.
            chance_after=0,
        ),
        search=SearchConfig(generations=generations),
    )


#: The named presets.
PRESETS = {
    "quick": Preset(
        name="quick",
        description="bundled digits (clean, 40 % label noise, 300 samples), small CNN, 6 epochs: seconds on a CPU",
        fitness=FitnessConfig(tasks=_QUICK_TASKS, model="small_cnn", epochs=6, batch_size=32, threads=1),
        search=SearchConfig(generations=4),
    ),
    "paper-small": _paper("paper-small", epochs=6, generations=4),
    "paper-large": _paper("paper-large", epochs=10, generations=12),
}

_FITNESS_FIELDS = {f.name for f in dataclasses.fields(FitnessConfig)}
_SEARCH_FIELDS = {f.name for f in dataclasses.fields(SearchConfig)}


def get_preset(name, **overrides):
    """A preset with some fields changed.

    Each override goes to the section that has the field.

    :param name: one of :data:`PRESETS`' names.
    :param overrides: field values, e.g. ``epochs=2`` or ``population=12``.
    :returns: a validated :class:`Preset`.
    :raises ValueError: for an unknown preset or field name, or an invalid value.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    unknown = sorted(set(overrides) - _FITNESS_FIELDS - _SEARCH_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {unknown}; fitness settings: {', '.join(sorted(_FITNESS_FIELDS))}; "
            f"search settings: {', '.join(sorted(_SEARCH_FIELDS))}"
        )
    preset = PRESETS[name]
    fitness = {k: v for k, v in overrides.items() if k in _FITNESS_FIELDS}
    search = {k: v for k, v in overrides.items() if k in _SEARCH_FIELDS}
    return dataclasses.replace(
        preset,
        fitness=dataclasses.replace(preset.fitness, **fitness),
        search=dataclasses.replace(preset.search, **search),
    )

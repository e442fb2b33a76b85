"""Named configurations of a loss search: ``quick``, ``paper-small``, ``paper-large``.

A :class:`Preset` holds the fitness settings
(:class:`~deap_lossgp.fitness.FitnessConfig`: tasks, model, training,
scoring; :data:`~deap_lossgp.fitness.config.FITNESS_PRESETS`) and the search
settings (:class:`SearchConfig`:
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
    CIFAR-100, InceptionV3 from scratch on NGL's input pipeline, batch size
    64, 6 / 10 epochs, 4 / 12 generations of 8 trees, in ``thesis`` mode.
    Meant for a GPU.

Two modes (:data:`MODES`) set, in one flag, the fields where the thesis and
our improvements differ:

``"thesis"`` (the paper presets' default)
    The thesis as written: its signed validity rule, initial heights 2..100
    (:func:`~deap_lossgp.gp.operators.genGrowHeight`), its one-point
    mutation (:func:`~deap_lossgp.gp.operators.mutOperatorPoint`), no bloat
    limit but a safety cap (:data:`SAFETY_MAX_SIZE` nodes,
    :data:`SAFETY_MAX_HEIGHT` levels), the ``loss``
    metric with Algorithm 3's averaging, every candidate trained to the end.
``"ours"`` (``quick``'s)
    The screened validity rule, initial heights 2..6 (half and half),
    same-kind one-point mutation, height 17 / 60-node limits, the
    ``accuracy`` metric and the hopeless stop.

Override any field by name: ``get_preset("quick", epochs=2, population=12)``;
``get_preset("paper-small", mode="ours")`` switches mode, and fields given
with it still win (``mode="thesis", metric="accuracy"``).
"""

import dataclasses
import math

from ..checks import Settings, check_int, check_probability, from_dict
from ..fitness.config import FITNESS_MODES, FITNESS_PRESETS, FitnessConfig

__all__ = ["INIT_METHODS", "POINT_MUTATIONS", "SAFETY_MAX_SIZE", "SAFETY_MAX_HEIGHT", "MAX_SEEDS", "SearchConfig",
           "Preset",
           "MODES", "PRESETS", "get_preset"]

#: How random trees are generated: DEAP's ``genHalfAndHalf`` (ours) or
#: :func:`~deap_lossgp.gp.operators.genGrowHeight` (the thesis's heights).
INIT_METHODS = ("half_and_half", "grow_height")
#: One-point mutation: :func:`~deap_lossgp.gp.operators.mutOnePoint` (ours,
#: same kind) or :func:`~deap_lossgp.gp.operators.mutOperatorPoint` (the thesis's).
POINT_MUTATIONS = ("same_kind", "operator")
#: The thesis mode's only limits, a safety cap that is not the thesis's: a
#: child of variation with more nodes or levels is restored to its parent.
#: It bounds one training step's loss graph (initial trees of height 100 have
#: 1,784 nodes on average) and keeps every tree's text well within what the
#: expression parser reads back (:data:`~deap_lossgp.gp.standalone.MAX_LENGTH`
#: characters, :data:`~deap_lossgp.gp.standalone.MAX_DEPTH` levels): run
#: records hold trees as text.  Raise it with ``max_size=`` / ``max_height=``.
SAFETY_MAX_SIZE = 5000
#: The thesis mode's height cap (see :data:`SAFETY_MAX_SIZE`).
SAFETY_MAX_HEIGHT = 500
#: The most training seeds of racing or confirmation: confirmation trains
#: replicates from ``MAX_SEEDS`` on, which racing never reaches, so its
#: seeds are fresh.
MAX_SEEDS = 1000


@dataclasses.dataclass(frozen=True)
class SearchConfig(Settings):
    """Parameters of the genetic programming search (thesis Algorithm 1).

    :param population: number of trees ``P`` (>= 2; the thesis: 8).
    :param generations: number of generations ``T`` (>= 1).
    :param crossover_pb: ``Cr``, probability to cross with another selected
                         tree instead of a new random one.
    :param mutpb_subtree: ``M_ST``, probability of a subtree mutation.
    :param mutpb_point: ``M_N``, probability of a one-point mutation.
    :param init_min_height: minimum height of random trees (>= 1).
    :param init_max_height: maximum height of random trees.
    :param max_height: height limit of trees made by variation, or ``None``.
    :param max_size: node-count limit of trees made by variation, or ``None``.
    :param constant_range: ``(low, high)`` of random constants.
    :param hall_of_fame: how many distinct best losses the run keeps
                         (``hall_of_fame.csv``; >= 1).
    :param init_method: one of :data:`INIT_METHODS`.
    :param point_mutation: one of :data:`POINT_MUTATIONS`.
    :param rebreed: how many times a child that the screen rejects (or the
                    cache already knows) is bred again, by the same step
                    with new random draws (ours: 20; the thesis: 0).
    :param race_top: racing: how many of the best candidates must rest on
                     *race_seeds* training seeds after each generation
                     (ours: 5; 0: no racing).
    :param race_seeds: the most training seeds a candidate gets while
                       racing (ours: 3; the thesis: 1, no racing; at most
                       :data:`MAX_SEEDS`).
    :param confirm_top: how many of the hall of fame's best are trained
                        again at the end on fresh seeds and measured on the
                        test split (ours: 5; the thesis mode: 1; 0: none).
    :param confirm_seeds: the fresh training seeds of that confirmation
                          (>= 2 for an interval; ours: 5).
    :param inflight: the asynchronous variant's children in training at
                     once; ``None``: twice the workers, resolved and stored
                     when the run is configured.
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
    hall_of_fame: int = 10
    init_method: str = "half_and_half"
    point_mutation: str = "same_kind"
    rebreed: int = 20
    race_top: int = 5
    race_seeds: int = 3
    confirm_top: int = 5
    confirm_seeds: int = 5
    inflight: int = None

    def __post_init__(self):
        check_int("population", self.population, 2)
        check_int("generations", self.generations, 1)
        for name in ("crossover_pb", "mutpb_subtree", "mutpb_point"):
            check_probability(name, getattr(self, name))
        check_int("init_min_height", self.init_min_height, 1)
        check_int("init_max_height", self.init_max_height, self.init_min_height)
        if self.max_height is not None:
            check_int("max_height", self.max_height, self.init_max_height)
        if self.max_size is not None:
            check_int("max_size", self.max_size, 1)
        if self.init_method not in INIT_METHODS:
            raise ValueError(f"unknown init_method {self.init_method!r}; choose from {', '.join(INIT_METHODS)}")
        if self.point_mutation not in POINT_MUTATIONS:
            raise ValueError(
                f"unknown point_mutation {self.point_mutation!r}; choose from {', '.join(POINT_MUTATIONS)}"
            )
        check_int("hall_of_fame", self.hall_of_fame, 1)
        check_int("rebreed", self.rebreed, 0)
        check_int("race_top", self.race_top, 0)
        check_int("race_seeds", self.race_seeds, 1)
        if self.race_seeds > MAX_SEEDS:
            raise ValueError(f"race_seeds must be at most {MAX_SEEDS}, got {self.race_seeds}")
        check_int("confirm_top", self.confirm_top, 0)
        check_int("confirm_seeds", self.confirm_seeds, 1)
        if self.confirm_seeds > MAX_SEEDS:
            raise ValueError(f"confirm_seeds must be at most {MAX_SEEDS}, got {self.confirm_seeds}")
        if self.inflight is not None:
            check_int("inflight", self.inflight, 1)
        try:
            low, high = (float(v) for v in self.constant_range)
        except (TypeError, ValueError):
            raise ValueError(f"constant_range must be (low, high), got {self.constant_range!r}") from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"constant_range must be finite (low, high) with low < high, got {self.constant_range!r}")
        object.__setattr__(self, "constant_range", (low, high))


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named pair of fitness and search settings.

    :param name: the preset's name.
    :param description: one line saying what it is for.
    :param fitness: a :class:`FitnessConfig`.
    :param search: a :class:`SearchConfig`.
    :param mode: the :data:`MODES` entry it was built from (fields
                 overridden afterwards may differ from it).
    """

    name: str
    description: str
    fitness: FitnessConfig
    search: SearchConfig
    mode: str = "ours"

    def to_dict(self):
        """The preset as a JSON-ready dict.

        :returns: a dict accepted by :meth:`from_dict`.
        """
        return {
            "name": self.name,
            "description": self.description,
            "fitness": self.fitness.to_dict(),
            "search": self.search.to_dict(),
            "mode": self.mode,
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
        return from_dict(
            cls,
            {
                **data,
                "fitness": FitnessConfig.from_dict(data["fitness"]),
                "search": SearchConfig.from_dict(data["search"]),
            },
        )


_SEARCH_MODES = {
    "thesis": {"init_method": "grow_height", "init_min_height": 2, "init_max_height": 100,
               "point_mutation": "operator", "max_height": SAFETY_MAX_HEIGHT, "max_size": SAFETY_MAX_SIZE,
               "rebreed": 0, "race_top": 0, "race_seeds": 1, "confirm_top": 1},
    "ours": {"init_method": "half_and_half", "init_min_height": 2, "init_max_height": 6,
             "point_mutation": "same_kind", "max_height": 17, "max_size": 60,
             "rebreed": 20, "race_top": 5, "race_seeds": 3, "confirm_top": 5},
}
#: mode name -> the fields it sets, by section (``fitness``, ``search``).
MODES = {name: {"fitness": FITNESS_MODES[name], "search": _SEARCH_MODES[name]} for name in _SEARCH_MODES}


def _paper(name, generations):
    scale = name.split("-")[1]
    fitness = FITNESS_PRESETS[name]
    return Preset(
        name=name,
        description=(
            f"the thesis's {scale}-scale experiment: CIFAR-10, Fashion-MNIST, CIFAR-100, "
            f"InceptionV3, {fitness.epochs} epochs, {generations} generations, thesis mode (GPU)"
        ),
        fitness=fitness,
        search=SearchConfig(generations=generations, **_SEARCH_MODES["thesis"]),
        mode="thesis",
    )


#: The named presets.
PRESETS = {
    "quick": Preset(
        name="quick",
        description="bundled digits (clean, 40 % label noise, 300 samples), small CNN, 6 epochs: seconds on a CPU",
        fitness=FITNESS_PRESETS["quick"],
        search=SearchConfig(generations=4),
    ),
    "paper-small": _paper("paper-small", generations=4),
    "paper-large": _paper("paper-large", generations=12),
}

_FITNESS_FIELDS = {f.name for f in dataclasses.fields(FitnessConfig)}
_SEARCH_FIELDS = {f.name for f in dataclasses.fields(SearchConfig)}


def get_preset(name, mode=None, **overrides):
    """A preset with some fields changed.

    Each override goes to the section that has the field.

    :param name: one of :data:`PRESETS`' names.
    :param mode: ``"thesis"`` or ``"ours"`` (:data:`MODES`) to switch every
                 field where they differ; ``None`` keeps the preset's own.
                 *overrides* apply after it.
    :param overrides: field values, e.g. ``epochs=2`` or ``population=12``.
    :returns: a validated :class:`Preset`.
    :raises ValueError: for an unknown preset, mode or field name, or an invalid value.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    if mode is not None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        overrides = {**MODES[mode]["fitness"], **MODES[mode]["search"], **overrides}
    unknown = sorted(set(overrides) - _FITNESS_FIELDS - _SEARCH_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown setting(s) {unknown}; fitness settings: {', '.join(sorted(_FITNESS_FIELDS))}; "
            f"search settings: {', '.join(sorted(_SEARCH_FIELDS))}; or mode: {', '.join(MODES)}"
        )
    preset = PRESETS[name]
    fitness = {k: v for k, v in overrides.items() if k in _FITNESS_FIELDS}
    search = {k: v for k, v in overrides.items() if k in _SEARCH_FIELDS}
    return dataclasses.replace(
        preset,
        fitness=dataclasses.replace(preset.fitness, **fitness),
        search=dataclasses.replace(preset.search, **search),
        mode=preset.mode if mode is None else mode,
    )

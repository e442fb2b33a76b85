"""A ready toolbox with the thesis's operators, in either mode's settings.

:func:`make_toolbox` registers everything :func:`~deap_lossgp.algorithms.eaSampleTournament`
and :func:`~deap_lossgp.algorithms.eaNGL` call, the way a DEAP user would by
hand (``examples/evolve_loss.py`` in the source tree does exactly that)::

    from deap_lossgp import LossEvaluator, eaSampleTournament, make_toolbox

    toolbox = make_toolbox(fitness=LossEvaluator("quick"))
    population = toolbox.population(n=8)
    population, logbook = eaSampleTournament(population, toolbox, ngen=4)

Without creator classes of your own it uses :class:`LossIndividual`, an
ordinary importable class, so individuals unpickle anywhere deap_lossgp is
installed (worker processes, a checkpoint loaded later) without re-running
``creator.create``.
"""

import builtins
import functools

from deap import base, gp, tools

from ..gp.operators import (
    add_bloat_limits,
    cxNewRandomParent,
    genGrowHeight,
    mutOnePoint,
    mutOperatorPoint,
    selSampleTournament,
)
from ..gp.primitives import DEFAULT_OPERATORS, INIT_OPERATORS, make_pset
from ..gp.validity import check_validity, initValid
from .presets import SearchConfig

__all__ = ["FitnessLoss", "LossIndividual", "make_toolbox"]


class FitnessLoss(base.Fitness):
    """The fitness of a loss tree: ``(wins, average improvement)``, both
    maximised, compared lexicographically (wins first).

    :param values: the initial fitness values (empty: not evaluated yet).
    """

    weights = (1.0, 1.0)


class LossIndividual(gp.PrimitiveTree):
    """A loss tree with a :class:`FitnessLoss`, like
    ``creator.create("Individual", gp.PrimitiveTree, fitness=FitnessLoss)``
    but defined in a module, so it pickles by reference.

    :param content: the nodes of the tree (e.g. from ``gp.genHalfAndHalf``).
    """

    def __init__(self, content):
        super().__init__(content)
        self.fitness = FitnessLoss()


def make_toolbox(pset=None, fitness=None, search=None, map=None, individual=None, check=None):
    """Register the thesis's operators in a new toolbox, with *search*'s settings.

    Registered aliases (all the two algorithms need):

    ``expr``
        random trees between ``search.init_min_height`` and
        ``search.init_max_height``: :func:`deap.gp.genHalfAndHalf`
        (``init_method="half_and_half"``, ours) or
        :func:`~deap_lossgp.gp.operators.genGrowHeight`
        (``"grow_height"``, the thesis's heights up to 100).
    ``individual``, ``population``
        :func:`~deap_lossgp.gp.validity.initValid` (random trees until one passes
        *check*) and :func:`deap.tools.initRepeat`.
    ``select``
        :func:`~deap_lossgp.gp.operators.selSampleTournament`, whose sample
        is G = 3P/4 of the population it is given (the algorithm picks the
        N = G/2 best).
    ``mate``
        :func:`~deap_lossgp.gp.operators.cxNewRandomParent` with
        ``pb=search.crossover_pb`` (Cr) and new random parents from
        ``individual``.
    ``mate_archive``
        the same with ``pb=1.0``: NGL's crossover with a partner from the
        mates :func:`~deap_lossgp.algorithms.eaNGL` passes.
    ``expr_mut``, ``mutate_subtree``
        :func:`deap.gp.mutUniform` with :func:`deap.gp.genFull` subtrees of
        height 0-2.
    ``mutate_point``
        :func:`~deap_lossgp.gp.operators.mutOnePoint`
        (``point_mutation="same_kind"``, ours) or
        :func:`~deap_lossgp.gp.operators.mutOperatorPoint` (``"operator"``,
        the thesis's).
    ``evaluate``, ``map``
        *fitness* and *map*.
    ``key``, ``screen``, ``split``
        *fitness*'s ``key``, ``screen`` and ``split`` methods when it has
        them (like :class:`~deap_lossgp.fitness.LossEvaluator`): the
        algorithms' :class:`~deap_lossgp.evaluation.Evaluation` trains equal
        keys once, rejects what ``screen`` refuses before sending it to be
        trained and sends single trainings to a map of
        :mod:`deap_lossgp.search.parallel`.

    ``mate``, ``mate_archive``, ``mutate_subtree`` and ``mutate_point`` are
    limited to ``search.max_height`` and ``search.max_size`` when they are
    set (:func:`~deap_lossgp.gp.operators.add_bloat_limits`). The primitive
    set is also available as ``toolbox.pset``.

    As in the thesis, random trees (initial population, new parents, mutation
    subtrees) use ``add sub mul neg sqrt log exp sin cos`` and one-point
    mutation may also draw ``div``; pass *pset* to use one set for all.

    :param pset: A primitive set from :func:`~deap_lossgp.gp.primitives.make_pset`
                 (or compatible); default: the thesis's operators with
                 constants in ``search.constant_range``.
    :param fitness: The evaluation function; default
                    ``LossEvaluator("quick")``.
    :param search: A :class:`~deap_lossgp.search.presets.SearchConfig`; default
                   ``SearchConfig()``: the thesis's Algorithm 1 parameters with
                   our tree settings (the ``ours`` mode; see
                   :data:`~deap_lossgp.search.presets.MODES`).
    :param map: The map for evaluations (see :func:`deap_lossgp.search.parallel.get_map`);
                default the built-in :func:`map`.
    :param individual: The individual class, e.g. your
                       ``creator.Individual`` (a :class:`deap.gp.PrimitiveTree`
                       with a two-objective fitness); default
                       :class:`LossIndividual`.
    :param check: The validity check of random trees, returning
                  ``(valid, reason)``; default
                  :func:`~deap_lossgp.gp.validity.check_validity` under the
                  rule of *fitness*'s configuration (``validity``), or the
                  ``screened`` rule.
    :returns: A :class:`deap.base.Toolbox`.
    """
    if search is None:
        search = SearchConfig()
    elif not isinstance(search, SearchConfig):
        raise ValueError(
            f"search must be a SearchConfig, got {type(search).__name__}; "
            f"use deap_lossgp.SearchConfig(...) or get_preset(name).search"
        )
    if pset is None:
        pset = make_pset(DEFAULT_OPERATORS, constant_range=search.constant_range)
        random_pset = make_pset(INIT_OPERATORS, constant_range=search.constant_range)
    else:
        random_pset = pset
    if fitness is None:
        from ..fitness import LossEvaluator

        fitness = LossEvaluator("quick")
    if individual is None:
        individual = LossIndividual
    if check is None:
        config = getattr(fitness, "config", None)
        check = functools.partial(check_validity, rule=getattr(config, "validity", "screened"))

    toolbox = base.Toolbox()
    toolbox.pset = pset
    generate = genGrowHeight if search.init_method == "grow_height" else gp.genHalfAndHalf
    toolbox.register("expr", generate, pset=random_pset, min_=search.init_min_height, max_=search.init_max_height)
    toolbox.register("individual", initValid, individual, toolbox.expr, check=check)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("select", selSampleTournament)
    toolbox.register("mate", cxNewRandomParent, new_parent=toolbox.individual, pb=search.crossover_pb)
    toolbox.register("mate_archive", cxNewRandomParent, new_parent=toolbox.individual, pb=1.0)
    toolbox.register("expr_mut", gp.genFull, min_=0, max_=2)
    toolbox.register("mutate_subtree", gp.mutUniform, expr=toolbox.expr_mut, pset=random_pset)
    toolbox.register("mutate_point", mutOperatorPoint if search.point_mutation == "operator" else mutOnePoint,
                     pset=pset)
    if search.max_height is not None or search.max_size is not None:
        add_bloat_limits(toolbox, max_height=search.max_height, max_size=search.max_size)
    toolbox.register("evaluate", fitness)
    for alias in ("key", "screen", "split"):
        if callable(getattr(fitness, alias, None)):
            toolbox.register(alias, getattr(fitness, alias))
    toolbox.register("map", builtins.map if map is None else map)
    return toolbox

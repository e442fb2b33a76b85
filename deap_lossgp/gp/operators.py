"""Selection, crossover and mutation of the thesis's Algorithm 1, DEAP style.

All operators are plain functions that work in place and return tuples, so
they register in a :class:`deap.base.Toolbox` like DEAP's own::

    toolbox.register("select", selSampleTournament)    # G = 3P/4 of the population given
    toolbox.register("mate", cxNewRandomParent, new_parent=toolbox.individual, pb=0.5)
    toolbox.register("mutate_subtree", gp.mutUniform, expr=toolbox.expr_mut, pset=pset)
    toolbox.register("mutate_point", mutOnePoint, pset=pset)
    add_bloat_limits(toolbox, max_height=17, max_size=60)

Subtree mutation is DEAP's :func:`deap.gp.mutUniform`, which is exactly the
thesis's rule (a random node and its subtree replaced by a new random
subtree).  All randomness comes from DEAP's global :mod:`random` stream.
"""

import functools
import operator
import random

from deap import gp

__all__ = [
    "default_sample_size",
    "selSampleTournament",
    "cxSubtree",
    "cxNewRandomParent",
    "mutOnePoint",
    "limitTree",
    "add_bloat_limits",
]


def default_sample_size(population_size):
    """The thesis's sample-tournament size, G = 3P/4.

    :param population_size: the population size P.
    :returns: ``max(1, 3 * P // 4)``.
    """
    return max(1, (3 * population_size) // 4)


def selSampleTournament(individuals, k, sample_size=None, fit_attr="fitness"):
    """Select the *k* best of *sample_size* individuals drawn uniformly.

    The thesis's sample tournament: G distinct individuals are sampled from
    the population and the top N of them are kept.

    :param individuals: a list of individuals to select from.
    :param k: the number of individuals to select (N).
    :param sample_size: the number of individuals sampled (G); default the
                        thesis's 3P/4 of the P *individuals* given
                        (:func:`default_sample_size`).
    :param fit_attr: the attribute of individuals to use as selection criterion.
    :returns: a list of *k* selected individuals (references, like
              :func:`deap.tools.selBest`), best first.
    :raises ValueError: when ``k > sample_size`` or ``sample_size`` exceeds
                        the number of individuals.
    """
    if sample_size is None:
        sample_size = default_sample_size(len(individuals))
    if sample_size > len(individuals):
        raise ValueError(
            f"sample_size={sample_size} exceeds the {len(individuals)} individuals; use at most the population size"
        )
    if k > sample_size:
        raise ValueError(f"cannot select k={k} from a sample of {sample_size}; use k <= sample_size")
    sample = random.sample(individuals, sample_size)
    return sorted(sample, key=operator.attrgetter(fit_attr), reverse=True)[:k]


def cxSubtree(individual, donor):
    """Replace a random subtree of *individual* by a random subtree of *donor*.

    The thesis's crossover: it yields one child, *individual* modified in
    place; *donor* is left untouched.

    :param individual: the tree receiving the subtree.
    :param donor: the tree giving the subtree.
    :returns: a tuple of one tree, ``(individual,)``.
    """
    receive = individual.searchSubtree(random.randrange(len(individual)))
    give = donor.searchSubtree(random.randrange(len(donor)))
    individual[receive] = donor[give]
    return (individual,)


def cxNewRandomParent(individual, mates, new_parent, pb):
    """Cross *individual* with a mate or with a brand-new random tree.

    With probability *pb* the donor is another member of *mates* (one whose
    expression differs from *individual*'s, so the clone of an individual is
    never crossed with its original); otherwise, or when no such mate exists,
    the donor is ``new_parent()``.  Then :func:`cxSubtree`.

    Register as
    ``toolbox.register("mate", cxNewRandomParent, new_parent=toolbox.individual, pb=0.5)``
    and call as ``toolbox.mate(toolbox.clone(ind), parents)``.

    :param individual: the tree to modify in place.
    :param mates: the candidate partners (e.g. the selected parents).
    :param new_parent: a function returning a new random valid tree.
    :param pb: the probability of crossing with a mate (the thesis's Cr).
    :returns: a tuple of one tree, ``(individual,)``.
    """
    if not 0.0 <= pb <= 1.0:
        raise ValueError(f"pb must be a probability in [0, 1], got {pb}")
    if random.random() < pb:
        own = str(individual)
        others = [mate for mate in mates if mate is not individual and str(mate) != own]
        donor = random.choice(others) if others else new_parent()
    else:
        donor = new_parent()
    return cxSubtree(individual, donor)


def mutOnePoint(individual, pset):
    """Replace one non-root node by another of the same kind.

    The thesis's one-point mutation: an operator is replaced by another
    operator of the same arity, a leaf by another leaf (``y_true``, ``y_pred``
    or a new constant).  The root is never touched; a single-node tree is
    returned unchanged.

    :param individual: the tree to mutate in place.
    :param pset: the primitive set to draw replacements from.
    :returns: a tuple of one tree, ``(individual,)``.
    """
    if len(individual) < 2:
        return (individual,)
    index = random.randrange(1, len(individual))
    node = individual[index]
    if isinstance(node, gp.Primitive):
        choices = [p for p in pset.primitives[node.ret] if p.arity == node.arity and p.name != node.name]
        if choices:
            individual[index] = random.choice(choices)
    else:
        choice = random.choice(pset.terminals[node.ret])
        individual[index] = choice() if isinstance(choice, type) else choice
    return (individual,)


def limitTree(max_height=None, max_size=None):
    """Decorator keeping an operator's result within height and size limits.

    Like :func:`deap.gp.staticLimit`, but for operators that change one tree
    (their first argument) in place and return ``(tree,)``: if the result is
    too big, the tree is restored to what it was before the operator ran.

    :param max_height: the largest admitted tree height, or ``None``.
    :param max_size: the largest admitted number of nodes, or ``None``.
    :returns: a decorator for :meth:`deap.base.Toolbox.decorate`.
    """

    def decorator(function):
        @functools.wraps(function)
        def wrapper(individual, *args, **kwargs):
            before = list(individual)
            (child,) = function(individual, *args, **kwargs)
            too_high = max_height is not None and child.height > max_height
            too_big = max_size is not None and len(child) > max_size
            if too_high or too_big:
                child[0:len(child)] = before
            return (child,)

        return wrapper

    return decorator


def add_bloat_limits(toolbox, max_height=17, max_size=None,
                     names=("mate", "mate_archive", "mutate_subtree", "mutate_point")):
    """Apply :func:`limitTree` to every registered operator that can grow a tree.

    :param toolbox: the toolbox whose operators to decorate.
    :param max_height: the largest admitted tree height.
    :param max_size: the largest admitted number of nodes.
    :param names: the toolbox aliases to decorate (missing ones are skipped).
    :returns: the toolbox.
    """
    for name in names:
        if hasattr(toolbox, name):
            toolbox.decorate(name, limitTree(max_height, max_size))
    return toolbox

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
subtree).  The thesis's one-point mutation is :func:`mutOperatorPoint`;
:func:`mutOnePoint` is our same-kind variant.  The thesis's initial heights
(2 to 100) are realised by :func:`genGrowHeight`.  All randomness comes from
DEAP's global :mod:`random` stream.
"""

import functools
import inspect
import math
import operator
import random

from deap import gp

__all__ = [
    "default_sample_size",
    "selSampleTournament",
    "cxSubtree",
    "cxNewRandomParent",
    "mutOnePoint",
    "mutOperatorPoint",
    "genGrowHeight",
    "expected_grow_size",
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
    """Replace one non-root node by another of the same kind (our variant).

    An operator is replaced by another operator of the same arity, a leaf by
    another leaf (``y_true``, ``y_pred`` or a new constant), so the tree's
    shape never changes.  This is *not* the thesis's rule, under which the
    node is replaced by an operator (:func:`mutOperatorPoint`).  The root is
    never touched; a single-node tree is returned unchanged.

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


def _leaf(pset, ret):
    leaf = random.choice(pset.terminals[ret])
    return leaf() if inspect.isclass(leaf) else leaf


def mutOperatorPoint(individual, pset):
    """The thesis's one-point mutation: a non-root node becomes an operator.

    A node other than the root is drawn uniformly and replaced by an operator
    drawn uniformly from *pset* (all of them for a leaf, the others for an
    operator; the thesis's list includes ``div``).  The new operator keeps
    the node's first arguments as far as its arity allows and takes fresh
    random leaves for the rest: a leaf becomes an operator over fresh leaves,
    ``sin(x)`` may become ``add(x, leaf)``, and ``add(x, y)`` may become
    ``exp(x)``, dropping ``y``.  The root is never touched; a single-node
    tree is returned unchanged.

    :param individual: the tree to mutate in place.
    :param pset: the primitive set to draw operators and leaves from.
    :returns: a tuple of one tree, ``(individual,)``.
    """
    if len(individual) < 2:
        return (individual,)
    index = random.randrange(1, len(individual))
    node = individual[index]
    choices = [p for p in pset.primitives[node.ret] if p.name != node.name]
    if not choices:
        return (individual,)
    replacement = random.choice(choices)
    span = individual.searchSubtree(index)
    arguments = []
    start = index + 1
    for _ in range(node.arity):
        child = individual.searchSubtree(start)
        arguments.append(individual[child])
        start = child.stop
    arguments = arguments[:replacement.arity]
    arguments += [[_leaf(pset, node.ret)] for _ in range(replacement.arity - len(arguments))]
    individual[span] = [replacement] + [n for argument in arguments for n in argument]
    return (individual,)


def genGrowHeight(pset, min_, max_, leaf_pb=None, type_=None):
    """A random tree of a height drawn uniformly from ``[min_, max_]``, exactly.

    The thesis draws initial heights between 2 and 100.  A *full* tree of
    height 100 would have about 2^100 nodes, and DEAP's
    :func:`deap.gp.genGrow` almost never reaches a large height (its
    branches end at random), so this generator forces one random path (the
    spine) to the drawn height, with operators all along it, and lets every
    other branch end early: below the spine each node is a leaf with
    probability *leaf_pb*, else an operator, and every branch ends at the
    drawn height.  The expected size is :func:`expected_grow_size`; with
    the thesis's operators and DEAP's terminal ratio (0.25, which makes the
    side branches critical) it is ``1 + h + h(h + 1)/6`` nodes for height
    ``h``: 4 at height 2, 1,784 at 100, and 630 on average over 2..100.

    :param pset: the primitive set.
    :param min_: the smallest height (>= 1).
    :param max_: the largest height (>= *min_*).
    :param leaf_pb: the probability that a node off the spine is a leaf;
                    default ``pset.terminalRatio`` (DEAP's grow rule).
    :param type_: the type of the root; default ``pset.ret``.
    :returns: a list of nodes in prefix order, like DEAP's generators.
    """
    if type_ is None:
        type_ = pset.ret
    if leaf_pb is None:
        leaf_pb = pset.terminalRatio
    if not 1 <= min_ <= max_:
        raise ValueError(f"need 1 <= min_ <= max_, got min_={min_}, max_={max_}")
    height = random.randint(min_, max_)
    nodes = []
    stack = [(0, True)]
    while stack:
        depth, spine = stack.pop()
        if depth == height or (not spine and random.random() < leaf_pb):
            nodes.append(_leaf(pset, type_))
            continue
        primitive = random.choice(pset.primitives[type_])
        nodes.append(primitive)
        continued = random.randrange(primitive.arity) if spine else -1
        for position in reversed(range(primitive.arity)):
            stack.append((depth + 1, position == continued))
    return nodes


def expected_grow_size(pset, min_, max_=None, leaf_pb=None):
    """The expected number of nodes of a :func:`genGrowHeight` tree.

    With ``a`` the mean arity of the operators and ``q`` the leaf
    probability, a side branch with ``m`` levels left has expected size
    ``E(0) = 1``, ``E(m) = 1 + (1 - q) a E(m - 1)``, and the spine with
    ``k`` levels left ``S(0) = 1``, ``S(k) = 1 + S(k - 1) + (a - 1) E(k - 1)``.

    :param pset: the primitive set.
    :param min_: the smallest height.
    :param max_: the largest height; default *min_* (one height).
    :param leaf_pb: as for :func:`genGrowHeight`.
    :returns: the mean of ``S(h)`` over the heights ``h`` in ``[min_, max_]``.
    """
    max_ = min_ if max_ is None else max_
    leaf_pb = pset.terminalRatio if leaf_pb is None else leaf_pb
    primitives = pset.primitives[pset.ret]
    arity = math.fsum(p.arity for p in primitives) / len(primitives)
    side, spine, sizes = 1.0, 1.0, []
    for levels in range(1, max_ + 1):
        spine, side = 1.0 + spine + (arity - 1.0) * side, 1.0 + (1.0 - leaf_pb) * arity * side
        if levels >= min_:
            sizes.append(spine)
    return math.fsum(sizes) / len(sizes)


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

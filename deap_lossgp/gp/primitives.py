"""The operator vocabulary of evolved losses, as a DEAP primitive set.

The operators are the thesis's (§3.2.3): ``add sub mul neg sqrt log exp sin
cos`` plus ``div``, which its one-point mutation also draws.  ``div``,
``sqrt``, ``log`` and ``exp`` are protected (like gplearn's): they return
finite values with finite gradients for any finite input, see
:data:`deap_lossgp.gp.vocabulary.VOCABULARY` for the exact rules.  The primitives carry NumPy
implementations so :func:`deap.gp.compile` works on small trees; training
compiles trees with :func:`deap_lossgp.gp.expression.compile_loss`, which walks the
tree and has no depth limit.
"""

import functools
import random

from deap import gp

from .standalone import ARGUMENTS
from .vocabulary import VOCABULARY

__all__ = ["DEFAULT_OPERATORS", "INIT_OPERATORS", "make_pset", "uniform_constant"]

#: Every operator of the vocabulary.
DEFAULT_OPERATORS = tuple(VOCABULARY)
#: The thesis's operators for random trees (its one-point mutation adds ``div``).
INIT_OPERATORS = ("add", "sub", "mul", "neg", "sqrt", "log", "exp", "sin", "cos")


def uniform_constant(low, high):
    """Draw an ephemeral constant from DEAP's global :mod:`random` stream.

    A module-level function (bound with :func:`functools.partial`) so trees with
    constants pickle across processes.

    :param low: lower bound.
    :param high: upper bound.
    :returns: a float uniformly drawn from ``[low, high]``.
    """
    return random.uniform(low, high)


@functools.lru_cache(maxsize=None)
def _constant_generator(low, high):
    # DEAP refuses a second, different function under the same ephemeral name
    # in one set; caching gives every call with the same range the same object.
    return functools.partial(uniform_constant, low, high)


def make_pset(operators=DEFAULT_OPERATORS, constant_range=(-1.0, 1.0), name="LOSS"):
    """Build the primitive set of loss expressions.

    :param operators: names of the operators to include, a subset of
                      ``add sub mul div neg sqrt log exp sin cos``.
    :param constant_range: ``(low, high)`` of the ephemeral constant ``const``,
                           or ``None`` for no constants.
    :param name: name of the primitive set.
    :returns: a :class:`deap.gp.PrimitiveSet` with arguments ``y_true`` and
              ``y_pred``.
    :raises ValueError: on an unknown operator or an empty/invalid range.
    """
    operators = tuple(operators)
    unknown = [op for op in operators if op not in VOCABULARY]
    if unknown:
        raise ValueError(f"unknown operator(s) {unknown}; choose from {', '.join(VOCABULARY)}")
    if not operators:
        raise ValueError("the operator set is empty: give at least one of " + ", ".join(VOCABULARY))
    pset = gp.PrimitiveSet(name, len(ARGUMENTS))
    pset.renameArguments(**{f"ARG{i}": arg for i, arg in enumerate(ARGUMENTS)})
    for op in dict.fromkeys(operators):
        pset.addPrimitive(VOCABULARY[op].value, VOCABULARY[op].arity, name=op)
    if constant_range is not None:
        low, high = (float(v) for v in constant_range)
        if not low < high:
            raise ValueError(f"constant_range must be (low, high) with low < high, got {constant_range!r}")
        pset.addEphemeralConstant("const", _constant_generator(low, high))
    return pset

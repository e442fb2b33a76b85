"""A loss as a formula: sympy, simplified text and LaTeX.

The formulas are built from the operator table
(:data:`~deap_lossgp.gp.vocabulary.VOCABULARY`); sympy is imported on first
use.
"""

import math

import numpy

from .program import program_of
from .vocabulary import VOCABULARY

__all__ = ["to_sympy", "to_formula", "to_latex"]


def _folded(operator, arguments):
    """A protected operator applied with its rule when every argument is a
    number (so ``log(0)`` is ``log(TINY)``, not ``zoo``), else ``None``;
    sympy folds the other operators exactly."""
    import sympy

    if not operator.protected or not all(argument.is_Number for argument in arguments):
        return None
    with numpy.errstate(all="ignore"):
        value = float(operator.value(*(numpy.float64(float(argument)) for argument in arguments)))
    return sympy.Float(value) if math.isfinite(value) else None


def to_sympy(tree):
    """The nominal formula of a tree as a sympy expression.

    Protected operators are shown as their plain counterparts (``div`` as
    ``/``, ``log`` as ``log``...), which is how a reader thinks of them;
    constant arguments are folded with the protected rule, so
    ``sqrt(-0.25)`` shows as ``0.5``, not as an imaginary number.

    :param tree: a DEAP tree or an expression string.
    :returns: a :class:`sympy.Expr` in the symbols ``y_true`` and ``y_pred``.
    """
    import sympy

    stack = []
    for kind, value in reversed(program_of(tree)):
        if kind == "const":
            stack.append(sympy.Float(value))
        elif kind == "arg":
            stack.append(sympy.Symbol(value))
        else:
            operator = VOCABULARY[value]
            arguments = [stack.pop() for _ in range(operator.arity)]
            folded = _folded(operator, arguments)
            stack.append(operator.sympy(sympy, *arguments) if folded is None else folded)
    return stack[0]


# sympy.simplify grows quickly with the tree; bigger trees are only tidied.
_SIMPLIFY_MAX_NODES = 60


def _readable(tree, digits):
    import sympy

    program = program_of(tree)
    expr = to_sympy(program)
    if len(program) <= _SIMPLIFY_MAX_NODES:
        expr = sympy.simplify(expr)
    return expr.xreplace({f: sympy.Float(f, digits) for f in expr.atoms(sympy.Float)})


def to_formula(tree, digits=5):
    """A simplified, human-readable formula of a tree.

    :param tree: a DEAP tree or an expression string.
    :param digits: significant digits of constants.
    :returns: the formula as text, e.g. ``"-y_true*log(y_pred)"``.
    """
    return str(_readable(tree, digits))


def to_latex(tree, digits=5):
    """The simplified formula of a tree in LaTeX.

    :param tree: a DEAP tree or an expression string.
    :param digits: significant digits of constants.
    :returns: LaTeX source (without ``$`` delimiters).
    """
    import sympy

    return sympy.latex(_readable(tree, digits))

"""The operator table: every form of every operator, in one place.

Each :class:`Operator` of :data:`VOCABULARY` holds an operator's name and
arity, its protected rule in words, its NumPy value and partial derivatives,
its sympy form, the source it is exported as (for NumPy and for PyTorch) and
how formulas print it.  :mod:`.numerics` (NumPy values and gradients),
:mod:`.formula` (sympy, plain and LaTeX formulas), :mod:`.export` (PyTorch and
NumPy modules) and :mod:`.primitives` (the DEAP primitive set) are driven by
it.

:mod:`.standalone` holds its own copy of the operators, because it is copied
verbatim into exported Keras files and must import nothing of the package;
the test suite checks that copy against this table (same names, arities and
values, on a grid of inputs including 0, negative and huge ones).
"""

from typing import Callable, NamedTuple, Optional

import numpy

from .standalone import EXP_LIMIT, TINY

__all__ = ["Operator", "VOCABULARY"]


class Operator(NamedTuple):
    """One operator of the loss vocabulary in all its forms.

    :param name: the name trees and expression text use (``"div"``).
    :param arity: the number of arguments.
    :param value: the protected value in NumPy, ``value(*arrays)``.
    :param partials: its partial derivatives in NumPy, ``partials(*arrays)``,
                     a tuple with one entry per argument, as TensorFlow
                     differentiates :mod:`.standalone`'s definition (a
                     clamped input has none).
    :param source: a Python expression of the arguments ``{a}`` (and
                   ``{b}``) in the array module ``{xp}`` (``np`` or
                   ``torch``), with the module constants ``TINY`` and
                   ``EXP_LIMIT``: the exported code.
    :param sympy: ``sympy(functions, *arguments)``, the nominal formula (a
                  protected operator as its plain counterpart); *functions*
                  is :mod:`sympy`.
    :param printed: the name formulas print (a function call: ``p`` marks a
                    protected operator, ``plog``), or, with *infix*, the
                    operator symbol.
    :param infix: the precedence of an infix operator (1 for ``+ -``, 2 for
                  ``*``, 3 for the unary ``-``), ``None`` for a function call.
    :param latex: the LaTeX of the symbol or function name.
    :param protected: the protected rule in words, in the printed name,
                      ``""`` for an operator that needs none.
    """

    name: str
    arity: int
    value: Callable
    partials: Callable
    source: str
    sympy: Callable
    printed: str
    infix: Optional[int]
    latex: str
    protected: str


# Named functions, not lambdas, for the values: DEAP's primitive set holds
# them, and a primitive set must pickle to reach worker processes.
def _add(a, b):
    return a + b


def _sub(a, b):
    return a - b


def _mul(a, b):
    return a * b


# The divisor is made safe before dividing (here and in div's source): a
# `where` after the division would still propagate the NaN/inf gradient of
# the branch it discards.
def _div(a, b):
    small = numpy.abs(b) < TINY
    safe = numpy.where(small, 1.0, b)
    return numpy.where(small, 1.0, a / safe)


def _neg(a):
    return -a


def _sqrt(a):
    return numpy.sqrt(numpy.maximum(numpy.abs(a), TINY))


def _log(a):
    return numpy.log(numpy.maximum(numpy.abs(a), TINY))


def _exp(a):
    return numpy.exp(numpy.minimum(a, EXP_LIMIT))


def _div_partials(a, b):
    small = numpy.abs(b) < TINY
    safe = numpy.where(small, 1.0, b)
    return numpy.where(small, 0.0, 1.0 / safe), numpy.where(small, 0.0, -a / (safe * safe))


# As TensorFlow's maximum and minimum do, a value exactly at the threshold
# passes the gradient.
def _sqrt_partials(a):
    inside = numpy.abs(a) >= TINY
    return (numpy.where(inside, numpy.sign(a) * 0.5 / numpy.sqrt(numpy.maximum(numpy.abs(a), TINY)), 0.0),)


def _log_partials(a):
    inside = numpy.abs(a) >= TINY
    return (numpy.where(inside, 1.0 / numpy.where(inside, a, 1.0), 0.0),)


def _exp_partials(a):
    return (numpy.where(a <= EXP_LIMIT, numpy.exp(numpy.minimum(a, EXP_LIMIT)), 0.0),)


_OPERATORS = [
    Operator("add", 2, _add, lambda a, b: (1.0, 1.0), "{a} + {b}", lambda s, a, b: a + b,
             "+", 1, "+", ""),
    Operator("sub", 2, _sub, lambda a, b: (1.0, -1.0), "{a} - {b}", lambda s, a, b: a - b,
             "-", 1, "-", ""),
    Operator("mul", 2, _mul, lambda a, b: (b, a), "{a} * {b}", lambda s, a, b: a * b,
             "*", 2, r"\cdot", ""),
    Operator("div", 2, _div, _div_partials,
             "{xp}.where({xp}.abs({b}) < TINY, 1.0, {a} / {xp}.where({xp}.abs({b}) < TINY, 1.0, {b}))",
             lambda s, a, b: a / b, "pdiv", None, r"\operatorname{pdiv}",
             "pdiv(a, b) = a/b, or 1 where |b| < TINY"),
    Operator("neg", 1, _neg, lambda a: (-1.0,), "-{a}", lambda s, a: -a, "-", 3, "-", ""),
    Operator("sqrt", 1, _sqrt, _sqrt_partials, "{xp}.sqrt({xp}.clip({xp}.abs({a}), TINY, None))",
             lambda s, a: s.sqrt(a), "psqrt", None, r"\operatorname{psqrt}",
             "psqrt(a) = sqrt(max(|a|, TINY))"),
    Operator("log", 1, _log, _log_partials, "{xp}.log({xp}.clip({xp}.abs({a}), TINY, None))",
             lambda s, a: s.log(a), "plog", None, r"\operatorname{plog}", "plog(a) = log(max(|a|, TINY))"),
    Operator("exp", 1, _exp, _exp_partials, "{xp}.exp({xp}.clip({a}, None, EXP_LIMIT))",
             lambda s, a: s.exp(a), "pexp", None, r"\operatorname{pexp}", "pexp(a) = exp(min(a, EXP_LIMIT))"),
    Operator("sin", 1, numpy.sin, lambda a: (numpy.cos(a),), "{xp}.sin({a})", lambda s, a: s.sin(a),
             "sin", None, r"\sin", ""),
    Operator("cos", 1, numpy.cos, lambda a: (-numpy.sin(a),), "{xp}.cos({a})", lambda s, a: s.cos(a),
             "cos", None, r"\cos", ""),
]

#: name -> :class:`Operator`, in the vocabulary's order (``add sub mul div neg sqrt log exp sin cos``).
VOCABULARY = {operator.name: operator for operator in _OPERATORS}


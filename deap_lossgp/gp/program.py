"""A loss as a prefix program: the one form every other module reads.

:func:`program_of` turns a DEAP tree, expression text or a parsed program
into the checked list of ``(kind, value)`` entries of
:func:`deap_lossgp.gp.standalone.parse`; :func:`to_string` prints it in
DEAP's format.  Both walk the program with a stack, never by recursion.
"""

import math

from deap import gp

from .standalone import ARGUMENTS, _quote, parse
from .vocabulary import VOCABULARY

__all__ = ["program_of", "to_string"]


def program_of(tree):
    """The prefix program of a tree or expression text.

    :param tree: a DEAP tree, an expression string (prefix or infix, see
                 :func:`deap_lossgp.gp.standalone.parse`) or a parsed program.
    :returns: the list of ``(kind, value)`` entries of
              :func:`deap_lossgp.gp.standalone.parse`.
    :raises ValueError: for anything else, naming what was given.
    """
    if isinstance(tree, str):
        return parse(tree)
    if isinstance(tree, (bytes, bytearray)):
        raise ValueError(f"a loss expression must be a string or a DEAP tree, got {type(tree).__name__}; "
                         "decode it first")
    if not isinstance(tree, (list, tuple)) or not tree:
        raise ValueError(f"a loss expression must be a string or a DEAP tree, got "
                         f"{'an empty ' if isinstance(tree, (list, tuple)) else ''}{type(tree).__name__}")
    if all(isinstance(entry, tuple) for entry in tree):
        return _checked(tree)
    program = []
    for node in tree:
        if isinstance(node, gp.Primitive):
            if node.name not in VOCABULARY:
                raise ValueError(f"primitive {node.name!r} is not a loss operator; use make_pset()")
            program.append(("op", node.name))
        elif not isinstance(node, gp.Terminal):
            raise ValueError(f"a loss expression must be a string or a DEAP tree, got a {type(tree).__name__} "
                             f"holding a {type(node).__name__}")
        elif node.value in ARGUMENTS:
            program.append(("arg", node.value))
        elif isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            program.append(("const", _finite(node.value)))
        else:
            raise ValueError(f"terminal {_quote(str(node.value))} is neither y_true, y_pred nor a "
                             "number; use make_pset()")
    return program


def _finite(value):
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"the constant {value!r} is not a finite number; the loss needs finite constants")
    return value


def _checked(program):
    """A parsed program, checked entry by entry and for a single complete tree."""
    pending = 1
    for entry in program:
        if pending == 0:
            raise ValueError("the program holds more than one tree")
        kind, value = entry if len(entry) == 2 else (None, None)
        if kind == "op" and value in VOCABULARY:
            pending += VOCABULARY[value].arity - 1
        elif kind == "arg" and value in ARGUMENTS:
            pending -= 1
        elif kind == "const" and isinstance(value, (int, float)) and not isinstance(value, bool):
            _finite(value)
            pending -= 1
        else:
            raise ValueError(f"a program entry is ('op', name), ('arg', name) or ('const', number), "
                             f"got {_quote(repr(entry))}")
    if pending:
        raise ValueError("the program ends early: an argument is missing")
    return list(program)


def to_string(tree):
    """The expression text of a tree (DEAP's format), normalised.

    :param tree: a DEAP tree, an expression string or a parsed program.
    :returns: the text, e.g. ``"neg(mul(y_true, log(y_pred)))"``.
    """
    parts = []
    for kind, value in reversed(program_of(tree)):
        if kind == "const":
            parts.append(repr(value))
        elif kind == "arg":
            parts.append(value)
        else:
            arguments = [parts.pop() for _ in range(VOCABULARY[value].arity)]
            parts.append(f"{value}({', '.join(arguments)})")
    return parts[0]

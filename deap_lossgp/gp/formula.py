"""A loss as a formula: sympy, simplified text and LaTeX, in bounded time.

The formulas are built from the operator table
(:data:`~deap_lossgp.gp.vocabulary.VOCABULARY`); sympy is imported on first
use.  :func:`sympy.simplify` is not used: its time grows exponentially
with some trees, even small ones (nested ``sin`` around
``y_true*log(y_pred)`` took 4.4 s at 12 levels and 64 s at 16; an 8-node
tree of nested ``sin`` and ``cos`` took 1.8 s), and no size budget bounds it.
sympy also recurses, so it fails on trees about 150 levels deep.  Hence
three tiers, chosen by the tree's size:

* at most :data:`EXPAND_MAX_NODES` nodes: sympy's automatic evaluation
  (like terms collected, constants folded), replaced by its expansion
  (:func:`sympy.expand`) where that has fewer operations, so
  ``y_pred*(y_true + 1) - y_pred`` prints as ``y_pred*y_true``;
* at most :data:`SYMPY_MAX_NODES` nodes and :data:`SYMPY_MAX_HEIGHT`
  levels: sympy's automatic evaluation only;
* larger: printed as they are, by a plain infix printer that walks the
  tree with explicit stacks, in time linear in its size.

Formulas say what the loss computes: the protected operators print under
names of their own, ``pdiv psqrt plog pexp`` (as sympy functions that keep
their arguments unevaluated, so ``psqrt(-y_pred)`` is not turned into an
imaginary number and ``pdiv(y_pred, y_pred)`` is not cancelled to 1), and
:data:`FORMULA_LEGEND` is the one line that explains them, for callers to
print once beside their formulas.  A sympy result that would not read back
as a finite loss (an infinity, a name the parser does not know) is replaced
by the plain printer's, so every formula printed here reads back with
:func:`~deap_lossgp.gp.standalone.parse`, which knows the marked names.
"""

import functools
import math

import numpy

from .program import program_of
from .standalone import EXP_LIMIT, TINY, parse
from .vocabulary import VOCABULARY

__all__ = ["FORMULA_LEGEND", "EXPAND_MAX_NODES", "SYMPY_MAX_NODES", "SYMPY_MAX_HEIGHT", "SHORT_LENGTH", "to_sympy",
           "to_formula", "to_latex", "plain_formula", "shorten"]

#: One line explaining the protected operators' names in printed formulas;
#: print it once per output that shows formulas.
FORMULA_LEGEND = "protected operators: " + "; ".join(
    operator.protected.replace("EXP_LIMIT", f"{EXP_LIMIT:g}").replace("TINY", f"{TINY:g}")
    for operator in VOCABULARY.values() if operator.protected)

#: Largest tree (in nodes) whose expansion is tried: a product of sums
#: expands to at most ``2**(nodes / 4)`` terms.
EXPAND_MAX_NODES = 30
#: Largest tree (in nodes) sympy's automatic evaluation tidies.
SYMPY_MAX_NODES = 200
#: Deepest tree (in levels) sympy is given: sympy recurses over the formula.
SYMPY_MAX_HEIGHT = 40

#: Characters :func:`shorten` keeps of a long text, half from each end.
SHORT_LENGTH = 400

# Precedence of an atom (argument, positive constant, function call).
_ATOM = 5
# Precedence of a unary minus (and of a negative constant), between * and **.
_UNARY = 3


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


@functools.lru_cache(maxsize=None)
def _marked():
    """operator name -> the sympy function of a protected operator, printed
    under its marked name (``plog``), folded with its rule on numbers."""
    import sympy

    def latex(self, printer, exp=None):
        name = self.operator.latex + ("" if exp is None else f"^{{{exp}}}")
        return name + r"\left(" + ", ".join(printer._print(argument) for argument in self.args) + r"\right)"

    functions = {}
    for operator in VOCABULARY.values():
        if operator.protected:
            evaluate = classmethod(lambda cls, *arguments: _folded(cls.operator, arguments))
            functions[operator.name] = type(operator.printed, (sympy.Function,), {
                "nargs": operator.arity, "operator": operator, "eval": evaluate, "_latex": latex})
    return functions


def to_sympy(tree, protected=True):
    """The formula of a tree as a sympy expression.

    With *protected* (the default) the protected operators are sympy
    functions printed ``pdiv psqrt plog pexp`` (see :data:`FORMULA_LEGEND`):
    the formula computes what the loss computes.  Without, they are their
    plain counterparts (``div`` as ``/``, ``log`` as ``log``): the nominal
    formula, how a reader thinks of them, which differs from the loss where
    the protection steps in.  Either way constant arguments are folded with
    the protected rule, so ``sqrt(-0.25)`` shows as ``0.5``, not as an
    imaginary number.  sympy recurses over expressions: trees deeper than
    about 150 levels raise :class:`RecursionError` here; :func:`to_formula`
    does not.

    :param tree: a DEAP tree or an expression string.
    :param protected: mark the protected operators.
    :returns: a :class:`sympy.Expr` in the symbols ``y_true`` and ``y_pred``.
    """
    import sympy

    marked = _marked() if protected else {}
    stack = []
    for kind, value in reversed(program_of(tree)):
        if kind == "const":
            stack.append(sympy.Float(value))
        elif kind == "arg":
            stack.append(sympy.Symbol(value))
        else:
            operator = VOCABULARY[value]
            arguments = [stack.pop() for _ in range(operator.arity)]
            if value in marked:
                stack.append(marked[value](*arguments))
                continue
            folded = _folded(operator, arguments)
            stack.append(operator.sympy(sympy, *arguments) if folded is None else folded)
    return stack[0]


def _height(program):
    """The number of levels of a program."""
    stack = []
    for kind, value in reversed(program):
        if kind == "op":
            stack.append(1 + max(stack.pop() for _ in range(VOCABULARY[value].arity)))
        else:
            stack.append(1)
    return stack[0]


def _number(value, digits, latex):
    text = f"{value:.{digits}g}"
    if latex and "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa} \\cdot 10^{{{int(exponent)}}}"
    return text


def plain_formula(tree, digits=5, latex=False):
    """The formula of a tree as it is, without simplification.

    Infix ``+ - *`` and unary ``-`` with the fewest parentheses that keep the
    tree's shape; every other operator as a call.  The tree is walked with
    explicit stacks and the text built in one pass, so any tree prints in
    time linear in its size.

    :param tree: a DEAP tree, an expression string or a parsed program.
    :param digits: significant digits of constants.
    :param latex: LaTeX instead of text.
    :returns: the formula; as text, it reads back with
              :func:`~deap_lossgp.gp.standalone.parse`.
    """
    program = program_of(tree)
    # Pass 1, children before parents: each node's pieces (strings and child
    # indices), precedence and whether its text starts with a minus sign.
    pieces, precedence, minus, stack = [], [], [], []
    open_, close = (r"\left(", r"\right)") if latex else ("(", ")")
    for kind, value in reversed(program):
        if kind == "const":
            pieces.append([_number(value, digits, latex)])
            negative = math.copysign(1.0, value) < 0
            precedence.append(_UNARY if negative else _ATOM)
            minus.append(negative)
        elif kind == "arg":
            pieces.append([value.replace("_", "_{", 1) + "}" if latex else value])
            precedence.append(_ATOM)
            minus.append(False)
        else:
            operator = VOCABULARY[value]
            children = [stack.pop() for _ in range(operator.arity)]
            symbol = operator.latex if latex else operator.printed
            if operator.infix is None:
                node = [symbol + open_]
                for i, child in enumerate(children):
                    node += [", "] if i else []
                    node.append(child)
                node.append(close)
                precedence.append(_ATOM)
                minus.append(False)
            elif operator.arity == 1:
                (child,) = children
                node = [symbol] + _wrapped(child, precedence[child] <= _UNARY, open_, close)
                precedence.append(_UNARY)
                minus.append(True)
            else:
                left, right = children
                tight = operator.infix
                separator = f" {symbol} " if tight == 1 or latex else symbol
                node = (_wrapped(left, precedence[left] < tight, open_, close) + [separator]
                        + _wrapped(right, precedence[right] <= tight or minus[right], open_, close))
                precedence.append(tight)
                minus.append(minus[left] and precedence[left] >= tight)
            pieces.append(node)
        stack.append(len(pieces) - 1)
    # Pass 2, from the root: expand child indices in place, left to right.
    text, work = [], [stack[0]]
    while work:
        item = work.pop()
        if isinstance(item, str):
            text.append(item)
        else:
            work.extend(reversed(pieces[item]))
    return "".join(text)


def _wrapped(child, parenthesised, open_, close):
    return [open_, child, close] if parenthesised else [child]


def _readable(program, digits):
    """The sympy formula of a program within the sympy budget, else ``None``."""
    import sympy

    if len(program) > SYMPY_MAX_NODES or _height(program) > SYMPY_MAX_HEIGHT:
        return None
    try:
        expr = to_sympy(program)
        if len(program) <= EXPAND_MAX_NODES:
            expr = min(expr, sympy.expand(expr), key=sympy.count_ops)
        expr = expr.xreplace({f: sympy.Float(f, digits) for f in expr.atoms(sympy.Float)})
        parse(str(expr))
    # sympy fails on a few trees (comparisons of NaN, deep recursion); the
    # parser refuses what sympy prints but is no loss (an infinity, a name
    # it does not know). The plain printer never fails.
    except (ArithmeticError, RecursionError, TypeError, ValueError):
        return None
    if expr.has(sympy.I, sympy.zoo, sympy.oo, sympy.S.NegativeInfinity, sympy.nan):
        return None
    return expr


def to_formula(tree, digits=5):
    """A simplified, human-readable formula of a tree, in bounded time.

    Small and mid-sized trees are tidied by sympy, large ones printed as
    they are (see the module's description); the worst legal tree prints in
    well under a second.

    :param tree: a DEAP tree or an expression string.
    :param digits: significant digits of constants.
    :returns: the formula as text, e.g. ``"-y_true*plog(y_pred)"``; it reads
              back with :func:`~deap_lossgp.gp.standalone.parse`.
    """
    program = program_of(tree)
    expr = _readable(program, digits)
    return plain_formula(program, digits) if expr is None else str(expr)


def to_latex(tree, digits=5):
    """The simplified formula of a tree in LaTeX, in bounded time.

    :param tree: a DEAP tree or an expression string.
    :param digits: significant digits of constants.
    :returns: LaTeX source (without ``$`` delimiters).
    """
    import sympy

    program = program_of(tree)
    expr = _readable(program, digits)
    return plain_formula(program, digits, latex=True) if expr is None else sympy.latex(expr)


def shorten(text, limit=SHORT_LENGTH, nodes=None):
    """A long expression, formula or LaTeX cut for display.

    A tree of a few thousand nodes prints as tens of kilobytes; this keeps
    its first and last ``limit // 2`` characters around a note of what was
    left out, e.g. ``"add(mul(... ... (24,575 nodes, 147,449 characters) ...
    y_pred))"``.  Text no longer than *limit* is returned unchanged.

    :param text: the text (an expression or formula prints on one line).
    :param limit: the most characters kept (at least 20).
    :param nodes: the tree's node count, shown in the note when given.
    :returns: the text, at most ``limit`` characters plus the note.
    :raises ValueError: for a non-string *text* or a *limit* below 20.
    """
    if not isinstance(text, str):
        raise ValueError(f"shorten takes a string, got {type(text).__name__}; print the tree with to_string first")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 20:
        raise ValueError(f"limit must be an integer of at least 20 characters, got {limit!r}")
    if len(text) <= limit:
        return text
    half = limit // 2
    size = "" if nodes is None else f"{nodes:,} nodes, "
    return f"{text[:half]} ... ({size}{len(text):,} characters) ... {text[-half:]}"

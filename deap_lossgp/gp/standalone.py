"""Evaluate an evolved loss expression, and use it as a Keras loss.

This module is self-contained on purpose: it imports only the standard
library, NumPy and (when the loss class is first used) Keras.  The package
uses it for compilation, and :func:`deap_lossgp.gp.export.to_python_source`
copies it verbatim into the ``best_loss.py`` a search exports, so the exported
loss behaves exactly as the one the search evaluated and can be imported
without deap_lossgp installed.

An expression is the text DEAP prints for a tree, for example
``sub(exp(sub(2.4092, mul(y_pred, add(1.0, y_true)))), cos(cos(sin(y_pred))))``,
or an infix formula such as ``-y_true*log(y_pred)``.  It is parsed by a small
tokenizer that accepts only operator names, the two arguments, numbers,
``+ - * / **``, parentheses and commas, so loading a loss from text never
executes code.  Parsing and evaluation walk the expression with explicit
stacks, and the text is bounded in length, nesting depth and node count.

The Keras loss class (``ExpressionLoss``) is built on first access, so
importing this module does not start TensorFlow.
"""

import math
import re

#: The expression the loss class uses when none is given (set in exported files).
EXPRESSION = None
#: Name of the Keras loss class this module provides (changed in exported files).
CLASS_NAME = "ExpressionLoss"
#: Keras serialisation package the class is registered under.
PACKAGE = "deap_lossgp"

__all__ = ["OPERATORS", "ALIASES", "ARGUMENTS", "EXPRESSION", "CLASS_NAME", "MAX_LENGTH", "MAX_DEPTH", "MAX_NODES",
           "parse", "evaluate", CLASS_NAME]

#: The two arguments of every loss expression.
ARGUMENTS = ("y_true", "y_pred")

# Below TINY a divisor counts as zero and log/sqrt inputs are floored. It equals
# Keras's probability epsilon, so log(y_pred) behaves like Keras's cross-entropy.
TINY = 1e-7
# exp(80) ~ 5.5e34 still fits in float32 (max ~ 3.4e38).
EXP_LIMIT = 80.0


def _add(xp, a, b):
    return a + b


def _sub(xp, a, b):
    return a - b


def _mul(xp, a, b):
    return a * b


def _div(xp, a, b):
    # Sanitise the divisor before dividing: a `where` after the division would
    # still propagate the NaN/inf gradient of the branch it discards.
    small = xp.abs(b) < TINY
    safe = xp.where(small, 1.0, b)
    return xp.where(small, 1.0, a / safe)


def _neg(xp, a):
    return -a


def _sqrt(xp, a):
    return xp.sqrt(xp.maximum(xp.abs(a), TINY))


def _log(xp, a):
    return xp.log(xp.maximum(xp.abs(a), TINY))


def _exp(xp, a):
    return xp.exp(xp.minimum(a, EXP_LIMIT))


def _sin(xp, a):
    return xp.sin(a)


def _cos(xp, a):
    return xp.cos(a)


#: name -> ``(arity, function(xp, *args))``; ``xp`` is ``numpy`` or ``keras.ops``.
OPERATORS = {
    "add": (2, _add),
    "sub": (2, _sub),
    "mul": (2, _mul),
    "div": (2, _div),
    "neg": (1, _neg),
    "sqrt": (1, _sqrt),
    "log": (1, _log),
    "exp": (1, _exp),
    "sin": (1, _sin),
    "cos": (1, _cos),
}

#: The names formulas print for the protected operators (``plog(y_pred)``),
#: read as those operators, so a printed formula reads back.
ALIASES = {"pdiv": "div", "psqrt": "sqrt", "plog": "log", "pexp": "exp"}

#: Longest expression text accepted (about 10,000 nodes).
MAX_LENGTH = 100_000
#: Deepest nesting accepted, in operators and parentheses.
MAX_DEPTH = 1000
#: Most nodes a parsed expression may have, counted as it expands (``**``
#: repeats its base, so 37 characters can spell 24,575 nodes): twice the
#: largest tree a search makes (5,000 nodes, the thesis mode's safety cap).
#: Tracing the Keras loss grows with the nodes (9,215 nodes: 8 s on 2 CPU
#: cores), and a larger tree's text can pass :data:`MAX_LENGTH`.
MAX_NODES = 10_000
# The longest piece of the text an error message quotes.
_QUOTE = 60
# Names of non-finite constants, as NumPy, Python and sympy print them.
_NON_FINITE = {"inf", "infinity", "nan", "oo", "zoo"}
# Infix operators: symbol -> (operator name, precedence); unary signs bind
# between * and **, as in Python.
_BINARY = {"+": ("add", 1), "-": ("sub", 1), "*": ("mul", 2), "/": ("div", 2), "**": (None, 4)}
_UNARY_PRECEDENCE = 3

_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<symbol>\*\*|[-+*/(),]))",
    re.ASCII,
)


def _quote(text):
    """``repr`` of *text*, cut to a few dozen characters so an error message stays short."""
    if len(text) <= _QUOTE:
        return repr(text)
    return f"{text[:_QUOTE]!r}... ({len(text)} characters)"


def _tokenize(text):
    tokens = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(
                f"cannot read loss expression at character {position} ({_quote(text[position:position + 20])}): "
                "only operator names, y_true, y_pred, numbers in ASCII digits, + - * / **, parentheses and "
                "commas are allowed"
            )
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


class _Builder:
    """The expression as a graph of nodes (``**`` shares its base), with each
    node's depth and expanded size checked as it is made."""

    def __init__(self):
        self.nodes, self.depth, self.size = [], [], []

    def add(self, entry, children=()):
        depth = 1 + max((self.depth[c] for c in children), default=0)
        if depth > MAX_DEPTH:
            raise ValueError(f"the loss expression is nested more than {MAX_DEPTH} levels deep; use a shallower one")
        size = 1 + sum(self.size[c] for c in children)
        if size > MAX_NODES:
            raise ValueError(f"the loss expression expands to more than {MAX_NODES} nodes; use a smaller one")
        self.nodes.append((entry, tuple(children)))
        self.depth.append(depth)
        self.size.append(size)
        return len(self.nodes) - 1

    def program(self, root):
        program, stack = [], [root]
        while stack:
            entry, children = self.nodes[stack.pop()]
            program.append(entry)
            stack.extend(reversed(children))
        return program

    def constant_value(self, node):
        """The value of a sub-expression without arguments, or ``None``."""
        program = self.program(node)
        if any(kind == "arg" for kind, _ in program):
            return None
        import numpy

        with numpy.errstate(all="ignore"):
            return float(evaluate(program, 0.0, 0.0, numpy))

    def power(self, base, exponent, at):
        value = self.constant_value(exponent)
        if value is None:
            raise ValueError(f"the exponent of '**' at character {at} must be a number; "
                             "write exp(b*log(a)) for a**b")
        if not math.isfinite(value):
            raise ValueError(f"the exponent of '**' at character {at} is not a finite number")
        # Powers printed by sympy (x**2, x**(1/4), x**(3/2)) become the operators
        # they came from: products of x and of its repeated square roots.
        magnitude = abs(value)
        whole = int(min(magnitude, 129))
        roots = next((r for r in range(4) if ((magnitude - whole) * 2 ** r).is_integer()), None)
        if magnitude > 128 or roots is None:
            logarithm = self.add(("op", "log"), [base])
            return self.add(("op", "exp"), [self.add(("op", "mul"), [self.add(("const", value)), logarithm])])
        part = (magnitude - whole) * 2 ** roots
        root = base
        for _ in range(roots):
            root = self.add(("op", "sqrt"), [root])
        factors = [self._product(node, count) for node, count in ((base, whole), (root, int(part))) if count]
        if not factors:
            return self.add(("const", 1.0))
        result = factors[0] if len(factors) == 1 else self.add(("op", "mul"), factors)
        return self.add(("op", "div"), [self.add(("const", 1.0)), result]) if value < 0 else result

    def _product(self, node, count):
        """*node* multiplied by itself to *count* factors, by repeated squaring."""
        result, square = None, node
        while count:
            if count & 1:
                result = square if result is None else self.add(("op", "mul"), [result, square])
            count >>= 1
            if count:
                square = self.add(("op", "mul"), [square, square])
        return result


def _operand(builder, kind, value, at, calls_next):
    """The node of a number or argument, or ``None`` for an operator call."""
    if kind == "number":
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"the constant {_quote(value)} at character {at} is not a finite number; "
                             "the loss needs finite constants")
        return builder.add(("const", number))
    if calls_next:
        if value not in OPERATORS and value not in ALIASES:
            raise ValueError(
                f"unknown operator {_quote(value)} at character {at}; known operators: {', '.join(OPERATORS)}"
            )
        return None
    if value in ARGUMENTS:
        return builder.add(("arg", value))
    if value.lower() in _NON_FINITE:
        raise ValueError(f"{value!r} at character {at} is a non-finite constant; the loss needs finite constants")
    raise ValueError(f"unknown name {_quote(value)} at character {at}; leaves are y_true, y_pred or numbers")


def parse(text):
    """Parse a loss expression into its prefix program, without evaluating code.

    Two notations are read: DEAP's prefix text (``neg(mul(y_true,
    log(y_pred)))``) and infix formulas as the package prints them
    (``-y_true*log(y_pred)``, ``sqrt(y_pred) + sin(y_true)``), with ``+ - * /
    **`` and Python's precedence; both may be mixed.  ``/`` is the protected
    ``div``; ``a**n`` needs a constant exponent and becomes products of ``a``
    or of its square roots where the exponent allows (``x**(3/2)`` is
    ``mul(x, sqrt(x))``), else ``exp(mul(n, log(a)))``.  The names formulas
    print for the protected operators (:data:`ALIASES`: ``pdiv psqrt plog
    pexp``) are read as those operators.  A minus sign before a number makes
    a negative constant.  The text is read with explicit stacks,
    never by recursion or ``eval``, and is limited to :data:`MAX_LENGTH`
    characters, :data:`MAX_DEPTH` levels and :data:`MAX_NODES` nodes.

    :param text: an expression such as ``"neg(mul(y_true, log(y_pred)))"``.
    :returns: a list of ``("op", name)``, ``("arg", name)`` and
              ``("const", float)`` entries in prefix order.
    :raises ValueError: naming the offending token when the text is not a
                        well-formed expression of the known operators, or is
                        past a limit.
    """
    if not isinstance(text, str):
        hint = "; decode it first" if isinstance(text, (bytes, bytearray)) else ""
        raise ValueError(f"a loss expression must be a string, got {type(text).__name__}{hint}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"the loss expression is {len(text)} characters long; at most {MAX_LENGTH} are accepted")
    tokens = _tokenize(text)
    if not tokens:
        raise ValueError("the loss expression is empty: give e.g. 'neg(mul(y_true, log(y_pred)))'")
    builder = _Builder()
    operands = []
    # Pending operators: [kind, symbol or operator name, character, arguments read]
    # with kind "binary", "unary", "paren" or "call".
    pending = []

    def apply(kind, symbol, at):
        right = operands.pop()
        if kind == "unary":
            entry = builder.nodes[right][0]
            if symbol == "+":
                operands.append(right)
            elif entry[0] == "const":
                operands.append(builder.add(("const", -entry[1])))
            else:
                operands.append(builder.add(("op", "neg"), [right]))
            return
        left = operands.pop()
        if symbol == "**":
            operands.append(builder.power(left, right, at))
        else:
            operands.append(builder.add(("op", _BINARY[symbol][0]), [left, right]))

    def unwind(precedence=0, right_associative=False):
        while pending and pending[-1][0] in ("binary", "unary"):
            kind, symbol, at, _ = pending[-1]
            top = _UNARY_PRECEDENCE if kind == "unary" else _BINARY[symbol][1]
            if top < precedence or (top == precedence and right_associative):
                break
            pending.pop()
            apply(kind, symbol, at)

    def push(entry):
        pending.append(entry)
        if len(pending) > MAX_DEPTH:
            raise ValueError(f"the loss expression is nested more than {MAX_DEPTH} levels deep; use a shallower one")

    expect_operand = True
    i = 0
    while i < len(tokens):
        kind, value, at = tokens[i]
        calls_next = i + 1 < len(tokens) and tokens[i + 1][1] == "("
        i += 1
        if expect_operand:
            if kind in ("number", "name"):
                node = _operand(builder, kind, value, at, kind == "name" and calls_next)
                if node is None:
                    push(["call", ALIASES.get(value, value), at, 0])
                    i += 1
                else:
                    operands.append(node)
                    expect_operand = False
            elif value in "+-":
                push(["unary", value, at, 0])
            elif value == "(":
                push(["paren", value, at, 0])
            else:
                raise ValueError(f"expected an operator, argument or number at character {at}, found {value!r}")
        elif value in _BINARY:
            unwind(_BINARY[value][1], value == "**")
            push(["binary", value, at, 0])
            expect_operand = True
        elif value in ",)":
            unwind()
            if not pending:
                raise ValueError(f"unexpected {value!r} at character {at}: no parenthesis is open")
            group = pending[-1]
            if group[0] == "paren" and value == ",":
                raise ValueError(f"unexpected ',' at character {at}: commas separate an operator's arguments")
            if group[0] == "call":
                group[3] += 1
                arity = OPERATORS[group[1]][0]
                if group[3] >= arity if value == "," else group[3] != arity:
                    raise ValueError(f"operator {group[1]!r} at character {group[2]} takes {arity} argument(s), "
                                     f"got {'more' if value == ',' else group[3]}")
            if value == ",":
                expect_operand = True
                continue
            pending.pop()
            if group[0] == "call":
                children = operands[-arity:]
                del operands[-arity:]
                operands.append(builder.add(("op", group[1]), children))
        else:
            raise ValueError(f"unexpected text after a complete expression at character {at}: {_quote(value)}; "
                             "expected an operator, ',' or ')'")
    if expect_operand:
        raise ValueError("loss expression ends early: an argument is missing")
    unwind()
    if pending:
        raise ValueError(f"loss expression ends early: the parenthesis at character {pending[-1][2]} is not closed")
    (root,) = operands
    return builder.program(root)


def evaluate(program, y_true, y_pred, xp):
    """Evaluate a parsed expression element-wise.

    :param program: the output of :func:`parse` (or an expression string).
    :param y_true: one-hot labels, shape ``(batch, classes)``.
    :param y_pred: predicted probabilities, same shape.
    :param xp: the array namespace, ``numpy`` or ``keras.ops``.
    :returns: the element-wise loss values, broadcast to ``y_pred``'s shape.
    """
    if isinstance(program, str):
        program = parse(program)
    stack = []
    for kind, value in reversed(program):
        if kind == "const":
            stack.append(value)
        elif kind == "arg":
            stack.append(y_true if value == "y_true" else y_pred)
        else:
            arity, function = OPERATORS[value]
            arguments = [stack.pop() for _ in range(arity)]
            stack.append(function(xp, *arguments))
    (result,) = stack
    # A sub-expression may be constant in one argument; the loss is per element.
    return result + xp.zeros_like(y_pred)


def _build_loss_class():
    import keras

    class _ExpressionLoss(keras.losses.Loss):
        """A Keras loss defined by an evolved expression.

        The expression is applied element-wise to one-hot labels and predicted
        probabilities, averaged over classes, then over the batch by Keras.
        Integer (sparse) labels are one-hot encoded first.

        :param expression: the loss expression (defaults to the module's).
        :param name: the loss name Keras shows.
        :param reduction: Keras reduction over the batch.
        :param dtype: the dtype of the computation (Keras's default if ``None``).
        """

        def __init__(self, expression=None, name="evolved_loss", reduction="sum_over_batch_size", dtype=None):
            super().__init__(name=name, reduction=reduction, dtype=dtype)
            expression = EXPRESSION if expression is None else expression
            if expression is None:
                raise ValueError("no loss expression given: pass expression='...'")
            self.expression = expression
            self._program = parse(expression)

        def call(self, y_true, y_pred):
            """The loss per sample.

            :param y_true: one-hot or integer labels.
            :param y_pred: predicted probabilities, shape ``(batch, classes)``.
            :returns: the expression averaged over classes, shape ``(batch,)``.
            """
            ops = keras.ops
            y_pred = ops.convert_to_tensor(y_pred)
            y_true = ops.convert_to_tensor(y_true)
            if len(y_true.shape) < len(y_pred.shape) or y_true.shape[-1] != y_pred.shape[-1]:
                y_true = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), y_pred.shape[-1])
            y_true = ops.cast(y_true, y_pred.dtype)
            return ops.mean(evaluate(self._program, y_true, y_pred, ops), axis=-1)

        @classmethod
        def from_config(cls, config):
            """Rebuild the loss from :meth:`get_config`'s output.

            :param config: a dict holding at least the expression.
            :returns: the loss.
            :raises ValueError: when the config has no expression.
            """
            if not isinstance(config, dict) or config.get("expression") is None:
                raise ValueError(f"the loss config must hold an 'expression', got {_quote(repr(config))}")
            return cls(**config)

        def get_config(self):
            """The serialisable configuration.

            :returns: a dict holding the expression, name and reduction.
            """
            return {"expression": self.expression, "name": self.name, "reduction": self.reduction}

    _ExpressionLoss.__name__ = _ExpressionLoss.__qualname__ = CLASS_NAME
    _ExpressionLoss.__module__ = __name__
    return keras.saving.register_keras_serializable(package=PACKAGE)(_ExpressionLoss)


def __getattr__(name):
    if name == CLASS_NAME:
        cls = _build_loss_class()
        globals()[CLASS_NAME] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


"""Evaluate an evolved loss expression, and use it as a Keras loss.

This module is self-contained on purpose: it imports only the standard
library, NumPy and (when the loss class is first used) Keras.  The package
uses it for compilation, and :func:`deap_lossgp.gp.expression.to_python_source`
copies it verbatim into the ``best_loss.py`` a search exports, so the exported
loss behaves exactly as the one the search evaluated and can be imported
without deap_lossgp installed.

An expression is the text DEAP prints for a tree, for example
``sub(exp(sub(2.4092, mul(y_pred, add(1.0, y_true)))), cos(cos(sin(y_pred))))``.
It is parsed by a small tokenizer that accepts only operator names, the two
arguments, numbers, parentheses and commas, so loading a loss from text never
executes code.  Parsing and evaluation walk the expression with explicit
stacks: there is no nesting limit.

The Keras loss class (``ExpressionLoss``) is built on first access, so
importing this module does not start TensorFlow.
"""

import re

#: The expression the loss class uses when none is given (set in exported files).
EXPRESSION = None
#: Name of the Keras loss class this module provides (changed in exported files).
CLASS_NAME = "ExpressionLoss"
#: Keras serialisation package the class is registered under.
PACKAGE = "deap_lossgp"

__all__ = ["OPERATORS", "ARGUMENTS", "EXPRESSION", "CLASS_NAME", "parse", "evaluate", CLASS_NAME]

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

_TOKEN = re.compile(
    r"\s*(?:(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<punct>[(),]))"
)


def _tokenize(text):
    tokens = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(
                f"cannot read loss expression at character {position} ({text[position:position + 20]!r}): "
                "only operator names, y_true, y_pred, numbers, parentheses and commas are allowed"
            )
        kind = match.lastgroup
        tokens.append((kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


def parse(text):
    """Parse a loss expression into its prefix program, without evaluating code.

    :param text: an expression such as ``"neg(mul(y_true, log(y_pred)))"``.
    :returns: a list of ``("op", name)``, ``("arg", name)`` and
              ``("const", float)`` entries in prefix order.
    :raises ValueError: naming the offending token when the text is not a
                        well-formed expression of the known operators.
    """
    if not isinstance(text, str):
        raise ValueError(f"a loss expression must be a string, got {type(text).__name__}")
    tokens = _tokenize(text)
    if not tokens:
        raise ValueError("the loss expression is empty: give e.g. 'neg(mul(y_true, log(y_pred)))'")
    program = []
    open_ops = []  # [name, arity, arguments read so far]
    i = 0

    def expect(symbol):
        if i >= len(tokens):
            raise ValueError(f"loss expression ends early: expected {symbol!r} after {tokens[-1][1]!r}")
        if tokens[i][1] != symbol:
            raise ValueError(f"expected {symbol!r} at character {tokens[i][2]}, found {tokens[i][1]!r}")

    while True:
        if i >= len(tokens):
            raise ValueError("loss expression ends early: an argument is missing")
        kind, value, at = tokens[i]
        if kind == "number":
            program.append(("const", float(value)))
            i += 1
        elif kind == "name" and i + 1 < len(tokens) and tokens[i + 1][1] == "(":
            if value not in OPERATORS:
                raise ValueError(
                    f"unknown operator {value!r} at character {at}; known operators: {', '.join(OPERATORS)}"
                )
            program.append(("op", value))
            open_ops.append([value, OPERATORS[value][0], 0])
            i += 2
            continue
        elif kind == "name":
            if value not in ARGUMENTS:
                raise ValueError(
                    f"unknown name {value!r} at character {at}; leaves are y_true, y_pred or numbers"
                )
            program.append(("arg", value))
            i += 1
        else:
            raise ValueError(f"unexpected {value!r} at character {at}: expected an operator, argument or number")
        # A complete sub-expression was read: close every operator it completes.
        while open_ops:
            top = open_ops[-1]
            top[2] += 1
            if top[2] < top[1]:
                expect(",")
                i += 1
                break
            if i < len(tokens) and tokens[i][1] == ",":
                raise ValueError(f"operator {top[0]!r} takes {top[1]} argument(s), got more")
            expect(")")
            i += 1
            open_ops.pop()
        if not open_ops:
            break
    if i != len(tokens):
        raise ValueError(f"unexpected text after the expression at character {tokens[i][2]}: {tokens[i][1]!r}")
    return program


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


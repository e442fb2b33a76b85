"""A loss's values and gradients in NumPy, without TensorFlow.

The values are the protected operators of :data:`~deap_lossgp.gp.vocabulary.VOCABULARY`,
which compute what the Keras loss of :mod:`deap_lossgp.gp.standalone`
computes; the gradient is reverse-mode differentiation over the same
operators, so screening a tree or keying it by its gradient never starts
TensorFlow.  Programs are walked with stacks, so trees of any height work.
"""

import numpy

from .program import program_of
from .vocabulary import VOCABULARY

__all__ = ["evaluate_numpy", "value_and_gradient", "probe_batch"]


def _forward(program, y_true, y_pred, keep=True):
    """Every node's value, in reversed prefix order (children before their parent).

    :param keep: keep every node's value; otherwise a value is dropped once
                 its parent is computed and only the root's is returned.
    :returns: ``(values, inputs)``: ``inputs[i]`` is the argument's name for
              a leaf ``y_true``/``y_pred``, ``()`` for a constant, else
              ``(operator name, child indices)``.
    """
    values, inputs, stack = [], [], []
    for kind, value in reversed(program):
        if kind == "const":
            values.append(value)
            inputs.append(())
        elif kind == "arg":
            values.append(y_true if value == "y_true" else y_pred)
            inputs.append(value)
        else:
            operator = VOCABULARY[value]
            children = tuple(stack.pop() for _ in range(operator.arity))
            values.append(operator.value(*(values[i] for i in children)))
            inputs.append((value, children))
            if not keep:
                for i in children:
                    values[i] = None
        stack.append(len(values) - 1)
    return values, inputs


def evaluate_numpy(tree, y_true, y_pred):
    """Element-wise values of a loss expression, computed with NumPy.

    :param tree: a DEAP tree, an expression string or a parsed program.
    :param y_true: one-hot labels, shape ``(batch, classes)``.
    :param y_pred: predicted probabilities, same shape.
    :returns: an array of ``y_pred``'s shape and dtype.
    """
    y_pred = numpy.asarray(y_pred)
    y_true = numpy.asarray(y_true).astype(y_pred.dtype)
    program = program_of(tree)
    with numpy.errstate(all="ignore"):
        values, _ = _forward(program, y_true, y_pred, keep=False)
        # A sub-expression may be constant in one argument; the loss is per element.
        return numpy.asarray(values[-1] + numpy.zeros_like(y_pred))


def value_and_gradient(tree, y_true, y_pred):
    """Element-wise loss values and the gradient of their mean with respect to ``y_pred``.

    Reverse-mode differentiation in NumPy over the same operators the Keras
    loss uses.  The mean over all elements is what the Keras loss minimises
    (mean over classes, then over the batch).

    :param tree: a DEAP tree, an expression string or a parsed program.
    :param y_true: one-hot labels, shape ``(batch, classes)``.
    :param y_pred: predicted probabilities, same shape and a float dtype.
    :returns: ``(values, gradient)``, both of ``y_pred``'s shape and dtype.
    """
    y_pred = numpy.asarray(y_pred)
    y_true = numpy.asarray(y_true).astype(y_pred.dtype)
    program = program_of(tree)
    with numpy.errstate(all="ignore"):
        values, inputs = _forward(program, y_true, y_pred)
        uses_pred = []
        for node in inputs:
            if isinstance(node, str) or not node:
                uses_pred.append(node == "y_pred")
            else:
                uses_pred.append(any(uses_pred[i] for i in node[1]))
        result = values[-1] + numpy.zeros_like(y_pred)
        gradient = numpy.zeros_like(y_pred)
        adjoints = {len(values) - 1: numpy.full_like(y_pred, 1.0 / y_pred.size)}
        # Children always precede their parent, so one backward sweep suffices.
        for node in range(len(values) - 1, -1, -1):
            adjoint = adjoints.pop(node, None)
            if adjoint is None or not uses_pred[node]:
                continue
            if inputs[node] == "y_pred":
                gradient += adjoint
                continue
            name, children = inputs[node]
            for child, partial in zip(children, VOCABULARY[name].partials(*(values[i] for i in children))):
                if uses_pred[child]:
                    contribution = adjoint * partial
                    adjoints[child] = adjoints[child] + contribution if child in adjoints else contribution
    return result.astype(y_pred.dtype, copy=False), gradient.astype(y_pred.dtype, copy=False)


def probe_batch(seed=0, batch=16, classes=10, dtype="float32", spread=2.0):
    """A fixed batch of softmax predictions and one-hot labels.

    :param seed: seed of the batch.
    :param batch: number of samples.
    :param classes: number of classes.
    :param dtype: NumPy dtype of both arrays.
    :param spread: standard deviation of the logits; near 0 the predictions
                   are close to uniform.
    :returns: ``(y_true, y_pred)``.
    """
    rng = numpy.random.default_rng(seed)
    logits = rng.normal(scale=spread, size=(batch, classes))
    y_pred = numpy.exp(logits) / numpy.exp(logits).sum(axis=1, keepdims=True)
    y_true = numpy.eye(classes)[rng.integers(classes, size=batch)]
    return y_true.astype(dtype), y_pred.astype(dtype)

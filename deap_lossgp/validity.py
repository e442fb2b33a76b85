"""The thesis's validity rules for loss trees (§3.2.3), and init-until-valid.

A tree is valid when it

1. contains at least one ``y_true`` and one ``y_pred``;
2. gives a finite loss on a fixed probe batch (softmax predictions, one-hot
   labels) whose magnitude lies in ``[low, high]`` (the thesis: 1e-5..1e5);
3. has a finite gradient with respect to ``y_pred`` that is not all zero, so a
   network can learn from it (our addition: the thesis's rules admit losses
   whose gradient is NaN or zero, which waste a training run).

The value check runs in NumPy; only trees that pass it reach the gradient
check, which uses TensorFlow.
"""

import numpy

from .expression import evaluate_numpy, probe_batch, program_of, to_text

__all__ = ["InvalidTreeError", "check_validity", "is_valid", "initValid"]

_PROBE = probe_batch(seed=0)


class InvalidTreeError(RuntimeError):
    """No valid tree could be generated within the allowed number of tries."""


def _gradient(program, y_true, y_pred):
    import keras
    import tensorflow as tf

    from .standalone import evaluate

    y_pred = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(evaluate(program, tf.constant(y_true), y_pred, keras.ops))
    return tape.gradient(loss, y_pred)


def check_validity(tree, low=1e-5, high=1e5, check_gradient=True):
    """Check a tree against the validity rules.

    :param tree: a DEAP tree or an expression string.
    :param low: smallest admitted magnitude of the probe loss.
    :param high: largest admitted magnitude of the probe loss.
    :param check_gradient: also require a finite, non-zero gradient.
    :returns: ``(True, None)`` or ``(False, reason)``.
    """
    try:
        program = program_of(tree)
    except ValueError as error:
        return False, f"unreadable expression: {error}"
    arguments = {value for kind, value in program if kind == "arg"}
    for required in ("y_true", "y_pred"):
        if required not in arguments:
            return False, f"the expression does not use {required}"
    y_true, y_pred = _PROBE
    with numpy.errstate(all="ignore"):
        loss = float(numpy.mean(evaluate_numpy(program, y_true, y_pred)))
    if not numpy.isfinite(loss):
        return False, f"the loss on the probe batch is {loss}"
    if not low <= abs(loss) <= high:
        return False, f"the probe loss {loss:.3g} lies outside [{low:g}, {high:g}] in magnitude"
    if check_gradient:
        gradient = _gradient(program, y_true, y_pred)
        if gradient is None:
            return False, "the loss has no gradient with respect to y_pred"
        gradient = gradient.numpy()
        if not numpy.all(numpy.isfinite(gradient)):
            return False, "the gradient with respect to y_pred is not finite on the probe batch"
        if not numpy.any(gradient):
            return False, "the gradient with respect to y_pred is zero on the probe batch"
    return True, None


def is_valid(tree, **kwargs):
    """:func:`check_validity` as a boolean.

    :param tree: a DEAP tree or an expression string.
    :param kwargs: passed to :func:`check_validity`.
    :returns: whether the tree is valid.
    """
    return check_validity(tree, **kwargs)[0]


def initValid(container, generator, max_tries=1000, check=check_validity):
    """Generate trees until one is valid, like :func:`deap.tools.initIterate`.

    Register it as
    ``toolbox.register("individual", initValid, creator.Individual, toolbox.expr)``
    to use it both for the initial population and as the new random parent of
    :func:`~deap_lossgp.operators.cxNewRandomParent`.

    :param container: the individual class, called with the generated nodes.
    :param generator: a function returning a list of nodes (e.g. a registered
                      :func:`deap.gp.genHalfAndHalf`).
    :param max_tries: how many trees to try before giving up.
    :param check: function returning ``(valid, reason)`` for a tree.
    :returns: a valid individual.
    :raises InvalidTreeError: if ``max_tries`` trees were all invalid.
    """
    last_reason = None
    for _ in range(max_tries):
        individual = container(generator())
        valid, last_reason = check(individual)
        if valid:
            return individual
    raise InvalidTreeError(
        f"no valid tree in {max_tries} tries (last: {to_text(individual)!r}: {last_reason}); "
        "raise max_tries, widen the initial height range or add operators"
    )

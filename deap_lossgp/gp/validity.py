"""Validity rules for loss trees, and init-until-valid.

Two named rules (``FitnessConfig.validity``):

``"thesis"``
    The thesis's rules (§3.2.3), unchanged: the tree contains at least one
    ``y_true`` and one ``y_pred``, and its loss value on a fixed probe batch
    (softmax predictions, one-hot labels) lies between ``low`` and ``high``
    (1e-5..1e5).  The range is signed, as the thesis states it: a negative
    loss value is outside it.
``"screened"`` (our default)
    Rules a network can learn from, checked in NumPy without training:

    1. both arguments are used;
    2. the probe loss is finite and its *magnitude* lies in ``[low, high]``
       (a negative loss such as ``-p_true`` learns; the sign of a loss does
       not matter to gradient descent);
    3. loss and gradient are finite at the edges of the prediction space
       (``y_pred`` at 0, at 1, exact one-hot predictions right and wrong,
       confident predictions), where training drives the predictions;
    4. the gradient with respect to ``y_pred`` is finite and not all zero;
    5. **trainability** (the rejection test of EvoMAL, Raymond et al.
       2023): on fixed seeded batches of random logits (2, 10 and 100
       classes, each more confident than the last) Adam optimises the logits
       directly with the candidate loss applied to their softmax; the loss
       passes when the argmax accuracy rises on every batch by at least a
       quarter of its distance to 1.  A tree failing only this rule is
       *untrainable*.

Everything here runs in NumPy: checking a tree never starts TensorFlow.
"""

import numpy

from .expression import evaluate_numpy, probe_batch, program_of, to_string, value_and_gradient

__all__ = [
    "VALIDITY_RULES",
    "InvalidTreeError",
    "verdict",
    "check_validity",
    "check_thesis",
    "is_valid",
    "initValid",
]

#: The named validity rules.
VALIDITY_RULES = ("screened", "thesis")

_PROBE = probe_batch(seed=0)

# Trainability screen: Adam on logits, as in EvoMAL's rejection test.
_SCREEN_STEPS = 30
_SCREEN_LEARNING_RATE = 0.3
# The share of the distance to full accuracy each probe batch must close.
_SCREEN_GAIN = 0.25


def _screen_batches(seed=7, samples=64):
    rng = numpy.random.default_rng(seed)
    batches = []
    for classes, scale in ((2, 1.0), (10, 2.0), (100, 3.0)):
        logits = rng.normal(scale=scale, size=(samples, classes)).astype("float32")
        labels = rng.integers(classes, size=samples)
        batches.append((numpy.eye(classes, dtype="float32")[labels], logits, labels))
    return batches


def _edge_batch(classes=10):
    # Rows whose true-class probability sweeps 0..1 (the rest shared evenly), then exact one-hots.
    levels = numpy.array([0.0, 1e-7, 1e-4, 0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 1 - 1e-4, 1.0], dtype="float32")
    rows = numpy.repeat(((1.0 - levels) / (classes - 1))[:, None], classes, axis=1)
    rows[:, 0] = levels
    wrong = numpy.zeros(classes, dtype="float32")
    wrong[1] = 1.0
    y_pred = numpy.vstack([rows, wrong]).astype("float32")
    y_true = numpy.zeros_like(y_pred)
    y_true[:, 0] = 1.0
    return y_true, y_pred


_SCREEN_BATCHES = _screen_batches()
_EDGE = _edge_batch()


class InvalidTreeError(RuntimeError):
    """No valid tree could be generated within the allowed number of tries."""


def _softmax(logits):
    shifted = numpy.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _finite(*arrays):
    return all(numpy.all(numpy.isfinite(array)) for array in arrays)


def _trainability(program):
    """``None`` if Adam on the logits learns with the loss on every screen batch, else why not."""
    # Huge but finite gradients overflow Adam's second moment to inf (the step then shrinks to 0), and a
    # non-finite gradient is caught at the next step: expected here, so NumPy need not warn about it.
    with numpy.errstate(over="ignore", invalid="ignore"):
        return _adam_on_logits(program)


def _adam_on_logits(program):
    for y_true, logits, labels in _SCREEN_BATCHES:
        logits = logits.copy()
        first = second = numpy.zeros_like(logits)
        before = float(numpy.mean(logits.argmax(axis=1) == labels))
        for step in range(1, _SCREEN_STEPS + 1):
            y_pred = _softmax(logits)
            values, gradient = value_and_gradient(program, y_true, y_pred)
            if not _finite(values, gradient):
                return f"the loss or its gradient became non-finite while learning {y_true.shape[1]} classes"
            # The chain rule through the softmax.
            gradient = y_pred * (gradient - numpy.sum(gradient * y_pred, axis=1, keepdims=True))
            first = 0.9 * first + 0.1 * gradient
            second = 0.999 * second + 0.001 * gradient * gradient
            logits -= (_SCREEN_LEARNING_RATE * (first / (1 - 0.9**step))
                       / (numpy.sqrt(second / (1 - 0.999**step)) + 1e-7))
        after = float(numpy.mean(logits.argmax(axis=1) == labels))
        if after < before + _SCREEN_GAIN * (1.0 - before):
            return (f"optimising predictions directly with it does not learn: accuracy {before:.2f} -> "
                    f"{after:.2f} on {y_true.shape[1]} classes")
    return None


def check_thesis(tree, low=1e-5, high=1e5):
    """The thesis's rules: both arguments used, probe loss in ``[low, high]`` (signed).

    :param tree: a DEAP tree or an expression string.
    :param low: smallest admitted probe loss.
    :param high: largest admitted probe loss.
    :returns: ``(True, None)`` or ``(False, reason)``.
    """
    return check_validity(tree, "thesis", low, high)


def _rules(tree, low, high, screened):
    try:
        program = program_of(tree)
    except ValueError as error:
        return "invalid", f"unreadable expression: {error}"
    arguments = {value for kind, value in program if kind == "arg"}
    for required in ("y_true", "y_pred"):
        if required not in arguments:
            return "invalid", f"the expression does not use {required}"
    y_true, y_pred = _PROBE
    loss = float(numpy.mean(evaluate_numpy(program, y_true, y_pred)))
    if not numpy.isfinite(loss):
        return "invalid", f"the loss on the probe batch is {loss}"
    if not screened:
        if not low <= loss <= high:
            return "invalid", f"the probe loss {loss:.3g} lies outside [{low:g}, {high:g}]"
        return "valid", None
    if not low <= abs(loss) <= high:
        return "invalid", f"the probe loss {loss:.3g} lies outside [{low:g}, {high:g}] in magnitude"
    if not _finite(*value_and_gradient(program, *_EDGE)):
        return "invalid", "the loss or its gradient is not finite for predictions near 0 or 1 or exactly one-hot"
    gradient = value_and_gradient(program, y_true, y_pred)[1]
    if not _finite(gradient):
        return "invalid", "the gradient with respect to y_pred is not finite on the probe batch"
    if not numpy.any(gradient):
        return "invalid", "the gradient with respect to y_pred is zero on the probe batch"
    reason = _trainability(program)
    if reason is not None:
        return "untrainable", reason
    return "valid", None


def verdict(tree, rule="screened", low=1e-5, high=1e5):
    """Classify a tree under a validity rule.

    :param tree: a DEAP tree or an expression string.
    :param rule: one of :data:`VALIDITY_RULES`.
    :param low: smallest admitted probe loss (magnitude, for ``screened``).
    :param high: largest admitted probe loss (magnitude, for ``screened``).
    :returns: ``(status, reason)``: ``("valid", None)``, ``("invalid", why)``
              or ``("untrainable", why)`` (only under ``screened``).
    :raises ValueError: for an unknown rule.
    """
    if rule not in VALIDITY_RULES:
        raise ValueError(f"unknown validity rule {rule!r}; choose from {', '.join(VALIDITY_RULES)}")
    return _rules(tree, low, high, screened=rule == "screened")


def check_validity(tree, rule="screened", low=1e-5, high=1e5):
    """Check a tree against a validity rule.

    :param tree: a DEAP tree or an expression string.
    :param rule: one of :data:`VALIDITY_RULES`.
    :param low: smallest admitted probe loss.
    :param high: largest admitted probe loss.
    :returns: ``(True, None)`` or ``(False, reason)``.
    """
    status, reason = verdict(tree, rule, low, high)
    return status == "valid", reason


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
    :func:`~deap_lossgp.gp.operators.cxNewRandomParent`.

    :param container: the individual class, called with the generated nodes.
    :param generator: a function returning a list of nodes (e.g. a registered
                      :func:`deap.gp.genHalfAndHalf`).
    :param max_tries: how many trees to try before giving up.
    :param check: function returning ``(valid, reason)`` for a tree (e.g.
                  ``functools.partial(check_validity, rule="thesis")``).
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
        f"no valid tree in {max_tries} tries (last: {to_string(individual)!r}: {last_reason}); "
        "raise max_tries, widen the initial height range or add operators"
    )

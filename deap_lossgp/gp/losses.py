"""Reference losses: as Keras losses and, where expressible, as GP trees.

Each Keras loss is a plain function ``loss(y_true, y_pred)`` of one-hot labels
and predicted probabilities that returns one value per sample, ready for
``model.compile(loss=...)``.  :data:`REFERENCE_EXPRESSIONS` holds the same
losses in the tree vocabulary, so they can seed a population or be evaluated
like any candidate; a tree averages over classes where the Keras loss sums,
so the two differ by the factor C (the number of classes), which does not
change what a model learns with Adam.
"""

from ..checks import deprecated_alias

__all__ = [
    "NGL_ALPHA",
    "categorical_crossentropy",
    "ngl_loss",
    "focal_loss",
    "symmetric_crossentropy",
    "symmetric_cross_entropy",
    "baikal_loss",
    "REFERENCE_LOSSES",
    "REFERENCE_EXPRESSIONS",
    "reference_tree",
]

#: The constant of the Next Generation Loss.
NGL_ALPHA = 2.4092
# Keras's probability epsilon: predictions are clipped to [EPSILON, 1 - EPSILON].
EPSILON = 1e-7


def _clipped(y_true, y_pred):
    from keras import ops

    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    return y_true, ops.clip(y_pred, EPSILON, 1.0 - EPSILON)


def categorical_crossentropy(y_true, y_pred):
    """Cross-entropy ``-sum_c y log(p)``.

    :param y_true: one-hot labels, shape ``(batch, classes)``.
    :param y_pred: predicted probabilities.
    :returns: the loss per sample.
    """
    from keras import ops

    y_true, y_pred = _clipped(y_true, y_pred)
    return -ops.sum(y_true * ops.log(y_pred), axis=-1)


def ngl_loss(y_true, y_pred, alpha=NGL_ALPHA, sigmoid=False):
    """Next Generation Loss ``exp(alpha - p (1 + y)) - cos(cos(sin(p)))``, mean over classes.

    :param y_true: one-hot labels, shape ``(batch, classes)``.
    :param y_pred: predictions (probabilities, or logits with ``sigmoid=True``).
    :param alpha: the constant alpha (2.4092 in the paper).
    :param sigmoid: apply a sigmoid to ``y_pred`` first (the paper's scaling).
    :returns: the loss per sample.
    """
    from keras import ops

    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    if sigmoid:
        y_pred = ops.sigmoid(y_pred)
    values = ops.exp(alpha - y_pred * (1.0 + y_true)) - ops.cos(ops.cos(ops.sin(y_pred)))
    return ops.mean(values, axis=-1)


def focal_loss(y_true, y_pred, gamma=2.0):
    """Focal loss ``-sum_c y (1 - p)^gamma log(p)`` (Lin et al., 2017).

    :param y_true: one-hot labels, shape ``(batch, classes)``.
    :param y_pred: predicted probabilities.
    :param gamma: the focusing parameter.
    :returns: the loss per sample.
    """
    from keras import ops

    y_true, y_pred = _clipped(y_true, y_pred)
    return -ops.sum(y_true * ops.power(1.0 - y_pred, gamma) * ops.log(y_pred), axis=-1)


def symmetric_crossentropy(y_true, y_pred, alpha=0.1, beta=1.0, label_floor=1e-4):
    """Symmetric cross-entropy ``alpha CE + beta RCE`` (Wang et al., 2019).

    The reverse cross-entropy is ``-sum_c p log(max(y, label_floor))``.

    :param y_true: one-hot labels, shape ``(batch, classes)``.
    :param y_pred: predicted probabilities.
    :param alpha: weight of the cross-entropy.
    :param beta: weight of the reverse cross-entropy.
    :param label_floor: floor of the labels inside the reverse log.
    :returns: the loss per sample.
    """
    from keras import ops

    y_true, y_pred = _clipped(y_true, y_pred)
    reverse = -ops.sum(y_pred * ops.log(ops.maximum(y_true, label_floor)), axis=-1)
    return alpha * categorical_crossentropy(y_true, y_pred) + beta * reverse


def baikal_loss(y_true, y_pred):
    """Baikal loss ``-sum_c [log(p) - y / p]`` (Gonzalez and Miikkulainen, 2020).

    :param y_true: one-hot labels, shape ``(batch, classes)``.
    :param y_pred: predicted probabilities.
    :returns: the loss per sample.
    """
    from keras import ops

    y_true, y_pred = _clipped(y_true, y_pred)
    return -ops.sum(ops.log(y_pred) - y_true / y_pred, axis=-1)


#: name -> Keras loss function.
symmetric_cross_entropy = deprecated_alias("symmetric_cross_entropy", symmetric_crossentropy)

REFERENCE_LOSSES = {
    "ce": categorical_crossentropy,
    "ngl": ngl_loss,
    "focal": focal_loss,
    "sce": symmetric_crossentropy,
    "baikal": baikal_loss,
}

#: name -> the loss in the tree vocabulary (per element; averaged over classes).
REFERENCE_EXPRESSIONS = {
    "ce": "neg(mul(y_true, log(y_pred)))",
    "ngl": f"sub(exp(sub({NGL_ALPHA!r}, mul(y_pred, add(1.0, y_true)))), cos(cos(sin(y_pred))))",
    "focal": "neg(mul(mul(y_true, mul(sub(1.0, y_pred), sub(1.0, y_pred))), log(y_pred)))",
    "sce": "neg(add(mul(0.1, mul(y_true, log(y_pred))), mul(y_pred, log(add(y_true, 0.0001)))))",
    "baikal": "sub(div(y_true, y_pred), log(y_pred))",
}


def reference_tree(name, pset):
    """A reference loss as a tree of ``pset``.

    :param name: one of :data:`REFERENCE_EXPRESSIONS`' keys.
    :param pset: a primitive set from :func:`deap_lossgp.make_pset` holding
                 the loss's operators.
    :returns: a :class:`deap.gp.PrimitiveTree`.
    """
    from .expression import from_string

    if name not in REFERENCE_EXPRESSIONS:
        raise ValueError(f"unknown reference loss {name!r}; choose from {', '.join(REFERENCE_EXPRESSIONS)}")
    return from_string(REFERENCE_EXPRESSIONS[name], pset)



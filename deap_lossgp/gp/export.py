"""Export a loss as a standalone module for Keras, PyTorch or NumPy.

:func:`to_source` writes the module of one format: ``"keras"`` (a Keras 3 loss
class, for any Keras backend: :func:`to_python_source`),
``"torch"`` (a :class:`torch.nn.Module` loss) or ``"numpy"`` (a plain function).
The PyTorch and NumPy modules compute the expression as straight-line code,
one statement per operator, written from the operator table
(:data:`~deap_lossgp.gp.vocabulary.VOCABULARY`: same protected rules and
thresholds as :mod:`deap_lossgp.gp.standalone`), so their values and
gradients match the Keras loss the search trained with.  None of them
imports deap_lossgp.

:func:`loss_scale` tells how large a loss's gradient is next to
cross-entropy's; with ``rescale=True`` the exported loss is divided by it,
which matters for plain SGD (Adam's steps do not depend on the scale).

The name given to the exported class or function is checked: it must be an
identifier that is not a Python keyword, does not shadow a built-in and is not
a name the module defines or imports itself (``EXPRESSION``, ``np``...).
"""

import ast
import builtins
import hashlib
import inspect
import keyword
import math

import numpy

from ..checks import check_identifier
from . import standalone
from .formula import shorten, to_formula
from .numerics import probe_batch, value_and_gradient
from .program import program_of, to_string
from .vocabulary import VOCABULARY

__all__ = ["EXPORT_FORMATS", "to_source", "to_python_source", "to_torch_source", "to_numpy_source",
           "export_package", "loss_scale", "reference_batch"]

#: The formats :func:`to_source` writes.
EXPORT_FORMATS = ("keras", "torch", "numpy")


def _statements(program, namespace):
    """Straight-line code computing the expression from ``y_true`` and ``y_pred``.

    Protected operators call the functions of :func:`_protected`, named as
    formulas print them (``plog``); the others are written inline.

    :returns: ``(lines, result)``: the statements and the name (or literal) of the result.
    """
    stack, lines = [], []
    for kind, value in reversed(program):
        if kind == "const":
            stack.append(f"constant({value!r})")
        elif kind == "arg":
            stack.append(value)
        else:
            operator = VOCABULARY[value]
            arguments = [stack.pop() for _ in range(operator.arity)]
            if operator.protected:
                code = f"{operator.printed}({', '.join(arguments)})"
            else:
                code = operator.source.format(xp=namespace, **dict(zip("ab", arguments)))
            lines.append(f"    t{len(lines)} = {code}")
            stack.append(f"t{len(lines) - 1}")
    return lines, stack[0]


def _protected(namespace):
    """The definitions of the protected operators, from the operator table."""
    functions = []
    for operator in VOCABULARY.values():
        if operator.protected:
            parameters = "ab"[:operator.arity]
            functions.append(f"\n\ndef {operator.printed}({', '.join(parameters)}):\n"
                             f"    # {operator.protected}\n"
                             f"    return {operator.source.format(xp=namespace, **{p: p for p in parameters})}\n")
    return "".join(functions)


def _header(text, title, usage, note):
    rules = "".join(f"\n    {operator.protected}" for operator in VOCABULARY.values() if operator.protected)
    return (
        f'"""Evolved loss, exported by deap_lossgp, {title}.\n\n'
        f"Expression: {shorten(text)}\n"
        f"Formula: {shorten(to_formula(text))}\n{note}\n"
        f"Usage::\n\n{usage}\n\n"
        f"Protected operators (TINY and EXP_LIMIT are defined below):{rules}\n"
        '"""\n'
    )


def _rescaled(tree, rescale):
    """The expression's text, multiplied by ``1 / loss_scale`` when *rescale*,
    and the header's note saying so."""
    program = program_of(tree)
    if not rescale:
        return to_string(program), ""
    scale = loss_scale(program)
    factor = 1.0 / scale
    note = (f"\nRescaled by {factor:.6g} (its loss_scale was {scale:.6g}): at the reference prediction its\n"
            "gradient is as large as cross-entropy's, so plain SGD takes steps of CE's size.\n")
    return to_string([("op", "mul"), ("const", factor)] + program), note


def _check_name(argument, name, module):
    """Require a name the exported *module* can define without breaking.

    :param argument: the argument's name, for the message.
    :param name: the requested class or function name.
    :param module: the module's source without that definition.
    :raises ValueError: naming the clash, in one line.
    """
    check_identifier(argument, name)
    if keyword.iskeyword(name):
        raise ValueError(f"{argument} {name!r} is a Python keyword; choose another name")
    if name.startswith("__") and name.endswith("__"):
        raise ValueError(f"{argument} {name!r} is a special Python name; choose another name")
    if hasattr(builtins, name):
        raise ValueError(f"{argument} {name!r} would hide Python's built-in {name}; choose another name")
    defined = set()
    for node in ast.parse(module).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign):
            defined.update(target.id for target in node.targets if isinstance(target, ast.Name))
    if name in defined:
        raise ValueError(f"{argument} {name!r} is a name the exported module defines or imports itself; "
                         "choose another name")


def _module(tree, rescale, name, argument, namespace, constant, title, usage, imports, tail):
    constants = f"\nEXPRESSION = None\nTINY = {standalone.TINY!r}\nEXP_LIMIT = {standalone.EXP_LIMIT!r}\n"
    frame = imports + constants + _protected(namespace) + tail
    # The tail defines the class or function under its requested name, so it
    # is checked against the module as it would be without that definition.
    _check_name(argument, name, frame.replace("{name}", "_requested").format(body="    pass"))
    text, note = _rescaled(tree, rescale)
    program = program_of(text)
    lines, result = _statements(program, namespace)
    if any(kind == "const" for kind, _ in program):
        # Constants take y_pred's dtype (and device), as Keras's do.
        lines.insert(0, f"    constant = {constant}")
    body = "\n".join(lines + ["    # A sub-expression may not depend on y_pred; the loss is per element.",
                              f"    return {result} + {namespace}.zeros_like(y_pred)"])
    module = frame.replace("EXPRESSION = None", f"EXPRESSION = {text!r}", 1).replace("{name}", name)
    return _header(text, title, usage, note) + "\n" + module.format(body=body)


def export_package(tree):
    """The Keras serialisation package of an exported loss, unique to its expression.

    Two exported losses thus register different names
    (``evolved_losses_<digest>>EvolvedLoss``) and can be imported side by
    side, each model reloading with its own class.

    :param tree: a DEAP tree or an expression string.
    :returns: ``"evolved_losses_"`` and 12 hex digits of the expression's SHA-256.
    """
    return "evolved_losses_" + hashlib.sha256(to_string(tree).encode()).hexdigest()[:12]


def to_python_source(tree, class_name="EvolvedLoss", package=None, rescale=False):
    """A standalone Python module defining the loss as a Keras loss class.

    The module needs only NumPy and Keras, for any Keras backend; its class
    defaults to this tree, holds the expression in its config, and is
    registered for Keras serialisation when the module is imported, so after
    a plain ``import best_loss``, ``keras.models.load_model`` reloads models
    compiled with ``best_loss.EvolvedLoss()``.

    :param tree: a DEAP tree or an expression string.
    :param class_name: name of the generated class (a Python identifier).
    :param package: Keras serialisation package of the class; by default
                    :func:`export_package`, unique to the (rescaled) expression.
    :param rescale: multiply the loss by ``1 / loss_scale(tree)`` (see
                    :func:`loss_scale`).
    :returns: the module's source code.
    :raises ValueError: for an invalid class name or package, or a loss
                        that cannot be rescaled.
    """
    source = inspect.getsource(standalone)
    _check_name("class_name", class_name, source)
    text, note = _rescaled(tree, rescale)
    if package is None:
        package = export_package(text)
    elif not isinstance(package, str) or not package or ">" in package:
        raise ValueError(f"package must be a non-empty string without '>', got {package!r}")
    replacements = {
        "EXPRESSION = None\n": f"EXPRESSION = {text!r}\n",
        'CLASS_NAME = "ExpressionLoss"\n': f"CLASS_NAME = {class_name!r}\n",
        'PACKAGE = "deap_lossgp"\n': f"PACKAGE = {package!r}\n",
    }
    for old, new in replacements.items():
        if old not in source:
            raise RuntimeError(f"standalone module changed: {old.strip()!r} not found")
        source = source.replace(old, new, 1)
    usage = (f"    from best_loss import {class_name}\n"
             f"    model.compile(optimizer='adam', loss={class_name}(), metrics=['accuracy'])\n\n"
             f"Importing this module registers the class as {package}>{class_name}, so\n"
             f"keras.models.load_model reloads models compiled with it.")
    header = _header(text, "as a Keras loss", usage, note)
    body = source[source.index('"""', 3) + 3:].strip("\n")
    # Built at import, not on first attribute access, so load_model finds the class.
    return header + "\n" + body + f"\n\n\n{class_name} = _build_loss_class()\n"


_TORCH_TAIL = '''

def elementwise(y_true, y_pred):
    """The expression, element by element.

    :param y_true: one-hot labels, a tensor of ``y_pred``'s shape and dtype.
    :param y_pred: predicted probabilities, shape ``(batch, classes)``.
    :returns: a tensor of ``y_pred``'s shape.
    """
{body}


class {name}(torch.nn.Module):
    """The evolved loss: the expression averaged over classes, then reduced over the batch.

    Called like PyTorch's losses, ``loss(input, target)``, but ``input``
    holds probabilities (end the model with a softmax), not logits.

    :param reduction: ``"mean"`` (default) or ``"sum"`` over the batch, or
                      ``"none"`` for the loss of each sample.
    """

    expression = EXPRESSION

    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {{reduction!r}}")
        self.reduction = reduction

    def forward(self, input, target):
        """The loss.

        :param input: predicted probabilities, shape ``(batch, classes)``.
        :param target: one-hot labels of the same shape, or class indices, shape ``(batch,)``.
        :returns: a scalar, or one value per sample with ``reduction="none"``.
        """
        if target.dim() < input.dim() or target.shape[-1] != input.shape[-1]:
            target = torch.nn.functional.one_hot(target.long().reshape(-1), input.shape[-1])
        per_sample = elementwise(target.to(input.dtype), input).mean(dim=-1)
        if self.reduction == "mean":
            return per_sample.mean()
        return per_sample.sum() if self.reduction == "sum" else per_sample
'''

_NUMPY_TAIL = '''

def elementwise(y_true, y_pred):
    """The expression, element by element.

    :param y_true: one-hot labels, an array of ``y_pred``'s shape and dtype.
    :param y_pred: predicted probabilities, shape ``(batch, classes)``.
    :returns: an array of ``y_pred``'s shape and dtype.
    """
{body}


def {name}(y_true, y_pred):
    """The evolved loss of each sample: the expression averaged over classes.

    Take the mean of the result for the loss of a batch.

    :param y_true: one-hot labels, shape ``(batch, classes)``, or class indices, shape ``(batch,)``.
    :param y_pred: predicted probabilities, shape ``(batch, classes)``.
    :returns: an array of shape ``(batch,)``.
    """
    y_pred = np.asarray(y_pred)
    if not np.issubdtype(y_pred.dtype, np.floating):
        y_pred = y_pred.astype("float64")
    y_true = np.asarray(y_true)
    if y_true.ndim < y_pred.ndim or y_true.shape[-1] != y_pred.shape[-1]:
        y_true = np.eye(y_pred.shape[-1])[y_true.astype(int).reshape(-1)]
    with np.errstate(all="ignore"):
        return elementwise(y_true.astype(y_pred.dtype), y_pred).mean(axis=-1)
'''


def to_torch_source(tree, class_name="EvolvedLoss", rescale=False):
    """A standalone module defining the loss as a :class:`torch.nn.Module`.

    It needs only PyTorch.  ``class_name(reduction="mean")(input, target)``
    takes predicted probabilities and one-hot labels (or class indices) and
    returns the expression averaged over classes and over the batch, as the
    Keras loss does; autograd gives its gradient.

    :param tree: a DEAP tree or an expression string.
    :param class_name: name of the generated class (a Python identifier).
    :param rescale: multiply the loss by ``1 / loss_scale(tree)`` (see
                    :func:`loss_scale`).
    :returns: the module's source code.
    :raises ValueError: for an unreadable tree, an invalid class name or a
                        loss that cannot be rescaled.
    """
    usage = (f"    from best_loss_torch import {class_name}\n"
             f"    criterion = {class_name}()\n"
             f"    loss = criterion(torch.softmax(logits, dim=-1), labels)\n"
             f"    loss.backward()")
    return _module(tree, rescale, class_name, "class_name", "torch", constant="y_pred.new_tensor",
                   title="as a PyTorch loss", usage=usage,
                   imports='import torch\n\n__all__ = ["EXPRESSION", "elementwise", "{name}"]\n', tail=_TORCH_TAIL)


def to_numpy_source(tree, function_name="evolved_loss", rescale=False):
    """A standalone module defining the loss as a plain NumPy function.

    It needs only NumPy.  ``function_name(y_true, y_pred)`` returns the loss
    of each sample (the expression averaged over classes); its mean is the
    loss of the batch, as the Keras loss computes it.

    :param tree: a DEAP tree or an expression string.
    :param function_name: name of the generated function (a Python identifier).
    :param rescale: multiply the loss by ``1 / loss_scale(tree)`` (see
                    :func:`loss_scale`).
    :returns: the module's source code.
    :raises ValueError: for an unreadable tree, an invalid function name or
                        a loss that cannot be rescaled.
    """
    usage = (f"    from best_loss_numpy import {function_name}\n"
             f"    loss = {function_name}(y_true, y_pred).mean()")
    return _module(tree, rescale, function_name, "function_name", "np", constant="y_pred.dtype.type",
                   title="as a NumPy function", usage=usage,
                   imports='import numpy as np\n\n__all__ = ["EXPRESSION", "elementwise", "{name}"]\n',
                   tail=_NUMPY_TAIL)


def to_source(tree, format="keras", rescale=False):
    """The standalone module of a loss in one of :data:`EXPORT_FORMATS`.

    :param tree: a DEAP tree or an expression string.
    :param format: ``"keras"`` (a Keras loss class ``EvolvedLoss``),
                   ``"torch"`` (a :class:`torch.nn.Module` ``EvolvedLoss``) or
                   ``"numpy"`` (a function ``evolved_loss``).
    :param rescale: multiply the loss by ``1 / loss_scale(tree)``, so that
                    plain SGD takes steps of cross-entropy's size with it
                    (see :func:`loss_scale`; Adam is unaffected).
    :returns: the module's source code.
    :raises ValueError: for another format, or a loss that cannot be rescaled.
    """
    writers = {"keras": to_python_source, "torch": to_torch_source, "numpy": to_numpy_source}
    if format not in writers:
        raise ValueError(f"format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    return writers[format](tree, rescale=rescale)


def reference_batch():
    """The reference prediction :func:`loss_scale` measures a loss at.

    64 samples of 10 classes with one-hot labels; the predictions are the
    softmax of logits drawn with standard deviation 0.5 (seed 0): near
    uniform, as a classifier's are early in training.

    :returns: ``(y_true, y_pred)``, float64 arrays of shape ``(64, 10)``.
    """
    return probe_batch(seed=0, batch=64, classes=10, dtype="float64", spread=0.5)


def loss_scale(tree):
    """How large a loss's gradient is, relative to cross-entropy's, at the reference prediction.

    The ratio of the norms of the gradients with respect to the logits (the
    model's outputs before the softmax) of the loss, as exported (the
    expression averaged over classes and the batch), and of cross-entropy
    (summed over classes, averaged over the batch, as Keras and PyTorch
    compute it), at :func:`reference_batch`.  Gradients, not values: a loss
    plus a constant trains exactly as the loss does, but its value differs.

    Adam's steps do not depend on the loss's scale; plain SGD's are
    proportional to it, so a loss with scale 1000 needs a learning rate 1000
    times smaller than cross-entropy's.  ``to_source(..., rescale=True)``
    divides the exported loss by its scale.

    :param tree: a DEAP tree or an expression string.
    :returns: the ratio, a positive float (1.0 for cross-entropy up to the
              factor C of averaging over classes: ``0.1`` for 10 classes).
    :raises ValueError: when the loss's gradient there is zero or not finite.
    """
    y_true, y_pred = reference_batch()
    _, gradient = value_and_gradient(tree, y_true, y_pred)
    # Through the softmax: d/dz_j = p_j (g_j - sum_i g_i p_i), per sample.
    logits = y_pred * (gradient - (gradient * y_pred).sum(axis=1, keepdims=True))
    cross_entropy = (y_pred - y_true) / len(y_pred)
    with numpy.errstate(all="ignore"):
        scale = float(numpy.linalg.norm(logits) / numpy.linalg.norm(cross_entropy))
    # Below this, the gradient is rounding error: the loss is flat there (like y_pred summed over classes).
    if not math.isfinite(scale) or scale < 1e-12:
        problem = "not finite" if not math.isfinite(scale) else "zero"
        raise ValueError(f"the loss's gradient at the reference prediction is {problem}, so it has no scale to "
                         "rescale by; export it without rescale")
    return scale

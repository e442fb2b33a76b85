"""Loss trees as text and as Keras losses, and their cache keys.

Every function here accepts a DEAP tree (an individual or a
:class:`deap.gp.PrimitiveTree`) or its text, as printed by DEAP, e.g.
``"neg(mul(y_true, log(y_pred)))"``.  Text is read by
:func:`deap_lossgp.gp.standalone.parse`, which never evaluates code, unlike
:meth:`deap.gp.PrimitiveTree.from_string`.  Nothing walks a tree recursively,
so trees of any height compile (DEAP's string-``eval`` based
:func:`deap.gp.compile` fails beyond about 200 nesting levels).

The NumPy values and gradients live in :mod:`.numerics`, the formulas in
:mod:`.formula`, the reading of trees in :mod:`.program` and the standalone
Keras file in :mod:`.export`; their functions are importable from here too,
where they were first published.
"""

import hashlib

import numpy
from deap import gp

from ..checks import deprecated_alias
from . import standalone
from .export import export_package, to_python_source
from .formula import to_formula, to_latex, to_sympy
from .numerics import evaluate_numpy, probe_batch, value_and_gradient
from .program import program_of, to_string
from .standalone import parse

__all__ = [
    "to_string",
    "program_of",
    "from_string",
    "compile_loss",
    "evaluate_numpy",
    "value_and_gradient",
    "canonical_key",
    "to_sympy",
    "to_formula",
    "to_text",
    "simplified",
    "to_latex",
    "to_python_source",
    "export_package",
    "probe_batch",
]


def from_string(text, pset):
    """Build a tree of ``pset`` from expression text, without evaluating code.

    Numbers become instances of the set's ephemeral constant (so mutations and
    pickling treat them like generated constants).

    :param text: the expression text.
    :param pset: a primitive set from :func:`deap_lossgp.make_pset`.
    :returns: a :class:`deap.gp.PrimitiveTree`.
    :raises ValueError: on malformed text or an operator missing from ``pset``.
    """
    constant_class = next(
        (t for t in pset.terminals[pset.ret] if isinstance(t, type) and issubclass(t, gp.Terminal)), None
    )
    nodes = []
    for kind, value in parse(text):
        if kind == "const":
            if constant_class is None:
                nodes.append(gp.Terminal(value, False, pset.ret))
            else:
                node = object.__new__(constant_class)
                node.value = value
                nodes.append(node)
        elif value not in pset.mapping:
            raise ValueError(f"{value!r} is not in the primitive set {pset.name!r}; add it to make_pset(operators=...)")
        else:
            nodes.append(pset.mapping[value])
    return gp.PrimitiveTree(nodes)


def compile_loss(tree, pset=None, name="evolved_loss"):
    """Compile a tree into a Keras loss for ``model.compile(loss=...)``.

    Called like :func:`deap.gp.compile` (``compile_loss(expr, pset)``), but it
    walks the tree, so trees of any height compile.  The expression is
    applied element-wise, averaged over classes and then over the batch.
    The result is a registered, serialisable :class:`keras.losses.Loss`
    whose config holds the expression.

    :param tree: a DEAP tree or an expression string.
    :param pset: the primitive set the tree was built from, optional; when
                 given, every operator of the tree must belong to it.
    :param name: the loss name Keras shows (a string).
    :returns: a ``deap_lossgp>ExpressionLoss`` instance.
    :raises ValueError: for an unreadable tree, an operator missing from
                        *pset*, or a non-string *name*.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}; pass the primitive set as the second argument")
    if pset is not None and not hasattr(pset, "mapping"):
        raise ValueError(f"pset must be a deap.gp.PrimitiveSet, got {type(pset).__name__}; "
                         "give the loss name as name=...")
    program = program_of(tree)
    if pset is not None:
        unknown = sorted({value for kind, value in program if kind == "op" and value not in pset.mapping})
        if unknown:
            raise ValueError(f"the tree uses {unknown}, which the primitive set {pset.name!r} lacks; "
                             "compile it with the set it was built from")
    return standalone.ExpressionLoss(expression=to_string(program), name=name)


_KEY_PROBES = [probe_batch(seed=s, dtype="float64") for s in (101, 202)]


def canonical_key(tree, by="value"):
    """A key shared by identical and by evidently equivalent trees.

    ``by="value"``: trees whose values agree (to 10 significant digits) on
    fixed random probe batches share a key, so ``add(y_pred, y_true)`` and
    ``add(y_true, y_pred)`` are evaluated once.  ``by="gradient"``: trees
    whose gradients with respect to ``y_pred`` agree share a key, so a loss
    and the same loss plus a constant (or plus a term in ``y_true`` alone),
    which train identically, are evaluated once.  A tree with non-finite
    probe values or gradients is keyed by its text.

    :param tree: a DEAP tree or an expression string.
    :param by: ``"value"`` or ``"gradient"``.
    :returns: a string key.
    :raises ValueError: for another ``by``.
    """
    if by not in ("value", "gradient"):
        raise ValueError(f"by must be 'value' or 'gradient', got {by!r}")
    program = program_of(tree)
    hashed = []
    for y_true, y_pred in _KEY_PROBES:
        # The value key needs no gradient; the gradient key needs finite values too.
        if by == "value":
            values = evaluate_numpy(program, y_true, y_pred)
            hashed.append(values)
        else:
            values, gradient = value_and_gradient(program, y_true, y_pred)
            hashed.append(gradient)
        if not (numpy.all(numpy.isfinite(values)) and numpy.all(numpy.isfinite(hashed[-1]))):
            return "text:" + to_string(program)
    hashed = numpy.concatenate([numpy.ravel(part) for part in hashed])
    digest = hashlib.sha256(",".join(f"{v + 0.0:.9e}" for v in hashed).encode()).hexdigest()
    return ("probe:" if by == "value" else "grad:") + digest[:32]


to_text = deprecated_alias("to_text", to_string)
simplified = deprecated_alias("simplified", to_formula)

"""Loss trees as text, Keras losses, formulas and standalone Python files.

Every function here accepts a DEAP tree (an individual or a
:class:`deap.gp.PrimitiveTree`) or its text, as printed by DEAP, e.g.
``"neg(mul(y_true, log(y_pred)))"``.  Text is read by
:func:`deap_lossgp.gp.standalone.parse`, which never evaluates code, unlike
:meth:`deap.gp.PrimitiveTree.from_string`.  Nothing walks a tree recursively,
so trees of any height compile (DEAP's string-``eval`` based
:func:`deap.gp.compile` fails beyond about 200 nesting levels).
"""

import hashlib
import inspect
import math

import numpy
from deap import gp

from ..checks import check_identifier, deprecated_alias
from . import standalone
from .standalone import ARGUMENTS, OPERATORS, parse

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
            if node.name not in OPERATORS:
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
            raise ValueError(f"terminal {standalone._quote(str(node.value))} is neither y_true, y_pred nor a "
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
        if kind == "op" and value in OPERATORS:
            pending += OPERATORS[value][0] - 1
        elif kind == "arg" and value in ARGUMENTS:
            pending -= 1
        elif kind == "const" and isinstance(value, (int, float)) and not isinstance(value, bool):
            _finite(value)
            pending -= 1
        else:
            raise ValueError(f"a program entry is ('op', name), ('arg', name) or ('const', number), "
                             f"got {standalone._quote(repr(entry))}")
    if pending:
        raise ValueError("the program ends early: an argument is missing")
    return list(program)


def _format(program):
    parts = []
    for kind, value in reversed(program):
        if kind == "const":
            parts.append(repr(value))
        elif kind == "arg":
            parts.append(value)
        else:
            arity = OPERATORS[value][0]
            arguments = [parts.pop() for _ in range(arity)]
            parts.append(f"{value}({', '.join(arguments)})")
    return parts[0]


def to_string(tree):
    """The expression text of a tree (DEAP's format), normalised.

    :param tree: a DEAP tree or an expression string.
    :returns: the text, e.g. ``"neg(mul(y_true, log(y_pred)))"``.
    """
    return _format(program_of(tree))


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


def evaluate_numpy(tree, y_true, y_pred):
    """Element-wise values of a loss expression, computed with NumPy.

    :param tree: a DEAP tree or an expression string.
    :param y_true: one-hot labels, shape ``(batch, classes)``.
    :param y_pred: predicted probabilities, same shape.
    :returns: an array of ``y_pred``'s shape and dtype.
    """
    y_true = numpy.asarray(y_true)
    y_pred = numpy.asarray(y_pred)
    with numpy.errstate(all="ignore"):
        return numpy.asarray(standalone.evaluate(program_of(tree), y_true.astype(y_pred.dtype), y_pred, numpy))


def _partials(name, arguments):
    """Partial derivatives of a protected operator, as TensorFlow computes them
    for :mod:`deap_lossgp.gp.standalone`'s definitions (a clamped input has none)."""
    tiny, limit = standalone.TINY, standalone.EXP_LIMIT
    if name == "add":
        return 1.0, 1.0
    if name == "sub":
        return 1.0, -1.0
    if name == "mul":
        a, b = arguments
        return b, a
    if name == "div":
        a, b = arguments
        small = numpy.abs(b) < tiny
        safe = numpy.where(small, 1.0, b)
        return numpy.where(small, 0.0, 1.0 / safe), numpy.where(small, 0.0, -a / (safe * safe))
    (a,) = arguments
    if name == "neg":
        return (-1.0,)
    if name == "sqrt":
        return (numpy.where(numpy.abs(a) > tiny, numpy.sign(a) * 0.5 / numpy.sqrt(numpy.maximum(numpy.abs(a), tiny)), 0.0),)
    if name == "log":
        return (numpy.where(numpy.abs(a) > tiny, 1.0 / numpy.where(numpy.abs(a) > tiny, a, 1.0), 0.0),)
    if name == "exp":
        return (numpy.where(a < limit, numpy.exp(numpy.minimum(a, limit)), 0.0),)
    if name == "sin":
        return (numpy.cos(a),)
    return (-numpy.sin(a),)


def value_and_gradient(tree, y_true, y_pred):
    """Element-wise loss values and the gradient of their mean with respect to ``y_pred``.

    Reverse-mode differentiation in NumPy over the same operators the Keras
    loss uses, so screening a tree never starts TensorFlow.  The mean over
    all elements is what the Keras loss minimises (mean over classes, then
    over the batch).

    :param tree: a DEAP tree, an expression string or a parsed program.
    :param y_true: one-hot labels, shape ``(batch, classes)``.
    :param y_pred: predicted probabilities, same shape and a float dtype.
    :returns: ``(values, gradient)``, both of ``y_pred``'s shape and dtype.
    """
    y_pred = numpy.asarray(y_pred)
    y_true = numpy.asarray(y_true).astype(y_pred.dtype)
    values, inputs, uses_pred, stack = [], [], [], []
    with numpy.errstate(all="ignore"):
        for kind, value in reversed(program_of(tree)):
            if kind == "const":
                values.append(value)
                inputs.append(())
                uses_pred.append(False)
            elif kind == "arg":
                values.append(y_true if value == "y_true" else y_pred)
                inputs.append(value)
                uses_pred.append(value == "y_pred")
            else:
                arity, function = OPERATORS[value]
                children = tuple(stack.pop() for _ in range(arity))
                values.append(function(numpy, *(values[i] for i in children)))
                inputs.append((value, children))
                uses_pred.append(any(uses_pred[i] for i in children))
            stack.append(len(values) - 1)
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
            for child, partial in zip(children, _partials(name, [values[i] for i in children])):
                if uses_pred[child]:
                    contribution = adjoint * partial
                    adjoints[child] = adjoints[child] + contribution if child in adjoints else contribution
    return result.astype(y_pred.dtype, copy=False), gradient.astype(y_pred.dtype, copy=False)


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
    return standalone.ExpressionLoss(expression=_format(program), name=name)


def probe_batch(seed=0, batch=16, classes=10, dtype="float32"):
    """A fixed batch of softmax predictions and one-hot labels.

    :param seed: seed of the batch.
    :param batch: number of samples.
    :param classes: number of classes.
    :param dtype: NumPy dtype of both arrays.
    :returns: ``(y_true, y_pred)``.
    """
    rng = numpy.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(batch, classes))
    y_pred = numpy.exp(logits) / numpy.exp(logits).sum(axis=1, keepdims=True)
    y_true = numpy.eye(classes)[rng.integers(classes, size=batch)]
    return y_true.astype(dtype), y_pred.astype(dtype)


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
            return "text:" + _format(program)
    hashed = numpy.concatenate([numpy.ravel(part) for part in hashed])
    digest = hashlib.sha256(",".join(f"{v + 0.0:.9e}" for v in hashed).encode()).hexdigest()
    return ("probe:" if by == "value" else "grad:") + digest[:32]


def to_sympy(tree):
    """The nominal formula of a tree as a sympy expression.

    Protected operators are shown as their plain counterparts (``div`` as
    ``/``, ``log`` as ``log``...), which is how a reader thinks of them;
    constant arguments are folded with the protected rule, so
    ``sqrt(-0.25)`` shows as ``0.5``, not as an imaginary number.

    :param tree: a DEAP tree or an expression string.
    :returns: a :class:`sympy.Expr` in the symbols ``y_true`` and ``y_pred``.
    """
    import sympy

    symbols = {name: sympy.Symbol(name) for name in ARGUMENTS}
    functions = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b,
        "neg": lambda a: -a,
        "sqrt": lambda a: sympy.sqrt(abs(a)) if a.is_number else sympy.sqrt(a),
        "log": lambda a: sympy.log(abs(a)) if a.is_number else sympy.log(a),
        "exp": sympy.exp,
        "sin": sympy.sin,
        "cos": sympy.cos,
    }
    stack = []
    for kind, value in reversed(program_of(tree)):
        if kind == "const":
            stack.append(sympy.Float(value))
        elif kind == "arg":
            stack.append(symbols[value])
        else:
            arity = OPERATORS[value][0]
            stack.append(functions[value](*[stack.pop() for _ in range(arity)]))
    return stack[0]


# sympy.simplify grows quickly with the tree; bigger trees are only tidied.
_SIMPLIFY_MAX_NODES = 60


def _readable(tree, digits):
    import sympy

    program = program_of(tree)
    expr = to_sympy(program)
    if len(program) <= _SIMPLIFY_MAX_NODES:
        expr = sympy.simplify(expr)
    return expr.xreplace({f: sympy.Float(f, digits) for f in expr.atoms(sympy.Float)})


def to_formula(tree, digits=5):
    """A simplified, human-readable formula of a tree.

    :param tree: a DEAP tree or an expression string.
    :param digits: significant digits of constants.
    :returns: the formula as text, e.g. ``"-y_true*log(y_pred)"``.
    """
    return str(_readable(tree, digits))


def to_latex(tree, digits=5):
    """The simplified formula of a tree in LaTeX.

    :param tree: a DEAP tree or an expression string.
    :param digits: significant digits of constants.
    :returns: LaTeX source (without ``$`` delimiters).
    """
    import sympy

    return sympy.latex(_readable(tree, digits))


def export_package(tree):
    """The Keras serialisation package of an exported loss, unique to its expression.

    Two exported losses thus register different names
    (``evolved_losses_<digest>>EvolvedLoss``) and can be imported side by
    side, each model reloading with its own class.

    :param tree: a DEAP tree or an expression string.
    :returns: ``"evolved_losses_"`` and 12 hex digits of the expression's SHA-256.
    """
    return "evolved_losses_" + hashlib.sha256(to_string(tree).encode()).hexdigest()[:12]


def to_python_source(tree, class_name="EvolvedLoss", package=None):
    """A standalone Python module defining the loss as a Keras loss class.

    The module needs only NumPy and Keras, for any Keras backend; its class
    defaults to this tree, holds the expression in its config, and is
    registered for Keras serialisation when the module is imported, so after
    a plain ``import best_loss``, ``keras.models.load_model`` reloads models
    compiled with ``best_loss.EvolvedLoss()``.

    :param tree: a DEAP tree or an expression string.
    :param class_name: name of the generated class (a Python identifier).
    :param package: Keras serialisation package of the class; by default
                    :func:`export_package`, unique to the expression.
    :returns: the module's source code.
    :raises ValueError: for an invalid class name or package.
    """
    check_identifier("class_name", class_name)
    text = to_string(tree)
    if package is None:
        package = export_package(text)
    elif not isinstance(package, str) or not package or ">" in package:
        raise ValueError(f"package must be a non-empty string without '>', got {package!r}")
    source = inspect.getsource(standalone)
    replacements = {
        "EXPRESSION = None\n": f"EXPRESSION = {text!r}\n",
        'CLASS_NAME = "ExpressionLoss"\n': f"CLASS_NAME = {class_name!r}\n",
        'PACKAGE = "deap_lossgp"\n': f"PACKAGE = {package!r}\n",
    }
    for old, new in replacements.items():
        if old not in source:
            raise RuntimeError(f"standalone module changed: {old.strip()!r} not found")
        source = source.replace(old, new, 1)
    header = (
        f'"""Evolved loss, exported by deap_lossgp.\n\n'
        f"Formula (protected operators shown plain): {to_formula(text)}\n\n"
        f"Usage::\n\n    from best_loss import {class_name}\n"
        f"    model.compile(optimizer='adam', loss={class_name}(), metrics=['accuracy'])\n\n"
        f"Importing this module registers the class as {package}>{class_name}, so\n"
        f"keras.models.load_model reloads models compiled with it.\n"
        f'"""\n'
    )
    body = source[source.index('"""', 3) + 3:].strip("\n")
    # Built at import, not on first attribute access, so load_model finds the class.
    return header + body + f"\n\n\n{class_name} = _build_loss_class()\n"


to_text = deprecated_alias("to_text", to_string)
simplified = deprecated_alias("simplified", to_formula)

import random
import time

import numpy as np
import pytest
from deap import gp

from deap_lossgp import compile_loss, from_string, make_pset, to_formula, to_latex, to_python_source, to_string
from deap_lossgp.gp.expression import canonical_key, evaluate_numpy, to_sympy

PSET = make_pset()


def nested(height):
    """A tree of the given height alternating unary and binary operators."""
    text = "y_pred"
    for level in range(height):
        text = f"add(y_true, {text})" if level % 2 else f"sin({text})"
    return text


def test_text_round_trip_of_random_trees():
    random.seed(0)
    for _ in range(200):
        tree = gp.PrimitiveTree(gp.genHalfAndHalf(PSET, 1, 6))
        back = from_string(str(tree), PSET)
        assert str(back) == str(tree) == to_string(tree)
        y_true, y_pred = np.eye(3, dtype=np.float32), np.full((3, 3), 0.3, np.float32)
        np.testing.assert_array_equal(evaluate_numpy(back, y_true, y_pred), evaluate_numpy(tree, y_true, y_pred))


@pytest.mark.parametrize(
    "hostile",
    [
        "__import__('os').system('echo pwned')",
        "exec('1')",
        "add(y_true, y_pred); import os",
        "lambda: 0",
        "add(y_true, y_pred.__class__)",
        "open('/etc/passwd')",
        "y_true[0]",
        "",
        "add(y_true)",
        "add(y_true, y_pred, y_pred)",
        "add(y_true, y_pred",
        "add(y_true, y_pred) y_pred",
    ],
)
def test_hostile_or_malformed_text_is_a_clear_error(hostile):
    with pytest.raises(ValueError) as error:
        from_string(hostile, PSET)
    assert len(str(error.value)) > 10


def test_operator_missing_from_pset_is_reported():
    with pytest.raises(ValueError, match="not in the primitive set"):
        from_string("div(y_true, y_pred)", make_pset(operators=("add",)))


def test_ngl_tree_gives_the_reference_value():
    import keras

    y_true = np.array([[0, 1, 0], [1, 0, 0]], np.float32)
    y_pred = np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]], np.float32)
    tree = from_string("sub(exp(sub(2.4092, mul(y_pred, add(1.0, y_true)))), cos(cos(sin(y_pred))))", PSET)
    loss = compile_loss(tree)
    assert float(loss(y_true, y_pred)) == pytest.approx(6.633026, abs=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert restored.expression == str(tree)
    assert float(restored(y_true, y_pred)) == pytest.approx(6.633026, abs=1e-5)


def test_sparse_labels_are_one_hot_encoded():
    y_pred = np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]], np.float32)
    loss = compile_loss("neg(mul(y_true, log(y_pred)))")
    dense = float(loss(np.array([[0, 1, 0], [1, 0, 0]], np.float32), y_pred))
    assert float(loss(np.array([1, 0]), y_pred)) == pytest.approx(dense)


def test_deap_compile_fails_on_deep_trees_where_ours_does_not():
    deep = from_string(nested(400), PSET)
    with pytest.raises((SyntaxError, RecursionError, MemoryError)):
        gp.compile(deep, PSET)
    y_true, y_pred = np.eye(4, dtype=np.float32), np.full((4, 4), 0.25, np.float32)
    assert np.all(np.isfinite(float(compile_loss(deep)(y_true, y_pred))))


def test_height_100_tree_compiles_and_trains_one_epoch():
    import keras

    tree = from_string(nested(100), PSET)
    assert tree.height == 100
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(3, size=64), 3)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss=compile_loss(tree))
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_canonical_key_identifies_equivalent_trees_only():
    assert canonical_key("add(y_true, y_pred)") == canonical_key("add(y_pred, y_true)")
    assert canonical_key("mul(y_true, y_pred)") == canonical_key(from_string("mul(y_pred, y_true)", PSET))
    assert canonical_key("neg(neg(y_pred))") == canonical_key("y_pred")
    assert canonical_key("add(y_true, y_pred)") != canonical_key("sub(y_true, y_pred)")
    assert canonical_key("mul(0.5, y_pred)") != canonical_key("mul(0.5000001, y_pred)")


def test_formulas_sympy_latex():
    import sympy

    y_true, y_pred = sympy.symbols("y_true y_pred")
    nominal = to_sympy("neg(mul(y_true, log(y_pred)))", protected=False)
    assert sympy.simplify(nominal + y_true * sympy.log(y_pred)) == 0
    marked = to_sympy("neg(mul(y_true, log(y_pred)))")
    assert str(marked) == "-y_true*plog(y_pred)" and not marked.has(sympy.log)
    assert to_formula("add(y_pred, y_pred)") == "2*y_pred"
    assert to_latex("neg(mul(y_true, log(y_pred)))") == r"- y_{true} \operatorname{plog}\left(y_{pred}\right)"
    assert to_formula(nested(100))  # large trees are tidied, not to_formula, and still print


@pytest.mark.parametrize("text, formula", [
    ("sqrt(neg(y_pred))", "psqrt(-y_pred)"),                 # not an imaginary number
    ("div(y_true, y_pred)", "pdiv(y_true, y_pred)"),         # 1, not inf, where y_pred is 0
    ("log(y_true)", "plog(y_true)"),                         # -16.1, not -inf, where y_true is 0
    ("mul(log(y_pred), log(y_pred))", "plog(y_pred)**2"),    # simplification still works on the marked form
    ("add(log(0), mul(y_pred, exp(y_true)))", "y_pred*pexp(y_true) - 16.118"),
    ("sub(cos(y_pred), cos(y_pred))", "0"),
])
def test_formulas_mark_the_protected_operators(text, formula):
    from deap_lossgp.gp.formula import FORMULA_LEGEND

    assert to_formula(text) == formula
    assert all(f"{name}(" in FORMULA_LEGEND for name in ("pdiv", "psqrt", "plog", "pexp"))
    assert "\n" not in FORMULA_LEGEND and len(FORMULA_LEGEND) < 200
    y_true, y_pred = np.eye(3), np.array([[0.0, 0.3, 0.7], [0.2, 0.0, 0.8], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(evaluate_numpy(formula, y_true, y_pred), evaluate_numpy(text, y_true, y_pred),
                               rtol=1e-4)


def test_standalone_source_imports_without_deap_lossgp(tmp_path):
    import subprocess
    import sys

    source = to_python_source("sub(exp(sub(2.4092, mul(y_pred, add(1.0, y_true)))), cos(cos(sin(y_pred))))")
    (tmp_path / "best_loss.py").write_text(source)
    script = (
        "import sys, builtins\n"
        "real_import = builtins.__import__\n"
        "def guard(name, *a, **k):\n"
        "    if name.startswith('deap'):\n"
        "        raise ImportError('deap is not allowed here')\n"
        "    return real_import(name, *a, **k)\n"
        "builtins.__import__ = guard\n"
        "import numpy as np, keras\n"
        "from best_loss import EvolvedLoss\n"
        "loss = EvolvedLoss()\n"
        "y_true = np.array([[0, 1, 0], [1, 0, 0]], 'float32')\n"
        "y_pred = np.array([[0.2, 0.7, 0.1], [0.5, 0.3, 0.2]], 'float32')\n"
        "again = keras.losses.deserialize(keras.losses.serialize(loss))\n"
        "print(float(loss(y_true, y_pred)), float(again(y_true, y_pred)), type(again).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    first, second, name = out.stdout.split()[-3:]
    assert float(first) == pytest.approx(6.633026, abs=1e-5) == float(second)
    assert name == "EvolvedLoss"


def test_bad_class_name_rejected():
    with pytest.raises(ValueError, match="identifier"):
        to_python_source("add(y_true, y_pred)", class_name="not valid")


def test_protected_constants_fold_to_real_numbers_in_formulas():
    assert "I" not in to_formula("add(sqrt(-0.25), y_pred)")
    assert to_formula("add(sqrt(-0.25), y_pred)") == "y_pred + 0.5"


def test_compile_loss_takes_deaps_calling_shape_and_checks_its_arguments():
    from deap_lossgp import compile_loss, make_pset

    pset = make_pset(["add", "mul", "log", "neg"])
    loss = compile_loss("neg(mul(y_true, log(y_pred)))", pset, name="ce_tree")
    assert loss.name == "ce_tree"
    with pytest.raises(ValueError, match=r"uses \['sin'\], which the primitive set 'LOSS' lacks"):
        compile_loss("sin(mul(y_true, y_pred))", pset)
    with pytest.raises(ValueError, match="pset must be a deap.gp.PrimitiveSet.*name="):
        compile_loss("neg(y_pred)", "my_loss")
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        compile_loss("neg(y_pred)", None, 5)


def test_renamed_functions_keep_their_old_names_with_a_warning():
    import deap_lossgp

    pairs = [("to_text", "to_string", "add(y_true, y_pred)"), ("simplified", "to_formula", "add(y_pred, y_pred)")]
    for old, new, text in pairs:
        with pytest.warns(DeprecationWarning, match=f"{old} is deprecated; use {new}"):
            assert getattr(deap_lossgp, old)(text) == getattr(deap_lossgp, new)(text)
    assert deap_lossgp.symmetric_cross_entropy.__doc__ == "Deprecated alias of :func:`symmetric_crossentropy`."


def chain(depth, inner="mul(y_true, log(y_pred))", operator="sin"):
    return f"{operator}(" * depth + inner + ")" * depth


def full(height):
    """A full tree of the given height over add, mul and sin (about 2**height nodes)."""
    text = "y_pred"
    for level in range(height):
        text = f"add({text}, y_true)" if level % 3 == 0 else f"mul({text}, sin({text}))"
    return text


@pytest.mark.parametrize("text", [
    chain(16),                        # sympy.simplify took 64 s on it
    chain(995),                       # sympy and the export recursed past Python's limit
    chain(400, full(9), "cos"),       # thesis mode's largest trees: 500 levels, 5,000 nodes
    "exp(exp(sqrt(mul(log(0), add(y_true, y_pred)))))",   # sympy raised "Invalid NaN comparison"
    "mul(div(1, 0), y_pred)",         # the export divided by zero
])
def test_formulas_and_exports_of_hostile_trees_are_valid_and_quick(text):
    from deap_lossgp.gp.export import EXPORT_FORMATS, to_source
    from deap_lossgp.gp.standalone import parse

    start = time.perf_counter()
    formula, latex = to_formula(text), to_latex(text)
    sources = [to_source(text, fmt) for fmt in EXPORT_FORMATS]
    # Generous: the worst case measures about 0.1 s; the unbounded code took minutes.
    assert time.perf_counter() - start < 5
    parse(formula)
    assert "zoo" not in formula and "nan" not in formula and "infty" not in latex
    for source in sources:
        compile(source, "exported.py", "exec")
    y_true, y_pred = np.eye(4), np.full((4, 4), 0.25)
    assert np.all(np.isfinite(evaluate_numpy(formula, y_true, y_pred)))


def test_plain_formula_reads_back_as_the_same_values():
    from deap_lossgp.gp.formula import plain_formula

    random.seed(1)
    pset = make_pset(constant_range=(-2.0, 2.0))
    y_true, y_pred = np.eye(5)[[0, 3, 1]], np.random.default_rng(0).dirichlet(np.ones(5), 3)
    for _ in range(300):
        tree = gp.PrimitiveTree(gp.genHalfAndHalf(pset, 1, 6))
        formula = plain_formula(tree, digits=17)
        np.testing.assert_array_equal(evaluate_numpy(formula, y_true, y_pred), evaluate_numpy(tree, y_true, y_pred),
                                      err_msg=f"{tree} printed as {formula}")
    assert plain_formula("neg(mul(add(y_true, -0.5), neg(sub(y_pred, neg(y_true)))))") == \
        "-((y_true + (-0.5))*(-(y_pred - (-y_true))))"


def test_plain_latex_of_a_deep_tree():
    from deap_lossgp.gp.formula import plain_formula

    assert plain_formula(chain(2), latex=True) == \
        r"\sin\left(\sin\left(y_{true} \cdot \operatorname{plog}\left(y_{pred}\right)\right)\right)"
    assert to_latex(chain(300)).count(r"\sin") == 300

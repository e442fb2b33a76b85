"""The operator table is the one definition of the vocabulary: the
self-contained copy in ``standalone`` (which exported Keras files carry)
agrees with it, and so do the forms the table holds side by side (NumPy value
and gradient, the exported NumPy and PyTorch source)."""

import itertools

import numpy as np
import pytest

from deap_lossgp.gp import standalone
from deap_lossgp.gp.primitives import DEFAULT_OPERATORS, make_pset
from deap_lossgp.gp.vocabulary import VOCABULARY

# Zero, signed tiny values around the protection threshold, ordinary values,
# exp's cap and values huge enough to overflow.
GRID = np.array([0.0, -0.0, 1e-30, -1e-30, 5e-8, -5e-8, 1e-7, 2e-7, -2e-7, 0.3, -0.3, 1.0, -1.0, 2.5, -7.0,
                 79.0, 80.0, 81.0, 1e4, -1e4, 1e30, -1e30])


def grid(arity, dtype):
    """Every pair (or value) of the grid, as arrays of *dtype*."""
    points = np.array(list(itertools.product(GRID, repeat=arity)), dtype=dtype)
    return [points[:, i] for i in range(arity)]


def test_standalone_has_the_tables_operators_and_constants():
    assert list(standalone.OPERATORS) == list(VOCABULARY) == list(DEFAULT_OPERATORS)
    assert {name: arity for name, (arity, _) in standalone.OPERATORS.items()} == \
        {name: operator.arity for name, operator in VOCABULARY.items()}
    assert {p.name: p.arity for p in make_pset().primitives[make_pset().ret]} == \
        {name: operator.arity for name, operator in VOCABULARY.items()}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(VOCABULARY))
def test_standalone_values_equal_the_tables_on_a_grid(name, dtype):
    operator = VOCABULARY[name]
    arguments = grid(operator.arity, dtype)
    with np.errstate(all="ignore"):
        expected = np.asarray(operator.value(*arguments))
        got = np.asarray(standalone.OPERATORS[name][1](np, *arguments))
    assert got.dtype == expected.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, expected)
    if operator.protected:
        # Protection means finite values wherever the inputs and the plain result are finite.
        assert np.all(np.isfinite(expected) | ~np.isfinite(_plain(name, arguments)))


def _plain(name, arguments):
    with np.errstate(all="ignore"):
        a = arguments[0]
        return {"div": lambda: a / arguments[1], "sqrt": lambda: np.sqrt(a), "log": lambda: np.log(a),
                "exp": lambda: np.exp(a)}[name]()


@pytest.mark.parametrize("name", list(VOCABULARY))
def test_exported_numpy_source_equals_the_table(name):
    operator = VOCABULARY[name]
    arguments = grid(operator.arity, "float64")
    code = operator.source.format(xp="np", a="a", b="b")
    scope = {"np": np, "TINY": standalone.TINY, "EXP_LIMIT": standalone.EXP_LIMIT, **dict(zip("ab", arguments))}
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(eval(code, scope), operator.value(*arguments))


@pytest.mark.parametrize("name", list(VOCABULARY))
def test_exported_torch_source_and_table_gradient_agree(name):
    torch = pytest.importorskip("torch")
    operator = VOCABULARY[name]
    arrays = grid(operator.arity, "float64")
    # Including the thresholds themselves (where both pass the gradient, as TensorFlow does); without
    # overflow, where float64 gradients are inf.
    keep = np.ones(len(arrays[0]), bool)
    for array in arrays:
        keep &= np.abs(array) < 1e3
    arrays = [array[keep] for array in arrays]
    tensors = [torch.tensor(array, requires_grad=True) for array in arrays]
    code = operator.source.format(xp="torch", a="a", b="b")
    scope = {"torch": torch, "TINY": standalone.TINY, "EXP_LIMIT": standalone.EXP_LIMIT,
             **dict(zip("ab", tensors))}
    value = eval(code, scope)
    value.sum().backward()
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(value.detach().numpy(), operator.value(*arrays), rtol=1e-12)
        partials = operator.partials(*arrays)
    for tensor, partial in zip(tensors, partials):
        np.testing.assert_allclose(tensor.grad.numpy(), np.broadcast_to(partial, tensor.shape), rtol=1e-12,
                                   err_msg=name)


def test_only_the_four_protected_operators_carry_a_rule():
    assert [name for name, operator in VOCABULARY.items() if operator.protected] == ["div", "sqrt", "log", "exp"]


def test_the_marked_names_formulas_print_are_read_as_their_operators():
    marked = {operator.printed: name for name, operator in VOCABULARY.items() if operator.protected}
    assert standalone.ALIASES == marked
    for printed, name in marked.items():
        arguments = ", ".join(["y_pred", "y_true"][:VOCABULARY[name].arity])
        assert standalone.parse(f"{printed}({arguments})")[0] == ("op", name)


@pytest.mark.parametrize("text, expected", [
    ("log(0)", np.log(1e-7)), ("sqrt(-4.0)", 2.0), ("div(3.0, 0)", 1.0), ("exp(100.0)", np.exp(80.0)),
    ("log(neg(1e-30))", np.log(1e-7)), ("div(3.0, 2.0)", 1.5),
])
def test_marked_sympy_functions_fold_numbers_with_the_protected_rule(text, expected):
    from deap_lossgp.gp.formula import to_sympy

    value = to_sympy(text)
    assert value.is_Float and float(value) == pytest.approx(expected, rel=1e-12)


def test_marked_sympy_functions_stay_real_and_unevaluated():
    import sympy

    from deap_lossgp.gp.formula import to_sympy

    assert not to_sympy("sqrt(neg(y_pred))").has(sympy.I)
    assert str(to_sympy("div(y_pred, y_pred)")) == "pdiv(y_pred, y_pred)"

import random

import pytest
from deap import base, creator, gp

from deap_lossgp import InvalidTreeError, check_validity, initValid, is_valid, make_pset

PSET = make_pset()
creator.create("ValFit", base.Fitness, weights=(1.0, 1.0))
creator.create("ValInd", gp.PrimitiveTree, fitness=creator.ValFit)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("log(y_pred)", "y_true"),
        ("sin(y_true)", "y_pred"),
        ("mul(1e-09, mul(y_true, y_pred))", "outside"),
        ("mul(1e+09, exp(add(y_true, y_pred)))", "outside"),
        ("add(y_true, sin(mul(0.0, y_pred)))", "zero"),
        ("mul(y_true, mul(exp(exp(add(y_pred, 5.0))), exp(exp(add(y_pred, 5.0)))))", "loss on the probe"),
        ("add(y_true, y_pred", "unreadable"),
    ],
)
def test_invalid_trees_are_rejected_with_a_reason(text, reason):
    ok, why = check_validity(text)
    assert not ok and reason in why


@pytest.mark.parametrize("text", ["neg(mul(y_true, log(y_pred)))", "sub(y_true, mul(y_true, y_pred))", "mul(y_true, sqrt(y_pred))"])
def test_valid_trees_pass(text):
    assert check_validity(text) == (True, None)
    assert is_valid(from_pset(text))


def from_pset(text):
    from deap_lossgp import from_string

    return from_string(text, PSET)


def test_init_valid_regenerates_until_valid_and_is_seeded():
    def generate():
        random.seed(3)
        expr = lambda: gp.genHalfAndHalf(PSET, 2, 5)  # noqa: E731
        return [str(initValid(creator.ValInd, expr)) for _ in range(10)]

    trees = generate()
    assert trees == generate()
    assert all(is_valid(t) for t in trees)


def test_init_valid_gives_up_with_a_clear_error():
    with pytest.raises(InvalidTreeError, match="no valid tree in 5 tries"):
        initValid(creator.ValInd, lambda: [PSET.mapping["y_true"]], max_tries=5)

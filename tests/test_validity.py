import random

import numpy
import pytest
from deap import base, creator, gp

from deap_lossgp import InvalidTreeError, check_validity, initValid, is_valid, make_pset
from deap_lossgp.gp.losses import REFERENCE_EXPRESSIONS
from deap_lossgp.gp.validity import check_thesis, verdict

# Infinite (float32) once y_pred passes 0.9 or so, yet finite on the probe batch.
_EDGE = "exp(mul(1000.0, sub(y_pred, 0.9)))"
EDGE_INFINITE = f"add(neg(mul(y_true, log(y_pred))), mul({_EDGE}, {_EDGE}))"
MINUS_P_TRUE = "mul(neg(y_pred), mul(y_true, y_true))"
P_TRUE = "mul(y_true, y_pred)"

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


@pytest.mark.parametrize("text", ["neg(mul(y_true, log(y_pred)))", "sub(y_true, mul(y_true, y_pred))", "mul(y_true, neg(sqrt(y_pred)))"])
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


@pytest.mark.parametrize("name", ["ce", "ngl", "focal", "baikal", "sce"])
def test_screen_passes_the_reference_losses(name):
    assert verdict(REFERENCE_EXPRESSIONS[name]) == ("valid", None)


def test_screen_passes_minus_p_true_which_the_thesis_rule_rejects_as_negative():
    assert verdict(MINUS_P_TRUE) == ("valid", None)
    ok, why = check_thesis(MINUS_P_TRUE)
    assert not ok and "outside" in why


@pytest.mark.parametrize("text", [P_TRUE, "mul(y_true, sqrt(y_pred))", "mul(0.001, mul(y_true, y_pred))"])
def test_screen_rejects_losses_that_unlearn_as_untrainable(text):
    status, why = verdict(text)
    assert status == "untrainable" and "does not learn" in why
    assert check_thesis(text) == (True, None)


def test_screen_rejects_a_loss_infinite_near_the_edges_that_the_probe_misses():
    from deap_lossgp.gp.expression import evaluate_numpy, probe_batch

    assert numpy.all(numpy.isfinite(evaluate_numpy(EDGE_INFINITE, *probe_batch())))
    status, why = verdict(EDGE_INFINITE)
    assert status == "invalid" and "near 0 or 1" in why
    assert check_thesis(EDGE_INFINITE) == (True, None)


def test_thesis_rule_is_signed_and_checks_nothing_else():
    assert check_thesis("neg(mul(y_true, log(y_pred)))") == (True, None)
    assert not check_thesis("mul(y_true, log(y_pred))")[0]
    assert check_thesis("add(y_true, sin(mul(0.0, y_pred)))") == (True, None)
    with pytest.raises(ValueError, match="unknown validity rule 'strict'"):
        verdict(P_TRUE, "strict")

"""Loss expressions as text: limits on hostile or oversized input, finite
ASCII constants, non-string input, infix formulas and the command line's
leading minus sign."""

import random
import time
import tracemalloc
import types

import numpy as np
import pytest
from deap import gp

from deap_lossgp import compile_loss, from_string, make_pset, to_formula, to_string
from deap_lossgp.app.cli import main
from deap_lossgp.gp import standalone
from deap_lossgp.gp.expression import evaluate_numpy, program_of, to_python_source
from deap_lossgp.gp.standalone import MAX_DEPTH, MAX_LENGTH, parse

PSET = make_pset()


def nested_neg(depth):
    return "neg(" * depth + "y_pred" + ")" * depth


def bounded(function, argument):
    """Run ``function(argument)``, expecting a ValueError; return it with the time and peak memory taken."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError) as error:
            function(argument)
        return error.value, time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


HOSTILE = {
    "20,000-deep neg": nested_neg(20_000),
    "2,000-deep neg": nested_neg(2_000),
    "2,000 parentheses": "(" * 2_000 + "y_pred" + ")" * 2_000,
    "2,000 minus signs": "-" * 2_000 + "y_pred",
    "long sum": "+".join(["y_pred"] * 5_000),
    "120 KB name": "a" * 120_000,
    "90 KB name": "add(y_true, " + "b" * 90_000 + ")",
    "repeated squaring": "(" * 20 + "y_pred" + "**128)" * 20,
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_text_fails_fast_small_and_with_a_short_message(name):
    error, seconds, peak = bounded(parse, HOSTILE[name])
    assert seconds < 2 and peak < 200e6, (seconds, peak)
    message = str(error)
    assert len(message) < 300, message
    # Each refusal names the limit it hit.
    expected = {"20,000-deep neg": "characters long", "2,000-deep neg": "nested more than",
                "2,000 parentheses": "nested more than", "2,000 minus signs": "nested more than",
                "long sum": "nested more than", "120 KB name": "characters long", "90 KB name": "unknown name",
                "repeated squaring": "expands to more than"}[name]
    assert expected in message, message


def test_the_limits_name_themselves_and_realistic_trees_pass():
    assert f"nested more than {MAX_DEPTH} levels" in str(bounded(parse, nested_neg(MAX_DEPTH + 1))[0])
    assert len(parse(nested_neg(MAX_DEPTH - 1))) == MAX_DEPTH
    text = "y_pred" + " " * MAX_LENGTH
    assert f"at most {MAX_LENGTH}" in str(bounded(parse, text)[0])


def test_an_unknown_long_name_is_quoted_in_a_few_dozen_characters():
    message = str(bounded(parse, "mul(y_true, " + "x" * 50_000 + ")")[0])
    assert "unknown name" in message and "(50000 characters)" in message
    assert message.count("x") <= 80


def test_deep_expression_fails_fast_in_evaluate(capsys):
    start = time.perf_counter()
    assert main(["evaluate", nested_neg(20_000)]) == 2
    assert time.perf_counter() - start < 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < 300


@pytest.mark.parametrize("text", ["\u0663", "mul(\u0663, y_pred)", "mul(\uff13, y_pred)", "add(1\u0660, y_true)"])
def test_only_ascii_digits_make_numbers(text):
    with pytest.raises(ValueError, match="ASCII digits"):
        parse(text)


@pytest.mark.parametrize("text, named", [
    ("1e309", "'1e309'"), ("mul(1e309, y_pred)", "'1e309'"), ("mul(-1e309, y_pred)", "'1e309'"),
    ("inf", "'inf'"), ("mul(nan, y_pred)", "'nan'"), ("-Infinity*y_pred", "'Infinity'"),
    ("zoo*y_pred", "'zoo'"),
])
def test_non_finite_constants_are_rejected_by_name(text, named):
    with pytest.raises(ValueError, match="finite") as error:
        parse(text)
    assert named in str(error.value)


def test_non_finite_constants_in_trees_and_programs_are_rejected():
    tree = from_string("mul(0.5, y_pred)", PSET)
    tree[1].value = float("inf")
    with pytest.raises(ValueError, match="not a finite number"):
        to_string(tree)
    with pytest.raises(ValueError, match="not a finite number"):
        program_of([("op", "mul"), ("const", float("nan")), ("arg", "y_pred")])
    with pytest.raises(ValueError, match="ends early"):
        program_of([("op", "mul"), ("arg", "y_pred")])


@pytest.mark.parametrize("value", [None, 3, 2.5, b"neg(y_pred)", ["neg(y_pred)"], [], {"expression": "y_pred"}])
@pytest.mark.parametrize("function", [parse, to_string, to_formula, compile_loss, program_of,
                                      lambda text: from_string(text, PSET),
                                      lambda text: evaluate_numpy(text, [[1.0]], [[0.5]])])
def test_non_string_input_is_a_value_error_naming_it(function, value):
    with pytest.raises(ValueError, match=type(value).__name__):
        function(value)


def test_keras_config_without_an_expression_or_with_a_non_finite_one_is_refused(tmp_path):
    import importlib.util

    path = tmp_path / "limits_best_loss.py"
    path.write_text(to_python_source("neg(mul(y_true, log(y_pred)))"))
    spec = importlib.util.spec_from_file_location("limits_best_loss", path)
    exported = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exported)
    for cls in (standalone.ExpressionLoss, exported.EvolvedLoss):
        with pytest.raises(ValueError, match="must hold an 'expression'"):
            cls.from_config({"expression": None})
        with pytest.raises(ValueError, match="must hold an 'expression'"):
            cls.from_config({"name": "evolved_loss"})
        with pytest.raises(ValueError, match="'1e309'.*not a finite number"):
            cls.from_config({"expression": "mul(1e309, y_pred)"})
    assert exported.EvolvedLoss().expression == "neg(mul(y_true, log(y_pred)))"  # the default stays


@pytest.mark.parametrize("infix, prefix", [
    ("-y_true*log(y_pred)", "mul(neg(y_true), log(y_pred))"),
    ("sqrt(y_pred) + sin(y_true)", "add(sqrt(y_pred), sin(y_true))"),
    ("y_true - y_pred/2 - 1", "sub(sub(y_true, div(y_pred, 2.0)), 1.0)"),
    ("-2.5*y_pred**2", "mul(-2.5, mul(y_pred, y_pred))"),
    ("-y_pred**2", "neg(mul(y_pred, y_pred))"),
    ("y_pred**(1/4)", "sqrt(sqrt(y_pred))"),
    ("y_pred**(3/2)", "mul(y_pred, sqrt(y_pred))"),
    ("1/y_pred**2", "div(1.0, mul(y_pred, y_pred))"),
    ("y_pred**(-1/2)", "div(1.0, sqrt(y_pred))"),
    ("y_pred**0.3", "exp(mul(0.3, log(y_pred)))"),
    ("exp(-(y_pred + y_true))", "exp(neg(add(y_pred, y_true)))"),
    ("add(y_true*2, sin(y_pred))", "add(mul(y_true, 2.0), sin(y_pred))"),
    ("neg(mul(y_true, log(y_pred)))", "neg(mul(y_true, log(y_pred)))"),
    ("mul(-0.5, y_pred)", "mul(-0.5, y_pred)"),
])
def test_infix_formulas_read_as_their_trees(infix, prefix):
    assert to_string(infix) == prefix
    assert str(from_string(infix, PSET)) == prefix


@pytest.mark.parametrize("text, message", [
    ("y_pred**y_true", "exponent of '\\*\\*' at character 6 must be a number"),
    ("y_pred +", "ends early"),
    ("(y_pred", "not closed"),
    ("y_pred)", "no parenthesis is open"),
    ("(y_pred, y_true)", "commas separate"),
    ("2 y_pred", "after a complete expression"),
    ("y_pred ^ 2", "cannot read"),
    ("y_pred @ y_true", "cannot read"),
    ("abs(y_pred)", "unknown operator 'abs'"),
    ("log(y_pred, 2)", "takes 1 argument"),
])
def test_malformed_infix_is_a_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        parse(text)


def _plain(program, y_true, y_pred):
    """The expression's values with unprotected operators (NaN where they leave their domain)."""
    plain = types.SimpleNamespace(abs=lambda a: a, maximum=lambda a, b: a, minimum=lambda a, b: a,
                                  where=lambda condition, a, b: b, sqrt=np.sqrt, log=np.log, exp=np.exp,
                                  sin=np.sin, cos=np.cos, zeros_like=np.zeros_like)
    with np.errstate(all="ignore"):
        return standalone.evaluate(program, y_true, y_pred, plain)


def test_printed_formulas_read_back_as_the_same_loss():
    # The printed formula marks the protected operators, so it reads back as
    # the same function, also where the protection steps in (labels of 0,
    # predictions of 0, negative arguments).
    rng = np.random.default_rng(0)
    y_true = np.eye(5)[rng.integers(5, size=4)]
    y_pred = np.concatenate([rng.uniform(0.05, 0.95, (3, 5)), np.zeros((1, 5))])
    random.seed(0)
    protected = 0
    for _ in range(60):
        tree = gp.PrimitiveTree(gp.genHalfAndHalf(PSET, 1, 4))
        values = evaluate_numpy(tree, y_true, y_pred)
        formula = to_formula(tree, digits=17)
        np.testing.assert_allclose(evaluate_numpy(formula, y_true, y_pred), values, rtol=1e-9, atol=1e-12,
                                   err_msg=f"{tree} printed as {formula}")
        protected += not np.allclose(_plain(program_of(tree), y_true, y_pred), values, rtol=1e-12, atol=0)
    assert protected >= 10  # trees where the plain operators would compute something else


def test_evaluate_takes_a_leading_minus_and_double_dash(capsys):
    # An unknown field fails after the expression is accepted, before any training.
    for args in (["evaluate", "-y_true*log(y_pred)", "--set", "bogus=1"],
                 ["evaluate", "--set", "bogus=1", "--", "-y_true*log(y_pred)"],
                 ["evaluate", "--set", "bogus=1", "-2*y_pred"],
                 ["evaluate", "--set=bogus=1", "--(y_pred*2)"]):
        assert main(args) == 2
        assert "unknown setting(s) ['bogus']" in capsys.readouterr().err


@pytest.mark.slow
def test_evaluate_trains_with_an_infix_formula(capsys):
    args = ["evaluate", "-y_true*log(y_pred)", "--epochs", "1", "--set", 'tasks=["digits"]',
            "--set", "max_train_samples=300", "--json"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert '"expression": "mul(neg(y_true), log(y_pred))"' in out and '"status": "ok"' in out


def test_the_expanded_size_is_checked_while_parsing():
    from deap_lossgp.gp.standalone import MAX_NODES

    # 37 characters that expand to 24,575 nodes; refused before they are built.
    error, seconds, peak = bounded(parse, "((((y_pred*y_true+0.5)**8)**8)**8)**8")
    assert str(error) == f"the loss expression expands to more than {MAX_NODES} nodes; use a smaller one"
    assert seconds < 1 and peak < 20e6
    assert len(parse("((((y_pred*y_true+0.5)**8)**8)**8)**3")) == 9215 < MAX_NODES


def test_shorten_keeps_both_ends_and_says_what_it_left_out():
    from deap_lossgp.gp.formula import shorten

    text = to_string("((((y_pred*y_true+0.5)**8)**8)**8)**3")
    short = shorten(text, nodes=9215)
    assert short.startswith(text[:200]) and short.endswith(text[-200:])
    assert "... (9,215 nodes, 55,289 characters) ..." in short and len(short) < 450 and "\n" not in short
    assert shorten("neg(y_pred)") == "neg(y_pred)"
    assert shorten(text, limit=40).count("...") == 2
    with pytest.raises(ValueError, match="at least 20"):
        shorten(text, limit=5)


def test_exported_files_show_a_long_expression_shortened():
    from deap_lossgp.gp.export import to_numpy_source

    text = to_string("((((y_pred*y_true+0.5)**8)**8)**8)**3")
    header = to_numpy_source(text).split('"""')[1]
    assert len(header) < 2000 and "55,289 characters" in header

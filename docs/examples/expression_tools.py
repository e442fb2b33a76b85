"""Loss trees as text, formulas, values, cache keys and validity checks."""

from deap_lossgp import check_validity, from_string, make_pset, to_formula, to_latex, to_string
from deap_lossgp.gp.expression import canonical_key, evaluate_numpy
from deap_lossgp.gp.validity import check_thesis, verdict
from deap_lossgp.gp.losses import REFERENCE_EXPRESSIONS

pset = make_pset()

# Text <-> tree. The parser reads only operator names, y_true, y_pred, numbers,
# parentheses and commas: it never evaluates code.
tree = from_string("neg(mul(y_true, log(y_pred)))", pset)
assert to_string(tree) == str(tree) == "neg(mul(y_true, log(y_pred)))"
# The formulas the tool prints read back as trees too.
assert to_string("-y_true*log(y_pred)") == "mul(neg(y_true), log(y_pred))"
assert str(from_string("sqrt(y_pred) + sin(y_true)", pset)) == "add(sqrt(y_pred), sin(y_true))"
for hostile in ["__import__('os').system('ls')", "neg(" * 5000 + "y_pred" + ")" * 5000, "mul(1e309, y_pred)"]:
    try:
        from_string(hostile, pset)
    except ValueError as error:
        print("refused:", error)

# Readable formulas of the reference losses (protected operators shown plain).
for name, expression in REFERENCE_EXPRESSIONS.items():
    print(f"{name:7} {to_formula(expression):60} ${to_latex(expression)}$")

# Element-wise values with NumPy: cross-entropy's term is -log(0.75) for the true class.
values = evaluate_numpy(tree, [[0.0, 1.0]], [[0.25, 0.75]])
print("values:", values)
assert abs(values[0, 1] - 0.2876821) < 1e-6 and values[0, 0] == 0.0

# Trees that compute the same values share an evaluation-cache key; by="gradient"
# (the key under the accuracy and ce metrics) also merges L with L + constant,
# which train identically.
assert canonical_key("add(y_pred, y_true)") == canonical_key("add(y_true, y_pred)")
assert canonical_key("add(y_pred, y_true)") != canonical_key("sub(y_pred, y_true)")
cross_entropy = "neg(mul(y_true, log(y_pred)))"
shifted = f"add({cross_entropy}, 0.5)"
assert canonical_key(cross_entropy) != canonical_key(shifted)
assert canonical_key(cross_entropy, by="gradient") == canonical_key(shifted, by="gradient")

# The validity rules, checked in NumPy in milliseconds: "screened" (the default)
# and the thesis's own, "thesis". verdict() tells invalid from untrainable trees.
for expression in [
    "neg(mul(y_true, log(y_pred)))",  # cross-entropy: valid under both
    "mul(y_true, 0.5)",  # never uses y_pred: invalid under both
    "mul(1e-07, neg(mul(y_true, log(y_pred))))",  # |loss| below 1e-5 on the probe batch
    "neg(mul(y_true, y_pred))",  # -p_true: learns, but its loss is negative (thesis: invalid)
    "mul(y_true, y_pred)",  # p_true: in range, but minimising it unlearns (screened: untrainable)
]:
    print(f"{expression:45} screened: {verdict(expression)}  thesis: {check_thesis(expression)}")
assert check_validity("neg(mul(y_true, log(y_pred)))") == (True, None)
assert check_validity("mul(y_true, 0.5)")[0] is False
assert verdict("neg(mul(y_true, y_pred))")[0] == "valid" and not check_thesis("neg(mul(y_true, y_pred))")[0]
assert verdict("mul(y_true, y_pred)")[0] == "untrainable" and check_validity("mul(y_true, y_pred)", rule="thesis")[0]

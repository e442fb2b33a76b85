"""Loss trees as text, formulas, values, cache keys and validity checks."""

from deap_lossgp import check_validity, from_string, make_pset, simplified, to_latex, to_text
from deap_lossgp.expression import canonical_key, evaluate_numpy
from deap_lossgp.losses import REFERENCE_EXPRESSIONS

pset = make_pset()

# Text <-> tree. The parser reads only operator names, y_true, y_pred, numbers,
# parentheses and commas: it never evaluates code.
tree = from_string("neg(mul(y_true, log(y_pred)))", pset)
assert to_text(tree) == str(tree) == "neg(mul(y_true, log(y_pred)))"
try:
    from_string("__import__('os').system('ls')", pset)
except ValueError as error:
    print("refused:", error)

# Readable formulas of the reference losses (protected operators shown plain).
for name, expression in REFERENCE_EXPRESSIONS.items():
    print(f"{name:7} {simplified(expression):60} ${to_latex(expression)}$")

# Element-wise values with NumPy: cross-entropy's term is -log(0.75) for the true class.
values = evaluate_numpy(tree, [[0.0, 1.0]], [[0.25, 0.75]])
print("values:", values)
assert abs(values[0, 1] - 0.2876821) < 1e-6 and values[0, 0] == 0.0

# Trees that compute the same values share an evaluation-cache key.
assert canonical_key("add(y_pred, y_true)") == canonical_key("add(y_true, y_pred)")
assert canonical_key("add(y_pred, y_true)") != canonical_key("sub(y_pred, y_true)")

# The thesis's validity rules (plus a usable gradient).
for expression in [
    "neg(mul(y_true, log(y_pred)))",  # cross-entropy: valid
    "mul(y_true, 0.5)",  # never uses y_pred
    "mul(1e-07, neg(mul(y_true, log(y_pred))))",  # |loss| below 1e-5 on the probe batch
]:
    print(f"{expression:45} -> {check_validity(expression)}")
assert check_validity("neg(mul(y_true, log(y_pred)))") == (True, None)
assert check_validity("mul(y_true, 0.5)")[0] is False

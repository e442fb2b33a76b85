"""Loss trees: vocabulary, expressions, validity, operators, reference losses.

Nothing here imports TensorFlow at import time: :mod:`.vocabulary` (the
operator table every other form is driven by), :mod:`.primitives` (the
``deap.gp.PrimitiveSet``), :mod:`.standalone` (the safe parser and the Keras
loss class, copied into exported files), :mod:`.program` (trees, text and
programs read into one form), :mod:`.expression` (tree ↔ text, Keras losses,
cache keys), :mod:`.numerics` (values and gradients in NumPy),
:mod:`.formula` (sympy, text and LaTeX formulas),
:mod:`.export` (standalone Keras, PyTorch and NumPy modules),
:mod:`.validity` (the thesis's rule and our screen), :mod:`.operators`
(selection, crossover, mutation, bloat limits) and :mod:`.losses` (reference
losses).
"""

__all__ = []

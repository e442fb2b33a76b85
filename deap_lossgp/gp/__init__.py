"""Loss trees: vocabulary, expressions, validity, operators, reference losses.

Nothing here imports TensorFlow at import time: :mod:`.primitives` (the
``deap.gp.PrimitiveSet``), :mod:`.standalone` (the safe parser and the Keras
loss class, copied into exported files), :mod:`.expression` (tree ↔ text,
Keras/sympy/LaTeX/Python, gradients and cache keys in NumPy),
:mod:`.export` (standalone Keras, PyTorch and NumPy modules),
:mod:`.validity` (the thesis's rule and our screen), :mod:`.operators`
(selection, crossover, mutation, bloat limits) and :mod:`.losses` (reference
losses).
"""

__all__ = []

"""deap_lossgp: evolve loss functions for image classification with DEAP.

The operators, the primitive set and the expression tools import without
TensorFlow; training, the fitness and the algorithms load on first use.
"""

import importlib

from .expression import compile_loss, from_string, simplified, to_latex, to_python_source, to_text
from .losses import (
    REFERENCE_EXPRESSIONS,
    REFERENCE_LOSSES,
    baikal_loss,
    categorical_crossentropy,
    focal_loss,
    ngl_loss,
    reference_tree,
    symmetric_cross_entropy,
)
from .operators import add_bloat_limits, cxNewRandomParent, cxSubtree, limitTree, mutOnePoint, selSampleTournament
from .primitives import make_pset
from .validity import InvalidTreeError, check_validity, initValid, is_valid

__version__ = "0.1.0"

# name -> module, imported on first access (PEP 562) to keep this import light.
_LAZY = {
    "LossFitness": "deap_lossgp.fitness",
    "get_preset": "deap_lossgp.presets",
    "eaSampleTournament": "deap_lossgp.algorithms",
    "eaNGL": "deap_lossgp.algorithms",
    "make_toolbox": "deap_lossgp.toolbox",
}

__all__ = [
    "make_pset",
    "compile_loss",
    "from_string",
    "to_text",
    "simplified",
    "to_latex",
    "to_python_source",
    "check_validity",
    "is_valid",
    "initValid",
    "InvalidTreeError",
    "selSampleTournament",
    "cxSubtree",
    "cxNewRandomParent",
    "mutOnePoint",
    "limitTree",
    "add_bloat_limits",
    "categorical_crossentropy",
    "ngl_loss",
    "focal_loss",
    "symmetric_cross_entropy",
    "baikal_loss",
    "REFERENCE_LOSSES",
    "REFERENCE_EXPRESSIONS",
    "reference_tree",
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'deap_lossgp' has no attribute {name!r}")

"""deap_lossgp: evolve loss functions for image classification with DEAP.

The package reads in the order the data flows:

``gp``
    the vocabulary, expressions, validity rules, operators and reference
    losses (no TensorFlow);
``algorithms``
    :func:`eaSampleTournament` (the thesis's Algorithm 1) and :func:`eaNGL`,
    DEAP style, our asynchronous :func:`eaAsyncSampleTournament`, and the
    :class:`Evaluation` that owns the evaluation cache and the work units;
``fitness``
    :class:`FitnessConfig` and :class:`LossEvaluator`: training and scoring;
``search``
    presets, :func:`make_toolbox`, map backends, run directories and the one
    driver :func:`run_search`;
``app``
    the ``deap-lossgp`` command, the benchmark and its report.

Importing it does not import TensorFlow; training does.
"""

from .algorithms import Evaluation, default_n_parents, eaAsyncSampleTournament, eaNGL, eaSampleTournament
from .fitness import FitnessConfig, LossEvaluator, LossFitness
from .gp.expression import (
    compile_loss,
    from_string,
    simplified,
    to_formula,
    to_latex,
    to_python_source,
    to_string,
    to_text,
)
from .gp.losses import (
    REFERENCE_EXPRESSIONS,
    REFERENCE_LOSSES,
    baikal_loss,
    categorical_crossentropy,
    focal_loss,
    ngl_loss,
    reference_tree,
    symmetric_cross_entropy,
    symmetric_crossentropy,
)
from .gp.operators import (
    add_bloat_limits,
    cxNewRandomParent,
    cxSubtree,
    default_sample_size,
    genGrowHeight,
    limitTree,
    mutOnePoint,
    mutOperatorPoint,
    selSampleTournament,
)
from .gp.primitives import make_pset
from .gp.validity import InvalidTreeError, check_validity, initValid, is_valid
from .search.driver import run_search
from .search.parallel import get_map
from .search.presets import Preset, SearchConfig, get_preset
from .search.toolbox import FitnessLoss, LossIndividual, make_toolbox

from ._version import __version__

__all__ = [
    "__version__",
    "make_pset",
    "compile_loss",
    "from_string",
    "to_string",
    "to_formula",
    "to_text",
    "simplified",
    "to_latex",
    "to_python_source",
    "check_validity",
    "is_valid",
    "initValid",
    "InvalidTreeError",
    "default_sample_size",
    "selSampleTournament",
    "cxSubtree",
    "cxNewRandomParent",
    "mutOnePoint",
    "mutOperatorPoint",
    "genGrowHeight",
    "limitTree",
    "add_bloat_limits",
    "categorical_crossentropy",
    "ngl_loss",
    "focal_loss",
    "symmetric_crossentropy",
    "symmetric_cross_entropy",
    "baikal_loss",
    "REFERENCE_LOSSES",
    "REFERENCE_EXPRESSIONS",
    "reference_tree",
    "eaSampleTournament",
    "eaNGL",
    "eaAsyncSampleTournament",
    "Evaluation",
    "default_n_parents",
    "FitnessConfig",
    "LossEvaluator",
    "LossFitness",
    "SearchConfig",
    "Preset",
    "get_preset",
    "make_toolbox",
    "FitnessLoss",
    "LossIndividual",
    "get_map",
    "run_search",
]

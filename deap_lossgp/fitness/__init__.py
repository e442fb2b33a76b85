"""Fitness of loss trees: config, runtime, datasets, models, training, CE baselines, scoring.

The entry point is :class:`LossEvaluator`, a picklable DEAP evaluation
function configured by a :class:`FitnessConfig` (:mod:`.config`).
:mod:`.runtime` alone owns TensorFlow's process state (threads,
determinism).  The submodules can be used on their own: :mod:`.datasets`
(loaders, splits, task variants), :mod:`.models` (builders),
:mod:`.training` (one reproducible training run), :mod:`.baseline` (the
stored cross-entropy baselines), :mod:`.scoring` (thesis Algorithm 3) and
:mod:`.compare` (a loss against cross-entropy over several seeds).
TensorFlow is imported on first training, not on import.
"""

from .baseline import DEFAULT_BASELINE_DIR, get_baseline
from .config import FITNESS_PRESETS, FitnessConfig, fitness_preset
from .datasets import (
    DATASETS,
    Dataset,
    DatasetNotFoundError,
    TaskData,
    TaskSpec,
    load_dataset,
    load_task,
    register_arrays,
    register_dataset,
    task_from_path,
)
from .evaluator import LossEvaluator, LossFitness
from .compare import METRIC_FIELDS, compare_with_ce, format_comparison
from .models import MODELS, build_model, get_model_builder, register_model
from .scoring import AVERAGING, METRICS, WORST_FITNESS, aggregate, improvement, score
from .runtime import configure_tensorflow, quiet_tensorflow, verbose_tensorflow
from .training import STOP_REASONS, is_hopeless, train_model, train_tasks

__all__ = [
    "LossEvaluator",
    "LossFitness",
    "compare_with_ce",
    "format_comparison",
    "METRIC_FIELDS",
    "FitnessConfig",
    "FITNESS_PRESETS",
    "fitness_preset",
    "WORST_FITNESS",
    "METRICS",
    "AVERAGING",
    "improvement",
    "aggregate",
    "score",
    "TaskSpec",
    "TaskData",
    "Dataset",
    "DatasetNotFoundError",
    "DATASETS",
    "register_dataset",
    "load_dataset",
    "load_task",
    "MODELS",
    "register_model",
    "get_model_builder",
    "build_model",
    "STOP_REASONS",
    "configure_tensorflow",
    "quiet_tensorflow",
    "verbose_tensorflow",
    "register_arrays",
    "task_from_path",
    "train_model",
    "train_tasks",
    "is_hopeless",
    "DEFAULT_BASELINE_DIR",
    "get_baseline",
]

"""Score a candidate loss against the cross-entropy baseline (thesis Algorithm 3).

For every task the candidate's trained model is compared with the model
trained with cross-entropy (same seed, same batches), as a relative
improvement (``0.05`` = 5 % better).  A task is *won* when the improvement
is positive.  The fitness is ``(wins, average improvement)``, ranked wins
first (a DEAP fitness with weights ``(1.0, 1.0)``).

Metrics (what "better" means):

``loss``
    The thesis's rule: the candidate's own final validation loss against
    cross-entropy's, lower is better.  Losses on different scales are not
    comparable, so a loss multiplied by a tiny constant "wins" while its
    model learns nothing (thesis §4.3).  Only positive loss values are
    compared (:func:`incomparable`): a relative improvement
    ``(b - c) / |b|`` exceeds 1 for *any* negative candidate value ``c``,
    so taken literally (the thesis's rule: "lower than the CE error" is a
    win) every negative loss would win every task and outrank every
    positive one by its sign alone.  A candidate whose loss value is not
    positive on a task is therefore not comparable: it gets
    :data:`WORST_FITNESS`, like a probe loss outside the thesis's signed
    range ``[1e-5, 1e5]`` (:mod:`deap_lossgp.gp.validity`).
``accuracy``
    Final validation accuracy, higher is better: what the search is for.
``ce``
    The cross-entropy of the trained model on the validation data, lower is
    better: continuous and comparable across losses, but it rewards
    confident (cross-entropy-like) predictions.
``weighted``
    ``weight x`` the accuracy improvement ``+ (1 - weight) x`` the loss
    improvement (thesis §5.2).

A training stopped early (hopeless or diverging, see
:mod:`deap_lossgp.fitness.training`) is scored by the same rule from the
validation metrics it had reached at the stop, so a slow or broken loss gets
a finite, rankable fitness below the losses that learned better.  Under
``loss`` it gets the worst fitness instead: the loss value of a model
that stopped early is not comparable with cross-entropy's after full
training (our choice; the thesis trains every candidate to the end).  Only
invalid or untrainable trees, non-finite trainings and errors get
:data:`WORST_FITNESS` under the other metrics.

Averaging: ``thesis`` (Algorithm 3: the mean of the winning improvements,
or of all of them when nothing wins) or ``all`` (the mean of all
improvements, thesis §5.2).
"""

import math

__all__ = ["WORST_FITNESS", "METRICS", "AVERAGING", "incomparable", "improvement", "aggregate", "score"]

#: The fitness of invalid and failed candidates: no wins, no improvement.
WORST_FITNESS = (0.0, float("-inf"))
#: The comparison metrics.
METRICS = ("accuracy", "ce", "loss", "weighted")
#: The averaging rules.
AVERAGING = ("thesis", "all")

# Keeps a zero baseline value from dividing by zero.
_TINY = 1e-12


def _lower_is_better(candidate, baseline):
    return (baseline - candidate) / max(abs(baseline), _TINY)


def _higher_is_better(candidate, baseline):
    return (candidate - baseline) / max(abs(baseline), _TINY)


def incomparable(candidate, metric="accuracy"):
    """Why a candidate's record cannot be compared under *metric*, or ``None``.

    Under ``loss`` and ``weighted`` the loss value itself is compared, and
    only a positive value is comparable with cross-entropy's: lower-is-better
    on a ratio scale, so the sign of a loss cannot decide a win.

    :param candidate: the candidate's training record on one task.
    :param metric: one of :data:`METRICS`.
    :returns: ``None``, or a one-line reason.
    """
    value = candidate.get("val_loss")
    if metric in ("loss", "weighted") and value is not None and math.isfinite(value) and value <= 0.0:
        return (f"its validation loss {value:.4g} is not positive, so it cannot be compared with "
                "cross-entropy's (score by accuracy to keep such losses)")
    return None


def improvement(candidate, baseline, metric="accuracy", weight=0.5):
    """The relative improvement of a candidate over the baseline on one task.

    :param candidate: the candidate's training record (``val_loss``,
                      ``val_accuracy``, ``val_ce``).
    :param baseline: the cross-entropy model's record (same keys).
    :param metric: one of :data:`METRICS`.
    :param weight: the accuracy's weight for ``metric="weighted"``, in ``[0, 1]``.
    :returns: the improvement as a fraction (positive = better than
              cross-entropy); NaN when the record is not :func:`incomparable`.
    :raises ValueError: for an unknown metric.
    """
    if incomparable(candidate, metric) is not None:
        return math.nan
    if metric == "accuracy":
        return _higher_is_better(candidate["val_accuracy"], baseline["val_accuracy"])
    if metric == "ce":
        return _lower_is_better(candidate["val_ce"], baseline["val_ce"])
    if metric == "loss":
        return _lower_is_better(candidate["val_loss"], baseline["val_loss"])
    if metric == "weighted":
        return weight * improvement(candidate, baseline, "accuracy") + (1.0 - weight) * improvement(
            candidate, baseline, "loss"
        )
    raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")


def aggregate(improvements, averaging="thesis"):
    """Combine per-task improvements into a fitness.

    :param improvements: one improvement per task.
    :param averaging: ``"thesis"``: the mean of the positive improvements, or
                      of all when none is positive; ``"all"``: the mean of all.
    :returns: ``(wins, average)`` as floats; :data:`WORST_FITNESS` when an
              improvement is not finite or there are none.
    :raises ValueError: for an unknown averaging rule.
    """
    if averaging not in AVERAGING:
        raise ValueError(f"unknown averaging {averaging!r}; choose from {', '.join(AVERAGING)}")
    improvements = [float(x) for x in improvements]
    if not improvements or not all(math.isfinite(x) for x in improvements):
        return WORST_FITNESS
    winners = [x for x in improvements if x > 0.0]
    averaged = winners if averaging == "thesis" and winners else improvements
    return float(len(winners)), math.fsum(averaged) / len(averaged)


def score(candidates, baselines, metric="accuracy", averaging="thesis", weight=0.5):
    """The fitness of a candidate from its per-task records.

    :param candidates: the candidate's training records, one per task.
    :param baselines: the cross-entropy records, in the same order.
    :param metric: one of :data:`METRICS`.
    :param averaging: one of :data:`AVERAGING`.
    :param weight: the accuracy's weight for ``metric="weighted"``.
    :returns: ``(fitness, improvements)``: the ``(wins, average)`` tuple and the per-task list.
    :raises ValueError: if the lists differ in length.
    """
    if len(candidates) != len(baselines):
        raise ValueError(f"{len(candidates)} candidate records but {len(baselines)} baselines")
    improvements = [improvement(c, b, metric, weight) for c, b in zip(candidates, baselines)]
    return aggregate(improvements, averaging), improvements

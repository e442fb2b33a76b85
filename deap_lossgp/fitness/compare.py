"""One loss against cross-entropy over several seeds: is a "win" more than seed noise?

A single training says little: on the quick preset, cross-entropy written as a
tree "wins" a task against cross-entropy itself by one validation sample.
:func:`compare_with_ce` trains the candidate and cross-entropy under the
same seeds (``seed``, ``seed + 1``, ...; each seed sets the data split, the
initial weights and the batch order for both), so the two are paired, and
reports per task the mean ± standard deviation of each and of their paired
difference (the improvement, positive = the candidate is better), on how
many seeds the candidate won, and a paired t-test of that difference.
"""

import math
import statistics

from .config import FitnessConfig, fitness_preset
from .evaluator import LossEvaluator

__all__ = ["METRIC_FIELDS", "LEVEL", "paired_interval", "interval_verdict", "mean_over_tasks", "compare_with_ce", "format_comparison"]

#: The validation value shown for each fitness metric (``weighted`` mixes accuracy and loss: accuracy is shown).
METRIC_FIELDS = {"accuracy": "val_accuracy", "ce": "val_ce", "loss": "val_loss", "weighted": "val_accuracy"}
# A paired difference "exceeds the seed noise" when a two-sided paired t-test rejects no difference at this level.
_LEVEL = 0.05
#: The confidence level of :func:`paired_interval`.
LEVEL = 1.0 - _LEVEL


def paired_interval(differences, level=LEVEL):
    """The mean of paired differences with its two-sided t interval.

    :param differences: one difference per seed (candidate minus reference);
                        non-finite ones make the result undefined.
    :param level: the confidence level.
    :returns: ``{"n", "mean", "low", "high"}``; ``low``/``high`` are ``None``
              for fewer than two differences, ``mean`` too when a
              difference is not finite.  The interval excludes 0 exactly
              when the two-sided paired t-test rejects no difference at
              ``1 - level``.
    """
    values = [float(v) for v in differences if v is not None]
    n = len(values)
    if n == 0 or not all(math.isfinite(v) for v in values):
        return {"n": n, "mean": None, "low": None, "high": None}
    mean = statistics.fmean(values)
    if n < 2:
        return {"n": n, "mean": mean, "low": None, "high": None}
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2.0, n - 1)) * statistics.stdev(values) / math.sqrt(n)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half}


def _summary(values):
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return {
        "values": values,
        "mean": statistics.fmean(finite) if finite else None,
        "std": statistics.stdev(finite) if len(finite) > 1 else None,
    }


def _paired_test(differences):
    """Two-sided p-value of a one-sample t-test of the differences against 0 (``None`` if undefined)."""
    if len(differences) < 2:
        return None
    if statistics.stdev(differences) == 0.0:
        return 1.0 if statistics.fmean(differences) == 0.0 else 0.0
    from scipy import stats

    return float(stats.ttest_1samp(differences, 0.0).pvalue)


def interval_verdict(interval):
    """What a :func:`paired_interval` of candidate-minus-reference differences says.

    :param interval: its result.
    :returns: ``"better"`` or ``"worse"`` when the interval lies above or
              below 0, ``"indistinguishable"`` when it contains 0,
              ``"unconfirmed"`` when there is no interval (fewer than two
              seeds, or a difference that is not finite).
    """
    if interval["low"] is None:
        return "unconfirmed"
    if interval["low"] > 0.0:
        return "better"
    if interval["high"] < 0.0:
        return "worse"
    return "indistinguishable"


def mean_over_tasks(per_task):
    """Per seed, the mean over the tasks of a per-task value.

    :param per_task: one list per task, one value per seed (``None`` where it did not train).
    :returns: one value per seed; ``None`` for a seed where some task has none.
    """
    return [None if None in column else math.fsum(column) / len(column) for column in zip(*per_task)]


def compare_with_ce(expression, repeats=5, preset="quick", baseline_dir=None, progress=None, **overrides):
    """Train with a loss and with cross-entropy under *repeats* paired seeds.

    :param expression: the loss: an expression string or a DEAP tree.
    :param repeats: the number of training seeds (>= 1): the configuration's
                    ``seed`` and the next ``repeats - 1`` integers, all on the
                    configuration's data split (replicates 0 to
                    ``repeats - 1``, as racing trains them).
    :param preset: a preset name or a :class:`~deap_lossgp.fitness.FitnessConfig`.
    :param baseline_dir: where cross-entropy baselines are stored (see
                         :class:`~deap_lossgp.fitness.LossEvaluator`).
    :param progress: called with no argument after each training, or ``None``.
    :param overrides: fitness settings to change, e.g. ``epochs=2``.
    :returns: a JSON-ready dict: ``expression``, ``metric``, ``shown``
              (the validation value compared, e.g. ``val_accuracy``),
              ``seeds``, ``records`` (one
              :meth:`~deap_lossgp.fitness.LossEvaluator.evaluate_detailed`
              record per seed), ``tasks``: per task ``candidate`` and
              ``ce`` (``values``, ``mean``, ``std`` of the shown value),
              ``improvement`` (idem, the paired relative difference under
              the metric, positive = better), ``wins`` (seeds where the
              candidate is better), ``failed`` (seeds where it did not
              train), ``p_value`` (paired t-test; ``None`` for one seed)
              and ``exceeds_noise`` (``p_value < 0.05``); and ``overall``,
              the mean over the tasks of the improvement, per seed, with its
              :func:`paired_interval`, and its ``verdict``: ``better``,
              ``worse`` (the interval excludes 0) or ``indistinguishable``.
    :raises ValueError: if *repeats* is not a positive integer, or for an
                        unknown preset or setting.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer (the number of seeds), got {repeats!r}")
    config = preset.replace(**overrides) if isinstance(preset, FitnessConfig) else fitness_preset(preset, **overrides)
    fitness = LossEvaluator(preset=config, baseline_dir=baseline_dir)
    records = []
    for replicate in range(repeats):
        trainings = fitness.split(expression, replicate=replicate)
        results = []
        for unit in trainings.units:
            results.append(unit())
            if progress is not None:
                progress()
            if trainings.stops(results[-1]):
                break
        records.append(trainings.assemble_record(results))
    seeds = [config.seed + replicate for replicate in range(repeats)]
    shown = METRIC_FIELDS[config.metric]
    tasks = {}
    per_seed = []
    for task in config.resolved_tasks():
        entries = [record["tasks"].get(task.name, {}) for record in records]
        candidate = [entry.get(shown) for entry in entries]
        ce = [(entry.get("baseline") or {}).get(shown) for entry in entries]
        improvements = [entry.get("improvement") for entry in entries]
        per_seed.append(improvements)
        trained = [value for value in improvements if value is not None and math.isfinite(value)]
        p_value = _paired_test(trained) if len(trained) == len(improvements) else None
        tasks[task.name] = {
            "candidate": _summary(candidate),
            "ce": _summary(ce),
            "improvement": _summary(improvements),
            "wins": sum(value > 0.0 for value in trained),
            "failed": len(improvements) - len(trained),
            "p_value": p_value,
            "exceeds_noise": p_value is not None and p_value < _LEVEL,
        }
    interval = paired_interval(mean_over_tasks(per_seed))
    verdict = interval_verdict(interval)
    return {"expression": records[0]["expression"], "metric": config.metric, "shown": shown, "seeds": seeds,
            "records": records, "tasks": tasks, "overall": dict(interval, verdict=verdict)}


def _mean_std(summary, digits=4):
    if summary["mean"] is None:
        return "-"
    text = f"{summary['mean']:.{digits}f}"
    return text if summary["std"] is None else f"{text} ± {summary['std']:.{digits}f}"


def format_comparison(comparison):
    """Format :func:`compare_with_ce`'s result as a per-task table.

    :param comparison: the dict it returned.
    :returns: the table and a verdict per task, as text.
    """
    shown = comparison["shown"].removeprefix("val_")
    seeds = comparison["seeds"]
    lines = [f"expression: {comparison['expression']}",
             f"seeds: {', '.join(map(str, seeds))} (candidate and cross-entropy trained under each, on one data "
             f"split)"]
    header = (f"{'task':<20} {'candidate ' + shown:>22} {'cross-entropy ' + shown:>24} "
              f"{'improvement (paired)':>24} {'wins':>7} {'p':>7}")
    lines += [header, "-" * len(header)]
    for name, task in comparison["tasks"].items():
        p_value = "-" if task["p_value"] is None else f"{task['p_value']:.3f}"
        lines.append(f"{name:<20} {_mean_std(task['candidate']):>22} {_mean_std(task['ce']):>24} "
                     f"{_mean_std(task['improvement']):>24} {task['wins']:>4}/{len(seeds):<2} {p_value:>7}")
    lines.append(f"improvement: relative difference in {comparison['metric']} (positive = better than "
                 f"cross-entropy); p: paired t-test over the seeds")
    for name, task in comparison["tasks"].items():
        lines.append(f"{name}: {_verdict(task, len(seeds))}")
    lines.append(_overall_verdict(comparison["overall"], len(seeds)))
    return "\n".join(lines)


def _overall_verdict(overall, repeats):
    """One line across the tasks: better, worse or not distinguishable from cross-entropy."""
    if overall["verdict"] == "unconfirmed":
        if overall["mean"] is None:
            return "verdict: the candidate did not train on every task and seed"
        return (f"verdict: one seed, mean improvement over the tasks {overall['mean']:+.4f}; "
                "use --repeats 5 to tell it from seed noise")
    interval = f"{overall['mean']:+.4f} [{overall['low']:+.4f}, {overall['high']:+.4f}]"
    words = {"better": "better than cross-entropy", "worse": "worse than cross-entropy",
             "indistinguishable": "not distinguishable from cross-entropy"}[overall["verdict"]]
    return (f"verdict: {words} over {repeats} seeds (mean improvement over the tasks {interval}, "
            f"95 % t interval paired by seed)")


def _verdict(task, repeats):
    if task["failed"]:
        return f"the candidate did not train on {task['failed']} of {repeats} seed(s)"
    if task["p_value"] is None:
        return "one seed: no way to tell a difference from seed noise (use more repeats)"
    side = "better" if task["improvement"]["mean"] > 0 else "worse"
    if task["exceeds_noise"]:
        return f"{side} than cross-entropy beyond seed noise (p = {task['p_value']:.3f} < {_LEVEL})"
    return f"no difference beyond seed noise (p = {task['p_value']:.3f})"

"""The benchmark's report: ``report.md`` and ``heldout.png``, from the per-seed results.

A per-seed result (``seed-<n>/result.json``, see
:mod:`deap_lossgp.app.benchmark`) holds, per arm (:data:`ARMS`), the run's
totals, its curve, its top losses with their in-search and fresh-seed
fitness, and the held-out test accuracy of its final best under the fresh
seeds, with cross-entropy's under the same seeds; and NGL's best at the
moment ours ended, measured the same way.  Every comparison between arms is
paired by seed, with a 95 % t interval over the seeds
(:func:`~deap_lossgp.fitness.compare.paired_interval`); an interval that
contains 0 is reported as "not distinguishable".
"""

import math
import pathlib
import statistics

from ..fitness.compare import interval_verdict, paired_interval

__all__ = ["ARMS", "ARM_LABELS", "heldout_mean", "curse", "write_report"]

#: The arms, in the order of the report.
ARMS = ("thesis", "ngl", "ours")
#: How the report names them.
ARM_LABELS = {"thesis": "thesis (Algorithm 1 as written)", "ngl": "NGL", "ours": "ours (re-breeding, racing, "
              "confirmation)"}
#: The thesis's wall-time ratios (ours / NGL): 62,364 / 173,287 s and 426,915 / 1,013,739 s.
THESIS_TIME_RATIO = {"small": 62364 / 173287, "large": 426915 / 1013739}


def _number(value):
    return float(value)


def heldout_mean(heldout, reference=False):
    """The mean over tasks of the mean test accuracy over the fresh seeds.

    :param heldout: an arm's ``heldout`` (per task ``values`` and ``ce``).
    :param reference: cross-entropy's instead of the loss's.
    :returns: a float, NaN if a training did not give a test accuracy.
    """
    means = []
    for task in heldout.values():
        values = task["ce" if reference else "values"]
        if any(value is None for value in values):
            return math.nan
        means.append(statistics.fmean(values))
    return statistics.fmean(means)


def _task_mean(heldout, task):
    values = heldout[task]["values"]
    return math.nan if any(value is None for value in values) else statistics.fmean(values)


def curse(arm):
    """The winner's curse of one run: its top losses' in-search against fresh-seed fitness.

    :param arm: an arm's result.
    :returns: ``{"gap": mean of (in-search - fresh) improvement over the
              top, "rho": Spearman's rank correlation between them (None
              for fewer than 3 finite pairs or ties throughout)}``.
    """
    pairs = []
    for entry in arm["top"]:
        fresh = arm.get("fresh", {}).get(entry["expression"])
        if fresh is None:
            continue
        search, again = _number(entry["fitness"][-1]), _number(fresh["fitness"][-1])
        if math.isfinite(search) and math.isfinite(again):
            pairs.append((search, again))
    if not pairs:
        return {"gap": None, "rho": None}
    gap = statistics.fmean(s - f for s, f in pairs)
    rho = None
    if len(pairs) >= 3:
        from scipy import stats

        value = stats.spearmanr([s for s, _ in pairs], [f for _, f in pairs]).statistic
        rho = None if math.isnan(value) else float(value)
    return {"gap": gap, "rho": rho}


def _paired(differences):
    """:func:`paired_interval` over the seeds where both sides trained, and how many seeds that leaves."""
    finite = [value for value in differences if value is not None and math.isfinite(value)]
    return dict(paired_interval(finite), seeds=len(differences))


def _interval_text(summary, digits=4):
    if summary["mean"] is None:
        return "-"
    if summary.get("seeds", summary["n"]) != summary["n"]:
        return f"{_interval_text(dict(summary, seeds=summary['n']), digits)}, over {summary['n']} of {summary['seeds']} seeds"
    if summary["low"] is None:
        return f"{summary['mean']:+.{digits}f}"
    verdict = " (not distinguishable)" if interval_verdict(summary) == "indistinguishable" else ""
    return f"{summary['mean']:+.{digits}f} [{summary['low']:+.{digits}f}, {summary['high']:+.{digits}f}]{verdict}"


def _cell(value, digits=4):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _title(results, command, environment):
    first = results[0]
    arms = first["arms"]
    return [
        "# Benchmark: the thesis's Algorithm 1, NGL and ours, compared per seed",
        "",
        f"Command: `{command}`",
        "",
        "Environment: " + ", ".join(f"{k} {v}" for k, v in environment.items()),
        "",
        f"{len(results)} seed(s). Held-out numbers are test accuracies (the split no search saw) of each run's "
        f"final best, retrained under {first['confirm_seeds']} fresh training seeds that no search used, paired by "
        "seed with cross-entropy and with the other arms. Intervals are 95 % t intervals over the seeds of the "
        "paired differences; one that contains 0 is marked *not distinguishable*. "
        f"Final best: ours' confirmed best, the search's best for the others. "
        f"Top losses measured per run: {len(arms['ours']['top'])} (hall of fame).",
        "",
    ]


def _time_section(results):
    lines = ["## Wall time and trainings", "",
             "Search wall time in seconds (ours: search, then its confirmation); trainings = one model trained "
             "on one task; evaluations after generation 0 = children trained per generation (first seed).", "",
             "| seed | NGL time | thesis time | ours search | ours confirm | thesis / NGL | ours / NGL | "
             "(ours + confirm) / NGL | trainings NGL / thesis / ours | ours' children trained per generation |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    ratios = {"thesis": [], "ours": [], "ours_total": []}
    per_generation = []
    for r in results:
        a = r["arms"]
        ngl = a["ngl"]["wall_time"]
        ratios["thesis"].append(a["thesis"]["wall_time"] / ngl)
        ratios["ours"].append(a["ours"]["wall_time"] / ngl)
        ratios["ours_total"].append((a["ours"]["wall_time"] + a["ours"]["confirm_time"]) / ngl)
        children = a["ours"]["evaluations_after_0"]
        per_generation.append(statistics.fmean(children) if children else math.nan)
        lines.append(
            f"| {r['seed']} | {ngl:.1f} | {a['thesis']['wall_time']:.1f} | {a['ours']['wall_time']:.1f} | "
            f"{a['ours']['confirm_time']:.1f} | {ratios['thesis'][-1]:.3f} | {ratios['ours'][-1]:.3f} | "
            f"{ratios['ours_total'][-1]:.3f} | {a['ngl']['trainings']} / {a['thesis']['trainings']} / "
            f"{a['ours']['trainings']} | {per_generation[-1]:.2f} |")
    lines += ["", "| ratio | mean ± std over seeds | thesis's |", "|---|---|---|",
              f"| thesis / NGL wall time | {_mean_std(ratios['thesis'])} | 0.36 small, 0.42 large |",
              f"| ours / NGL wall time (search) | {_mean_std(ratios['ours'])} | |",
              f"| ours / NGL wall time (search + confirmation) | {_mean_std(ratios['ours_total'])} | |",
              f"| ours' children trained per generation after generation 0 | {_mean_std(per_generation)} | "
              f"N = 3P/8 |"]
    return lines


def _mean_std(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def _heldout_section(results):
    tasks = list(results[0]["arms"]["ours"]["heldout"])
    lines = ["## Held-out test accuracy of each run's final best", "",
             "Mean over tasks of the mean test accuracy over the fresh seeds.", "",
             "| seed | cross-entropy | thesis | NGL | ours | ours − NGL | thesis − NGL | ours − CE |",
             "|---|---|---|---|---|---|---|---|"]
    differences = {"ours": [], "thesis": [], "ce": []}
    for r in results:
        a = r["arms"]
        means = {arm: heldout_mean(a[arm]["heldout"]) if a[arm].get("heldout") else math.nan for arm in ARMS}
        ce = heldout_mean(a["ours"]["heldout"], reference=True)
        differences["ours"].append(means["ours"] - means["ngl"])
        differences["thesis"].append(means["thesis"] - means["ngl"])
        differences["ce"].append(means["ours"] - ce)
        lines.append(f"| {r['seed']} | {ce:.4f} | {means['thesis']:.4f} | {means['ngl']:.4f} | {means['ours']:.4f} | "
                     f"{differences['ours'][-1]:+.4f} | {differences['thesis'][-1]:+.4f} | "
                     f"{differences['ce'][-1]:+.4f} |")
    lines += ["", "Paired over the seeds (mean [95 % interval]; a seed where a final best did not train on every "
                  "fresh seed has no held-out value, `nan`, and is left out of the pairs it is in):", "",
              f"- ours − NGL: {_interval_text(_paired(differences['ours']))}",
              f"- thesis − NGL: {_interval_text(_paired(differences['thesis']))}",
              f"- ours − cross-entropy: {_interval_text(_paired(differences['ce']))}", "",
              "Per task, paired over the seeds:", "",
              "| task | ours − NGL | thesis − NGL | ours − CE | NGL − CE |", "|---|---|---|---|---|"]
    for task in tasks:
        cells = []
        for first, second in (("ours", "ngl"), ("thesis", "ngl"), ("ours", None), ("ngl", None)):
            values = []
            for r in results:
                a = r["arms"]
                left = _task_mean(a[first]["heldout"], task) if a[first].get("heldout") else math.nan
                right = (_task_mean(a[second]["heldout"], task) if a[second].get("heldout") else math.nan) \
                    if second else statistics.fmean(a["ours"]["heldout"][task]["ce"])
                values.append(left - right)
            cells.append(_interval_text(_paired(values)))
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return lines


def _equal_time_section(results):
    lines = ["## At equal wall time", "",
             "NGL's best after its last generation that ended within ours' whole wall time (search and "
             "confirmation), measured like the final bests.", "",
             "| seed | ours' wall time (s) | NGL's generation then | NGL then (held-out) | ours (held-out) | "
             "ours − NGL then |", "|---|---|---|---|---|---|"]
    ahead, differences = [], []
    for r in results:
        equal = r["equal_time"]
        ngl = heldout_mean(equal["heldout"])
        ours = heldout_mean(r["arms"]["ours"]["heldout"])
        differences.append(ours - ngl)
        if ours >= ngl:
            ahead.append(r["seed"])
        lines.append(f"| {r['seed']} | {equal['seconds']:.1f} | {equal['ngl_generation']} | {ngl:.4f} | "
                     f"{ours:.4f} | {ours - ngl:+.4f} |")
    lines += ["", f"Ours ≥ NGL at ours' wall time on {len(ahead)} of {len(results)} seed(s) "
                  f"({', '.join(map(str, ahead)) or 'none'}); paired difference "
                  f"{_interval_text(_paired(differences))}."]
    return lines


def _curse_section(results):
    lines = ["## The winner's curse", "",
             "Per run, its top losses' in-search improvement minus their improvement under the fresh seeds "
             "(validation data, the arm's own fitness), averaged over the top; and Spearman's rank correlation "
             "between the two among the top.", "",
             "| seed | gap thesis | gap NGL | gap ours | rho thesis | rho NGL | rho ours |",
             "|---|---|---|---|---|---|---|"]
    gaps = {arm: [] for arm in ARMS}
    rhos = {arm: [] for arm in ARMS}
    for r in results:
        measured = {arm: curse(r["arms"][arm]) for arm in ARMS}
        for arm in ARMS:
            gaps[arm].append(measured[arm]["gap"])
            rhos[arm].append(measured[arm]["rho"])
        lines.append(f"| {r['seed']} | " + " | ".join(_cell(measured[arm]["gap"]) for arm in ARMS) + " | "
                     + " | ".join(_cell(measured[arm]["rho"], 2) for arm in ARMS) + " |")
    lines += ["", "| arm | gap, mean ± std over seeds | rho, mean ± std over seeds |", "|---|---|---|"]
    for arm in ARMS:
        lines.append(f"| {ARM_LABELS[arm]} | {_mean_std(gaps[arm])} | {_mean_std(rhos[arm])} |")
    return lines


def _verdict_section(results):
    verdicts = [r["arms"]["ours"]["verdict"] for r in results]
    counts = {verdict: verdicts.count(verdict) for verdict in dict.fromkeys(verdicts)}
    lines = ["## Ours' verdicts", "",
             "What each run of ours told its user (\"better\": `use it`, the confirmed best beats cross-entropy on "
             "the held-out test split beyond seed noise):", ""]
    lines += [f"- {verdict}: {count} of {len(results)}" for verdict, count in counts.items()]
    lines += ["", "| seed | ours' final best | verdict |", "|---|---|---|"]
    lines += [f"| {r['seed']} | `{r['arms']['ours']['final']}` | {r['arms']['ours']['verdict']} |" for r in results]
    return lines


def _plot(path, results):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    FigureCanvasAgg(figure)  # a canvas of its own, so drawing never switches pyplot's global backend
    axis = figure.subplots()
    seeds = [r["seed"] for r in results]
    for arm, marker in zip(ARMS, "o^s"):
        values = [heldout_mean(r["arms"][arm]["heldout"]) if r["arms"][arm].get("heldout") else math.nan
                  for r in results]
        axis.plot(seeds, values, marker=marker, linestyle="none", label=ARM_LABELS[arm])
    axis.plot(seeds, [heldout_mean(r["arms"]["ours"]["heldout"], reference=True) for r in results], marker="x",
              linestyle="none", color="black", label="cross-entropy")
    axis.set_xlabel("seed")
    axis.set_ylabel("held-out test accuracy (mean of tasks)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def write_report(output, results, command, environment):
    """Write ``report.md`` and ``heldout.png`` from the per-seed results.

    :param output: the output directory.
    :param results: the list of per-seed result dicts.
    :param command: the command that produced the results (shown in the report).
    :param environment: a dict describing versions and machine.
    :returns: the path of ``report.md``.
    """
    output = pathlib.Path(output)
    _plot(output / "heldout.png", results)
    lines = (_title(results, command, environment) + _heldout_section(results) + [""] + _equal_time_section(results)
             + [""] + _time_section(results) + [""] + _curse_section(results) + [""] + _verdict_section(results)
             + ["", "Plot: `heldout.png`.", ""])
    report = output / "report.md"
    report.write_text("\n".join(lines))
    return report

"""The benchmark's report: ``report.md`` and its plots, from the per-seed results.

A per-seed result (``seed-<n>/result.json``) holds, for NGL (``"ngl"``) and
ours (``"sample-tournament"``), the totals of the run and a ``curve`` with one row per
generation.  Fitness values are ``(wins, average improvement)`` and compare
lexicographically (wins first); an improvement of ``-inf`` (or the string
``"-inf"`` after JSON) means that nothing trained.  Results written before the
trainability screen lack ``nrejected``, ``ncompleted``, ``validity`` and the
curve's ``best``: no rejection is counted for them, their completed share is
unknown, and the per-generation maxima stand in for the best.
"""

import itertools
import math
import pathlib
import statistics

from ..search.driver import ALGORITHMS, expected_evaluations

__all__ = ["THESIS_TIME_RATIO", "NGL", "OURS", "time_to_target", "equal_time", "write_plots", "write_report"]

#: The thesis's wall-time ratios (ours / NGL): 62,364 / 173,287 s and 426,915 / 1,013,739 s.
THESIS_TIME_RATIO = {"small": 62364 / 173287, "large": 426915 / 1013739}
#: The two algorithms' names in results (:data:`~deap_lossgp.search.driver.ALGORITHMS`).
NGL, OURS = "ngl", "sample-tournament"
_NAMES = {name: algorithm.label for name, algorithm in ALGORITHMS.items()}
_COLORS = {NGL: "tab:orange", OURS: "tab:blue"}
_FOUND_PREFIX = "best of"
_PLOTS = ("best_per_generation.png", "best_per_evaluation.png", "best_per_time.png", "time_to_target.png")


def _fitness(values):
    """A fitness as a tuple of floats (``float`` also parses the ``"-inf"`` that JSON holds)."""
    return tuple(float(value) for value in values)


def _best_so_far(algorithm):
    """The lexicographic best fitness after each generation of one algorithm's curve."""
    bests = []
    for row in algorithm["curve"]:
        best = _fitness(row.get("best", (row["wins_max"], row["improvement_max"])))
        # The running maximum is a no-op on the curve's "best"; it turns old results'
        # per-generation maxima into a best so far.
        bests.append(max(best, bests[-1]) if bests else best)
    return bests


def _cumulative(curve, field):
    return list(itertools.accumulate(row[field] for row in curve))


def _share(part, whole):
    return part / whole if whole else math.nan


def _completed_share(algorithm):
    """``ncompleted / nevals``, or ``None`` when the result predates the count or ran no training."""
    completed = algorithm.get("ncompleted")
    return None if completed is None or not algorithm["nevals"] else completed / algorithm["nevals"]


def _nothing_trained(algorithm):
    return algorithm.get("ncompleted") == 0


def time_to_target(result):
    """How far ours had to search, on one seed, to reach NGL's final best fitness.

    The target is NGL's final best; ours reaches it at the first generation
    whose best fitness is at least as good (lexicographically).  Ours' time and
    trainings are summed over its curve up to and including that generation,
    NGL's over its whole curve.

    :param result: a per-seed result dict.
    :returns: a dict with ``target`` (NGL's final best), ``generation`` (``None``
        if ours never reached it), ``best`` (ours' best then), ``time``,
        ``trainings``, NGL's totals ``ngl_generations``, ``ngl_time`` and
        ``ngl_trainings``, and ``generation_share``, ``time_share`` and
        ``trainings_share`` (ours' values over NGL's totals).  When ours never
        reached the target, every value after ``target`` except NGL's totals is
        ``None``.
    """
    ngl, ours = result[NGL], result[OURS]
    target = _fitness(ngl["best_fitness"])
    bests = _best_so_far(ours)
    index = next((i for i, best in enumerate(bests) if best >= target), None)
    totals = {
        "ngl_generations": ngl["curve"][-1]["gen"],
        "ngl_time": sum(row["time"] for row in ngl["curve"]),
        "ngl_trainings": sum(row["nevals"] for row in ngl["curve"]),
    }
    if index is None:
        reached = dict.fromkeys(("generation", "best", "time", "trainings"))
        shares = dict.fromkeys(("generation_share", "time_share", "trainings_share"))
    else:
        spent = ours["curve"][:index + 1]
        reached = {"generation": spent[-1]["gen"], "best": bests[index],
                   "time": sum(row["time"] for row in spent), "trainings": sum(row["nevals"] for row in spent)}
        shares = {"generation_share": _share(reached["generation"], totals["ngl_generations"]),
                  "time_share": _share(reached["time"], totals["ngl_time"]),
                  "trainings_share": _share(reached["trainings"], totals["ngl_trainings"])}
    return {"target": target, **reached, **totals, **shares}


def equal_time(result):
    """Both algorithms' best fitness, on one seed, when ours has finished.

    NGL's best is the best after its last generation that ended within ours'
    whole wall time (its generation 0 if none did): the two compared at the
    same cost.

    :param result: a per-seed result dict.
    :returns: a dict with ``time`` (ours' total wall time), ``ours`` (ours'
              final best), ``ngl`` (NGL's best by then) and ``ngl_generation``.
    """
    ngl, ours = result[NGL], result[OURS]
    budget = sum(row["time"] for row in ours["curve"])
    ends = _cumulative(ngl["curve"], "time")
    index = max([0] + [i for i, end in enumerate(ends) if end <= budget])
    return {"time": budget, "ours": _best_so_far(ours)[-1], "ngl": _best_so_far(ngl)[index],
            "ngl_generation": ngl["curve"][index]["gen"]}


def _equal_time_section(results):
    lines = [
        "## At equal wall time", "",
        "Ours' final best against NGL's best after its last generation that ended within ours' whole wall time.", "",
        "| seed | ours' wall time (s) | ours' final best | NGL's generation then | NGL's best then |",
        "|---|---|---|---|---|",
    ]
    compared = [(r, equal_time(r)) for r in results]
    for r, e in compared:
        lines.append(f"| {r['seed']} | {e['time']:.1f} | {_fitness_text(e['ours'])} | {e['ngl_generation']} "
                     f"| {_fitness_text(e['ngl'])} |")
    ahead = [r["seed"] for r, e in compared if e["ours"] >= e["ngl"]]
    return lines + ["", f"Ours at least as good as NGL at the same wall time on {len(ahead)} of {len(compared)} "
                        f"seed(s)" + (f" ({_seeds_text(ahead)})." if ahead else ".")]


def _mean_std(values):
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.fmean(values):.4g} ± {statistics.stdev(values):.2g}"


def _fitness_text(fitness):
    wins, improvement = _fitness(fitness)
    return f"({wins:g}, {improvement:.4f})"


def _ratio_text(value):
    if value is None:
        return "never"
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _seeds_text(seeds):
    seeds = list(seeds)
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(str(seed) for seed in seeds)


def _best_cell(algorithm):
    text = _fitness_text(algorithm["best_fitness"])
    return text + " (nothing trained)" if _nothing_trained(algorithm) else text


def _completed_cell(algorithm):
    share = _completed_share(algorithm)
    return "n/a" if share is None else f"{share:.3f} ({algorithm['ncompleted']} of {algorithm['nevals']})"


def _title(results, command, environment):
    modes = ", ".join(sorted({r.get("validity", "unknown") for r in results}))
    return [
        f"# Benchmark: eaSampleTournament (thesis Algorithm 1) against eaNGL, validity: {modes}", "",
        f"Command: `{command}`", "",
        "Environment: " + ", ".join(f"{k} {v}" for k, v in environment.items()), "",
    ]


def _per_seed_table(results):
    lines = [
        "## Per seed", "",
        "Time in seconds, from after the population copy; fitness = (wins, average improvement); evals = "
        "trainings run; rejected = children the trainability screen rejected without training; completed = "
        "share of the trainings spent on trees whose training completed on every task.", "",
        "| seed | time NGL | time ours | time ratio | evals NGL | evals ours | eval ratio | cache hits NGL / ours "
        "| rejected NGL / ours | completed NGL | completed ours | best NGL | best ours | gen reached NGL / ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n, s = r[NGL], r[OURS]
        lines.append(
            f"| {r['seed']} | {n['wall_time']:.1f} | {s['wall_time']:.1f} | {s['wall_time'] / n['wall_time']:.3f} "
            f"| {n['nevals']} | {s['nevals']} | {s['nevals'] / max(n['nevals'], 1):.3f} "
            f"| {n['ncached']} / {s['ncached']} | {n.get('nrejected', 0)} / {s.get('nrejected', 0)} "
            f"| {_completed_cell(n)} | {_completed_cell(s)} | {_best_cell(n)} | {_best_cell(s)} "
            f"| {n['generation_reached']} / {s['generation_reached']} |"
        )
    return lines + ["", _nothing_trained_line(results)]


def _nothing_trained_line(results):
    parts = []
    for key in (NGL, OURS):
        seeds = [r["seed"] for r in results if _nothing_trained(r[key])]
        parts.append(f"{_NAMES[key]} on {len(seeds)} of {len(results)} seed(s)"
                     + (f" ({_seeds_text(seeds)})" if seeds else ""))
    line = "Nothing completed training (marked `(nothing trained)`): " + "; ".join(parts) + "."
    unknown = [r["seed"] for r in results if "ncompleted" not in r[NGL] or "ncompleted" not in r[OURS]]
    if unknown:
        line += f" Unknown for {_seeds_text(unknown)} (results without completion counts)."
    return line


def _improvement_cell(results, key):
    """Mean ± std of the best improvements, saying how many ``-inf`` it leaves out."""
    values = [_fitness(r[key]["best_fitness"])[1] for r in results]
    failed = sum(not math.isfinite(value) for value in values)
    return _mean_std(values) + (f" (-inf on {failed} seed(s), left out)" if failed else "")


def _aggregate_table(results):

    def both(field):
        return " | ".join(_mean_std([field(r[key]) for r in results]) for key in (NGL, OURS))

    ratio_time = [r[OURS]["wall_time"] / r[NGL]["wall_time"] for r in results]
    ratio_evals = [r[OURS]["nevals"] / max(r[NGL]["nevals"], 1) for r in results]
    # Without generation 0 (both evaluate the same P initial trees) the expected ratio is N/P.
    later = {key: [sum(row["nevals"] for row in r[key]["curve"][1:]) for r in results] for key in (NGL, OURS)}
    ratio_later = [s / max(n, 1) for s, n in zip(later[OURS], later[NGL])]
    population, generations = results[0]["population"], results[0]["generations"]
    n_parents = ALGORITHMS[OURS].evaluations_per_generation(population)
    expected_all = expected_evaluations(OURS, population, generations) / expected_evaluations(NGL, population, generations)
    return [
        "## Aggregated", "", f"Over {len(results)} seed(s), mean ± std:", "",
        "| quantity | NGL | ours | ours / NGL | thesis (ours / NGL) |",
        "|---|---|---|---|---|",
        f"| wall time (s) | {both(lambda a: a['wall_time'])} | {_mean_std(ratio_time)} "
        f"| {THESIS_TIME_RATIO['small']:.2f} small, {THESIS_TIME_RATIO['large']:.2f} large |",
        f"| evaluations | {both(lambda a: a['nevals'])} | {_mean_std(ratio_evals)} "
        f"| expected (P+TN)/(P+TP) = {expected_all:.3f} before cache hits and rejections |",
        f"| evaluations after generation 0 | {_mean_std(later[NGL])} | {_mean_std(later[OURS])} "
        f"| {_mean_std(ratio_later)} | N/P = {n_parents / population:.3f} |",
        f"| evaluations saved by the cache | {both(lambda a: a['ncached'])} | | |",
        f"| children rejected by the screen | {both(lambda a: a.get('nrejected', 0))} | | |",
        f"| share of trainings that completed | {both(_completed_share)} | | |",
        f"| best wins | {both(lambda a: _fitness(a['best_fitness'])[0])} | | |",
        f"| best average improvement | {_improvement_cell(results, NGL)} | {_improvement_cell(results, OURS)} | | |",
        f"| generation of the best | {both(lambda a: a['generation_reached'])} | | |",
    ]


def _time_to_target_section(results):
    reached = [(r, time_to_target(r)) for r in results]
    lines = [
        "## Time to NGL's final best", "",
        "Target of a seed = NGL's final best fitness. Ours reaches it at the first generation whose best fitness "
        "is at least as good (wins first); its wall time (logbook times) and trainings are summed up to and "
        "including that generation. Shares are of NGL's totals over its whole run.", "",
        "| seed | target (NGL's final best) | ours' final best | generation | share of NGL's generations "
        "| wall time (s) | share of NGL's wall time | trainings | share of NGL's trainings |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r, t in reached:
        never = t["generation"] is None
        lines.append(
            f"| {r['seed']} | {_fitness_text(t['target'])} | {_fitness_text(r[OURS]['best_fitness'])} "
            f"| {'never' if never else t['generation']} | {_ratio_text(t['generation_share'])} "
            f"| {'never' if never else format(t['time'], '.1f')} | {_ratio_text(t['time_share'])} "
            f"| {'never' if never else t['trainings']} | {_ratio_text(t['trainings_share'])} |"
        )
    return lines + [""] + _time_to_target_summary(reached)


def _time_to_target_summary(reached):
    count = len(reached)
    never = [r["seed"] for r, t in reached if t["generation"] is None]
    median = statistics.median(math.inf if t["time_share"] is None else t["time_share"] for _, t in reached)
    median_text = "never" if math.isinf(median) else f"{median:.3f}"
    lines = [f"Median share of NGL's wall time that ours needed to reach the target: {median_text} "
             f"(never reached on {len(never)} of {count} seed(s), counted as +inf"
             + (f": {_seeds_text(never)}" if never else "") + ")."]
    worse = [r["seed"] for r, _ in reached if _fitness(r[OURS]["best_fitness"]) < _fitness(r[NGL]["best_fitness"])]
    lines.append(f"Ours' final best ≥ NGL's final best on {count - len(worse)} of {count} seed(s)"
                 + (f"; ours ends worse on {_seeds_text(worse)}." if worse else "."))
    initial = [r["seed"] for r, t in reached if t["generation"] == 0]
    if initial:
        lines.append(f"Reached at generation 0 on {_seeds_text(initial)}: the initial population, shared by both "
                     "algorithms, already held NGL's final best, so these seeds do not measure search speed.")
    return lines


def _best_losses(results):
    lines = ["## Best losses found", "", "| seed | algorithm | expression | formula |", "|---|---|---|---|"]
    for r in results:
        for key in (NGL, OURS):
            found = r[key]
            lines.append(f"| {r['seed']} | {_NAMES[key]} | `{found['best_expression']}` | `{found['best_formula']}` |")
    return lines


def _finite_mean(entry):
    return entry["mean"] if math.isfinite(entry["mean"]) else -math.inf


def _heldout_section(heldout):
    tasks = list(next(iter(heldout.values())))
    references = [label for label in heldout if not label.startswith(_FOUND_PREFIX)]
    lines = ["## Held-out test accuracy", "",
             "Mean ± std over training seeds; the search never saw this split. The best reference loss is, per "
             "task, the reference loss with the highest mean.", "",
             "| loss | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    for label, per_task in heldout.items():
        lines.append(f"| {label} | " + " | ".join(_mean_std(per_task[t]["values"]) for t in tasks) + " |")
    if not references:
        return lines
    best = {t: max(references, key=lambda label: _finite_mean(heldout[label][t])) for t in tasks}
    lines.append("| best reference loss | " + " | ".join(
        f"{_mean_std(heldout[best[t]][t]['values'])} ({best[t]})" for t in tasks) + " |")
    lines.append("")
    for label in heldout:
        if label.startswith(_FOUND_PREFIX):
            lines.append(_heldout_comparison(heldout, label, tasks, best))
    return lines


def _ahead_behind(found, reference):
    """+1 / -1 / 0: ``found`` ahead of / behind ``reference`` by more than the larger std, or neither."""
    gap = found["mean"] - reference["mean"]
    margin = max(found["std"], reference["std"])
    return (gap > margin) - (-gap > margin)


def _heldout_comparison(heldout, label, tasks, best):
    """One line: on how many tasks a found loss beats (or trails) the best reference loss and ``ce``."""
    against = {"the best reference loss": {t: heldout[best[t]][t] for t in tasks}}
    if "ce" in heldout:
        against["ce"] = heldout["ce"]
    parts = []
    for name, reference in against.items():
        outcome = {t: _ahead_behind(heldout[label][t], reference[t]) for t in tasks}
        ahead = [t for t in tasks if outcome[t] > 0]
        behind = [t for t in tasks if outcome[t] < 0]
        parts.append(f"ahead of {name} by more than one std on {len(ahead)} of {len(tasks)} task(s)"
                     + (f" ({', '.join(ahead)})" if ahead else "")
                     + f", behind it on {len(behind)}" + (f" ({', '.join(behind)})" if behind else ""))
    return f"- {label}: " + "; ".join(parts) + "."


def write_report(output, results, heldout, command, environment):
    """Write ``report.md`` and the plots from the per-seed results.

    :param output: the output directory.
    :param results: the list of per-seed result dicts.
    :param heldout: ``{label: {task: {"mean": m, "std": s, "values": [...]}}}`` as made by
        :func:`~deap_lossgp.app.benchmark.heldout_table` (labels of found losses start
        with ``"best of"``), or ``None``.
    :param command: the command that produced the results (shown in the report).
    :param environment: a dict describing versions and machine.
    :returns: the path of ``report.md``.
    """
    output = pathlib.Path(output)
    write_plots(output, results)
    lines = _title(results, command, environment) + _per_seed_table(results) + [""]
    lines += (_aggregate_table(results) + [""] + _time_to_target_section(results) + [""]
              + _equal_time_section(results) + [""] + _best_losses(results))
    if heldout:
        lines += [""] + _heldout_section(heldout)
    lines += ["", "Plots: " + ", ".join(f"`{name}`" for name in _PLOTS) + ".", ""]
    report = output / "report.md"
    report.write_text("\n".join(lines))
    return report


def _two_panels(xlabel):
    """A figure with wins on top and average improvement below, on a shared x axis."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 6))
    FigureCanvasAgg(figure)  # a canvas of its own, so drawing never switches pyplot's global backend
    axes = figure.subplots(2, 1, sharex=True)
    axes[0].set_ylabel("best wins")
    axes[1].set_ylabel("best average improvement")
    axes[1].set_xlabel(xlabel)
    for axis in axes:
        axis.grid(alpha=0.3)
    return figure, axes


def _draw(axes, xs, bests, key, label):
    """One algorithm's best-so-far steps on both panels (legend on top), skipping non-finite values."""
    for column, axis in enumerate(axes):
        points = [(x, best[column]) for x, best in zip(xs, bests) if math.isfinite(best[column])]
        if points:
            axis.step(*zip(*points), where="post", color=_COLORS[key], linewidth=0.8, alpha=0.6,
                      label=label if column == 0 else None)


def _save(figure, axes, path):
    for axis in axes:
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def _time_to_target_plot(path, results):
    figure, axes = _two_panels("cumulative wall time (s)")
    labelled = set()

    def label(text):
        """``text`` for the first artist of its kind only, so the legend lists each kind once."""
        first = text not in labelled
        labelled.add(text)
        return text if first else None

    for r in results:
        for key in (NGL, OURS):
            _draw(axes, _cumulative(r[key]["curve"], "time"), _best_so_far(r[key]), key, label(_NAMES[key]))
        t = time_to_target(r)
        if math.isfinite(t["target"][1]):
            axes[1].axhline(t["target"][1], color=_COLORS[NGL], linestyle="--", linewidth=0.6, alpha=0.4,
                            label=label("NGL's final best (target)"))
        if t["generation"] is not None:
            star = label("ours reaches the target")
            for column, axis in enumerate(axes):
                if math.isfinite(t["best"][column]):
                    axis.plot(t["time"], t["best"][column], marker="*", markersize=9, linestyle="none",
                              color=_COLORS[OURS], label=star if column == 0 else None)
    return _save(figure, axes, path)


def write_plots(output, results):
    """Plot the best fitness of both algorithms, one line per seed and algorithm.

    Each PNG has two panels, best wins on top and best average improvement
    below, against generations, cumulative trainings and cumulative wall time;
    ``time_to_target.png`` adds a star where ours reaches NGL's final best and
    a dashed line at each seed's target improvement.

    :param output: the output directory.
    :param results: the list of per-seed result dicts.
    :returns: the paths of the PNG files.
    """
    output = pathlib.Path(output)
    views = {
        "best_per_generation.png": ("generation", lambda curve: [row["gen"] for row in curve]),
        "best_per_evaluation.png": ("cumulative trainings", lambda curve: _cumulative(curve, "nevals")),
        "best_per_time.png": ("cumulative wall time (s)", lambda curve: _cumulative(curve, "time")),
    }
    paths = []
    for filename, (xlabel, xs) in views.items():
        figure, axes = _two_panels(xlabel)
        for key in (NGL, OURS):
            for index, r in enumerate(results):
                _draw(axes, xs(r[key]["curve"]), _best_so_far(r[key]), key, _NAMES[key] if index == 0 else None)
        paths.append(_save(figure, axes, output / filename))
    return paths + [_time_to_target_plot(output / "time_to_target.png", results)]

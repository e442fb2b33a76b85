"""Rerun the thesis's comparison with the NGL algorithm (its Algorithm 2).

For every seed: load (or train) the cross-entropy baselines, initialise one
population, copy it, run :func:`~deap_lossgp.algorithms.eaNGL` on the copy
and :func:`~deap_lossgp.algorithms.eaSampleTournament` on the original with
the same settings, each timed from after the copy.  Each algorithm has an
evaluator of its own, so neither profits from the other's evaluation cache.
Then the best loss each algorithm found, with cross-entropy, NGL, focal and
Baikal losses, is retrained with several seeds and measured on the held-out
test split, which the search never saw.

Everything is written to an output directory: ``seed-<n>/`` per seed (run
directories of both algorithms and a ``result.json``; a finished seed is not
run again, so a killed benchmark resumes), ``heldout.json``, ``report.md`` and
PNG plots.
"""

import copy
import json
import math
import pathlib
import random
import statistics
import time

import numpy

__all__ = ["THESIS_TIME_RATIO", "run_benchmark", "run_seed", "heldout_table", "write_report"]

#: The thesis's wall-time ratios (ours / NGL): 62,364 / 173,287 s and 426,915 / 1,013,739 s.
THESIS_TIME_RATIO = {"small": 62364 / 173287, "large": 426915 / 1013739}
#: Reference losses retrained beside the found ones.
HELDOUT_REFERENCES = ("ce", "ngl", "focal", "baikal")
_NAMES = {"ngl": "NGL (eaNGL)", "st": "ours (eaSampleTournament)"}


def _run_algorithm(name, population, seed, resolved, seed_dir, workers, backend):
    from deap import tools

    from . import algorithms
    from .fitness import LossFitness
    from .parallel import get_map
    from .rundir import RunDirectory, logbook_rows
    from .runner import fitness_statistics
    from .toolbox import make_toolbox

    search = resolved.search
    run = RunDirectory(seed_dir / name).create()
    fitness = LossFitness(preset=resolved.fitness, records_path=str(run.records))
    # Each algorithm draws from a stream of its own, so a resumed or reordered run is unchanged.
    random.seed(f"{seed}-{name}")
    numpy.random.seed(seed)
    halloffame = tools.HallOfFame(1)
    with get_map(backend, workers=workers) as mapper:
        toolbox = make_toolbox(search=search, fitness=fitness, map=mapper)
        common = dict(mutpb_subtree=search.mutpb_subtree, mutpb_point=search.mutpb_point, stats=fitness_statistics(),
                      halloffame=halloffame, verbose=False, checkpoint=str(run.checkpoint))
        started = time.perf_counter()
        if name == "ngl":
            population, logbook = algorithms.eaNGL(population, toolbox, search.generations,
                                                   cxpb_archive=search.crossover_pb, **common)
        else:
            population, logbook = algorithms.eaSampleTournament(population, toolbox, search.generations, **common)
        elapsed = time.perf_counter() - started
    run.write_logbook(logbook)
    best = run.write_best(halloffame[0])
    rows = logbook_rows(logbook)
    best_fitness = tuple(halloffame[0].fitness.values)
    reached = next(
        (row["gen"] for row in rows if (row["wins_max"], row["improvement_max"]) >= best_fitness), rows[-1]["gen"]
    )
    return {
        "wall_time": elapsed,
        "logbook_time": sum(row["time"] for row in rows),
        "nevals": sum(row["nevals"] for row in rows),
        "ncached": sum(row.get("ncached", 0) for row in rows),
        "best_fitness": list(best_fitness),
        "generation_reached": reached,
        "best_expression": best["expression"],
        "best_formula": best["formula"],
        "curve": [
            {"gen": row["gen"], "nevals": row["nevals"], "time": row["time"],
             "wins_max": row["wins_max"], "improvement_max": row["improvement_max"]}
            for row in rows
        ],
    }


def run_seed(seed, output, preset="quick", workers=None, backend="process", **overrides):
    """Run Algorithm 2 of the thesis for one seed (or load its finished result).

    :param seed: the seed of the initial population and of both searches.
    :param output: the benchmark's output directory.
    :param preset: preset name.
    :param workers: worker processes.
    :param backend: map backend.
    :param overrides: preset fields to override (population, generations, epochs...).
    :returns: the seed's result dict (also in ``seed-<n>/result.json``).
    """
    from .fitness import LossFitness
    from .presets import get_preset
    from .toolbox import make_toolbox

    seed_dir = pathlib.Path(output) / f"seed-{seed}"
    result_path = seed_dir / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    seed_dir.mkdir(parents=True, exist_ok=True)
    resolved = get_preset(preset, **overrides)
    fitness = LossFitness(preset=resolved.fitness)
    fitness.prepare()  # step 1: CE baselines, trained once and stored
    random.seed(seed)
    numpy.random.seed(seed)
    population = make_toolbox(search=resolved.search, fitness=fitness).population(n=resolved.search.population)
    baseline_copy = copy.deepcopy(population)  # step 3; timing starts after the copy
    result = {
        "seed": seed,
        "population": resolved.search.population,
        "generations": resolved.search.generations,
        "ngl": _run_algorithm("ngl", baseline_copy, seed, resolved, seed_dir, workers, backend),
        "st": _run_algorithm("st", population, seed, resolved, seed_dir, workers, backend),
    }
    temporary = result_path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(result, indent=2))
    temporary.replace(result_path)
    return result


def heldout_table(expressions, preset="quick", seeds=5, **overrides):
    """Retrain losses with several seeds and measure held-out test accuracy.

    :param expressions: ``{label: expression or Keras loss name}``.
    :param preset: preset whose tasks, model and training settings are used.
    :param seeds: number of training seeds (0..seeds-1).
    :param overrides: preset fields to override.
    :returns: ``{label: {task: {"mean": m, "std": s, "values": [...]}}}``.
    """
    from .expression import compile_loss
    from .fitness.datasets import load_task
    from .fitness.training import train_model
    from .losses import REFERENCE_LOSSES
    from .presets import get_preset

    config = get_preset(preset, **overrides).fitness
    table = {}
    for label, expression in expressions.items():
        table[label] = {}
        for task in config.resolved_tasks():
            data = load_task(task, seed=config.seed, validation_split=config.validation_split,
                             data_dir=config.data_dir)
            values = []
            for seed in range(seeds):
                loss = REFERENCE_LOSSES[expression] if expression in REFERENCE_LOSSES else compile_loss(expression)
                record = train_model(loss, data, chance_after=0, evaluate_test=True,
                                     **{**config.training_arguments(), "seed": seed})
                values.append(record.get("test_accuracy", float("nan")))
            finite = [v for v in values if math.isfinite(v)]
            table[label][task.name] = {
                "mean": statistics.fmean(finite) if finite else float("nan"),
                "std": statistics.stdev(finite) if len(finite) > 1 else 0.0,
                "values": values,
            }
    return table


def _mean_std(values):
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.fmean(values):.4g} ± {statistics.stdev(values):.2g}"


def write_report(output, results, heldout, command, environment):
    """Write ``report.md`` and the plots from the per-seed results.

    :param output: the output directory.
    :param results: the list of per-seed result dicts.
    :param heldout: the output of :func:`heldout_table` (or ``None``).
    :param command: the command that produced the results (shown in the report).
    :param environment: a dict describing versions and machine.
    :returns: the path of ``report.md``.
    """
    from .algorithms import default_n_parents

    output = pathlib.Path(output)
    _plots(output, results)
    lines = ["# Benchmark: eaSampleTournament (thesis Algorithm 1) against eaNGL", ""]
    lines += [f"Command: `{command}`", ""]
    lines += ["Environment: " + ", ".join(f"{k} {v}" for k, v in environment.items()), ""]
    lines += [
        "Per seed (time in seconds, from after the population copy; fitness = (wins, average improvement)):", "",
        "| seed | time NGL | time ours | time ratio | evals NGL | evals ours | eval ratio | cache hits NGL / ours "
        "| best NGL | best ours | gen reached NGL / ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        n, s = r["ngl"], r["st"]
        lines.append(
            f"| {r['seed']} | {n['wall_time']:.1f} | {s['wall_time']:.1f} | {s['wall_time'] / n['wall_time']:.3f} "
            f"| {n['nevals']} | {s['nevals']} | {s['nevals'] / max(n['nevals'], 1):.3f} "
            f"| {n['ncached']} / {s['ncached']} | ({n['best_fitness'][0]:g}, {n['best_fitness'][1]:.4f}) "
            f"| ({s['best_fitness'][0]:g}, {s['best_fitness'][1]:.4f}) "
            f"| {n['generation_reached']} / {s['generation_reached']} |"
        )
    ratio_time = [r["st"]["wall_time"] / r["ngl"]["wall_time"] for r in results]
    ratio_evals = [r["st"]["nevals"] / max(r["ngl"]["nevals"], 1) for r in results]
    # Without generation 0 (both evaluate the same P initial trees) the expected ratio is N/P.
    later = {key: [sum(row["nevals"] for row in r[key]["curve"][1:]) for r in results] for key in ("ngl", "st")}
    ratio_later = [s / max(n, 1) for s, n in zip(later["st"], later["ngl"])]
    population, generations = results[0]["population"], results[0]["generations"]
    n_parents = default_n_parents(population)
    expected_all = (population + generations * n_parents) / (population + generations * population)
    lines += [
        "", f"Aggregated over {len(results)} seed(s) (mean ± std):", "",
        "| quantity | NGL | ours | ours / NGL | thesis (ours / NGL) |",
        "|---|---|---|---|---|",
        f"| wall time (s) | {_mean_std([r['ngl']['wall_time'] for r in results])} "
        f"| {_mean_std([r['st']['wall_time'] for r in results])} | {_mean_std(ratio_time)} "
        f"| {THESIS_TIME_RATIO['small']:.2f} small, {THESIS_TIME_RATIO['large']:.2f} large |",
        f"| evaluations | {_mean_std([r['ngl']['nevals'] for r in results])} "
        f"| {_mean_std([r['st']['nevals'] for r in results])} | {_mean_std(ratio_evals)} "
        f"| expected (P+TN)/(P+TP) = {expected_all:.3f} before cache hits |",
        f"| evaluations after generation 0 | {_mean_std(later['ngl'])} | {_mean_std(later['st'])} "
        f"| {_mean_std(ratio_later)} | N/P = {n_parents / population:.3f} |",
        f"| evaluations saved by the cache | {_mean_std([r['ngl']['ncached'] for r in results])} "
        f"| {_mean_std([r['st']['ncached'] for r in results])} | | |",
        f"| best wins | {_mean_std([r['ngl']['best_fitness'][0] for r in results])} "
        f"| {_mean_std([r['st']['best_fitness'][0] for r in results])} | | |",
        f"| best average improvement | {_mean_std([r['ngl']['best_fitness'][1] for r in results])} "
        f"| {_mean_std([r['st']['best_fitness'][1] for r in results])} | | |",
        f"| generation of the best | {_mean_std([r['ngl']['generation_reached'] for r in results])} "
        f"| {_mean_std([r['st']['generation_reached'] for r in results])} | | |",
        "", "Best losses found:", "",
        "| seed | algorithm | expression | formula |", "|---|---|---|---|",
    ]
    for r in results:
        for key in ("ngl", "st"):
            lines.append(f"| {r['seed']} | {_NAMES[key]} | `{r[key]['best_expression']}` | `{r[key]['best_formula']}` |")
    if heldout:
        tasks = list(next(iter(heldout.values())))
        lines += ["", "Held-out test accuracy (mean ± std over training seeds; the search never saw this split):", "",
                  "| loss | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
        for label, per_task in heldout.items():
            lines.append(f"| {label} | " + " | ".join(
                _mean_std(per_task[t]["values"]) for t in tasks) + " |")
    lines += ["", "Plots: `best_per_generation.png`, `best_per_evaluation.png`, `best_per_time.png`.", ""]
    report = output / "report.md"
    report.write_text("\n".join(lines))
    return report


def _plots(output, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = {
        "best_per_generation.png": ("generation", lambda curve: [row["gen"] for row in curve]),
        "best_per_evaluation.png": ("cumulative evaluations", lambda curve: numpy.cumsum([row["nevals"] for row in curve])),
        "best_per_time.png": ("cumulative wall time (s)", lambda curve: numpy.cumsum([row["time"] for row in curve])),
    }
    colors = {"ngl": "tab:orange", "st": "tab:blue"}
    for filename, (xlabel, xs) in views.items():
        figure, axis = plt.subplots(figsize=(6, 4))
        for key in ("ngl", "st"):
            for index, r in enumerate(results):
                curve = r[key]["curve"]
                ys = numpy.maximum.accumulate([row["improvement_max"] for row in curve])
                axis.step(xs(curve), ys, where="post", color=colors[key], alpha=0.7,
                          label=_NAMES[key] if index == 0 else None)
        axis.set_xlabel(xlabel)
        axis.set_ylabel("best average improvement")
        axis.grid(alpha=0.3)
        axis.legend()
        figure.tight_layout()
        figure.savefig(output / filename, dpi=100)
        plt.close(figure)


def run_benchmark(output, preset="quick", seeds=(0,), workers=None, backend="process", heldout_seeds=5,
                  command="deap-lossgp benchmark", progress=print, **overrides):
    """Run the comparison for several seeds, then the held-out evaluation and the report.

    :param output: the output directory (finished seeds in it are reused).
    :param preset: preset name (``quick``, ``paper-small``, ``paper-large``).
    :param seeds: the seeds to run.
    :param workers: worker processes.
    :param backend: map backend.
    :param heldout_seeds: training seeds of the held-out evaluation (0 skips it).
    :param command: the command line shown in the report.
    :param progress: a function receiving progress messages.
    :param overrides: preset fields to override.
    :returns: the path of ``report.md``.
    """
    import platform

    import deap
    import keras

    from . import __version__

    output = pathlib.Path(output)
    output.mkdir(parents=True, exist_ok=True)
    environment = {
        "deap_lossgp": __version__, "deap": deap.__version__, "keras": keras.__version__,
        "python": platform.python_version(), "machine": f"{platform.machine()}, {_cores()} CPU cores, {_gpus()}",
    }
    results = []
    for seed in seeds:
        progress(f"seed {seed}: running eaNGL then eaSampleTournament ...")
        result = run_seed(seed, output, preset=preset, workers=workers, backend=backend, **overrides)
        progress(f"seed {seed}: time ratio {result['st']['wall_time'] / result['ngl']['wall_time']:.3f}, "
                 f"evaluations {result['st']['nevals']} / {result['ngl']['nevals']}")
        results.append(result)
        # A report after every seed, so a long benchmark can be read while it runs.
        write_report(output, results, None, command, environment)
    heldout = None
    if heldout_seeds:
        progress(f"held-out evaluation with {heldout_seeds} training seeds ...")
        best = {key: max(results, key=lambda r: tuple(r[key]["best_fitness"]))[key]["best_expression"]
                for key in ("st", "ngl")}
        expressions = {"best of eaSampleTournament": best["st"], "best of eaNGL": best["ngl"]}
        expressions.update({name: name for name in HELDOUT_REFERENCES})
        heldout_path = output / "heldout.json"
        cached = json.loads(heldout_path.read_text()) if heldout_path.exists() else {}
        if cached.get("expressions") == expressions and cached.get("seeds") == heldout_seeds:
            heldout = cached["table"]
        else:
            heldout = heldout_table(expressions, preset=preset, seeds=heldout_seeds, **overrides)
            heldout_path.write_text(json.dumps({"expressions": expressions, "seeds": heldout_seeds,
                                                "table": heldout}, indent=2))
    return write_report(output, results, heldout, command, environment)


def _cores():
    import os

    return os.cpu_count()


def _gpus():
    import tensorflow as tf

    count = len(tf.config.list_physical_devices("GPU"))
    return f"{count} GPU(s)" if count else "no GPU"

"""Rerun the thesis's comparison with the NGL algorithm (its Algorithm 2).

For every seed: load (or train) the cross-entropy baselines, initialise one
population, copy it, run :func:`~deap_lossgp.algorithms.eaNGL` on the copy
and :func:`~deap_lossgp.algorithms.eaSampleTournament` on the original with
the same settings, each timed from after the copy.  Both run through the one
search driver (:func:`~deap_lossgp.search.driver.run_search`), each in a run
directory and with an evaluation cache of its own, so neither profits from
the other's.
Then the best loss each algorithm found, with cross-entropy, NGL, focal and
Baikal losses, is retrained with several seeds and measured on the held-out
test split, which the search never saw.

Everything is written to an output directory: ``seed-<n>/`` per seed (run
directories of both algorithms and a ``result.json``; a finished seed is not
run again, so a killed benchmark resumes), ``heldout.json``, ``report.md`` and
PNG plots.
"""

import copy
import math
import pathlib
import statistics

from ..checks import json_dumps, json_loads
from .report import NGL, OURS, write_report

__all__ = ["run_benchmark", "run_seed", "heldout_table"]

#: Reference losses retrained beside the found ones.
HELDOUT_REFERENCES = ("ce", "ngl", "focal", "baikal")


def _run_algorithm(name, population, seed, config, seed_dir):
    from ..search.driver import NothingTrainedError, run_search
    from ..search.rundir import RunDirectory, logbook_rows, read_records

    run_dir = seed_dir / name
    try:
        # Each algorithm draws from a stream of its own, so a resumed or reordered run is unchanged.
        _, logbook, halloffame, best = run_search(run_dir, config, population=population, stream=name,
                                                  progress=False)
        elapsed = best["elapsed_seconds"]
    except NothingTrainedError as error:
        logbook, halloffame, best, elapsed = error.logbook, error.halloffame, None, error.elapsed_seconds
    rows = logbook_rows(logbook)
    best_fitness = tuple(halloffame[0].fitness.values)
    reached = next((row["gen"] for row in rows if tuple(row["best_max"]) >= best_fitness), rows[-1]["gen"])
    records = read_records(RunDirectory(run_dir).records)
    return {
        "wall_time": elapsed,
        "logbook_time": sum(row["time"] for row in rows),
        "nevals": sum(row["nevals"] for row in rows),
        "nrejected": sum(row["nrejected"] for row in rows),
        "ncached": sum(row["ncached"] for row in rows),
        "ncompleted": sum(record["status"] == "ok" for record in records),
        "best_fitness": list(best_fitness),
        "generation_reached": reached,
        "best_expression": best["expression"] if best else str(halloffame[0]),
        "best_formula": best["formula"] if best else None,
        "curve": [
            {"gen": row["gen"], "nevals": row["nevals"], "nrejected": row["nrejected"], "ncached": row["ncached"],
             "time": row["time"], "best": row["best_max"],
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
    from ..fitness import LossFitness
    from ..search.driver import initial_population, make_config, resolve_config

    seed_dir = pathlib.Path(output) / f"seed-{seed}"
    result_path = seed_dir / "result.json"
    if result_path.exists():
        return json_loads(result_path.read_text())
    seed_dir.mkdir(parents=True, exist_ok=True)
    configs = {name: make_config(preset, algorithm=name, seed=seed, backend=backend, workers=workers, **overrides)
               for name in (NGL, OURS)}
    fitness_config, search = resolve_config(configs[OURS])
    fitness = LossFitness(preset=fitness_config)
    fitness.prepare()  # step 1: CE baselines, trained once and stored
    population = initial_population(configs[OURS], fitness)
    baseline_copy = copy.deepcopy(population)  # step 3; timing starts after the copy
    result = {
        "seed": seed,
        "population": search.population,
        "generations": search.generations,
        "validity": fitness_config.validity,
        NGL: _run_algorithm(NGL, baseline_copy, seed, configs[NGL], seed_dir),
        OURS: _run_algorithm(OURS, population, seed, configs[OURS], seed_dir),
    }
    temporary = result_path.with_suffix(".json.tmp")
    temporary.write_text(json_dumps(result, indent=2))
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
    from ..gp.expression import compile_loss
    from ..fitness.datasets import load_task
    from ..fitness.training import train_model
    from ..gp.losses import REFERENCE_LOSSES
    from ..search.presets import get_preset

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

    from .. import __version__

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
        progress(f"seed {seed}: time ratio {result[OURS]['wall_time'] / result[NGL]['wall_time']:.3f}, "
                 f"evaluations {result[OURS]['nevals']} / {result[NGL]['nevals']}")
        results.append(result)
        # A report after every seed, so a long benchmark can be read while it runs.
        write_report(output, results, None, command, environment)
    heldout = None
    if heldout_seeds:
        progress(f"held-out evaluation with {heldout_seeds} training seeds ...")
        best = {key: max(results, key=lambda r: tuple(r[key]["best_fitness"]))[key]["best_expression"]
                for key in (OURS, NGL)}
        expressions = {"best of eaSampleTournament": best[OURS], "best of eaNGL": best[NGL]}
        expressions.update({name: name for name in HELDOUT_REFERENCES})
        heldout_path = output / "heldout.json"
        cached = json_loads(heldout_path.read_text()) if heldout_path.exists() else {}
        if cached.get("expressions") == expressions and cached.get("seeds") == heldout_seeds:
            heldout = cached["table"]
        else:
            heldout = heldout_table(expressions, preset=preset, seeds=heldout_seeds, **overrides)
            heldout_path.write_text(json_dumps({"expressions": expressions, "seeds": heldout_seeds,
                                                "table": heldout}, indent=2))
    return write_report(output, results, heldout, command, environment)


def _cores():
    import os

    return os.cpu_count()


def _gpus():
    import tensorflow as tf

    count = len(tf.config.list_physical_devices("GPU"))
    return f"{count} GPU(s)" if count else "no GPU"

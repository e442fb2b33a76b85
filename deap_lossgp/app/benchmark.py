"""The benchmark: runs of three arms compared per seed, on held-out data.

For every seed, three searches run from the same settings (preset,
generations, population) through the one driver
(:func:`~deap_lossgp.search.driver.run_search`), each in a run directory
and with an evaluation cache of its own:

``thesis``
    Algorithm 1 as the thesis writes it (:func:`~deap_lossgp.algorithms.eaSampleTournament`
    with the thesis's validity rule and Algorithm 3's averaging, one seed
    per candidate, no re-breeding, no racing, no confirmation).
``ngl``
    The NGL algorithm as the thesis describes it (:func:`~deap_lossgp.algorithms.eaNGL`),
    with the same rules; it starts from a copy of the thesis arm's initial
    population (the thesis's Algorithm 2; timing starts after the copy).
``ours``
    Algorithm 1 with our additions: the screened validity rule, re-breeding,
    racing over paired seeds, the mean improvement over all tasks, and the
    confirmation at the end (the preset's own ``ours`` settings).

Then every arm's final best (for ``ours`` the confirmed best; for the others
the search's best) is trained again under the same fresh seeds
(:func:`~deap_lossgp.search.confirm.confirm`, replicates the searches never
used) and measured on the test split, paired by seed with cross-entropy and
with the other arms.  The same trainings of each run's top 5 measure the
winner's curse: in-search fitness against fresh-seed fitness.  And NGL's
best at the moment ours ends (its last generation that ended within ours'
wall time, confirmation included) is measured the same way: the comparison
at equal wall time.

Everything is written to an output directory: ``seed-<n>/`` per seed (the
three run directories and ``result.json``; a finished seed is not run again,
so a killed benchmark resumes at the seed it was in, whose runs resume from
their checkpoints), ``report.md`` and a plot.
"""

import copy
import pathlib

from ..checks import json_dumps, json_loads
from .report import ARMS, write_report

__all__ = ["ARM_SETTINGS", "CURSE_TOP", "CURSE_SEEDS", "run_benchmark", "run_seed", "arm_configs"]

#: The fields each arm sets on top of the preset (``ours``: the preset's own ``ours`` mode).
ARM_SETTINGS = {
    "thesis": {"validity": "thesis", "averaging": "thesis", "rebreed": 0, "race_top": 0, "race_seeds": 1,
               "confirm_top": 0},
    "ngl": {"validity": "thesis", "averaging": "thesis", "rebreed": 0, "race_top": 0, "race_seeds": 1,
            "confirm_top": 0},
    "ours": {},
}
_ALGORITHMS = {"thesis": "sample-tournament", "ngl": "ngl", "ours": "sample-tournament"}
#: How many of a run's best the winner's curse is measured on.
CURSE_TOP = 5
#: The fresh seeds the winner's curse is measured with, for the members of
#: a top other than the final best (ours' confirmation measures its whole
#: top on every fresh seed).
CURSE_SEEDS = 2


def arm_configs(search_seed, preset="quick", backend="process", workers=None, confirm_seeds=5, **overrides):
    """The three arms' search configurations of one seed.

    :param search_seed: the search seed (``seed`` among *overrides* is the training seed).
    :param preset: the preset name.
    :param backend: the map backend.
    :param workers: worker processes.
    :param confirm_seeds: fresh seeds of the held-out measurement (and of ours' confirmation).
    :param overrides: preset fields for all arms (generations, population, epochs...).
    :returns: ``{arm: config}``.
    """
    from ..search.driver import make_config

    return {arm: make_config(preset, algorithm=_ALGORITHMS[arm], search_seed=search_seed, backend=backend,
                             workers=workers, **{**overrides, "confirm_seeds": confirm_seeds, **ARM_SETTINGS[arm]})
            for arm in ARMS}


def _run(run_dir, config, population, stream):
    """One arm's search; its summary and what the held-out measurement needs."""
    from ..gp.expression import to_string
    from ..search.driver import NothingTrainedError, run_search
    from ..search.rundir import RunDirectory, logbook_rows, read_records

    try:
        _, logbook, halloffame, best = run_search(run_dir, config, population=population, stream=stream,
                                                  progress=False)
        elapsed, confirm_seconds = best["elapsed_seconds"], best["confirm_seconds"]
    except NothingTrainedError as error:
        logbook, halloffame, best = error.logbook, error.halloffame, None
        elapsed, confirm_seconds = error.elapsed_seconds, 0.0
    rows = logbook_rows(logbook)
    records = read_records(RunDirectory(run_dir).records)
    trained = [record for record in records if record.get("tasks")]
    return {
        # The generations' own times: a run resumed after a kill still counts each generation once.
        "wall_time": sum(row["time"] for row in rows),
        "session_time": elapsed,
        "confirm_time": confirm_seconds,
        "nevals": sum(row["nevals"] for row in rows),
        "nraced": sum(row.get("nraced", 0) for row in rows),
        "nrejected": sum(row["nrejected"] for row in rows),
        "ncached": sum(row["ncached"] for row in rows),
        "trainings": sum(len(record["tasks"]) for record in trained),
        "evaluations_after_0": [row["nevals"] for row in rows[1:]],
        "best_fitness": list(halloffame[0].fitness.values),
        "verdict": best["verdict"] if best else "nothing trained",
        "final": best["expression"] if best else None,
        "top": [{"expression": to_string(member), "fitness": list(member.fitness.values)}
                for member in list(halloffame)[:CURSE_TOP]],
        "curve": [{"gen": row["gen"], "nevals": row["nevals"], "time": row["time"], "best": row["best_max"]}
                  for row in rows],
    }, halloffame


def _best_at(run_dir, curve, seconds):
    """NGL's best (expression, fitness, generation) after its last generation that ended within *seconds*."""
    from ..search.rundir import RunDirectory, read_records

    elapsed, generation = 0.0, 0
    for row in curve:
        if elapsed + row["time"] > seconds:
            break
        elapsed += row["time"]
        generation = row["gen"]
    # Records are written in evaluation order; a generation wrote nevals + nrejected of them.
    count = sum(row["nevals"] + row.get("nrejected", 0) for row in curve if row["gen"] <= generation)
    records = [record for record in read_records(RunDirectory(run_dir).records)[:count]
               if isinstance(record.get("fitness"), list)]
    best = max(records, key=lambda record: tuple(float(value) for value in record["fitness"]))
    return best["expression"], best["fitness"], generation


def _measure(trees, config, seeds, mapper, path):
    """Fresh-seed fitness and held-out test accuracy of *trees* (see :func:`confirm`)."""
    from ..search.confirm import confirm
    from ..search.driver import resolve_config

    fitness_config = resolve_config(config)[0]
    result = confirm(trees, fitness_config, seeds, mapper=mapper, records_path=str(path))
    return {summary["expression"]: summary for summary in result["candidates"]}


def _trees(expressions, fitnesses=None):
    from ..gp.expression import from_string
    from ..gp.primitives import make_pset
    from ..search.toolbox import LossIndividual

    pset = make_pset()
    trees = []
    for index, expression in enumerate(expressions):
        tree = LossIndividual(from_string(expression, pset))
        if fitnesses is not None:
            tree.fitness.values = tuple(float(value) for value in fitnesses[index])
        trees.append(tree)
    return trees


def _heldout(summary):
    """Per task, the mean test accuracy over the fresh seeds and its per-seed values."""
    return {name: {"values": task["test_accuracy"], "ce": task["ce_test_accuracy"]}
            for name, task in summary["tasks"].items()}


def run_seed(search_seed, output, preset="quick", workers=None, backend="process", confirm_seeds=5, **overrides):
    """Run the three arms for one seed and measure them (or load the finished result).

    :param search_seed: the search seed of every arm (``seed`` among *overrides* is the training seed).
    :param output: the benchmark's output directory.
    :param preset: preset name.
    :param workers: worker processes.
    :param backend: map backend.
    :param confirm_seeds: fresh training seeds of the held-out measurement.
    :param overrides: preset fields to override (population, generations, epochs...).
    :returns: the seed's result dict (also in ``seed-<n>/result.json``).
    """
    from ..fitness import LossEvaluator
    from ..search.driver import initial_population, resolve_config
    from ..search.parallel import get_map

    seed_dir = pathlib.Path(output) / f"seed-{search_seed}"
    result_path = seed_dir / "result.json"
    if result_path.exists():
        return json_loads(result_path.read_text())
    configs = arm_configs(search_seed, preset, backend, workers, confirm_seeds, **overrides)
    seed_dir.mkdir(parents=True, exist_ok=True)
    fitness = LossEvaluator(preset=resolve_config(configs["thesis"])[0])
    fitness.prepare()  # cross-entropy baselines, trained once and stored
    population = initial_population(configs["thesis"], fitness)
    ngl_population = copy.deepcopy(population)  # the thesis's Algorithm 2; timing starts after the copy
    result = {"seed": search_seed, "confirm_seeds": confirm_seeds, "arms": {}}
    halloffames = {}
    for arm, start in (("ngl", ngl_population), ("thesis", population), ("ours", None)):
        result["arms"][arm], halloffames[arm] = _run(seed_dir / arm, configs[arm], start, arm)

    with get_map(backend, workers=workers) as mapper:
        for arm in ARMS:
            summary = result["arms"][arm]
            if summary["final"] is None:
                summary["fresh"] = {}
                continue
            # The final best on every fresh seed; the rest of the top (the winner's curse) on CURSE_SEEDS of
            # them, except for ours, whose run confirmed its whole top on these seeds already (its records answer).
            others = [entry for entry in summary["top"] if entry["expression"] != summary["final"]]
            searched = next((entry["fitness"] for entry in summary["top"] if entry["expression"] == summary["final"]),
                            summary["best_fitness"])
            final = _trees([summary["final"]], [searched])
            path = seed_dir / arm / "confirmation.jsonl"
            measured = _measure(final + (_trees([e["expression"] for e in others], [e["fitness"] for e in others])
                                         if arm == "ours" else []), configs[arm], confirm_seeds, mapper, path)
            if arm != "ours" and others:
                measured.update(_measure(_trees([e["expression"] for e in others], [e["fitness"] for e in others]),
                                         configs[arm], min(CURSE_SEEDS, confirm_seeds), mapper, path))
            summary["fresh"] = {expression: {"fitness": entry["fitness"],
                                             "search_fitness": entry["search_fitness"]}
                                for expression, entry in measured.items()}
            summary["heldout"] = _heldout(measured[summary["final"]])
        ours_time = result["arms"]["ours"]["wall_time"] + result["arms"]["ours"]["confirm_time"]
        expression, fitness_value, generation = _best_at(seed_dir / "ngl", result["arms"]["ngl"]["curve"],
                                                         ours_time)
        measured = _measure(_trees([expression], [fitness_value]), configs["ngl"], confirm_seeds, mapper,
                            seed_dir / "ngl" / "confirmation.jsonl")
        result["equal_time"] = {"seconds": ours_time, "ngl_generation": generation, "ngl_expression": expression,
                                "heldout": _heldout(measured[expression])}
    temporary = result_path.with_suffix(".json.tmp")
    temporary.write_text(json_dumps(result, indent=2))
    temporary.replace(result_path)
    return result


def run_benchmark(output, preset="quick", seeds=(0,), workers=None, backend="process", confirm_seeds=5,
                  command="deap-lossgp benchmark", progress=print, **overrides):
    """Run the three arms for several seeds, measure them and write the report.

    :param output: the output directory (finished seeds in it are reused).
    :param preset: preset name (``quick``, ``paper-small``, ``paper-large``).
    :param seeds: the seeds to run.
    :param workers: worker processes.
    :param backend: map backend.
    :param confirm_seeds: fresh training seeds of the held-out measurement (>= 2).
    :param command: the command line shown in the report.
    :param progress: a function receiving progress messages.
    :param overrides: preset fields to override.
    :returns: the path of ``report.md``.
    """
    import os
    import platform

    from .._version import environment
    from ..fitness.runtime import import_tensorflow

    arm_configs(0, preset, backend, workers, confirm_seeds, **overrides)  # bad settings fail before any write
    gpus = len(import_tensorflow().config.list_physical_devices("GPU"))
    environment = dict(environment(frameworks=("keras", "tensorflow")),
                       machine=f"{platform.machine()}, {os.cpu_count()} CPU cores, {gpus or 'no'} GPU(s)")
    output = pathlib.Path(output)
    output.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in seeds:
        progress(f"seed {seed}: running NGL, the thesis's Algorithm 1 and ours, then the held-out measurement ...")
        result = run_seed(seed, output, preset=preset, workers=workers, backend=backend,
                          confirm_seeds=confirm_seeds, **overrides)
        arms = result["arms"]
        progress(f"seed {seed}: wall time ours / NGL {arms['ours']['wall_time'] / arms['ngl']['wall_time']:.3f}, "
                 f"thesis / NGL {arms['thesis']['wall_time'] / arms['ngl']['wall_time']:.3f}")
        results.append(result)
        # A report after every seed, so a long benchmark can be read while it runs.
        write_report(output, results, command, environment)
    return output / "report.md"

"""Run a whole search from a configuration: what ``deap-lossgp evolve`` does.

:func:`run_search` builds the fitness, the toolbox and the map backend from a
configuration dict, runs the chosen algorithm with a checkpoint in the run
directory (resuming if one exists), and writes the run directory's results
(see :mod:`deap_lossgp.rundir`).  A DEAP user writing their own script does
not need this module: it only wires together the public pieces.
"""

import platform
import random
import time

import numpy

from .rundir import RunDirectory, count_completed, describe_statuses, read_records

__all__ = ["ALGORITHMS", "make_config", "run_search", "expected_evaluations", "fitness_statistics", "ProgressMap",
           "NothingTrainedError"]

#: Command-line algorithm names -> functions of :mod:`deap_lossgp.algorithms`.
ALGORITHMS = {"sample-tournament": "eaSampleTournament", "ngl": "eaNGL"}


def make_config(preset="quick", algorithm="sample-tournament", seed=0, backend="process", workers=None, **overrides):
    """Validate and assemble a search configuration.

    :param preset: preset name (see :mod:`deap_lossgp.presets`).
    :param algorithm: ``"sample-tournament"`` (thesis Algorithm 1) or ``"ngl"``.
    :param seed: seed of the search (Python's and NumPy's global generators).
    :param backend: ``"serial"``, ``"process"`` or ``"scoop"``.
    :param workers: worker processes for ``"process"`` (default: CPU cores).
    :param overrides: preset fields to override (e.g. ``population=4``,
                      ``epochs=2``).
    :returns: a JSON-serialisable dict.
    :raises ValueError: on an unknown algorithm, preset or field, or a bad value.
    """
    from .parallel import BACKENDS
    from .presets import get_preset

    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    resolved = get_preset(preset, **overrides)  # validates every field now, not mid-run
    return {
        "preset": preset,
        "overrides": overrides,
        "algorithm": algorithm,
        "seed": int(seed),
        "backend": backend,
        "workers": workers,
        "resolved": {"fitness": resolved.fitness.to_dict(), "search": resolved.search.to_dict()},
        "versions": _versions(),
    }


def _versions():
    import deap

    from . import __version__

    return {"deap_lossgp": __version__, "deap": deap.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def expected_evaluations(algorithm, population, generations, n_parents=None):
    """How many evaluations a search runs at most (before cache hits).

    :param algorithm: ``"sample-tournament"`` or ``"ngl"``.
    :param population: population size P.
    :param generations: number of generations.
    :param n_parents: N for Algorithm 1 (default 3P/8).
    :returns: the count, for progress bars and ETAs.
    """
    from .algorithms import default_n_parents

    per_generation = population if algorithm == "ngl" else (n_parents or default_n_parents(population))
    return population + generations * per_generation


def fitness_statistics():
    """Statistics of the two fitness values, one logbook chapter each.

    :returns: a :class:`deap.tools.MultiStatistics` with chapters ``wins``
              and ``improvement``, each recording ``max`` and ``median``.
    """
    from deap import tools

    stats = tools.MultiStatistics(
        wins=tools.Statistics(lambda ind: ind.fitness.values[0]),
        improvement=tools.Statistics(lambda ind: ind.fitness.values[1]),
    )
    stats.register("max", numpy.max)
    stats.register("median", numpy.median)
    return stats


class ProgressMap:
    """Wrap a map backend to advance a progress bar as evaluations finish.

    Items are mapped in chunks of ``chunk`` (the number of workers), so the
    bar moves while a generation is evaluated and parallelism is kept.

    :param inner: the map to wrap.
    :param bar: a :class:`tqdm.tqdm` bar (or ``None`` for no bar).
    :param chunk: items per chunk.
    """

    def __init__(self, inner, bar, chunk):
        self.inner = inner
        self.bar = bar
        self.chunk = max(1, chunk)

    def __call__(self, function, iterable):
        """Map ``function`` over ``iterable`` with the wrapped map.

        :param function: the function to apply.
        :param iterable: the items.
        :returns: the list of results, in order.
        """
        items = list(iterable)
        results = []
        for start in range(0, len(items), self.chunk):
            results.extend(self.inner(function, items[start:start + self.chunk]))
            if self.bar is not None:
                self.bar.update(len(items[start:start + self.chunk]))
        return results

    def close(self):
        """Close the wrapped map.

        :returns: ``None``.
        """
        self.inner.close()


class NothingTrainedError(RuntimeError):
    """A search finished, but no candidate loss completed training.

    :func:`run_search` raises it instead of exporting a "best" loss that was
    never trained to the end (every evaluation was stopped, failed or
    rejected; see :func:`~deap_lossgp.rundir.count_completed`).  The run
    directory keeps ``config.json``, the checkpoint, ``evaluations.jsonl``
    and ``logbook.csv``, but gets no ``best.json`` or ``best_loss.py``; the
    search's results are kept on the exception, as attributes named like the
    parameters.

    :param statuses: ``status -> number of evaluations`` over the whole run.
    :param population: the final population.
    :param logbook: the search's :class:`deap.tools.Logbook`.
    :param halloffame: the search's :class:`deap.tools.HallOfFame`.

    .. attribute:: evaluations

       The number of evaluations of the run (cache hits excluded).
    """

    def __init__(self, statuses, population, logbook, halloffame):
        self.statuses = dict(statuses)
        self.evaluations = sum(self.statuses.values())
        self.population = population
        self.logbook = logbook
        self.halloffame = halloffame
        super().__init__(f"no candidate completed training ({describe_statuses(self.statuses)})")


def run_search(run_dir, config, progress=True, verbose=True):
    """Run (or resume) the search described by ``config`` in ``run_dir``.

    :param run_dir: the run directory (created if missing).
    :param config: a dict from :func:`make_config`.
    :param progress: show a progress bar over evaluations.
    :param verbose: print the logbook line of every generation.
    :returns: ``(population, logbook, halloffame, best_dict)``.
    :raises NothingTrainedError: if no evaluation of the run completed
                                 training (``logbook.csv`` is written, the
                                 best loss is not).
    """
    import os

    from deap import tools
    from tqdm.auto import tqdm

    from . import algorithms
    from .fitness import LossFitness
    from .parallel import get_map
    from .presets import get_preset
    from .toolbox import make_toolbox

    run = RunDirectory(run_dir).create()
    if not run.config.exists():
        run.write_config(config)
    preset = get_preset(config["preset"], **config["overrides"])
    search = preset.search
    fitness = LossFitness(preset=preset.fitness, records_path=str(run.records))
    # Baselines first, in this process, so workers never train them concurrently.
    fitness.prepare()

    random.seed(config["seed"])
    numpy.random.seed(config["seed"])
    workers = config["workers"] or os.cpu_count() or 1
    inner = get_map(config["backend"], workers=config["workers"])
    total = expected_evaluations(config["algorithm"], search.population, search.generations)
    bar = tqdm(total=total, desc="evaluations", unit="eval", disable=not progress, dynamic_ncols=True)
    mapper = ProgressMap(inner, bar, chunk=workers if config["backend"] != "serial" else 1)
    toolbox = make_toolbox(search=search, fitness=fitness, map=mapper)

    stats = fitness_statistics()
    halloffame = tools.HallOfFame(1)
    population = toolbox.population(n=search.population)
    algorithm = getattr(algorithms, ALGORITHMS[config["algorithm"]])
    started = time.perf_counter()
    try:
        kwargs = dict(mutpb_subtree=search.mutpb_subtree, mutpb_point=search.mutpb_point, stats=stats,
                      halloffame=halloffame, verbose=verbose, checkpoint=str(run.checkpoint))
        if config["algorithm"] == "ngl":
            kwargs["cxpb_archive"] = search.crossover_pb
        population, logbook = algorithm(population, toolbox, search.generations, **kwargs)
    finally:
        bar.close()
        mapper.close()
    run.write_logbook(logbook)
    # The whole run's records, so a resumed run counts what earlier sessions trained.
    completed, statuses = count_completed(read_records(run.records))
    if not completed:
        # The hall of fame still holds an individual, but it was never trained to the end.
        raise NothingTrainedError(statuses, population, logbook, halloffame)
    best = run.write_best(halloffame[0])
    best["elapsed_seconds"] = time.perf_counter() - started
    return population, logbook, halloffame, best


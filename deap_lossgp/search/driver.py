"""The one search driver: what ``deap-lossgp evolve`` and the benchmark run.

:func:`make_config` resolves a preset and its overrides once, into a
JSON-ready configuration that the run directory stores (``config.json``).
:func:`run_search` rebuilds everything from that configuration alone (never
from today's preset code, so a resumed run keeps its settings): the fitness,
the toolbox and the map backend; it runs the chosen algorithm with a
checkpoint in the run directory (resuming if one exists) and writes the run
directory's results (see :mod:`deap_lossgp.search.rundir`).  A DEAP user
writing their own script does not need this module: it only wires together
the public pieces.
"""

import dataclasses
import random
import time

import numpy

from .. import algorithms
from .._version import environment
from ..checks import check_int
from ..algorithms import default_n_parents
from ..fitness.config import FitnessConfig
from ..fitness.models import get_model_builder
from ..gp.expression import to_string
from .parallel import _MapBase
from .presets import SearchConfig, get_preset
from .rundir import RecordReplay, RunDirectory, count_completed, describe_statuses, read_records

__all__ = [
    "Algorithm",
    "ALGORITHMS",
    "make_config",
    "resolve_config",
    "initial_population",
    "run_search",
    "expected_evaluations",
    "search_seed",
    "fitness_statistics",
    "ProgressMap",
    "NothingTrainedError",
]


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A search algorithm under its one name.

    :param name: the name used by the CLI, ``config.json``, the benchmark's
                 results and reports.
    :param function: the ``eaX`` function of :mod:`deap_lossgp.algorithms`.
    :param label: how reports name it.
    """

    name: str
    function: object
    label: str

    def keywords(self, search):
        """The function's keyword arguments that a :class:`SearchConfig` fixes.

        :param search: a :class:`SearchConfig` (with ``inflight`` resolved, see :func:`make_config`).
        :returns: a dict.
        """
        keywords = {"mutpb_subtree": search.mutpb_subtree, "mutpb_point": search.mutpb_point}
        if self.name == "ngl":
            keywords["cxpb_archive"] = search.crossover_pb
        elif self.name == "sample-tournament":
            keywords.update(rebreed=search.rebreed, race_top=search.race_top, race_seeds=search.race_seeds)
        else:
            keywords["inflight"] = search.inflight
        return keywords

    def evaluations_per_generation(self, search):
        """How many children a generation evaluates (their first seed), about.

        :param search: a :class:`SearchConfig`.
        :returns: P for NGL, N = 3P/8 for the thesis's Algorithm 1 and its asynchronous variant.
        """
        if self.name == "ngl":
            return search.population
        return default_n_parents(search.population)


#: The algorithms by name.
ALGORITHMS = {
    "sample-tournament": Algorithm("sample-tournament", algorithms.eaSampleTournament, "ours (eaSampleTournament)"),
    "ngl": Algorithm("ngl", algorithms.eaNGL, "NGL (eaNGL)"),
    "async-sample-tournament": Algorithm("async-sample-tournament", algorithms.eaAsyncSampleTournament,
                                         "ours, asynchronous (eaAsyncSampleTournament)"),
}


def make_config(preset="quick", algorithm="sample-tournament", search_seed=0, backend="process", workers=None,
                scheduler=None, **overrides):
    """Validate and assemble a search configuration.

    :param preset: preset name (see :mod:`deap_lossgp.search.presets`).
    :param algorithm: ``"sample-tournament"`` (thesis Algorithm 1), ``"ngl"``
                      or ``"async-sample-tournament"`` (our asynchronous
                      variant; its result depends on ``inflight``).
    :param search_seed: seed of the search (Python's and NumPy's global
                        generators): the initial population and every
                        variation.  The training seed is the fitness
                        setting ``seed`` (``seed=...`` in *overrides*).
    :param backend: ``"serial"``, ``"process"``, ``"scoop"`` or ``"dask"``.
    :param workers: worker processes for ``"process"`` and for the local
                    cluster of ``"dask"`` (default: CPU cores), or the
                    trainings at once on an existing Dask cluster (default:
                    its workers).
    :param scheduler: ``"dask"`` only: an existing scheduler's address or
                      scheduler file (``None``: a local cluster); stored, so
                      ``resume`` joins it again.
    :param overrides: preset fields to override (e.g. ``population=4``,
                      ``epochs=2``, ``seed=1``, ``mode="thesis"``).
    :returns: a JSON-serialisable dict.
    :raises ValueError: on an unknown algorithm, preset or field, or a bad value.
    """
    from .parallel import check_backend, get_map

    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    check_backend(backend, scheduler)
    if workers is not None:
        check_int("workers", workers, 1)
    _check_seed(search_seed)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    mode = overrides.pop("mode", None)
    resolved = get_preset(preset, mode=mode, **overrides)  # validates every field now, not mid-run
    if resolved.search.inflight is None and algorithm == "async-sample-tournament":
        # Stored as a number, so a resume on a machine with another core count runs the same search.
        if backend == "process" and workers:
            count = workers
        else:
            with get_map(backend, workers=workers, scheduler=scheduler) as probe:  # an existing cluster: its workers
                count = probe.workers
        resolved = dataclasses.replace(resolved, search=resolved.search.replace(inflight=2 * count))
    get_model_builder(resolved.fitness.model)  # the user's own model path: imported now, to fail before the run
    return {
        "preset": preset,
        "overrides": dict(overrides, **({"mode": mode} if mode else {})),
        "algorithm": algorithm,
        "search_seed": int(search_seed),
        "backend": backend,
        "workers": workers,
        "scheduler": scheduler,
        "resolved": {"fitness": resolved.fitness.to_dict(), "search": resolved.search.to_dict()},
        "versions": environment(),
    }


def search_seed(config):
    """The search seed of a configuration (``seed`` in files written before it had that name).

    :param config: a dict from :func:`make_config` or a run's ``config.json``.
    :returns: the integer.
    :raises ValueError: if it is missing or out of range.
    """
    value = config.get("search_seed", config.get("seed"))
    _check_seed(value)
    return value


def _check_seed(seed):
    # NumPy's global generator takes seeds in [0, 2**32).
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"the search seed must be an integer in [0, 2**32), got {seed!r}")


def resolve_config(config):
    """The fitness and search settings a configuration stored.

    :param config: a dict from :func:`make_config` (e.g. a run's ``config.json``).
    :returns: ``(FitnessConfig, SearchConfig)``.
    :raises ValueError: if the configuration lacks them or holds invalid values.
    """
    resolved = config.get("resolved") if isinstance(config, dict) else None
    if not isinstance(resolved, dict) or not {"fitness", "search"} <= set(resolved):
        raise ValueError("the configuration has no 'resolved' fitness and search settings; "
                         "it was not written by make_config (start the run again with 'evolve')")
    return FitnessConfig.from_dict(resolved["fitness"]), SearchConfig.from_dict(resolved["search"])


def expected_evaluations(algorithm, search):
    """How many first-seed evaluations a search runs, about (racing's extra
    seeds, cache hits and rejections aside).

    :param algorithm: a name of :data:`ALGORITHMS`.
    :param search: a :class:`SearchConfig`.
    :returns: the count, for progress bars and ETAs.
    """
    return search.population + search.generations * ALGORITHMS[algorithm].evaluations_per_generation(search)


def fitness_statistics():
    """Statistics of the two fitness values, one logbook chapter each, and of the best.

    :returns: a :class:`deap.tools.MultiStatistics` with chapters ``wins``
              and ``improvement``, each recording ``max`` and ``median``, and
              ``best``, recording as ``max`` the population's best fitness
              ``[wins, improvement]`` (ranked wins first; both algorithms
              keep the best, so it is the best so far).
    """
    from deap import tools

    stats = tools.MultiStatistics(
        wins=tools.Statistics(lambda ind: ind.fitness.values[0]),
        improvement=tools.Statistics(lambda ind: ind.fitness.values[1]),
    )
    stats.register("max", numpy.max)
    stats.register("median", numpy.median)
    stats["best"] = tools.Statistics(lambda ind: tuple(ind.fitness.values))
    stats["best"].register("max", lambda fits: list(max(fits)))
    return stats


class ProgressMap(_MapBase):
    """Wrap a map backend to advance a progress bar as units of work finish.

    Every unit advances the bar when it completes, in whatever order, and
    the wrapper keeps the backend's ``submit``/``first_completed`` interface
    (and, through them, its call like :func:`map`), so :class:`~deap_lossgp.evaluation.Evaluation` still sends single
    trainings: nothing waits for a batch.

    :param inner: the map to wrap (from :func:`~deap_lossgp.search.parallel.get_map`).
    :param bar: a :class:`tqdm.tqdm` bar (or ``None`` for no bar).
    """

    def __init__(self, inner, bar):
        self.inner = inner
        self.bar = bar
        self.workers = inner.workers

    def submit(self, function, item):
        """Submit through the wrapped map.

        :param function: the function.
        :param item: its argument.
        :returns: the wrapped map's future.
        """
        return self.inner.submit(function, item)

    def first_completed(self, futures):
        """Wait for one of *futures* and advance the bar.

        :param futures: futures from :meth:`submit`.
        :returns: a finished future among them.
        """
        future = self.inner.first_completed(futures)
        if self.bar is not None:
            if self.bar.n >= self.bar.total:  # racing trains more than was foreseen
                self.bar.total = self.bar.n + 1
            self.bar.update(1)
        return future

    def close(self):
        """Close the wrapped map.

        :returns: ``None``.
        """
        self.inner.close()


class NothingTrainedError(RuntimeError):
    """A search finished, but no candidate loss completed training.

    :func:`run_search` raises it instead of exporting a "best" loss that was
    never trained to the end (every evaluation was stopped, failed or
    rejected; see :func:`~deap_lossgp.search.rundir.count_completed`).  The run
    directory keeps ``config.json``, the checkpoint, ``evaluations.jsonl``
    and ``logbook.csv``, but gets no ``best.json`` or ``best_loss.py``; the
    search's results are kept on the exception, as attributes named like the
    parameters.

    :param statuses: ``status -> number of evaluations`` over the whole run.
    :param population: the final population.
    :param logbook: the search's :class:`deap.tools.Logbook`.
    :param halloffame: the search's :class:`deap.tools.HallOfFame`.
    :param elapsed_seconds: the algorithm's wall time.

    .. attribute:: evaluations

       The number of evaluations of the run (cache hits excluded).
    """

    def __init__(self, statuses, population, logbook, halloffame, elapsed_seconds):
        self.statuses = dict(statuses)
        self.elapsed_seconds = elapsed_seconds
        self.evaluations = sum(self.statuses.values())
        self.population = population
        self.logbook = logbook
        self.halloffame = halloffame
        super().__init__(f"no candidate completed training ({describe_statuses(self.statuses)})")


def initial_population(config, fitness=None):
    """The initial population of a configuration's search, seeded by its ``seed``.

    :param config: a dict from :func:`make_config`.
    :param fitness: the evaluator whose validity rule random trees must pass
                    (default: a :class:`~deap_lossgp.fitness.LossEvaluator` of
                    the configuration).
    :returns: a list of P valid individuals.
    """
    from ..fitness import LossEvaluator
    from .toolbox import make_toolbox

    fitness_config, search = resolve_config(config)
    fitness = LossEvaluator(preset=fitness_config) if fitness is None else fitness
    random.seed(search_seed(config))
    numpy.random.seed(search_seed(config))
    return make_toolbox(search=search, fitness=fitness).population(n=search.population)


def run_search(run_dir, config, population=None, stream=None, progress=True, on_generation=None):
    """Run (or resume) the search described by ``config`` in ``run_dir``, then confirm its best.

    Everything is rebuilt from ``config`` (:func:`resolve_config`); it is
    written to ``config.json`` when the directory has none.  The algorithm
    runs in one call with a checkpoint in the run directory (resuming from
    it if it exists); after every generation its callback rewrites
    ``logbook.csv`` and ``hall_of_fame.csv``, so a running search can be read
    (``deap-lossgp show RUN``).  At the end the hall of fame's best
    ``confirm_top`` are confirmed on fresh seeds and the test split
    (:func:`~deap_lossgp.search.confirm.confirm`; ``confirmation.json``), and
    ``best.json`` and ``best_loss.py`` hold the confirmed best.

    :param run_dir: the run directory (created if missing).
    :param config: a dict from :func:`make_config` (or a run's ``config.json``).
    :param population: the initial population; default
                       :func:`initial_population` (it is seeded by the
                       configuration's search seed).
    :param stream: a label that reseeds Python's random stream after the
                   initial population exists (``"<seed>-<stream>"``), so
                   several algorithms started from one population draw
                   streams of their own, whatever their order.
    :param progress: show a progress bar over trainings (on resume it
                     starts at what earlier sessions trained).
    :param on_generation: called as ``on_generation(run, logbook,
                          halloffame)`` after each generation's files are
                          written (the first call of a resumed run follows
                          the checkpoint's last generation): the
                          :class:`~deap_lossgp.search.rundir.RunDirectory`,
                          the logbook so far and the
                          :class:`~deap_lossgp.search.halloffame.KeyedHallOfFame`.
    :returns: ``(population, logbook, halloffame, best_dict)``; ``best_dict``
              also holds ``elapsed_seconds`` (the algorithm's wall time in
              this session), ``confirm_seconds`` and ``confirmation`` (or
              ``None`` with ``confirm_top=0``).
    :raises NothingTrainedError: if no evaluation of the run completed
                                 training (``logbook.csv`` is written, the
                                 best loss is not).
    :raises ValueError: on an invalid configuration (before anything is
                        written), or a run directory whose checkpoint is
                        missing beside its records.
    :raises ~deap_lossgp.search.rundir.RunLockedError: if another process is
                                                      running the search.
    :raises OSError: if the run directory cannot be written (checked before
                     each generation's training).

    One process at a time runs a run directory (its lock).  A resumed run
    reuses the evaluations recorded since its checkpoint instead of training
    them again (:class:`~deap_lossgp.search.rundir.RecordReplay`).
    """
    from .parallel import get_map

    # Everything is checked before the run directory is touched.
    if config.get("algorithm") not in ALGORITHMS:
        raise ValueError(f"the configuration names the algorithm {str(config.get('algorithm'))[:40]!r}; use one of "
                         f"{', '.join(ALGORITHMS)} (in config.json's 'algorithm')")
    settings = resolve_config(config)
    search_seed(config)
    # The fitness setting owns TensorFlow's thread count; the map applies it in every worker (0: the map's share).
    inner = get_map(config["backend"], workers=config["workers"], tf_threads=settings[0].threads or "auto",
                    scheduler=config.get("scheduler"))  # refuses scoop outside python -m scoop
    run = RunDirectory(run_dir)
    if run.path.exists() and not run.path.is_dir():
        raise ValueError(f"{run.path} is a file, not a run directory; give a directory for the run")
    run.create()
    with run.lock():
        return _run_locked(run, config, settings, inner, population, stream, progress, on_generation)


class _Generations:
    """The per-generation callback the driver gives the algorithm: files, progress, the caller's callback."""

    def __init__(self, run, on_generation):
        self.run = run
        self.on_generation = on_generation

    def __call__(self, population, logbook, halloffame):
        from .halloffame import hall_of_fame_rows, write_hall_of_fame

        self.run.check_writable()  # before the next generation's training is spent
        self.run.write_logbook(logbook)
        records = read_records(self.run.records)
        write_hall_of_fame(self.run.hall_of_fame, hall_of_fame_rows(halloffame, records))
        if self.on_generation is not None:
            self.on_generation(self.run, logbook, halloffame)


def _trainings_done(records):
    # Trainings of the run so far, from its records (one per task of each trained evaluation).
    return sum(len(record.get("tasks") or {}) for record in records)


def _run_locked(run, config, settings, inner, population, stream, progress, on_generation):
    """:func:`run_search` in its locked run directory, with its resolved settings and map backend."""
    from tqdm.auto import tqdm

    from ..fitness import LossEvaluator
    from .halloffame import KeyedHallOfFame
    from .toolbox import make_toolbox

    fitness_config, search = settings
    algorithm = ALGORITHMS[config["algorithm"]]
    run.check_writable()
    if not run.config.exists():
        run.write_config(config)
    run.repair_records()
    records = read_records(run.records)
    if sum(record.get("replicate", 0) == 0 for record in records) > search.population \
            and not run.checkpoint.exists():
        # More first trainings than generation 0 makes (its racing adds replicates only): the checkpoint is gone.
        raise ValueError(
            f"{run.path} holds {len(records)} evaluation records but no checkpoint.pkl, so resuming would "
            f"restart the run; restore checkpoint.pkl (or rename checkpoint.pkl.prev to it), or start a new "
            f"run with 'deap-lossgp evolve --output <new directory>'"
        )
    fitness = LossEvaluator(preset=fitness_config, records_path=str(run.records))
    # Baselines first, in this process, so workers never train them concurrently.
    fitness.prepare()
    if population is None:
        population = initial_population(config, fitness)
    if stream is not None:
        random.seed(f"{search_seed(config)}-{stream}")
        numpy.random.seed(search_seed(config))

    # Trainings are the units of work: one per task of every evaluation (racing adds some: the total grows).
    tasks = len(fitness_config.tasks)
    total = expected_evaluations(algorithm.name, search) * tasks
    done = _trainings_done(records)
    bar = tqdm(total=max(total, done), initial=done, desc="trainings", unit="training", disable=not progress,
               dynamic_ncols=True)
    mapper = ProgressMap(inner, bar)
    toolbox = make_toolbox(search=search, fitness=fitness, map=mapper)
    # Evaluations that finished after the last checkpoint are answered from their records.
    replay = RecordReplay(records, fitness.key)
    toolbox.register("screen", replay.screen(toolbox.screen))
    toolbox.register("recorded", replay.recorded)

    halloffame = KeyedHallOfFame(search.hall_of_fame, key=getattr(toolbox, "key", None))
    started = time.perf_counter()
    confirmation, confirm_seconds = None, 0.0
    try:
        run.check_writable()
        population, logbook = algorithm.function(
            population, toolbox, search.generations, stats=fitness_statistics(), halloffame=halloffame,
            verbose=False, checkpoint=str(run.checkpoint),
            on_generation=_Generations(run, on_generation), **algorithm.keywords(search))
        elapsed = time.perf_counter() - started
        completed, statuses = count_completed(read_records(run.records))
        if completed and search.confirm_top:
            from .confirm import confirm

            confirm_started = time.perf_counter()
            finalists = [member for member in halloffame if numpy.isfinite(member.fitness.values[-1])]
            bar.total += len(finalists[:search.confirm_top]) * search.confirm_seeds * tasks
            confirmation = confirm(finalists[:search.confirm_top], fitness_config, search.confirm_seeds,
                                   mapper=mapper, records_path=str(run.confirmation_records))
            run.write_confirmation(confirmation)
            confirm_seconds = time.perf_counter() - confirm_started
        bar.total = bar.n  # it ends at its total, whatever racing, cache hits and rejections did
        bar.refresh()
    except BaseException:
        # Ctrl-C, SIGTERM (the CLI turns it into Ctrl-C) or an error: no worker outlives the search.
        inner.terminate()
        raise
    finally:
        bar.close()
        mapper.close()
    if not completed:
        # The hall of fame still holds an individual, but it was never trained to the end.
        raise NothingTrainedError(statuses, population, logbook, halloffame, elapsed)
    if confirmation is not None:
        first = confirmation["candidates"][0]["expression"]
        chosen = next(member for member in halloffame if to_string(member) == first)
    else:
        chosen = halloffame[0]
    best = run.write_best(chosen, confirmation)
    best["elapsed_seconds"] = elapsed
    best["confirm_seconds"] = confirm_seconds
    return population, logbook, halloffame, best

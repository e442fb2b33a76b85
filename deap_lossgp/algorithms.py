"""Evolutionary algorithms of the thesis, written the way DEAP writes
:func:`deap.algorithms.eaSimple`.

:func:`eaSampleTournament` is the thesis's Algorithm 1 (sample tournament plus
new-random-parent crossover); :func:`eaNGL` is its baseline, the GP algorithm
of the "Next Generation Loss" paper; :func:`eaAsyncSampleTournament`, our
extension for many workers, breeds with Algorithm 1's operators one child at
a time, as soon as there is room for it.  They use the same toolbox aliases,
so a comparison runs them on copies of one initial population and swaps only
the function::

    toolbox.register("select", selSampleTournament)              # G = 3P/4
    toolbox.register("mate", cxNewRandomParent, new_parent=toolbox.individual, pb=0.5)
    toolbox.register("mate_archive", cxNewRandomParent, new_parent=toolbox.individual, pb=1.0)  # NGL
    toolbox.register("mutate_subtree", gp.mutUniform, expr=toolbox.expr_mut, pset=pset)
    toolbox.register("mutate_point", mutOnePoint, pset=pset)
    fitness = LossEvaluator(...)
    toolbox.register("evaluate", fitness)
    toolbox.register("key", fitness.key)        # optional: evaluation cache
    toolbox.register("screen", fitness.screen)  # optional: reject before training
    toolbox.register("split", fitness.split)    # optional: one training per task as the unit of work

    population = toolbox.population(n=8)
    baseline = [toolbox.clone(ind) for ind in population]
    eaNGL(baseline, toolbox, ngen=4)
    eaSampleTournament(population, toolbox, ngen=4)

All three

* evaluate only individuals without a valid fitness, through ``toolbox.map``,
  never pay twice for an evaluation of equal keys (``toolbox.key``), and
  send nothing to be trained that ``toolbox.screen`` rejects, and, with
  ``toolbox.split`` and a map of :mod:`deap_lossgp.search.parallel`, send
  the workers single trainings rather than whole trees (see
  :class:`Evaluation`);
* record ``gen``, ``nevals`` (evaluations run: trainings), ``nrejected``
  (trees the screen rejected without training), ``ncached`` (evaluations
  saved by the cache), ``time`` (wall-clock seconds of the generation) and
  the *stats* fields in a :class:`deap.tools.Logbook`;
* write a checkpoint after every generation and resume from it when given
  ``checkpoint=path`` (see :mod:`deap_lossgp.checkpoint`; checkpoints are
  pickles, so resume only from files you trust).

All their randomness comes from Python's global :mod:`random` generator, as in
DEAP: seed it (``random.seed(n)``) for a reproducible search.
"""

import collections
import os
import random
import time
from operator import attrgetter

import numpy
from deap import tools

from .checks import check_int, check_probability
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .evaluation import Evaluation, _unwrap
from .gp.operators import default_sample_size

__all__ = ["eaSampleTournament", "eaNGL", "eaAsyncSampleTournament", "Evaluation", "default_n_parents", "LOG_FIELDS"]

#: Logbook fields written before the statistics' fields.
LOG_FIELDS = ["gen", "nevals", "nrejected", "ncached", "nraced", "time"]


def default_n_parents(population_size):
    """The thesis's number of parents per generation, N = G/2 = 3P/8.

    :param population_size: The population size P.
    :returns: ``max(1, G // 2)`` with G from
              :func:`~deap_lossgp.gp.operators.default_sample_size`.
    """
    return max(1, default_sample_size(population_size) // 2)


def eaSampleTournament(population, toolbox, ngen, n_parents=None, mutpb_subtree=0.3, mutpb_point=0.1,
                       stats=None, halloffame=None, verbose=__debug__, checkpoint=None, rebreed=0, race_top=0,
                       race_seeds=1, on_generation=None):
    """The thesis's efficiency-oriented GP (Algorithm 1): each generation only
    the best of a random sample of the population reproduce.

    :param population: A list of individuals (evolved in place).
    :param toolbox: A :class:`~deap.base.Toolbox` that contains the evolution
                    operators.
    :param ngen: The number of generations.
    :param n_parents: The number N of parents (and children) per generation;
                      default ``max(1, 3P/8)``, half of the thesis's sample
                      size G = 3P/4 (see :func:`default_n_parents`), with P
                      the length of *population*.
    :param mutpb_subtree: The probability M_ST of a subtree mutation of a child.
    :param mutpb_point: The probability M_N of a one-point mutation of a child.
    :param stats: A :class:`~deap.tools.Statistics` object that is updated
                  inplace, optional.
    :param halloffame: A :class:`~deap.tools.HallOfFame` object that will
                       contain the best individuals, optional.
    :param verbose: Whether or not to log the statistics.
    :param checkpoint: A file path, optional. The state is saved there after
                       every generation and, if the file exists when the
                       algorithm starts, the run resumes from it (a pickle:
                       only resume from files you trust; see
                       :mod:`deap_lossgp.checkpoint`).
    :param rebreed: How many times a child may be bred again, by the same
                    step with new random draws, when the screen rejects it
                    or the cache already knows it (our extension; ``0``, the
                    thesis's Algorithm 1, keeps every child as bred).  Each
                    attempt is counted (``nrejected``, ``ncached``).
    :param race_top: Racing (our extension): after the children are
                     evaluated, the *race_top* best of population and
                     children get more training seeds until each rests on
                     *race_seeds* (see :meth:`Evaluation.race`); counted in
                     the logbook's ``nraced``.  ``0`` for no racing.
    :param race_seeds: The most training seeds (replicates) a candidate
                       gets; ``1`` for no racing (the thesis).
    :param on_generation: Called as ``on_generation(population, logbook,
                          halloffame)`` after each generation's checkpoint
                          is written (on resume, first after the
                          checkpoint's last generation).
    :returns: The final population
    :returns: A :class:`~deap.tools.Logbook` with the statistics of the
              evolution
    :raises ValueError: on bad parameters or a missing toolbox alias.
    :raises ~deap_lossgp.checkpoint.CheckpointError: if *checkpoint* exists but
              is corrupt or was written by another algorithm or parameter set
              (the file is left untouched).

    The pseudocode goes as follow, with P the population size and N
    *n_parents* ::

        evaluate(population)
        for g in range(ngen):
            parents = select(population, N)
            offspring = []
            for parent in parents:
                child, = mate(clone(parent), parents)
                if random() < mutpb_subtree:
                    child, = mutate_subtree(child)
                if random() < mutpb_point:
                    child, = mutate_point(child)
                offspring.append(child)
            evaluate(offspring)
            population = best P of (population + offspring)

    The algorithm first evaluates the individuals of *population* with an
    invalid fitness. Each generation, ``toolbox.select(population, N)`` picks
    the parents: registered as
    :func:`~deap_lossgp.gp.operators.selSampleTournament` (its default
    ``sample_size`` is G = 3P/4 of the population it is given), it returns
    the N best of G individuals drawn uniformly. Every
    parent is cloned and crossed by ``toolbox.mate(child, parents)``:
    registered as :func:`~deap_lossgp.gp.operators.cxNewRandomParent` with
    ``pb`` = Cr = 0.5, the donor of the subtree is another parent with
    probability Cr, otherwise a new random tree. The child then undergoes
    ``toolbox.mutate_subtree`` with probability *mutpb_subtree* and
    ``toolbox.mutate_point`` with probability *mutpb_point* (each returning a
    1-tuple, as DEAP's mutations do). The N children are evaluated, the hall of
    fame is updated with them, and the P best individuals of parents and
    children form the next population (:func:`deap.tools.selBest`). Only the
    N children are evaluated each generation, where a generational algorithm
    evaluates about P.

    This function expects the :meth:`toolbox.select`, :meth:`toolbox.mate`,
    :meth:`toolbox.mutate_subtree`, :meth:`toolbox.mutate_point`,
    :meth:`toolbox.evaluate`, :meth:`toolbox.clone` and :meth:`toolbox.map`
    aliases to be registered in the toolbox (a :class:`~deap.base.Toolbox`
    provides ``clone`` and ``map``); ``toolbox.key`` and ``toolbox.screen``
    are used when present (see :class:`Evaluation`).
    """
    _check_aliases(toolbox, _SAMPLE_TOURNAMENT_ALIASES)
    size = _check_common(population, ngen, mutpb_subtree, mutpb_point)
    n_parents = _check_n_parents(n_parents, size)
    check_int("rebreed", rebreed, 0)
    check_int("race_top", race_top, 0)
    check_int("race_seeds", race_seeds, 1)
    params = {"population_size": size, "n_parents": n_parents,
              "mutpb_subtree": mutpb_subtree, "mutpb_point": mutpb_point}
    if rebreed or race_seeds > 1:  # absent for the thesis's settings, so older checkpoints still resume
        params.update(rebreed=rebreed, race_top=race_top, race_seeds=race_seeds)
    run = _Run("eaSampleTournament", params, population, toolbox, stats, halloffame, verbose, checkpoint, None,
               on_generation)

    run.racing = (race_top, race_seeds)
    for gen in range(run.start(), ngen + 1):
        started = time.perf_counter()
        parents = toolbox.select(population, n_parents)
        offspring, jobs = [], []
        for parent in parents:
            for attempt in range(rebreed + 1):
                (child,) = toolbox.mate(toolbox.clone(parent), parents)
                child = _mutate(child, toolbox, mutpb_subtree, mutpb_point)
                jobs.append(run.evaluate.submit(child))
                if jobs[-1].kind == "evaluated":
                    break
            offspring.append(child)

        counts = run.evaluate.finish(jobs)
        if halloffame is not None:
            halloffame.update(offspring)
        run.race(population + offspring)
        population[:] = tools.selBest(population + offspring, size)
        run.finish_generation(gen, counts, started)

    return population, run.logbook


def eaNGL(population, toolbox, ngen, cxpb_archive=0.5, mutpb_subtree=0.3, mutpb_point=0.1, reevaluate=False,
          archive=None, stats=None, halloffame=None, verbose=__debug__, checkpoint=None, on_generation=None):
    """The GP algorithm of the "Next Generation Loss" paper, as the thesis
    describes it (its baseline): the whole population reproduces every
    generation, and eliminated individuals go to an archive that supplies
    crossover partners.

    :param population: A list of individuals (evolved in place).
    :param toolbox: A :class:`~deap.base.Toolbox` that contains the evolution
                    operators (the same as for :func:`eaSampleTournament`).
    :param ngen: The number of generations.
    :param cxpb_archive: The probability that a child's crossover partner
                         comes from the archive rather than the population
                         (the sources do not give NGL's value; 0.5 mirrors
                         the thesis's Cr).
    :param mutpb_subtree: The probability of a subtree mutation of a child.
    :param mutpb_point: The probability of a one-point mutation of a child.
    :param reevaluate: Whether to evaluate the parents again at the end of
                       every generation, before the elimination, as the
                       thesis's summary of NGL says ("the fitness value of all
                       individuals was re-evaluated"). Default ``False``: a
                       fitness trained with fixed seeds returns the same value
                       again, so it would only cost P more trainings per
                       generation; and the thesis's timing ratio (ours takes
                       36-42 % of NGL's time, close to N/P = 3/8) matches NGL
                       evaluating about P trees per generation, not 2P. When
                       ``True``, the parents are evaluated again past the
                       evaluation cache (``refresh=True`` of
                       :class:`Evaluation`; counted in ``nevals``)
                       and take the new values, for a noisy fitness.
    :param archive: A list that receives the eliminated individuals (the
                    archive), optional; pass your own list to inspect it
                    after the run. It is extended in place, by P individuals
                    per generation, and saved in the checkpoint.
    :param stats: A :class:`~deap.tools.Statistics` object that is updated
                  inplace, optional.
    :param halloffame: A :class:`~deap.tools.HallOfFame` object that will
                       contain the best individuals, optional.
    :param verbose: Whether or not to log the statistics.
    :param checkpoint: A file path, optional; see :func:`eaSampleTournament`.
                       The archive is saved too.
    :param on_generation: Called after each generation's checkpoint, as
                          for :func:`eaSampleTournament`.
    :returns: The final population
    :returns: A :class:`~deap.tools.Logbook` with the statistics of the
              evolution
    :raises ValueError: on bad parameters.
    :raises ~deap_lossgp.checkpoint.CheckpointError: if *checkpoint* exists but
              is corrupt or was written by another algorithm or parameter set.

    The pseudocode goes as follow, with P the population size ::

        evaluate(population)
        for g in range(ngen):
            offspring = []
            for ind in population:
                from_archive = random() < cxpb_archive
                mates = archive if from_archive and archive else population
                child, = mate_archive(clone(ind), mates)
                if random() < mutpb_subtree:
                    child, = mutate_subtree(child)
                if random() < mutpb_point:
                    child, = mutate_point(child)
                offspring.append(child)
            evaluate(offspring)
            if reevaluate:
                evaluate(population)
            ranked = sort (population + offspring) by fitness, best first
            population = ranked[:P]
            archive += ranked[P:]

    Every member of the population is cloned and crossed over once per
    generation. The partner comes from the archive with probability
    *cxpb_archive* (once the archive is not empty), otherwise from the
    population; the random number is drawn either way, so the random stream
    does not depend on the archive's size. The child is crossed by
    ``toolbox.mate_archive(child, mates)``: registered as
    :func:`~deap_lossgp.gp.operators.cxNewRandomParent` with ``pb=1.0``, it
    always draws its donor from *mates* (falling back to a new random tree
    only when *mates* holds nothing but copies of the child), so NGL's
    crossover is a subtree crossover with an archived or a current
    individual, never with a new random tree. Mutation is as in :func:`eaSampleTournament`. The P
    children are evaluated, the hall of fame is updated, and the lowest-scoring
    P of parents and children move to the archive, which keeps the population
    size. NGL thus evaluates P new trees per generation where
    :func:`eaSampleTournament` evaluates N = 3P/8.

    This function expects the :meth:`toolbox.mate_archive`,
    :meth:`toolbox.mutate_subtree`, :meth:`toolbox.mutate_point`,
    :meth:`toolbox.evaluate`, :meth:`toolbox.clone` and :meth:`toolbox.map`
    aliases to be registered in the toolbox; ``toolbox.key`` and
    ``toolbox.screen`` are used when present.
    """
    _check_aliases(toolbox, _NGL_ALIASES)
    size = _check_common(population, ngen, mutpb_subtree, mutpb_point)
    check_probability("cxpb_archive", cxpb_archive)
    if archive is None:
        archive = []
    params = {"population_size": size, "cxpb_archive": cxpb_archive, "mutpb_subtree": mutpb_subtree,
              "mutpb_point": mutpb_point, "reevaluate": bool(reevaluate)}
    run = _Run("eaNGL", params, population, toolbox, stats, halloffame, verbose, checkpoint, archive, on_generation)

    for gen in range(run.start(), ngen + 1):
        started = time.perf_counter()
        offspring = []
        for ind in population:
            # Always draw, so the random stream does not depend on the archive.
            from_archive = random.random() < cxpb_archive
            mates = archive if from_archive and archive else population
            (child,) = toolbox.mate_archive(toolbox.clone(ind), mates)
            offspring.append(_mutate(child, toolbox, mutpb_subtree, mutpb_point))

        counts = run.evaluate(offspring)
        if reevaluate:
            again = run.evaluate(population, refresh=True)
            counts = tuple(a + b for a, b in zip(counts, again))
        if halloffame is not None:
            halloffame.update(offspring)
        ranked = sorted(population + offspring, key=attrgetter("fitness"), reverse=True)
        population[:] = ranked[:size]
        archive.extend(ranked[size:])
        run.finish_generation(gen, counts, started)

    return population, run.logbook


def eaAsyncSampleTournament(population, toolbox, ngen, n_parents=None, mutpb_subtree=0.3, mutpb_point=0.1,
                            inflight=None, stats=None, halloffame=None, verbose=__debug__, checkpoint=None,
                            on_generation=None):
    """An asynchronous, steady-state variant of :func:`eaSampleTournament`
    for many workers: a child is bred and sent as soon as there is room,
    instead of waiting for a whole generation.

    This is our extension, not the thesis's algorithm: the thesis's
    generation of N = 3P/8 children keeps at most N x T workers busy (T
    tasks per evaluation), and each generation waits for its slowest
    training.  Here up to *inflight* children are being trained at any
    time, and a new one is bred as soon as an older one enters the
    population.

    :param population: A list of individuals (evolved in place).
    :param toolbox: A :class:`~deap.base.Toolbox` with the aliases of
                    :func:`eaSampleTournament`.
    :param ngen: The number of generations: the run breeds and evaluates
                 ``ngen * n_parents`` children, as many as
                 :func:`eaSampleTournament`, and records the logbook (and
                 writes the checkpoint) after every *n_parents* of them.
    :param n_parents: N, as for :func:`eaSampleTournament` (default 3P/8).
    :param mutpb_subtree: The probability M_ST of a subtree mutation of a child.
    :param mutpb_point: The probability M_N of a one-point mutation of a child.
    :param inflight: How many bred children at most await a training
                     (children the screen rejects or the cache answers do
                     not count); default twice the map's ``workers`` (the
                     maps of :mod:`deap_lossgp.search.parallel` have it; 1
                     for other maps).  Part of the result, see below.
    :param stats: A :class:`~deap.tools.Statistics` object that is updated
                  inplace, optional.
    :param halloffame: A :class:`~deap.tools.HallOfFame` object that will
                       contain the best individuals, optional.
    :param verbose: Whether or not to log the statistics.
    :param checkpoint: A file path, optional; see :func:`eaSampleTournament`.
                       The children being evaluated are saved too, and
                       evaluated again on resume.
    :param on_generation: Called after each generation's checkpoint, as
                          for :func:`eaSampleTournament`.
    :returns: The final population
    :returns: A :class:`~deap.tools.Logbook` with the statistics of the
              evolution (one record per *n_parents* children)
    :raises ValueError: on bad parameters.
    :raises ~deap_lossgp.checkpoint.CheckpointError: if *checkpoint* exists but
              is corrupt or was written by another algorithm or parameter set
              (a different *inflight* included).

    The pseudocode goes as follow, with P the population size, N
    *n_parents* and E *inflight* ::

        evaluate(population)
        pending = []                        # bred children not applied yet, in submission order
        while fewer than ngen * N children applied:
            while (children of pending to be trained) < E and fewer than ngen * N bred:
                parents = select(population, N)
                child, = mate(clone(random.choice(parents)), parents)
                mutate child as in eaSampleTournament
                submit(child); pending.append(child)
            child = pending.pop(0); wait for its fitness
            population = best P of (population + [child])

    Reproducibility rule: children are bred in submission order from the
    population as it is when they are submitted, and results are applied in
    submission order; after each application, children are bred until E
    pending children need training (whether a child needs training, or the
    screen or the cache answers it, is known when it is submitted).  So
    which results a child was bred from never depends on the order in which
    trainings complete: for a fixed seed and *inflight* (thus a fixed number
    of workers) the run is the same under every map backend and after a kill
    and resume.  The price: a child that finishes early waits for the older
    ones before it enters the population, and the E - 1 younger children in
    training were bred without knowing it.  The units of all pending children (one
    training per task with ``toolbox.split``) share the workers, so while
    the oldest child's last training runs the younger ones' fill the others.

    Each child is bred by the thesis's operators: ``toolbox.select`` (the
    sample tournament, returning the N best of G random individuals), a
    random one of those N crossed by ``toolbox.mate`` with the N as mates
    (another of them with probability Cr, else a new random tree), then
    ``toolbox.mutate_subtree`` and ``toolbox.mutate_point`` with their
    probabilities.  The population keeps the P best, as in Algorithm 1.
    """
    _check_aliases(toolbox, _SAMPLE_TOURNAMENT_ALIASES)
    size = _check_common(population, ngen, mutpb_subtree, mutpb_point)
    n_parents = _check_n_parents(n_parents, size)
    if inflight is None:
        inflight = 2 * getattr(_unwrap(toolbox.map), "workers", 1)
    check_int("inflight", inflight, 1)
    params = {"population_size": size, "n_parents": n_parents, "mutpb_subtree": mutpb_subtree,
              "mutpb_point": mutpb_point, "inflight": inflight}
    run = _Run("eaAsyncSampleTournament", params, population, toolbox, stats, halloffame, verbose, checkpoint, None,
               on_generation)

    gen = run.start()
    pending = collections.deque((child, run.evaluate.submit(child)) for child in run.pending)
    applied = (gen - 1) * n_parents
    bred = applied + len(pending)
    total = ngen * n_parents
    finished = []
    started = time.perf_counter()
    while applied < total:
        while sum(job.kind == "evaluated" for _, job in pending) < inflight and bred < total:
            parents = toolbox.select(population, n_parents)
            (child,) = toolbox.mate(toolbox.clone(random.choice(parents)), parents)
            child = _mutate(child, toolbox, mutpb_subtree, mutpb_point)
            pending.append((child, run.evaluate.submit(child)))
            bred += 1
        child, job = pending.popleft()
        run.evaluate.wait(job)
        finished.append(job)
        if halloffame is not None:
            halloffame.update([child])
        population[:] = tools.selBest(population + [child], size)
        applied += 1
        if applied % n_parents == 0:
            run.pending = [child for child, _ in pending]
            run.finish_generation(applied // n_parents, Evaluation.counts(finished), started)
            finished = []
            started = time.perf_counter()

    return population, run.logbook


def _mutate(child, toolbox, mutpb_subtree, mutpb_point):
    """Apply each mutation with its probability and invalidate the fitness."""
    if random.random() < mutpb_subtree:
        (child,) = toolbox.mutate_subtree(child)
    if random.random() < mutpb_point:
        (child,) = toolbox.mutate_point(child)
    del child.fitness.values
    return child


def _check_n_parents(n_parents, size):
    if n_parents is None:
        return default_n_parents(size)
    if isinstance(n_parents, bool) or not isinstance(n_parents, int) or not 1 <= n_parents <= size:
        raise ValueError(
            f"n_parents must be an integer between 1 and the population size {size}, got {n_parents!r}; "
            f"leave it None for the thesis's 3P/8"
        )
    return n_parents


# Each alias an algorithm calls, with the registration that provides it (a DEAP script may lack one).
_REGISTRATIONS = {
    "select": 'toolbox.register("select", selSampleTournament)',
    "mate": 'toolbox.register("mate", cxNewRandomParent, new_parent=toolbox.individual, pb=0.5)',
    "mate_archive": 'toolbox.register("mate_archive", cxNewRandomParent, new_parent=toolbox.individual, pb=1.0)',
    "mutate_subtree": 'toolbox.register("mutate_subtree", gp.mutUniform, expr=toolbox.expr_mut, pset=pset)',
    "mutate_point": 'toolbox.register("mutate_point", mutOnePoint, pset=pset)',
    "evaluate": 'toolbox.register("evaluate", LossEvaluator(preset="quick"))',
}
_SAMPLE_TOURNAMENT_ALIASES = ("select", "mate", "mutate_subtree", "mutate_point", "evaluate")
_NGL_ALIASES = ("mate_archive", "mutate_subtree", "mutate_point", "evaluate")


def _check_aliases(toolbox, names):
    for name in names:
        if not callable(getattr(toolbox, name, None)):
            raise ValueError(f"the toolbox has no {name!r} alias, which this algorithm calls; "
                             f"register it first: {_REGISTRATIONS[name]}")


def _check_common(population, ngen, mutpb_subtree, mutpb_point):
    if len(population) == 0:
        raise ValueError("the population is empty; create it with toolbox.population(n=...)")
    check_int("ngen", ngen, 0)
    check_probability("mutpb_subtree", mutpb_subtree)
    check_probability("mutpb_point", mutpb_point)
    return len(population)


# What _Run._state saves, all of which a resume needs.
_STATE_KEYS = ("algorithm", "params", "generation", "population", "halloffame", "logbook", "archive",
               "random_state", "numpy_random_state", "cache")


class _Run:
    """Logbook, statistics, hall of fame and checkpoint bookkeeping shared by
    the algorithms."""

    def __init__(self, algorithm, params, population, toolbox, stats, halloffame, verbose, checkpoint, archive,
                 on_generation=None):
        self.algorithm = algorithm
        self.params = dict(params, halloffame_size=None if halloffame is None else halloffame.maxsize)
        self.population = population
        self.toolbox = toolbox
        self.stats = stats
        self.halloffame = halloffame
        self.verbose = verbose
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.archive = archive
        self.on_generation = on_generation
        self.raced = 0  # replicate evaluations of the generation so far
        self.racing = (0, 1)  # (top, seeds) of Evaluation.race; (0, 1) for no racing
        # Children bred but not yet in the population (the asynchronous variant's).
        self.pending = []
        self.evaluate = Evaluation(toolbox)
        self.logbook = tools.Logbook()
        self.logbook.header = LOG_FIELDS + (stats.fields if stats else [])
        if isinstance(stats, tools.MultiStatistics):
            # Show only each chapter's statistics; DEAP copies gen, nevals... into every chapter.
            for name, chapter in stats.items():
                self.logbook.chapters[name].header = chapter.fields

    def start(self):
        """Resume from the checkpoint or evaluate the initial population;
        return the first generation to run."""
        if self.checkpoint is not None and os.path.exists(self.checkpoint):
            generation = self._resume()
            if self.verbose:
                # Show the whole history, header included, on resume.
                self.logbook.buffindex = 0
                print(self.logbook.stream)
            if self.on_generation is not None:
                self.on_generation(self.population, self.logbook, self.halloffame)
            return generation
        started = time.perf_counter()
        invalid = [ind for ind in self.population if not ind.fitness.valid]
        counts = self.evaluate(invalid)
        if self.halloffame is not None:
            self.halloffame.update(self.population)
        self.race(self.population)
        self.finish_generation(0, counts, started)
        return 1

    def finish_generation(self, gen, counts, started):
        """Record generation *gen* (``counts`` from :class:`Evaluation`)
        in the logbook and save the checkpoint."""
        record = self.stats.compile(self.population) if self.stats else {}
        nevals, ncached, nrejected = counts
        self.logbook.record(gen=gen, nevals=nevals, nrejected=nrejected, ncached=ncached, nraced=self.raced,
                            time=time.perf_counter() - started, **record)
        self.raced = 0
        if self.verbose:
            print(self.logbook.stream)
        if self.checkpoint is not None:
            save_checkpoint(self.checkpoint, self._state(gen + 1))
        if self.on_generation is not None:
            self.on_generation(self.population, self.logbook, self.halloffame)

    def race(self, pool):
        """Race the candidates of *pool* under :attr:`racing` (see
        :meth:`Evaluation.race`) and give the hall of fame the new estimates."""
        top, seeds = self.racing
        if seeds <= 1 or top < 1:
            return
        self.raced += self.evaluate.race(pool, top, seeds)
        if self.halloffame is not None:
            # Its members are clones: take their keys' new values, then rank them again.
            members = list(self.halloffame)
            for member in members:
                key = self.evaluate.key(member)
                if key in self.evaluate.cache:
                    member.fitness.values = self.evaluate.cache[key]
            self.halloffame.clear()
            self.halloffame.update(members + list(pool))

    def _state(self, generation):
        return {
            "algorithm": self.algorithm,
            "params": self.params,
            "generation": generation,
            "population": list(self.population),
            "halloffame": None if self.halloffame is None else (list(self.halloffame.items),
                                                               list(self.halloffame.keys)),
            "logbook": self.logbook,
            "archive": [] if self.archive is None else list(self.archive),
            "pending": list(self.pending),
            "random_state": random.getstate(),
            "numpy_random_state": numpy.random.get_state(),
            "cache": dict(self.evaluate.cache),
            "replicates": dict(self.evaluate.replicates),
        }

    def _resume(self):
        state = load_checkpoint(self.checkpoint, required=_STATE_KEYS)
        if state.get("algorithm") != self.algorithm:
            raise CheckpointError(
                f"checkpoint {self.checkpoint!r} was written by {state.get('algorithm')!r}, not "
                f"{self.algorithm!r}; pass another checkpoint path to start a new run"
            )
        if state.get("params") != self.params:
            raise CheckpointError(
                f"checkpoint {self.checkpoint!r} was written with parameters {state.get('params')!r}, "
                f"this run has {self.params!r}; resume with the same parameters or pass another "
                f"checkpoint path"
            )
        generation = state["generation"]
        if isinstance(generation, bool) or not isinstance(generation, int) or generation < 1 \
                or not isinstance(state["population"], list):
            raise CheckpointError(f"checkpoint {self.checkpoint!r} holds a malformed generation or population; "
                                  f"remove it (and its .prev) to start over, or restore the run's own checkpoint")
        self.population[:] = state["population"]
        if self.halloffame is not None:
            items, keys = state["halloffame"]
            self.halloffame.clear()
            self.halloffame.items.extend(items)
            self.halloffame.keys.extend(keys)
        if self.archive is not None:
            self.archive[:] = state["archive"]
        self.logbook = state["logbook"]
        self.pending = list(state.get("pending", []))
        random.setstate(state["random_state"])
        numpy.random.set_state(state["numpy_random_state"])
        self.evaluate.cache.update(state["cache"] or {})
        self.evaluate.replicates.update(state.get("replicates") or {})
        return state["generation"]

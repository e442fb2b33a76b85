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
    fitness = LossFitness(...)
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
import functools
import os
import random
import time
from operator import attrgetter

import numpy
from deap import tools

from .checks import check_int, check_probability
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .gp.operators import default_sample_size

__all__ = ["eaSampleTournament", "eaNGL", "eaAsyncSampleTournament", "Evaluation", "default_n_parents", "LOG_FIELDS"]

#: Logbook fields written before the statistics' fields.
LOG_FIELDS = ["gen", "nevals", "nrejected", "ncached", "time"]


def default_n_parents(population_size):
    """The thesis's number of parents per generation, N = G/2 = 3P/8.

    :param population_size: The population size P.
    :returns: ``max(1, G // 2)`` with G from
              :func:`~deap_lossgp.gp.operators.default_sample_size`.
    """
    return max(1, default_sample_size(population_size) // 2)


def _unwrap(function):
    """The object behind ``toolbox.register``'s argument-free :func:`functools.partial`."""
    while isinstance(function, functools.partial) and not function.args and not function.keywords:
        function = function.func
    return function


def _run_unit(unit):
    """Run one unit of work (the function the map applies to units)."""
    return unit()


class _Whole:
    """A whole evaluation as one unit of work (no ``toolbox.split``)."""

    units = [None]

    @staticmethod
    def stops(result):
        return False

    @staticmethod
    def assemble(results):
        return results[0]


class _Job:
    """One evaluation: the individuals sharing a key, and its units in flight."""

    def __init__(self, key, individual, kind):
        self.key = key
        self.group = [individual]
        self.kind = kind  # "evaluated", "cached" or "rejected"
        self.fitness = None
        self.leader = None  # the job in flight whose result this one takes
        self.trainings = None
        self.futures = []  # per unit: its future once submitted, else None
        self.results = []
        self.open = 0  # units neither collected nor cancelled
        self.next = 0  # the first unit not submitted yet

    @property
    def done(self):
        return self.fitness is not None


class Evaluation:
    """Evaluate individuals for an algorithm: the one owner of
    de-duplication, the evaluation cache, the counts and the scheduling of
    the work.

    It lives in the process that runs the algorithm; ``toolbox.map`` sends
    workers only the work (and ``toolbox.evaluate``), never the cache.  The
    algorithms make one per run and save its :attr:`cache` in their
    checkpoint.

    Optional toolbox aliases it uses:

    ``toolbox.key(individual)``
        a hashable key; individuals with equal keys are evaluated once and
        later ones take the cached fitness (e.g.
        :meth:`~deap_lossgp.fitness.LossFitness.key`).  Without it every
        individual is evaluated.
    ``toolbox.screen(individual)``
        ``None`` for an individual worth evaluating, else the fitness to
        give it without evaluation (e.g.
        :meth:`~deap_lossgp.fitness.LossFitness.screen`), called here
        before anything is sent to ``toolbox.map``.
    ``toolbox.recorded(individual)``
        ``None``, or the fitness an earlier, interrupted session already
        trained and recorded (e.g.
        :meth:`~deap_lossgp.search.rundir.RecordReplay.recorded`): it counts
        as an evaluation, without training.
    ``toolbox.split(individual)``
        the evaluation cut into independent units of work (e.g.
        :meth:`~deap_lossgp.fitness.LossFitness.split`, one training per
        task): an object with ``units`` (picklable callables without
        arguments), ``stops(result)`` (whether a unit's result makes the
        units after it useless) and ``assemble(results)`` (the fitness from
        the units' results, ``None`` for a unit that did not run).

    With a map of :mod:`deap_lossgp.search.parallel` (which can ``submit``
    single items and knows its ``workers``), the units of every individual
    (with ``toolbox.split``; else each individual as one unit) wait here in
    submission order, and each worker that frees up gets the next one: the
    next task of the tree it just trained (its compiled model is still
    there), else the first task of a tree not started, else the oldest unit
    waiting.  A generation of N trees of T tasks thus offers N x T units,
    and W workers stay busy until fewer than W units are left.  Results are
    taken as they complete, in any order; when a unit's result ``stops`` its
    individual, that individual's later units are dropped (running ones
    finish, their work is wasted).  Each fitness is assembled here, and does
    not depend on the completion order.  With any other map (DEAP's default
    :func:`map`, or ``futures.map`` of your own) the individuals go to
    ``toolbox.map(toolbox.evaluate, individuals)`` as a whole, as in DEAP.
    The fitness is the same either way.

    :param toolbox: A :class:`~deap.base.Toolbox` with ``evaluate`` and ``map``.
    :param cache: ``key -> fitness`` to start from (e.g. a checkpoint's).

    .. attribute:: cache

       ``key -> fitness`` of every individual evaluated or screened out.
    """

    def __init__(self, toolbox, cache=None):
        self.toolbox = toolbox
        self.cache = {} if cache is None else dict(cache)
        self._key = getattr(toolbox, "key", None)
        self._screen = getattr(toolbox, "screen", None)
        self._recorded = getattr(toolbox, "recorded", None)
        mapper = _unwrap(getattr(toolbox, "map", map))
        split = getattr(toolbox, "split", None)
        self._mapper = mapper if callable(getattr(mapper, "submit", None)) else None
        self._split = split
        self._flight = {}  # key -> job whose units are in flight
        self._units = []  # (future, job, index) of the units submitted to the map, in submission order
        self._queue = []  # jobs with units not submitted yet, in submission order
        self._slots = max(1, getattr(mapper, "workers", 1) or 1)

    def __call__(self, individuals, refresh=False):
        """Set the fitness of *individuals* (valid or not) in place.

        :param individuals: The individuals to evaluate.
        :param refresh: Evaluate again even what the cache holds, replacing
                        the cached values (for a noisy fitness).
        :returns: ``(nevals, ncached, nrejected)``: evaluations run,
                  evaluations saved by the cache and individuals the screen
                  rejected.
        """
        seen = set() if refresh else None
        jobs = [self.submit(individual, refreshed=seen) for individual in individuals]
        waiting = [job for job in jobs if job.kind == "evaluated" and not job.trainings and not job.done]
        if waiting:
            fitnesses = self.toolbox.map(self.toolbox.evaluate, [job.group[0] for job in waiting])
            for job, fitness in zip(waiting, fitnesses):
                self._resolve(job, fitness)
        for job in jobs:
            self.wait(job)
        return self.counts(jobs)

    @staticmethod
    def counts(jobs):
        """Count what evaluating some individuals cost.

        :param jobs: Jobs from :meth:`submit`.
        :returns: ``(nevals, ncached, nrejected)``.
        """
        kinds = [job.kind for job in jobs]
        return kinds.count("evaluated"), kinds.count("cached"), kinds.count("rejected")

    def submit(self, individual, refreshed=None):
        """Start evaluating *individual*; :meth:`wait` sets its fitness.

        A cached key, or a key already in flight, costs nothing; the screen
        runs now; with a map that can submit, the units of a new evaluation
        join the queue of units, which start on the workers from the next
        :meth:`wait` on (with another map, :meth:`wait` or :meth:`__call__`
        evaluates it).

        :param individual: The individual.
        :param refreshed: ``None``, or the set of keys evaluated afresh so
                          far in this batch (the cache is bypassed for the
                          others).
        :returns: A job to pass to :meth:`wait` and :meth:`counts`.
        """
        key = self._key(individual) if self._key else object()
        cached = key in self.cache and (refreshed is None or key in refreshed)
        if cached or key in self._flight:
            job = _Job(key, individual, "cached")
            if cached:
                self._resolve(job, self.cache[key], store=False)
            else:
                job.leader = self._flight[key]
                job.leader.group.append(individual)
            return job
        if refreshed is not None:
            refreshed.add(key)
        verdict = self._screen(individual) if self._screen else None
        if verdict is not None:
            job = _Job(key, individual, "rejected")
            self._resolve(job, verdict)
            return job
        job = _Job(key, individual, "evaluated")
        recorded = self._recorded(individual) if self._recorded else None
        if recorded is not None:  # trained before an interruption: its record answers (a resume)
            self._resolve(job, recorded)
            return job
        self._flight[key] = job
        if self._mapper is not None:
            job.trainings = self._split(individual) if self._split else _Whole()
            job.open = len(job.trainings.units)
            job.results = [None] * job.open
            job.futures = [None] * job.open
            if job.open:
                self._queue.append(job)
            else:
                self._resolve(job, job.trainings.assemble([]))
        return job

    def wait(self, job):
        """Wait until *job*'s fitness is known and set it on its individuals.

        :param job: A job from :meth:`submit`.
        :returns: The fitness.
        """
        if job.leader is not None:
            return self.wait(job.leader)
        if not job.done and job.trainings is None:
            # A plain map evaluates the individual as a whole.
            self._resolve(job, list(self.toolbox.map(self.toolbox.evaluate, [job.group[0]]))[0])
        # Units start here rather than at submission, so that every tree
        # submitted so far can start on a worker of its own.
        self._fill(None)
        while not job.done:
            self._collect_one()
        return job.fitness

    def _fill(self, freed):
        """Submit units while the map has idle workers.

        The map gets no more units than it has workers, so this process
        picks the unit each freed worker runs next: the next task of the
        tree it just trained (*freed*, whose compiled model the worker
        kept), else the first task of a tree not started yet, else the
        oldest unit waiting.
        """
        while self._queue and len(self._units) < self._slots:
            if freed is not None and freed in self._queue and freed.next > 0:
                job = freed
            else:
                job = next((job for job in self._queue if job.next == 0), self._queue[0])
            freed = None
            index = job.next
            job.next += 1
            if job.next == len(job.futures):
                self._queue.remove(job)
            if isinstance(job.trainings, _Whole):
                # The individual itself goes to the map, which makes it portable.
                call = (self.toolbox.evaluate, job.group[0])
            else:
                call = (_run_unit, job.trainings.units[index])
            job.futures[index] = self._mapper.submit(*call)
            self._units.append((job.futures[index], job, index))

    def _collect_one(self):
        future = self._mapper.first_completed([entry[0] for entry in self._units])
        position = next(n for n, entry in enumerate(self._units) if entry[0] is future)
        _, job, index = self._units.pop(position)
        job.open -= 1
        result = future.result()
        job.results[index] = result
        if job.trainings.stops(result):
            self._cancel_after(job, index)
        if job.open == 0:
            self._resolve(job, job.trainings.assemble(job.results))
        self._fill(job)

    def _cancel_after(self, job, index):
        # The units after a failed one do not count: drop those not started.
        for later in range(index + 1, len(job.futures)):
            future = job.futures[later]
            if future is None:
                if later >= job.next:  # never submitted, not dropped before
                    job.open -= 1
            elif not future.cancelled() and future.cancel():
                job.open -= 1
                self._units = [entry for entry in self._units if entry[0] is not future]
        if job in self._queue:
            self._queue.remove(job)
        job.next = len(job.futures)

    def _resolve(self, job, fitness, store=True):
        fitness = tuple(fitness)
        if store and self._key:
            self.cache[job.key] = fitness
        if self._flight.get(job.key) is job:
            del self._flight[job.key]
        job.fitness = fitness
        for individual in job.group:
            individual.fitness.values = fitness


def eaSampleTournament(population, toolbox, ngen, n_parents=None, mutpb_subtree=0.3, mutpb_point=0.1,
                       stats=None, halloffame=None, verbose=__debug__, checkpoint=None):
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
    :returns: The final population
    :returns: A :class:`~deap.tools.Logbook` with the statistics of the
              evolution
    :raises ValueError: on bad parameters.
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
    size = _check_common(population, ngen, mutpb_subtree, mutpb_point)
    n_parents = _check_n_parents(n_parents, size)
    params = {"population_size": size, "n_parents": n_parents,
              "mutpb_subtree": mutpb_subtree, "mutpb_point": mutpb_point}
    run = _Run("eaSampleTournament", params, population, toolbox, stats, halloffame, verbose, checkpoint, None)

    for gen in range(run.start(), ngen + 1):
        started = time.perf_counter()
        parents = toolbox.select(population, n_parents)
        offspring = []
        for parent in parents:
            (child,) = toolbox.mate(toolbox.clone(parent), parents)
            offspring.append(_mutate(child, toolbox, mutpb_subtree, mutpb_point))

        counts = run.evaluate(offspring)
        if halloffame is not None:
            halloffame.update(offspring)
        population[:] = tools.selBest(population + offspring, size)
        run.finish_generation(gen, counts, started)

    return population, run.logbook


def eaNGL(population, toolbox, ngen, cxpb_archive=0.5, mutpb_subtree=0.3, mutpb_point=0.1, reevaluate=False,
          archive=None, stats=None, halloffame=None, verbose=__debug__, checkpoint=None):
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
    size = _check_common(population, ngen, mutpb_subtree, mutpb_point)
    check_probability("cxpb_archive", cxpb_archive)
    if archive is None:
        archive = []
    params = {"population_size": size, "cxpb_archive": cxpb_archive, "mutpb_subtree": mutpb_subtree,
              "mutpb_point": mutpb_point, "reevaluate": bool(reevaluate)}
    run = _Run("eaNGL", params, population, toolbox, stats, halloffame, verbose, checkpoint, archive)

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
                            inflight=None, stats=None, halloffame=None, verbose=__debug__, checkpoint=None):
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
    size = _check_common(population, ngen, mutpb_subtree, mutpb_point)
    n_parents = _check_n_parents(n_parents, size)
    if inflight is None:
        inflight = 2 * getattr(_unwrap(toolbox.map), "workers", 1)
    check_int("inflight", inflight, 1)
    params = {"population_size": size, "n_parents": n_parents, "mutpb_subtree": mutpb_subtree,
              "mutpb_point": mutpb_point, "inflight": inflight}
    run = _Run("eaAsyncSampleTournament", params, population, toolbox, stats, halloffame, verbose, checkpoint, None)

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

    def __init__(self, algorithm, params, population, toolbox, stats, halloffame, verbose, checkpoint, archive):
        self.algorithm = algorithm
        self.params = dict(params, halloffame_size=None if halloffame is None else halloffame.maxsize)
        self.population = population
        self.toolbox = toolbox
        self.stats = stats
        self.halloffame = halloffame
        self.verbose = verbose
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.archive = archive
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
            return generation
        started = time.perf_counter()
        invalid = [ind for ind in self.population if not ind.fitness.valid]
        counts = self.evaluate(invalid)
        if self.halloffame is not None:
            self.halloffame.update(self.population)
        self.finish_generation(0, counts, started)
        return 1

    def finish_generation(self, gen, counts, started):
        """Record generation *gen* (``counts`` from :class:`Evaluation`)
        in the logbook and save the checkpoint."""
        record = self.stats.compile(self.population) if self.stats else {}
        nevals, ncached, nrejected = counts
        self.logbook.record(gen=gen, nevals=nevals, nrejected=nrejected, ncached=ncached,
                            time=time.perf_counter() - started, **record)
        if self.verbose:
            print(self.logbook.stream)
        if self.checkpoint is not None:
            save_checkpoint(self.checkpoint, self._state(gen + 1))

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
        return state["generation"]

"""Evaluation for the algorithms: the policy (:class:`Evaluation`: cache,
admission, replicates, racing, counts) over a scheduler (:class:`Scheduler`:
units of work and futures on an :class:`Executor`).

The algorithms of :mod:`deap_lossgp.algorithms` make one :class:`Evaluation`
per run.  It alone decides what is trained: a key already known costs
nothing, a tree the screen rejects is never sent, a tree recorded by an
interrupted session is answered from its record, and, when racing, a
contender gets one more training seed (a *replicate*) at a time.  What it
decides to train goes to the :class:`Scheduler`, which knows only units of
work and futures, never individuals.

Two contracts, declared as :class:`typing.Protocol`\\ s:

:class:`Executor`
    what a map of :mod:`deap_lossgp.search.parallel` offers beyond being
    callable like :func:`map`: ``workers``, ``submit`` and
    ``first_completed``.  With any other map (DEAP's default :func:`map`,
    SCOOP's ``futures.map``) whole individuals go to ``toolbox.map`` in one
    call, as in DEAP.
:class:`WorkUnits`
    what ``toolbox.split(individual)`` returns: the evaluation cut into
    independent units (e.g. one training per task), with ``stops`` and
    ``assemble``.
"""

import functools
import math
import statistics
import typing

__all__ = ["Executor", "WorkUnits", "Scheduler", "Evaluation", "combine_replicates", "replicate_summary"]


@typing.runtime_checkable
class Executor(typing.Protocol):
    """A map that can start single items (the maps of :mod:`deap_lossgp.search.parallel`)."""

    #: How many items run at the same time.
    workers: int

    def submit(self, function, item):
        """Start ``function(item)``.

        :param function: a picklable function.
        :param item: its argument.
        :returns: a future with ``result()``, ``cancel()`` and ``cancelled()``.
        """

    def first_completed(self, futures):
        """Wait until one of *futures* has finished.

        :param futures: futures from :meth:`submit`, none returned by this method before.
        :returns: a finished future among them.
        """


class WorkUnits(typing.Protocol):
    """One evaluation cut into independent units of work (``toolbox.split``'s result)."""

    #: Picklable callables without arguments, in order.
    units: list

    def stops(self, result):
        """Whether a unit's result makes the units after it useless.

        :param result: what a unit returned.
        :returns: ``True`` to drop the units after it.
        """

    def assemble(self, results):
        """The evaluation's result from its units' results.

        :param results: one per unit, in order; ``None`` for a unit that did not run.
        :returns: the fitness (or, for a confirmation, the whole record).
        """


def _unwrap(function):
    """The object behind ``toolbox.register``'s argument-free :func:`functools.partial`."""
    while isinstance(function, functools.partial) and not function.args and not function.keywords:
        function = function.func
    return function


def _run_unit(unit):
    """Run one unit of work (the function the executor applies to units)."""
    return unit()


class _Whole:
    """A whole evaluation as one unit of work (no ``toolbox.split``): the
    call ``function(individual)`` itself goes to the executor."""

    def __init__(self, function, individual):
        self.units = [(function, individual)]

    @staticmethod
    def stops(result):
        return False

    @staticmethod
    def assemble(results):
        return results[0]


class _Ticket:
    """The units of one evaluation in the scheduler."""

    def __init__(self, work):
        self.work = work
        count = len(work.units)
        self.futures = [None] * count  # per unit: its future once submitted
        self.results = [None] * count
        self.open = count  # units neither collected nor cancelled
        self.next = 0  # the first unit not submitted yet
        self.result = None
        self.done = False


class Scheduler:
    """Runs units of work on an :class:`Executor`, at most ``workers`` at a time.

    The units of every evaluation added wait here in order, and each worker
    that frees up gets the next one: the next unit of the evaluation it just
    ran (e.g. the next task of a tree, whose compiled model the worker
    kept), else the first unit of an evaluation not started, else the
    oldest unit waiting.  Results are taken as they complete, in any order;
    when a unit's result ``stops`` its evaluation, the evaluation's later
    units are dropped (running ones finish).  The assembled fitness does
    not depend on the completion order.

    :param executor: An :class:`Executor`.
    """

    def __init__(self, executor):
        self.executor = executor
        self._slots = max(1, int(executor.workers or 1))
        self._queue = []  # tickets with units not submitted yet, in order
        self._running = []  # (future, ticket, index), in submission order

    def add(self, work):
        """Queue the units of one evaluation; they start from the next :meth:`wait`.

        :param work: A :class:`WorkUnits` (or whole call).
        :returns: A ticket for :meth:`wait`.
        """
        ticket = _Ticket(work)
        if ticket.open:
            self._queue.append(ticket)
        else:
            ticket.result, ticket.done = work.assemble([]), True
        return ticket

    def wait(self, ticket):
        """Run units until *ticket*'s evaluation is assembled.

        :param ticket: From :meth:`add`.
        :returns: What its work's ``assemble`` returned.
        """
        # Units start here rather than when added, so every evaluation added so far can start on a worker.
        self._fill(None)
        while not ticket.done:
            self._collect_one()
        return ticket.result

    def _fill(self, freed):
        while self._queue and len(self._running) < self._slots:
            if freed is not None and freed in self._queue and freed.next > 0:
                ticket = freed
            else:
                ticket = next((ticket for ticket in self._queue if ticket.next == 0), self._queue[0])
            freed = None
            index = ticket.next
            ticket.next += 1
            if ticket.next == len(ticket.futures):
                self._queue.remove(ticket)
            unit = ticket.work.units[index]
            call = unit if isinstance(ticket.work, _Whole) else (_run_unit, unit)
            ticket.futures[index] = self.executor.submit(*call)
            self._running.append((ticket.futures[index], ticket, index))

    def _collect_one(self):
        future = self.executor.first_completed([entry[0] for entry in self._running])
        position = next(n for n, entry in enumerate(self._running) if entry[0] is future)
        _, ticket, index = self._running.pop(position)
        ticket.open -= 1
        result = future.result()
        ticket.results[index] = result
        if ticket.work.stops(result):
            self._cancel_after(ticket, index)
        if ticket.open == 0:
            ticket.result, ticket.done = ticket.work.assemble(ticket.results), True
        self._fill(ticket)

    def _cancel_after(self, ticket, index):
        # The units after a failed one do not count: drop those not started.
        for later in range(index + 1, len(ticket.futures)):
            future = ticket.futures[later]
            if future is None:
                if later >= ticket.next:  # never submitted, not dropped before
                    ticket.open -= 1
            elif not future.cancelled() and future.cancel():
                ticket.open -= 1
                self._running = [entry for entry in self._running if entry[0] is not future]
        if ticket in self._queue:
            self._queue.remove(ticket)
        ticket.next = len(ticket.futures)


def combine_replicates(fitnesses):
    """The fitness of a candidate trained under several seeds: the mean of
    each fitness value over its replicates.

    With ``(wins, average improvement)`` fitnesses this is the mean number
    of tasks won per seed and the mean paired improvement (each replicate is
    compared with cross-entropy trained under the same seed).  A replicate
    that failed (``-inf``) makes the candidate fail.

    :param fitnesses: One fitness tuple per replicate, at least one.
    :returns: A tuple.
    """
    columns = list(zip(*fitnesses))
    return tuple(math.fsum(column) / len(column) if all(map(math.isfinite, column)) else min(column)
                 for column in columns)


def replicate_summary(fitnesses):
    """The replicates of a candidate in a few numbers (for records and reports).

    :param fitnesses: One fitness tuple per replicate.
    :returns: ``{"seeds": n, "fitness": combined, "stderr": s}``, with *s* the
              standard error of the last fitness value over the replicates
              (``None`` for one replicate or a failed one).
    """
    last = [fitness[-1] for fitness in fitnesses]
    finite = all(map(math.isfinite, last))
    stderr = statistics.stdev(last) / math.sqrt(len(last)) if finite and len(last) > 1 else None
    return {"seeds": len(fitnesses), "fitness": list(combine_replicates(fitnesses)), "stderr": stderr}


class _Job:
    """One evaluation: the individuals sharing a key and replicate, and its ticket."""

    def __init__(self, key, individual, kind, replicate=0):
        self.key = key
        self.group = [individual]
        self.kind = kind  # "evaluated", "cached" or "rejected"
        self.replicate = replicate
        self.fitness = None
        self.leader = None  # the job in flight whose result this one takes
        self.ticket = None

    @property
    def done(self):
        return self.fitness is not None


class Evaluation:
    """Evaluate individuals for an algorithm: the one owner of
    de-duplication, the evaluation cache, the replicates, the counts and the
    admission of work.

    It lives in the process that runs the algorithm; the map sends workers
    only the work (and ``toolbox.evaluate``), never the cache.  The
    algorithms make one per run and save its :attr:`cache` and
    :attr:`replicates` in their checkpoint.

    Optional toolbox aliases it uses:

    ``toolbox.key(individual)``
        a hashable key; individuals with equal keys are evaluated once and
        later ones take the cached fitness.  Without it every individual is
        evaluated.
    ``toolbox.screen(individual)``
        ``None`` for an individual worth evaluating, else the fitness to
        give it without evaluation, called here before anything is sent.
    ``toolbox.recorded(individual, replicate=0)``
        ``None``, or the fitness an earlier, interrupted session already
        trained and recorded: it counts as an evaluation, without training.
    ``toolbox.split(individual, replicate=0)``
        the evaluation cut into a :class:`WorkUnits`, whose units the
        :class:`Scheduler` spreads over the workers of an :class:`Executor`
        map.

    Replicates (racing, :meth:`race`): replicate *r* of an individual is its
    evaluation under the *r*-th training seed, asked for as
    ``toolbox.evaluate(individual, replicate=r)`` (or ``toolbox.split(...,
    replicate=r)``); replicate 0 is the plain ``toolbox.evaluate(individual)``.
    An individual's fitness is :func:`combine_replicates` of its replicates.

    :param toolbox: A :class:`~deap.base.Toolbox` with ``evaluate`` and ``map``.
    :param cache: ``key -> fitness`` to start from (e.g. a checkpoint's).
    :param replicates: ``key -> [fitness per replicate]`` to start from.

    .. attribute:: cache

       ``key -> fitness`` of every individual evaluated or screened out.

    .. attribute:: replicates

       ``key -> list of per-replicate fitnesses`` of every individual
       trained (replicate 0 first).
    """

    def __init__(self, toolbox, cache=None, replicates=None):
        self.toolbox = toolbox
        self.cache = {} if cache is None else dict(cache)
        self.replicates = {} if replicates is None else {key: list(value) for key, value in replicates.items()}
        self._key = getattr(toolbox, "key", None)
        self._screen = getattr(toolbox, "screen", None)
        self._recorded = getattr(toolbox, "recorded", None)
        self._split = getattr(toolbox, "split", None)
        mapper = _unwrap(getattr(toolbox, "map", map))
        self._scheduler = Scheduler(mapper) if isinstance(mapper, Executor) else None
        self._flight = {}  # (key, replicate) -> job in flight

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
        return self.finish([self.submit(individual, refreshed=seen) for individual in individuals])

    def finish(self, jobs):
        """Wait for *jobs* (from :meth:`submit`), whole ones through one ``toolbox.map`` call.

        :param jobs: Jobs from :meth:`submit`.
        :returns: :meth:`counts` of *jobs*.
        """
        waiting = [job for job in jobs if job.kind == "evaluated" and job.ticket is None and not job.done
                   and job.leader is None]
        if waiting:
            by_replicate = {}
            for job in waiting:
                by_replicate.setdefault(job.replicate, []).append(job)
            for replicate, group in sorted(by_replicate.items()):
                fitnesses = self.toolbox.map(self._evaluate_function(replicate), [job.group[0] for job in group])
                for job, fitness in zip(group, fitnesses):
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

    def key(self, individual):
        """The cache key of an individual.

        :param individual: an individual.
        :returns: ``toolbox.key(individual)``, or a fresh object without ``toolbox.key``.
        """
        return self._key(individual) if self._key else object()

    def submit(self, individual, refreshed=None):
        """Start evaluating *individual*; :meth:`wait` sets its fitness.

        A cached key, or a key already in flight, costs nothing; the screen
        runs now; with an :class:`Executor` map the units of a new
        evaluation join the scheduler's queue, which starts them from the
        next :meth:`wait` on.

        :param individual: The individual.
        :param refreshed: ``None``, or the set of keys evaluated afresh so
                          far in this batch (the cache is bypassed for the
                          others).
        :returns: A job to pass to :meth:`wait` and :meth:`counts`.
        """
        key = self.key(individual)
        cached = key in self.cache and (refreshed is None or key in refreshed)
        if cached or (key, 0) in self._flight:
            job = _Job(key, individual, "cached")
            if cached:
                self._apply(job, self.cache[key])
            else:
                job.leader = self._flight[(key, 0)]
                job.leader.group.append(individual)
            return job
        if refreshed is not None:
            refreshed.add(key)
            self.replicates.pop(key, None)
        verdict = self._screen(individual) if self._screen else None
        if verdict is not None:
            job = _Job(key, individual, "rejected")
            self._resolve(job, verdict)
            return job
        return self._start(_Job(key, individual, "evaluated"))

    def submit_replicate(self, individuals, replicate):
        """Start training the next seed of individuals that share a key.

        :param individuals: Individuals with one key, already evaluated.
        :param replicate: The replicate to train (their number of seeds so far).
        :returns: A job; the new combined fitness is set on all of them.
        """
        job = _Job(self.key(individuals[0]), individuals[0], "evaluated", replicate)
        job.group.extend(individuals[1:])
        return self._start(job)

    def _start(self, job):
        individual = job.group[0]
        recorded = self._recorded(individual, replicate=job.replicate) if self._recorded else None
        if recorded is not None:  # trained before an interruption: its record answers (a resume)
            self._resolve(job, recorded)
            return job
        self._flight[(job.key, job.replicate)] = job
        if self._scheduler is not None:
            if self._split:
                work = self._split(individual) if job.replicate == 0 else self._split(individual,
                                                                                      replicate=job.replicate)
            else:
                work = _Whole(self._evaluate_function(job.replicate), individual)
            job.ticket = self._scheduler.add(work)
        return job

    def _evaluate_function(self, replicate):
        if replicate == 0:
            return self.toolbox.evaluate
        return functools.partial(self.toolbox.evaluate, replicate=replicate)

    def wait(self, job):
        """Wait until *job*'s fitness is known and set it on its individuals.

        :param job: A job from :meth:`submit`.
        :returns: The fitness.
        """
        if job.leader is not None:
            return self.wait(job.leader)
        if not job.done and job.ticket is None:
            # A plain map evaluates the individual as a whole.
            function = self._evaluate_function(job.replicate)
            self._resolve(job, list(self.toolbox.map(function, [job.group[0]]))[0])
        if not job.done:
            self._resolve(job, self._scheduler.wait(job.ticket))
        return job.fitness

    def _resolve(self, job, fitness):
        fitness = tuple(fitness)
        if self._flight.get((job.key, job.replicate)) is job:
            del self._flight[(job.key, job.replicate)]
        if job.kind == "evaluated" and self._key:
            trained = self.replicates.setdefault(job.key, [])
            trained[job.replicate:] = [fitness]
            fitness = combine_replicates(trained)
        if self._key:
            self.cache[job.key] = fitness
        self._apply(job, fitness)

    @staticmethod
    def _apply(job, fitness):
        job.fitness = fitness
        for individual in job.group:
            individual.fitness.values = fitness

    def race(self, individuals, top, seeds):
        """Give contenders more training seeds until the top is settled.

        Racing over paired seeds: each round ranks *individuals* by fitness
        (distinct keys, best first) and gives one more replicate to every
        one of the *top* best that has fewer than *seeds* replicates; the
        round's replicates are trained together, and rounds go on until the
        *top* best all rest on *seeds* replicates.  So a candidate gets
        seeds only while it would enter the top (a clear loser gets none),
        and a lucky incumbent is re-estimated as soon as it is challenged:
        nothing stays in the top on fewer seeds than the others.  Decisions
        are taken between rounds, from complete results, so the outcome does
        not depend on the order in which trainings finish.

        :param individuals: The candidates (e.g. population plus offspring);
                            their fitness is updated in place.
        :param top: How many of the best must rest on *seeds* replicates.
        :param seeds: The most replicates a candidate gets.
        :returns: The number of replicate evaluations run.
        """
        if seeds <= 1 or top < 1 or not self._key:
            return 0
        run = 0
        while True:
            groups = {}
            for individual in individuals:
                groups.setdefault(self.key(individual), []).append(individual)
            ranked = sorted(groups.values(), key=lambda group: group[0].fitness, reverse=True)
            contenders = [group for group in ranked[:top]
                          if math.isfinite(group[0].fitness.values[-1])
                          and 0 < len(self.replicates.get(self.key(group[0]), ())) < seeds]
            if not contenders:
                return run
            jobs = [self.submit_replicate(group, len(self.replicates[self.key(group[0])])) for group in contenders]
            self.finish(jobs)
            run += len(jobs)

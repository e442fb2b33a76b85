"""Pluggable ``map`` functions for parallel fitness evaluation.

DEAP algorithms evaluate through ``toolbox.map(toolbox.evaluate, individuals)``;
register one of these maps to choose where the evaluations run::

    from deap_lossgp.search.parallel import get_map

    with get_map("process", workers=4) as pmap:
        toolbox.register("map", pmap)
        population, logbook = eaSampleTournament(population, toolbox, ngen=12)

Backends:

``"serial"``
    every evaluation in this process, one after the other.
``"process"``
    a local pool of worker processes (:mod:`concurrent.futures`) started with
    the ``spawn`` method, because TensorFlow is not fork-safe once initialised.
    It opens no network port; this is the safe local default.
``"scoop"``
    `SCOOP <https://github.com/soravux/scoop>`_'s ``futures.map``, for several
    machines: start the program with ``python -m scoop -n 8 my_search.py`` or
    ``python -m scoop --hostfile hosts my_search.py``. SCOOP's root process runs
    evaluations too, and a submitted item waiting in this process's queue can
    be cancelled; once SCOOP has sent it to another worker it runs.

.. warning::

   SCOOP's broker listens on all network interfaces and its workers exchange
   pickles, and unpickling data can execute arbitrary code. Anyone who can reach
   the broker's ports can run code on every worker. Use the ``"scoop"`` backend
   on trusted networks only (a cluster's private network, or a firewall that
   limits the ports to the participating hosts); use ``"process"`` on a single
   machine.

Besides being called like :func:`map`, every backend is a small executor:
``submit(function, item)`` returns a future (``result()``, ``cancel()``,
``cancelled()``) and ``first_completed(futures)`` waits for one of them.
:class:`~deap_lossgp.evaluation.Evaluation` uses both to send single
trainings rather than whole trees, to take results as they complete and to
cancel trainings that are no longer needed; a call like :func:`map`
collects results as they complete too, with no batch waiting for its
slowest member.

What every backend guarantees:

* Results come back in the order of the inputs, so the same seed gives the same
  logbook and best tree under every backend.
* An evaluation never changes the caller's random state: Python's :mod:`random`
  and NumPy's global generator are saved before and restored after every call.
  This matters because SCOOP's root process and the serial backend evaluate in
  the process that runs the algorithm, and Keras's ``set_random_seed`` reseeds
  both generators.
* Individuals that are :class:`deap.gp.PrimitiveTree` subclasses (your
  :mod:`deap.creator` classes) are sent to workers as plain
  :class:`deap.gp.PrimitiveTree` objects with the same nodes, so workers need
  neither your creator classes nor the script that defines them. The evaluator
  therefore receives a plain tree (its fitness is set by the algorithm, not by
  the evaluator). Other individuals are sent unchanged and must be picklable.
* The ``"process"`` backend's workers die with the process that started them,
  however it ends (an exception, Ctrl-C, ``SIGTERM`` or ``SIGKILL``: on Linux
  the kernel kills them, elsewhere they notice within a second), and they
  leave Ctrl-C to it, so an interrupted search prints no worker traceback.
  SCOOP starts and stops its own workers (and may run them on other hosts):
  stop a SCOOP search by stopping its launcher, ``python -m scoop``.
* Each worker sets TensorFlow's thread pools once, before its first evaluation,
  so that the workers of one machine share its cores instead of each using all
  of them (see :func:`get_map`'s *tf_threads*). An evaluator that sets its own
  thread count when it first trains (:class:`~deap_lossgp.fitness.LossEvaluator`
  applies its configuration's ``threads``) has the last word. The evaluator (for example
  :class:`~deap_lossgp.fitness.LossEvaluator`) is sent with the tasks; it keeps
  the datasets it loads in its process, so each worker loads them once.
"""

import concurrent.futures
import contextlib
import itertools
import multiprocessing
import os
import random
import signal
from operator import attrgetter

import numpy
from deap import gp

from ..fitness.runtime import auto_threads, worker_initializer

__all__ = ["BACKENDS", "get_map", "SerialMap", "SerialFuture", "ProcessMap", "ScoopMap", "portable"]

BACKENDS = ("serial", "process", "scoop")


def get_map(backend="serial", workers=None, tf_threads="auto"):
    """Make a ``map`` function to register as ``toolbox.map``.

    :param backend: ``"serial"``, ``"process"`` or ``"scoop"`` (see the module
                    documentation).
    :param workers: Number of worker processes for ``"process"`` (default: the
                    number of CPU cores). Ignored by ``"serial"``; for
                    ``"scoop"`` the number of workers is SCOOP's ``-n``.
    :param tf_threads: TensorFlow threads (intra- and inter-op) per worker: an
                       :class:`int`, ``"auto"`` (the machine's cores divided
                       by the workers, at least 1) or ``None`` to leave
                       TensorFlow's defaults
                       (no TensorFlow import, for evaluators that do not train).
                       With ``"scoop"`` across several machines, ``"auto"``
                       divides each host's cores by the total number of
                       workers; pass the number explicitly if hosts differ.
                       Ignored by ``"serial"``.
    :returns: A :class:`SerialMap`, :class:`ProcessMap` or :class:`ScoopMap`:
              called like the built-in :func:`map` (returning a :class:`list`),
              with :meth:`close` and usable as a context manager.
    :raises ValueError: on an unknown backend, a bad worker or thread count, or
                        ``"scoop"`` when the program was not started with
                        ``python -m scoop``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown map backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    if not (tf_threads is None or tf_threads == "auto"
            or (isinstance(tf_threads, int) and not isinstance(tf_threads, bool) and tf_threads >= 1)):
        raise ValueError(f"tf_threads must be a positive integer, 'auto' or None, got {tf_threads!r}")
    if backend == "serial":
        return SerialMap()
    if backend == "process":
        return ProcessMap(workers=workers, tf_threads=tf_threads)
    return ScoopMap(tf_threads=tf_threads)


def portable(individual):
    """Return what is sent to a worker for *individual*.

    :param individual: An individual about to be evaluated.
    :returns: A plain :class:`deap.gp.PrimitiveTree` with the same nodes if
              *individual* is a :class:`~deap.gp.PrimitiveTree`, otherwise
              *individual* itself.
    """
    if isinstance(individual, gp.PrimitiveTree) and type(individual) is not gp.PrimitiveTree:
        return gp.PrimitiveTree(individual)
    return individual


class _Task:
    """Picklable wrapper that runs one evaluation in a worker with the random
    state preserved and TensorFlow's threads configured first."""

    def __init__(self, function, tf_threads):
        self.function = function
        self.tf_threads = tf_threads

    def __call__(self, item):
        worker_initializer(self.tf_threads)
        python_state = random.getstate()
        numpy_state = numpy.random.get_state()
        try:
            return self.function(item)
        finally:
            random.setstate(python_state)
            numpy.random.set_state(numpy_state)


class _MapBase:
    """The map interface on top of ``submit`` and ``first_completed``, and
    context-manager plumbing, shared by the map classes.

    .. attribute:: workers

       How many items run at the same time.
    """

    workers = 1

    def submit(self, function, item):
        """Start ``function(item)``.

        :param function: The function (picklable for the parallel backends).
        :param item: Its argument.
        :returns: A future with ``result()``, ``cancel()`` and ``cancelled()``.
        """
        raise NotImplementedError

    def first_completed(self, futures):
        """Wait until one of *futures* has finished.

        :param futures: Futures from :meth:`submit`, none of them cancelled
                        or returned by this method before.
        :returns: A finished future among them.
        """
        raise NotImplementedError

    def __call__(self, function, iterable):
        """Apply *function* to every item, collecting results as they complete.

        :param function: The evaluation function (``toolbox.evaluate``); it
                         must be picklable for the parallel backends (a
                         module-level function, a :func:`functools.partial`
                         of one, or an object such as
                         :class:`~deap_lossgp.fitness.LossEvaluator`).
        :param iterable: The individuals.
        :returns: A :class:`list` of results in input order.
        """
        return [future.result() for future in self.as_completed([self.submit(function, item) for item in iterable])]

    def as_completed(self, futures):
        """Wait for all *futures*, in the order they complete.

        :param futures: Futures from :meth:`submit`.
        :returns: *futures* as a list in their input order, once all finished.
        """
        pending = list(futures)
        while pending:
            pending.remove(self.first_completed(pending))
        return list(futures)

    def close(self):
        """Release the map's workers (nothing to do for this backend).

        :returns: None
        """

    def terminate(self):
        """Stop at once, abandoning running evaluations (after an error or Ctrl-C).

        :returns: None
        """
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        if exc_type is None:
            self.close()
        else:
            self.terminate()
        return False


class SerialMap(_MapBase):
    """Evaluate in the calling process, in order, preserving its random state.

    A submitted item runs only when :meth:`first_completed` (or its
    ``result()``) reaches it, in submission order, so a cancelled item never
    runs.
    """

    def submit(self, function, item):
        """Queue ``function(item)``; it runs when first needed.

        :param function: The function.
        :param item: Its argument.
        :returns: A :class:`SerialFuture`.
        """
        return SerialFuture(_Task(function, None), item)

    def first_completed(self, futures):
        """Run the first of *futures* (they are taken in submission order).

        :param futures: Futures from :meth:`submit`.
        :returns: The first of *futures*, finished.
        """
        first = min(futures, key=attrgetter("number"))
        first.run()
        return first


class SerialFuture:
    """A call that runs in this process when its result is first needed.

    :param function: The function.
    :param item: Its argument.
    """

    _numbers = itertools.count()

    def __init__(self, function, item):
        self.number = next(self._numbers)
        self._call = (function, item)
        self._outcome = None
        self._cancelled = False

    def run(self):
        """Run the call unless it ran or was cancelled.

        :returns: ``None``.
        """
        if self._outcome is None and not self._cancelled:
            function, item = self._call
            self._outcome = (function(item),)
            self._call = None

    def result(self):
        """The return value, running the call first if needed.

        :returns: What the function returned (its exception propagates).
        :raises concurrent.futures.CancelledError: if it was cancelled.
        """
        if self._cancelled:
            raise concurrent.futures.CancelledError()
        self.run()
        return self._outcome[0]

    def cancel(self):
        """Cancel the call if it has not run.

        :returns: ``True`` if it will never run.
        """
        if self._outcome is None:
            self._cancelled = True
            self._call = None
        return self._cancelled

    def cancelled(self):
        """:returns: whether :meth:`cancel` succeeded."""
        return self._cancelled


class ProcessMap(_MapBase):
    """Evaluate in a pool of local worker processes started with ``spawn``.

    The pool starts on the first call and lives until :meth:`close`, so each
    worker loads its datasets and initialises TensorFlow once for the whole
    run. Worker processes re-import your main module (the ``spawn`` start
    method), so keep a script's work under ``if __name__ == "__main__":``.

    :param workers: Number of processes (default: the number of CPU cores).
    :param tf_threads: TensorFlow threads per worker: an :class:`int`,
                       ``"auto"`` (cores // workers, at least 1) or ``None``.
    """

    def __init__(self, workers=None, tf_threads="auto"):
        self.workers = workers or os.cpu_count() or 1
        if tf_threads == "auto":
            tf_threads = auto_threads(self.workers)
        self.tf_threads = tf_threads
        self._executor = None

    def submit(self, function, item):
        """Start ``function(item)`` in a worker process.

        :param function: The function; it must be picklable.
        :param item: Its argument (sent as :func:`portable` makes it).
        :returns: A :class:`concurrent.futures.Future`; until a worker takes
                  it, ``cancel()`` succeeds.
        """
        if self._executor is None:
            self._executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=worker_initializer,
                # Workers die with this process, however it ends.
                initargs=(self.tf_threads, os.getpid()),
            )
        # Workers start while tasks are submitted: they inherit an ignored Ctrl-C from their first instruction.
        with _sigint_ignored():
            # The initializer has configured TensorFlow already: tasks skip it.
            return self._executor.submit(_Task(function, None), portable(item))

    def first_completed(self, futures):
        """Wait until one of *futures* has finished.

        :param futures: Futures from :meth:`submit`.
        :returns: The earliest submitted of those that have finished.
        """
        done, _ = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
        return next(future for future in futures if future in done)

    def close(self):
        """Shut the worker processes down.

        :returns: None
        """
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def terminate(self):
        """Kill the worker processes now, abandoning running evaluations.

        :returns: None
        """
        executor, self._executor = self._executor, None
        if executor is None:
            return
        # concurrent.futures has no public way to stop running tasks before Python 3.14.
        processes = list((executor._processes or {}).values())
        for process in processes:
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.join()
        # Its manager thread closes its wake-up pipe as it ends; an exit before that prints an ignored
        # BrokenPipeError from concurrent.futures' exit hook.
        manager = getattr(executor, "_executor_manager_thread", None)
        if manager is not None:
            manager.join(timeout=10)


@contextlib.contextmanager
def _sigint_ignored():
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread, which alone receives signals
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class ScoopMap(_MapBase):
    """Evaluate with SCOOP's ``futures.submit`` (needs ``python -m scoop``).

    See the module documentation for SCOOP's security caveat.

    :param tf_threads: TensorFlow threads per worker: an :class:`int`,
                       ``"auto"`` (the host's cores // SCOOP's worker count, at
                       least 1) or ``None``.
    :raises ValueError: if the program was not started with ``python -m scoop``.
    """

    def __init__(self, tf_threads="auto"):
        import scoop

        if not scoop.IS_RUNNING:
            raise ValueError(
                "the 'scoop' map backend needs the program to be started with "
                "`python -m scoop [-n WORKERS] [--hostfile HOSTS] your_script.py`; "
                "use the 'process' backend for a single machine"
            )
        self.tf_threads = tf_threads
        self.workers = getattr(scoop, "SIZE", None) or 1

    def submit(self, function, item):
        """Submit ``function(item)`` to SCOOP (``futures.submit``).

        :param function: The function; it must be picklable.
        :param item: Its argument (sent as :func:`portable` makes it).
        :returns: A SCOOP future; ``cancel()`` succeeds while it waits in
                  this process's queue.
        """
        from scoop import futures

        return futures.submit(_Task(function, self.tf_threads), portable(item))

    def first_completed(self, futures):
        """Wait until one of *futures* has finished (``futures.as_completed``).

        :param futures: Futures from :meth:`submit`, none cancelled.
        :returns: A finished future among them.
        """
        from scoop import futures as scoop_futures

        return next(scoop_futures.as_completed(list(futures)))

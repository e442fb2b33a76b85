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

``"dask"``
    `Dask distributed <https://distributed.dask.org>`_, for several machines
    and GPU clusters (:class:`DaskMap`): a local cluster of single-thread
    worker processes, or an existing scheduler (``dask scheduler`` and
    ``dask worker``, ``dask-jobqueue`` on SLURM or PBS, ``dask-cuda`` with
    one worker per GPU), optionally over TLS. A worker that dies has its
    training run again on another worker. Needs ``pip install
    'deap_lossgp[dask]'``; ``docs/parallel.rst`` has the recipes.

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
* The ``"process"`` backend's workers, and those of the local cluster the
  ``"dask"`` backend starts, die with the process that started them,
  however it ends (an exception, Ctrl-C, ``SIGTERM`` or ``SIGKILL``: on Linux
  the kernel kills them, elsewhere they notice within a second), and they
  leave Ctrl-C to it, so an interrupted search prints no worker traceback.
  SCOOP starts and stops its own workers (and may run them on other hosts):
  stop a SCOOP search by stopping its launcher, ``python -m scoop``. The
  workers of an existing Dask cluster belong to it and keep running.
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
import functools
import importlib.util
import itertools
import logging
import multiprocessing
import os
import random
import signal
import warnings
import weakref
from operator import attrgetter

import numpy
from deap import gp

from ..fitness.devices import list_gpus
from ..fitness.runtime import auto_threads, verbose_requested, worker_initializer

__all__ = ["BACKENDS", "get_map", "check_backend", "SerialMap", "SerialFuture", "ProcessMap", "ScoopMap", "DaskMap",
           "DaskFuture", "SchedulerLostError", "portable"]

BACKENDS = ("serial", "process", "scoop", "dask")


def get_map(backend="serial", workers=None, tf_threads="auto", scheduler=None, gpu=None):
    """Make a ``map`` function to register as ``toolbox.map``.

    :param backend: ``"serial"``, ``"process"``, ``"scoop"`` or ``"dask"``
                    (see the module documentation).
    :param workers: Number of worker processes for ``"process"`` and for the
                    local cluster of ``"dask"`` (default: the number of CPU
                    cores), or the trainings at once on an existing Dask
                    cluster (default: its workers when the map connects).
                    Ignored by ``"serial"``; for ``"scoop"`` the number of
                    workers is SCOOP's ``-n``.
    :param tf_threads: TensorFlow threads (intra- and inter-op) per worker: an
                       :class:`int`, ``"auto"`` (the machine's cores divided
                       by the workers, at least 1) or ``None`` to leave
                       TensorFlow's defaults
                       (no TensorFlow import, for evaluators that do not train).
                       With ``"scoop"`` across several machines, ``"auto"``
                       divides each host's cores by the total number of
                       workers; pass the number explicitly if hosts differ.
                       So does ``"dask"`` on an existing cluster.
                       Ignored by ``"serial"``.
    :param scheduler: ``"dask"`` only: the address of an existing scheduler
                      (``HOST:PORT``, ``tcp://...``, ``tls://...``) or the
                      path of its scheduler file; ``None`` starts a local
                      cluster.
    :param gpu: ``"dask"`` only: whether each training asks for one ``GPU``
                worker resource (see :class:`DaskMap`).
    :returns: A :class:`SerialMap`, :class:`ProcessMap`, :class:`ScoopMap` or
              :class:`DaskMap`: called like the built-in :func:`map`
              (returning a :class:`list`), with :meth:`close` and usable as a
              context manager.
    :raises ValueError: on an unknown backend, a bad worker or thread count,
                        ``"scoop"`` when the program was not started with
                        ``python -m scoop``, ``"dask"`` without the
                        ``distributed`` package, or a scheduler or GPU
                        setting for another backend.
    """
    check_backend(backend, scheduler, gpu)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer or None, got {workers!r}")
    if not (tf_threads is None or tf_threads == "auto"
            or (isinstance(tf_threads, int) and not isinstance(tf_threads, bool) and tf_threads >= 1)):
        raise ValueError(f"tf_threads must be a positive integer, 'auto' or None, got {tf_threads!r}")
    if backend == "dask":
        return DaskMap(scheduler=scheduler, workers=workers, tf_threads=tf_threads, gpu=gpu)
    if backend == "serial":
        return SerialMap()
    if backend == "process":
        return ProcessMap(workers=workers, tf_threads=tf_threads)
    return ScoopMap(tf_threads=tf_threads)


def check_backend(backend, scheduler=None, gpu=None):
    """Check a backend name and the settings that only the ``"dask"`` backend takes.

    :param backend: the backend's name.
    :param scheduler: a Dask scheduler address or file, or ``None``.
    :param gpu: a Dask GPU setting, or ``None``.
    :returns: ``None``.
    :raises ValueError: on an unknown backend, or a scheduler or GPU setting for another backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown map backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend != "dask" and (scheduler is not None or gpu is not None):
        raise ValueError(f"a Dask scheduler (--scheduler) or GPU setting needs the dask backend, not "
                         f"{backend!r}; add --backend dask")


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
        # Workers start while tasks are submitted: they inherit a blocked Ctrl-C from their first instruction.
        with _sigint_deferred():
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
def _sigint_deferred():
    """Start worker processes with Ctrl-C blocked; hold this process's Ctrl-C until they have started.

    A worker inherits the blocked signal through fork and exec, so a Ctrl-C sent to the terminal's
    process group cannot interrupt it before its initializer ignores the signal (a traceback per
    worker).  A Ctrl-C that reaches this process meanwhile is held, not dropped as an ignored one
    would be, and handled as usual when the block ends.
    """
    received = []
    try:
        previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    except ValueError:  # not the main thread, which alone receives signals
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, previous)
    if received and callable(previous):
        previous(signal.SIGINT, None)
    elif received and previous == signal.SIG_DFL:
        raise KeyboardInterrupt


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


class SchedulerLostError(ConnectionError):
    """The Dask scheduler went away while the search was running.

    The evaluations in flight are lost; the run's checkpoint is not, so the
    search continues exactly where it was with ``deap-lossgp resume RUN``
    once a scheduler (and its workers) runs again.
    """


def _import_distributed():
    """Import Dask's ``distributed``, keeping its log lines out of the user's output.

    Its INFO lines (a worker started, a connection made) and the warnings
    about a lost worker, which :class:`DaskMap` reports itself, are
    dropped unless the user asked for them (``DEAP_LOSSGP_VERBOSE=1``,
    ``--verbose``); errors still show.
    """
    quiet = not verbose_requested()
    if quiet:
        # Read by dask's configuration at import, here and in the workers a local cluster starts.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    import distributed

    _dask_random_generator()
    if quiet:
        logging.getLogger("distributed").setLevel(logging.ERROR)
        # Its errors reach the map as exceptions, reported in one line (a lost scheduler: no reconnect traceback).
        logging.getLogger("distributed.client").setLevel(logging.CRITICAL)
    return distributed


def _dask_random_generator():
    """Give Dask's modules a random generator of their own instead of Python's global one.

    Dask draws from :mod:`random` in its own threads (connection back-off,
    choosing a worker to gather from, sampling a message before compressing
    it, estimating sizes), at moments that depend on timing: after a worker
    died, for instance. In the search's process the global generator is the
    algorithm's, and in a worker Keras seeds every layer it builds from it
    (after ``set_random_seed``), so such a draw would change the search or
    a training.
    """
    import importlib

    generator = random.Random()
    for name in ("dask.sizeof", "distributed.comm.core", "distributed.utils_comm", "distributed.scheduler",
                 "distributed.worker"):
        module = importlib.import_module(name)
        if getattr(module, "random", None) is random:
            module.random = generator
    compression = importlib.import_module("distributed.protocol.compression")
    if getattr(compression, "randint", None) == random.randint:
        compression.randint = generator.randint


def _setup_dask_worker(tf_threads, workers, parent):
    """Configure a Dask worker process (run by the cluster on every worker, also on those that join later).

    :param tf_threads: an int, ``"auto"`` (this host's cores divided by *workers*) or ``None``.
    :param workers: the number of workers that share a host's cores under ``"auto"``.
    :param parent: the pid of the process that started a local cluster, or ``None``.
    """
    if tf_threads == "auto":
        tf_threads = auto_threads(workers)
    _import_distributed()  # its logging and random generator, in this worker too
    # The cluster gives each worker its GPU (dask-cuda, CUDA_VISIBLE_DEVICES), not the slot lock files.
    worker_initializer(tf_threads, parent, claim_gpu=False)


class DaskMap(_MapBase):
    """Evaluate on a Dask distributed cluster.

    Without *client* or *scheduler* the map starts a local cluster on first
    use (``LocalCluster(n_workers=workers, threads_per_worker=1,
    processes=True)``, listening on this machine only, no dashboard), whose
    workers die with this process; otherwise it joins the given cluster,
    whose workers must run one thread each (``dask worker ADDRESS --nthreads
    1``), so a worker trains one model at a time and keeps its compiled
    model between trainings. Every worker, including one that joins later or
    replaces a dead one, sets TensorFlow's threads before its first training
    (:func:`~deap_lossgp.fitness.runtime.worker_initializer`).

    A worker that dies mid-training has the training run again on another
    worker by Dask's scheduler (the local cluster allows a training 2 lost
    workers before it fails; an existing scheduler keeps its
    ``distributed.scheduler.allowed-failures``). The result is the same:
    a training gives the same result wherever it runs. Each such rerun is
    counted in :attr:`reruns` and reported by a :class:`RuntimeWarning`
    (``deap-lossgp`` prints it as one warning line). A lost scheduler
    raises :class:`SchedulerLostError`.

    :param client: A ``distributed.Client`` of your own (left open by
                   :meth:`close`), or ``None``.
    :param scheduler: The address of an existing scheduler (``HOST:PORT``,
                      ``tcp://...``, ``tls://...``; TLS certificates come
                      from Dask's configuration) or the path of its
                      scheduler file, or ``None``.
    :param workers: Workers of the local cluster (default: the number of
                    CPU cores, or of GPUs with *gpu*); on an existing
                    cluster, the trainings sent at once (default: the
                    workers it has when the map connects, at least one).
    :param tf_threads: TensorFlow threads per worker: an :class:`int`,
                       ``"auto"`` (the worker's host cores divided by
                       *workers*, at least 1) or ``None``.
    :param gpu: Whether each training asks for one ``GPU`` worker resource
                (``resources={"GPU": 1}``), so a GPU runs one training at a
                time; this replaces the slot lock files of the other
                backends. ``None`` decides: ``True`` if a worker offers the
                resource (on an existing cluster) or this machine has GPUs
                (local cluster, which then needs ``dask-cuda``).
    :raises ValueError: without the ``distributed`` package, or with both
                        *client* and *scheduler*.
    """

    #: Lost workers a training survives on the local cluster before it fails.
    ALLOWED_FAILURES = 2

    def __init__(self, client=None, scheduler=None, workers=None, tf_threads="auto", gpu=None):
        if importlib.util.find_spec("distributed") is None:
            raise ValueError("the 'dask' backend needs Dask's distributed package; "
                             "install it with pip install 'deap_lossgp[dask]'")
        if client is not None and scheduler is not None:
            raise ValueError("give DaskMap a client or a scheduler address, not both")
        self.scheduler = None if scheduler is None else str(scheduler)
        self.tf_threads = tf_threads
        self.gpu = gpu
        #: Trainings run again because the worker running them died.
        self.reruns = 0
        self._client = client
        self._own_client = client is None
        self._cluster = None  # a finalizer that stops the local cluster's process
        self._cluster_process = None
        self._ready = False
        self._lost = set()  # keys of tasks that were running on a worker that died
        self._workers = workers
        if client is None and scheduler is None and workers is None:
            self._workers = (len(list_gpus()) if gpu else 0) or os.cpu_count() or 1

    @property
    def workers(self):
        """How many trainings run at the same time (connects to an existing cluster to count its workers)."""
        if self._workers is None:
            self._start()
        return self._workers

    @property
    def client(self):
        """The ``distributed.Client`` in use (starting the local cluster or connecting first).

        :returns: the client.
        """
        self._start()
        return self._client

    def _start(self):
        if self._ready:
            return
        distributed = _import_distributed()
        if self._client is None:
            if self.scheduler is None:
                self._start_local_cluster(distributed)
            else:
                self._client = self._connect(distributed)
        info = self._client.scheduler_info(n_workers=-1)["workers"]
        if self._workers is None:
            if not info:
                self._client.wait_for_workers(1)
                info = self._client.scheduler_info(n_workers=-1)["workers"]
            self._workers = len(info)
        threaded = sorted({worker["nthreads"] for worker in info.values()} - {1})
        if threaded:
            raise ValueError(f"the Dask workers of the scheduler at {self._address()} run {threaded[0]} threads "
                             "each; start them with one thread (dask worker ADDRESS --nthreads 1) so each trains "
                             "one model at a time")
        offered = any(worker.get("resources", {}).get("GPU") for worker in info.values())
        if self.gpu is None:
            self.gpu = offered
        elif self.gpu and info and not offered:
            raise ValueError(f"no Dask worker of the scheduler at {self._address()} offers a GPU resource; start "
                             "one worker per GPU with dask worker ADDRESS --nthreads 1 --resources GPU=1 "
                             "(CUDA_VISIBLE_DEVICES set to its GPU) or dask cuda worker ADDRESS --resources GPU=1")
        parent = self._cluster_process.pid if self._cluster is not None else None
        self._client.register_worker_callbacks(
            functools.partial(_setup_dask_worker, self.tf_threads, self._workers, parent))
        self._client.subscribe_topic("all", self._worker_event)
        self._ready = True

    def _start_local_cluster(self, distributed):
        gpu = bool(list_gpus()) if self.gpu is None else self.gpu
        if gpu and importlib.util.find_spec("dask_cuda") is None:
            raise ValueError("a local Dask cluster on GPUs needs dask-cuda (one worker per GPU); install it with "
                             "pip install dask-cuda, or use the 'process' backend")
        # No dashboard; the scheduler's HTTP routes (health) on a free loopback port, not the shared 8787.
        options = dict(n_workers=self._workers, threads_per_worker=1, processes=True, dashboard_address=None,
                       scheduler_kwargs={"allowed_failures": self.ALLOWED_FAILURES,
                                         "dashboard_address": "127.0.0.1:0"})
        connection, remote = multiprocessing.get_context("spawn").Pipe()
        # Not a daemon: a daemon may not start processes, and the cluster's workers are its children.
        process = multiprocessing.get_context("spawn").Process(
            target=_serve_local_cluster, args=(options, gpu, remote, os.getpid()), name="dask-local-cluster")
        with _sigint_deferred():
            process.start()
        remote.close()
        self._cluster_process = process
        self._cluster = weakref.finalize(self, _stop_local_cluster, process, connection)
        try:
            address = connection.recv()
        except EOFError:
            self._cluster()
            raise RuntimeError("the local Dask cluster did not start (its process ended); run with "
                               "DEAP_LOSSGP_VERBOSE=1 to see Dask's messages") from None
        self._client = distributed.Client(address)

    def _connect(self, distributed):
        target = {"scheduler_file": self.scheduler} if os.path.isfile(self.scheduler) else {"address": self.scheduler}
        try:
            return distributed.Client(**target)
        except OSError as error:
            raise ConnectionError(f"cannot reach the Dask scheduler at {self.scheduler} ({error}); start it "
                                  "(dask scheduler) and its workers, or give the right address") from None

    def _address(self):
        if self._client is not None and self._client.scheduler is not None:
            return self._client.scheduler.address
        return self.scheduler

    def _worker_event(self, event):
        # Runs in the client's thread: a worker left; the trainings it was running are rerun elsewhere.
        _, message = event
        if isinstance(message, dict) and message.get("action") == "remove-worker" and not message.get("expected"):
            self._lost.update(message.get("processing-tasks") or ())

    def submit(self, function, item):
        """Send ``function(item)`` to the cluster (``Client.submit``).

        :param function: The function; it must be picklable.
        :param item: Its argument (sent as :func:`portable` makes it).
        :returns: A :class:`DaskFuture`.
        :raises SchedulerLostError: if the scheduler is gone.
        """
        client = self.client
        if client.status != "running":
            raise self._lost_scheduler()
        # pure=False: a tree trained twice (a new replicate, a refresh) is two tasks, never one cached result.
        future = client.submit(_Task(function, None), portable(item), pure=False,
                               resources={"GPU": 1} if self.gpu else None)
        return DaskFuture(future, self)

    def first_completed(self, futures):
        """Wait until one of *futures* has finished (``distributed.wait(..., return_when="FIRST_COMPLETED")``).

        :param futures: Futures from :meth:`submit`, none cancelled.
        :returns: The earliest submitted of those that have finished.
        """
        from distributed import wait

        done, _ = wait([future.future for future in futures], return_when="FIRST_COMPLETED")
        keys = {future.key for future in done}
        first = next(future for future in futures if future.future.key in keys)
        if first.future.key in self._lost and first.future.status == "finished":
            self._lost.discard(first.future.key)
            self.reruns += 1
            warnings.warn(f"a Dask worker died during a training, which then ran on another worker "
                          f"({self.reruns} rerun{'s' if self.reruns > 1 else ''} so far)", RuntimeWarning,
                          stacklevel=2)
        return first

    def _lost_scheduler(self):
        return SchedulerLostError(f"the Dask scheduler at {self._address()} was lost; restart it and its workers")

    def close(self):
        """Close the client and the local cluster this map started (a client of yours stays open).

        :returns: None
        """
        client, cluster, self._cluster = self._client, self._cluster, None
        self._ready = False
        if client is not None:
            if client.status == "running":
                client.unsubscribe_topic("all")
            if self._own_client:
                self._client = None
                client.close()
        if cluster is not None:
            cluster()

    def terminate(self):
        """Stop now, abandoning running trainings: the local cluster's workers are killed, then it is closed.

        :returns: None
        """
        if self._cluster is not None:
            import psutil  # a dependency of distributed

            # Killed first, the workers do not hold up the cluster's close while they finish their trainings.
            for worker in psutil.Process(self._cluster_process.pid).children():
                worker.kill()
        self.close()


def _serve_local_cluster(options, gpu, connection, parent):
    """Hold the local cluster of a :class:`DaskMap` in a process of its own.

    The scheduler's work then does not compete with the algorithm for the
    search process's interpreter, and the cluster dies with the search: this
    process dies with the map's, and the workers, its children, with it.
    """
    worker_initializer(None, parent)  # dies with the map's process and leaves Ctrl-C to it
    distributed = _import_distributed()
    if gpu:
        from dask_cuda import LocalCUDACluster

        cluster = LocalCUDACluster(resources={"GPU": 1}, **options)
    else:
        cluster = distributed.LocalCluster(**options)
    with cluster:
        connection.send(cluster.scheduler_address)
        try:
            connection.recv()  # until the map stops the cluster or goes away
        except EOFError:
            pass


def _stop_local_cluster(process, connection):
    """Stop a local cluster's process: its workers end with it."""
    try:
        connection.send("stop")
    except OSError:  # it has ended already
        pass
    connection.close()
    process.join(timeout=30)
    if process.is_alive():
        process.kill()
        process.join()


class DaskFuture:
    """A Dask future under the :class:`~deap_lossgp.evaluation.Executor` contract.

    :param future: The ``distributed.Future``.
    :param owner: The :class:`DaskMap` that submitted it.

    .. attribute:: future

       The ``distributed.Future``.
    """

    def __init__(self, future, owner):
        self.future = future
        self._owner = owner
        self._cancelled = False

    def result(self):
        """The return value.

        :returns: What the function returned (its exception propagates).
        :raises concurrent.futures.CancelledError: if it was cancelled.
        :raises SchedulerLostError: if the scheduler was lost first.
        """
        if self._cancelled:
            raise concurrent.futures.CancelledError()
        if self.future.status == "cancelled":
            raise self._owner._lost_scheduler()
        return self.future.result()

    def cancel(self):
        """Cancel the training unless it has finished: it leaves the queue, or
        its result is discarded if it is running.

        :returns: ``True`` if its result will never be used, ``False`` if it has finished.
        """
        if self.future.done():
            return False
        self.future.cancel()
        self._cancelled = True
        return True

    def cancelled(self):
        """:returns: whether :meth:`cancel` was called."""
        return self._cancelled

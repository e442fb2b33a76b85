"""TensorFlow's process state, owned here and nowhere else.

A process sets TensorFlow's thread pools and deterministic ops once, before
its first operation.  Everything that trains goes through
:func:`configure_tensorflow`, and the map backends start their workers with
:func:`worker_initializer`, so one module decides what a process looks like.
Importing this module does not import TensorFlow.

TensorFlow's own log lines (C++ ``I0000 ... port.cc] oneDNN custom operations
are on...`` at import, ``E0000 ... failed call to cuInit`` on a machine
without a GPU, Python ``absl`` warnings) are kept out of the output by
default: the library imports TensorFlow (and Keras) only through
:func:`import_tensorflow` and :func:`import_keras`, which import it quietly,
so a script using the library prints none of them without calling anything.
Worker processes inherit the choice through the environment.  To see them,
set ``DEAP_LOSSGP_VERBOSE=1`` or call :func:`verbose_tensorflow` before the
first training (the command line's ``--verbose``); a ``TF_CPP_MIN_LOG_LEVEL``
of your own is respected as it is.
"""

import os
import re
import signal
import sys
import tempfile
import threading
import time
import warnings

from .devices import allow_memory_growth, pin_gpu

__all__ = ["configure_tensorflow", "configured_threads", "worker_initializer", "auto_threads", "quiet_tensorflow",
           "verbose_tensorflow", "verbose_requested", "import_tensorflow", "import_keras"]

# Set once this process imports TensorFlow quietly; inherited by worker processes, which then do too.
_QUIET = "DEAP_LOSSGP_QUIET_TENSORFLOW"
# The user's opt-out: TensorFlow's log lines are shown.
_VERBOSE = "DEAP_LOSSGP_VERBOSE"
# TensorFlow's informational lines at import: absl's INFO/WARNING lines, their notice and continuation.
_IMPORT_NOISE = re.compile(r"^([IW]\d{4} \S+ +\d+ \S+:\d+\] |WARNING: All log messages before absl"
                           r"|To enable the following instructions)")

# The thread count once this process has configured TensorFlow (None: not yet).
_threads = None


def configured_threads():
    """The thread count this process gave TensorFlow.

    :returns: an int (``0``: TensorFlow's choice), or ``None`` before
              :func:`configure_tensorflow` ran.
    """
    return _threads


def configure_tensorflow(threads=0):
    """Set TensorFlow's thread pools and deterministic ops for this process.

    The first call decides; later calls change nothing, so call it before
    TensorFlow runs its first operation (a worker's initializer does).  A
    later call asking for a different count only warns, since thread pools
    cannot change once TensorFlow runs.

    :param threads: intra- and inter-op threads; ``0`` lets TensorFlow choose
                    (all cores), or keeps the count this process set earlier
                    (a worker pool's per-worker share).  Results are
                    bit-identical only for the same count.
    :returns: ``None``.
    :raises ValueError: if ``threads`` is negative.
    """
    global _threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be a non-negative integer (0 = TensorFlow's choice), got {threads!r}")
    if _threads is not None:
        if threads not in (0, _threads):
            warnings.warn(
                f"TensorFlow is already running with {_threads or 'default'} threads in this process; cannot "
                f"switch to {threads}. Call configure_tensorflow() once, before any TensorFlow operation.",
                RuntimeWarning,
                stacklevel=2,
            )
        return
    allow_memory_growth()
    tf = import_tensorflow()
    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        _threads = threads
    except RuntimeError:
        _threads = tf.config.threading.get_intra_op_parallelism_threads()
        if threads not in (0, _threads):
            warnings.warn(
                f"TensorFlow is already running with {_threads or 'default'} threads; cannot switch to {threads}. "
                "Call configure_tensorflow() before any TensorFlow operation.",
                RuntimeWarning,
                stacklevel=2,
            )


def auto_threads(workers):
    """TensorFlow threads per worker when *workers* processes share this machine.

    :param workers: the number of worker processes on this machine.
    :returns: ``max(1, cores // workers)``.
    """
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def worker_initializer(tf_threads, parent=None, claim_gpu=True):
    """Configure a worker process before its first task.

    :param tf_threads: an int, ``"auto"`` (this host's cores shared by
                       SCOOP's workers) or ``None`` to leave TensorFlow alone
                       (no import, for evaluators that do not train).
    :param parent: the pid of the process that owns this worker (a pool's
                   parent), or ``None``.  The worker then dies with it,
                   however it ends (even ``SIGKILL``), and leaves Ctrl-C to it.
    :param claim_gpu: claim one of the host's GPUs by the slot lock files
                      (:func:`~deap_lossgp.fitness.devices.pin_gpu`);
                      ``False`` when the cluster pins each worker to its GPU
                      itself (Dask workers started with one GPU each).
    :returns: ``None``.
    """
    if parent is not None:
        _die_with_parent(parent)
    if tf_threads is None or _threads is not None:
        return
    if tf_threads == "auto":
        import scoop

        tf_threads = auto_threads(getattr(scoop, "SIZE", None) or 1)
    if claim_gpu:
        pin_gpu()  # before TensorFlow starts: one GPU per worker
    configure_tensorflow(tf_threads)


def verbose_requested():
    """Whether the user asked for the log lines of the libraries we run
    (``DEAP_LOSSGP_VERBOSE=1``, set by :func:`verbose_tensorflow` and the
    command line's ``--verbose``).

    :returns: a :class:`bool`.
    """
    return os.environ.get(_VERBOSE, "").strip().lower() not in ("", "0", "false", "no")


def _quiet_wanted():
    """Whether TensorFlow is to be imported quietly (see the module's description)."""
    if verbose_requested():
        return False
    # Our own setting, inherited or set here, is not the user's.
    return os.environ.get(_QUIET) == "1" or "TF_CPP_MIN_LOG_LEVEL" not in os.environ


def quiet_tensorflow():
    """Keep TensorFlow's log lines out of this process and the processes it starts.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` (fatal C++ messages only: the
    GPU-capable ``tensorflow`` package logs a ``failed call to cuInit`` error
    on every machine without a GPU; real failures still raise in Python) and
    imports TensorFlow with its import-time notices dropped (they are written
    before that setting applies).  Numerics are unchanged: oneDNN stays on.
    The library's own first import of TensorFlow does this anyway
    (:func:`import_tensorflow`); calling it imports TensorFlow now.  Does
    nothing when the user set ``TF_CPP_MIN_LOG_LEVEL`` or
    ``DEAP_LOSSGP_VERBOSE=1`` themselves, so their choice wins, or when
    TensorFlow was imported already by other code.

    :returns: ``True`` if TensorFlow is quiet from now on.
    """
    if not _quiet_wanted() or ("tensorflow" in sys.modules and _QUIET not in os.environ):
        return False
    import_tensorflow()
    return True


def verbose_tensorflow():
    """Show TensorFlow's log lines in this process and the processes it starts.

    Sets ``DEAP_LOSSGP_VERBOSE=1``, the opt-out from the quiet default.
    Call it before the first training (TensorFlow's import decides).

    :returns: ``True`` if TensorFlow's lines will be shown, ``False`` if it
              was already imported quietly.
    """
    os.environ[_VERBOSE] = "1"
    if "tensorflow" in sys.modules:
        return _QUIET not in os.environ
    os.environ.pop(_QUIET, None)
    return True


def import_tensorflow():
    """Import TensorFlow, quietly unless the user asked for its log lines.

    Quiet (the default) means ``TF_CPP_MIN_LOG_LEVEL=3`` for this process and
    the ones it starts, and TensorFlow's informational import-time lines
    dropped; anything else it writes to the standard error while importing
    (an error, a warning of another library) is written through.  Shown as
    TensorFlow writes them with ``DEAP_LOSSGP_VERBOSE=1``
    (:func:`verbose_tensorflow`) or a ``TF_CPP_MIN_LOG_LEVEL`` of the user's.

    :returns: the ``tensorflow`` module.
    """
    if "tensorflow" in sys.modules or not _quiet_wanted():
        import tensorflow as tf

        return tf
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    os.environ[_QUIET] = "1"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        # The notices come from C++ at import, so only a file-descriptor redirect catches them.
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                if not _IMPORT_NOISE.match(line)]
    sys.stderr.write("".join(kept))
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel("ERROR")
    return tf


def import_keras():
    """Import Keras, with TensorFlow imported first through :func:`import_tensorflow`.

    Importing Keras imports TensorFlow, its backend; this module decides how.

    :returns: the ``keras`` module.
    """
    import_tensorflow()
    import keras

    return keras


def _die_with_parent(parent):
    # The parent turns Ctrl-C into one message and stops the workers; a worker's traceback would only add noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        # PR_SET_PDEATHSIG = 1: the kernel kills this worker when its parent dies.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    # The parent may have died before prctl; elsewhere (macOS) the watch alone does it, within a second.
    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()


def _watch_parent(parent):
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)

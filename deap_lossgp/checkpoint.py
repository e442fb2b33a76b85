"""Resumable search state.

:func:`~deap_lossgp.algorithms.eaSampleTournament` and
:func:`~deap_lossgp.algorithms.eaNGL` take a ``checkpoint=`` path: after the
initial evaluation and after every generation they write the whole search state
there, and when the file already exists they resume from it instead of starting
over. A run killed at any moment (even while a checkpoint is being written) and
restarted with the same script and seed ends with the same population, hall of
fame and logbook as an uninterrupted run.

A checkpoint is a dictionary pickled with a small header:

``algorithm``, ``params``
    which algorithm wrote it and the parameters that shape its trajectory;
    resuming with another algorithm or other parameters is refused.
``generation``
    the next generation to run (the last finished one + 1).
``population``, ``halloffame``, ``logbook``, ``archive``
    the search state (``archive`` is the NGL archive, empty for Algorithm 1).
``random_state``, ``numpy_random_state``
    :func:`random.getstate` and :func:`numpy.random.get_state` at that moment.
``cache``
    the evaluator's evaluation cache, so no evaluation is paid twice across a
    resume.

Writes are atomic: the state goes to ``<path>.tmp``, is flushed to disk, and then
replaces ``<path>`` with :func:`os.replace`, so ``<path>`` always holds either the
previous or the new complete checkpoint.

.. warning::

   Checkpoints are pickles. Loading one can execute arbitrary code: only load
   checkpoints that you wrote yourself or that come from a source you trust.
"""

import os
import pickle

__all__ = ["CheckpointError", "FORMAT", "VERSION", "save_checkpoint", "load_checkpoint"]

FORMAT = "deap_lossgp.checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, corrupt, written by
    another program or format version, or by another algorithm or parameter
    set. The file is left untouched."""


def save_checkpoint(path, state):
    """Write *state* to *path* atomically.

    The state is pickled to ``<path>.tmp``, flushed and synced to disk, then
    renamed over *path*; a crash at any point leaves either the old or the new
    checkpoint at *path*, never a partial one.

    :param path: Destination file (:class:`str` or path-like). Its directory
                 must exist.
    :param state: A picklable :class:`dict` (see the module documentation for
                  the keys the algorithms use).
    :returns: None
    """
    path = os.fspath(path)
    tmp = path + ".tmp"
    payload = {"format": FORMAT, "version": VERSION, "state": state}
    with open(tmp, "wb") as stream:
        pickle.dump(payload, stream, protocol=pickle.HIGHEST_PROTOCOL)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(tmp, path)
    _sync_directory(os.path.dirname(os.path.abspath(path)))


def load_checkpoint(path):
    """Read a checkpoint written by :func:`save_checkpoint`.

    .. warning::

       This unpickles the file, which can execute arbitrary code: only load
       checkpoints from a trusted source.

    Unpickling needs the classes of the stored individuals, so create your
    :mod:`deap.creator` classes and primitive set (or call
    :func:`~deap_lossgp.search.toolbox.make_toolbox`) before loading.

    :param path: The checkpoint file.
    :returns: The state :class:`dict` that was saved.
    :raises CheckpointError: if the file is unreadable, truncated, corrupt, not
                             a deap_lossgp checkpoint or of another format
                             version.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as stream:
            payload = pickle.load(stream)
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path!r}: {error}") from error
    except (AttributeError, ModuleNotFoundError) as error:
        raise CheckpointError(
            f"checkpoint {path!r} refers to a class or module that does not exist "
            f"here ({error}); create the same creator classes and primitive set "
            f"before resuming, or start a new run with another checkpoint path"
        ) from error
    except Exception as error:
        # Truncated or garbled pickles raise a variety of errors (EOFError,
        # UnpicklingError, ValueError, IndexError...): all mean "corrupt".
        raise CheckpointError(
            f"checkpoint {path!r} is corrupt ({type(error).__name__}: {error}); "
            f"delete it to start over or pass another checkpoint path"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path!r} is not a deap_lossgp checkpoint; pass another checkpoint path"
        )
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path!r} has format version {payload.get('version')!r}, this "
            f"deap_lossgp reads version {VERSION}; resume with the deap_lossgp "
            f"version that wrote it or start a new run"
        )
    return payload["state"]


def _sync_directory(directory):
    """Persist the rename itself (POSIX); a no-op where directories cannot be
    opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

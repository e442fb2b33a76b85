"""Resumable search state.

:func:`~deap_lossgp.algorithms.eaSampleTournament` and
:func:`~deap_lossgp.algorithms.eaNGL` take a ``checkpoint=`` path: after the
initial evaluation and after every generation they write the whole search state
there, and when the file already exists they resume from it instead of starting
over. A run killed at any moment (even while a checkpoint is being written) and
restarted with the same script and seed ends with the same population, hall of
fame and logbook as an uninterrupted run.

A checkpoint is a pickled dictionary:

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

The file starts with a one-line header, ``deap_lossgp.checkpoint 2
<length> <sha256>``: the length and SHA-256 digest of the pickle that follows.
The digest is checked before anything is unpickled, so a truncated or
corrupted file (a flipped byte, a torn copy) is a :class:`CheckpointError`
that names the file and leaves it untouched.

Writes are atomic: the state goes to ``<path>.tmp``, is flushed to disk, and then
replaces ``<path>`` with :func:`os.replace`, so ``<path>`` always holds either the
previous or the new complete checkpoint.  The checkpoint it replaces is kept as
``<path>.prev``; :func:`load_checkpoint` falls back to it, with a warning, when
``<path>`` is corrupt, so a damaged file costs one generation, not the run.

.. warning::

   Checkpoints are pickles. Loading one can execute arbitrary code: only load
   checkpoints that you wrote yourself or that come from a source you trust.
   The digest detects damage, not tampering.
"""

import hashlib
import os
import pickle
import shutil
import warnings

from .checks import open_for_reading, open_for_writing

__all__ = ["CheckpointError", "FORMAT", "VERSION", "save_checkpoint", "load_checkpoint", "previous_path"]

FORMAT = "deap_lossgp.checkpoint"
VERSION = 2
# Version 1 files are a bare pickle of {"format", "version", "state"}, without a digest.
_LEGACY_VERSION = 1
# The header line is short; a longer first line is not a header.
_HEADER_LIMIT = 200


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, corrupt, written by
    another program or format version, or by another algorithm or parameter
    set. The file is left untouched.

    :param message: what is wrong with which file, and what to do.
    :param corrupt: whether the file is damaged (then an intact previous
                    checkpoint may replace it).
    """

    def __init__(self, message, corrupt=False):
        super().__init__(message)
        self.corrupt = corrupt


def previous_path(path):
    """Where :func:`save_checkpoint` keeps the checkpoint it replaces.

    :param path: a checkpoint path.
    :returns: ``<path>.prev`` as a :class:`str`.
    """
    return os.fspath(path) + ".prev"


def save_checkpoint(path, state):
    """Write *state* to *path* atomically, keeping the checkpoint it replaces.

    The state is pickled to ``<path>.tmp`` behind its length and digest,
    flushed and synced to disk, then renamed over *path*; a crash at any point
    leaves either the old or the new checkpoint at *path*, never a partial one.
    The old one, if it is intact, becomes ``<path>.prev`` first.

    :param path: Destination file (:class:`str` or path-like). Its directory
                 must exist.
    :param state: A picklable :class:`dict` (see the module documentation for
                  the keys the algorithms use).
    :returns: None
    :raises OSError: if the file cannot be written (the temporary file is
                     removed and *path* is left as it was).
    """
    path = os.fspath(path)
    tmp = path + ".tmp"
    body = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    header = f"{FORMAT} {VERSION} {len(body)} {hashlib.sha256(body).hexdigest()}\n".encode("ascii")
    try:
        with open_for_writing(tmp, "wb") as stream:
            stream.write(header)
            stream.write(body)
            stream.flush()
            os.fsync(stream.fileno())
        _keep_previous(path)
        os.replace(tmp, path)
    except OSError as error:
        # A full disk leaves a partial temporary file: remove it, the checkpoint at path is intact.
        if os.path.exists(tmp):
            os.remove(tmp)
        raise OSError(error.errno, error.strerror, error.filename or tmp) from None
    _sync_directory(os.path.dirname(os.path.abspath(path)))


def _keep_previous(path):
    """Make the intact checkpoint at *path* the previous one (a damaged one is not kept)."""
    if not os.path.exists(path):
        return
    try:
        _read(path)
    except CheckpointError:
        return
    staged = previous_path(path) + ".tmp"
    if os.path.islink(staged):
        os.remove(staged)  # a planted link must not receive the copy below
    try:
        os.link(path, staged)
    except FileExistsError:
        os.remove(staged)
        os.link(path, staged)
    except OSError:  # no hard links on this file system
        shutil.copyfile(path, staged)
    os.replace(staged, previous_path(path))


def load_checkpoint(path, required=(), fallback=True, trust_legacy=False):
    """Read a checkpoint written by :func:`save_checkpoint`.

    .. warning::

       This unpickles the file, which can execute arbitrary code: only load
       checkpoints from a trusted source.

    Unpickling needs the classes of the stored individuals, so create your
    :mod:`deap.creator` classes and primitive set (or call
    :func:`~deap_lossgp.search.toolbox.make_toolbox`) before loading.

    :param path: The checkpoint file.
    :param required: keys the state must hold (e.g. ``("logbook",)``).
    :param fallback: when *path* is corrupt, load ``<path>.prev`` instead
                     (if it is intact), with a :class:`RuntimeWarning`.
    :param trust_legacy: also unpickle a version-1 file, which has no digest
                         to check (``deap-lossgp resume --trust-checkpoint``
                         upgrades one); refused otherwise.
    :returns: The state :class:`dict` that was saved.
    :raises CheckpointError: if the file is unreadable, truncated, corrupt
                             (and has no intact previous checkpoint), not a
                             deap_lossgp checkpoint, of another format
                             version, or lacks a *required* key.  No file is
                             changed.
    """
    path = os.fspath(path)
    try:
        state = _read(path, trust_legacy)
    except CheckpointError as error:
        previous = previous_path(path)
        if not (fallback and error.corrupt and os.path.exists(previous)):
            raise
        try:
            state = _read(previous, trust_legacy)
        except CheckpointError:
            raise error from None
        warnings.warn(f"{error}; resuming from the previous checkpoint {previous!r} instead (one generation "
                      f"earlier)", RuntimeWarning, stacklevel=2)
        path = previous
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path!r} holds no {', '.join(map(repr, missing))}; it was not written "
                              f"by a deap_lossgp search: remove it (and its .prev) to start over, or restore "
                              f"the run's own checkpoint", corrupt=True)
    return state


def _read(path, trust_legacy=False):
    """The state stored at *path*, checked against its digest before it is unpickled."""
    try:
        with open_for_reading(path) as stream:
            header = stream.readline(_HEADER_LIMIT)
            body = stream.read()
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path!r}: {error.strerror or error}; check that the file "
                              f"exists and is readable") from error
    fix = "remove it to start over from the previous checkpoint or the beginning, or restore it from a backup"
    fields = header.split()
    if len(fields) != 4 or fields[0] != FORMAT.encode():
        if header.startswith(b"\x80"):
            if not trust_legacy:
                raise CheckpointError(f"checkpoint {path!r} has no digest header (version 1, or not ours), so it "
                                      f"is not unpickled; if you wrote it, upgrade it with 'deap-lossgp resume "
                                      f"RUN_DIR --trust-checkpoint'", corrupt=True)
            return _read_legacy(path, header + body, fix)
        raise CheckpointError(f"{path!r} is corrupt or not a deap_lossgp checkpoint (no valid header); {fix}",
                              corrupt=True)
    if fields[1] != str(VERSION).encode():
        raise CheckpointError(
            f"checkpoint {path!r} has format version {fields[1].decode('ascii', 'replace')!r}, this deap_lossgp "
            f"reads version {VERSION}; resume with the deap_lossgp version that wrote it or start a new run"
        )
    if fields[2] != str(len(body)).encode() or fields[3] != hashlib.sha256(body).hexdigest().encode():
        raise CheckpointError(f"checkpoint {path!r} is corrupt (its length or SHA-256 digest does not match its "
                              f"content); {fix}", corrupt=True)
    state = _unpickle(path, body, fix)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path!r} holds a {type(state).__name__}, not a state dict; {fix}",
                              corrupt=True)
    return state


def _read_legacy(path, data, fix):
    """A version-1 checkpoint: a bare pickle, with no digest to check."""
    payload = _unpickle(path, data, fix)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a deap_lossgp checkpoint; pass another checkpoint path")
    if payload.get("version") != _LEGACY_VERSION or not isinstance(payload.get("state"), dict):
        raise CheckpointError(
            f"checkpoint {path!r} has format version {payload.get('version')!r}, this deap_lossgp reads version "
            f"{VERSION}; resume with the deap_lossgp version that wrote it or start a new run"
        )
    return payload["state"]


def _unpickle(path, data, fix):
    try:
        return pickle.loads(data)
    except (AttributeError, ModuleNotFoundError) as error:
        raise CheckpointError(
            f"checkpoint {path!r} refers to a class or module that does not exist "
            f"here ({error}); create the same creator classes and primitive set "
            f"before resuming, or start a new run with another checkpoint path"
        ) from error
    except (Exception, SystemExit) as error:
        # Garbled pickles raise a variety of errors (EOFError, UnpicklingError, ValueError, IndexError...);
        # a hostile one may try to end the process.
        raise CheckpointError(f"checkpoint {path!r} is corrupt ({type(error).__name__}: {error}); {fix}",
                              corrupt=True) from error


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

"""The run directory: everything a search leaves for a person to read and reuse.

=====================  ==========================================================
``config.json``        the exact configuration (preset, overrides, algorithm,
                       search seed, backend), enough to resume or rerun the search
``checkpoint.pkl``     the resumable state after the last finished generation
                       (a pickle: load only your own or trusted files), and
                       ``checkpoint.pkl.prev``, the one before it
``evaluations.jsonl``  one JSON line per evaluation: expression, status,
                       per-task metrics, fitness, stop reasons, time
``logbook.csv``        one row per generation (evaluations, cache hits, time,
                       fitness statistics)
``best.json``          the best loss: expression, simplified formula, LaTeX,
                       fitness and its per-task metrics, and its
                       confirmation on fresh seeds and the test split with
                       the verdict (only when at least one candidate
                       completed training, see :func:`count_completed`)
``confirmation.json``  the confirmed ranking of the hall of fame's best
                       (:mod:`deap_lossgp.search.confirm`), and
                       ``confirmation.jsonl``, its trainings' records
``best_loss.py``       the best loss as a standalone Keras loss class (idem)
``hall_of_fame.csv``   the top distinct losses so far, ranked, with per-task
                       metrics (see :mod:`deap_lossgp.search.halloffame`)
``fitness.png``        best and median fitness per generation (written by
                       the command line, :mod:`deap_lossgp.app.plots`)
``.lock``              held by the one process that writes the run
=====================  ==========================================================

Every JSON file is strict JSON; a non-finite number (the worst fitness's
improvement) is the string ``"-inf"`` (see :func:`~deap_lossgp.checks.json_dumps`).
"""

import collections
import contextlib
import csv
import errno
import os
import pathlib
import shutil
import warnings

from ..checks import json_dumps, json_loads, open_for_reading, open_for_writing
from ..gp.expression import to_formula, to_latex, to_python_source, to_string

__all__ = ["RunDirectory", "RunLockedError", "RecordReplay", "logbook_rows", "read_records", "count_completed",
           "describe_statuses"]

# The keys of a configuration written by make_config that every command reads.
_CONFIG_KEYS = ("preset", "algorithm", "backend", "workers", "resolved")
# Statuses of records written by the validity screen (a rejection), not by a training.
_REJECTED = ("invalid", "untrainable")


class RunLockedError(RuntimeError):
    """Another process is writing the run directory."""


def logbook_rows(logbook):
    """Flatten a logbook (with or without chapters) into rows of plain values.

    Chapter fields become ``<chapter>_<field>`` columns.

    :param logbook: a :class:`deap.tools.Logbook`.
    :returns: a list of dicts, one per generation.
    """
    rows = []
    for index, entry in enumerate(logbook):
        row = dict(entry)
        for name, chapter in logbook.chapters.items():
            # DEAP copies the top-level fields (gen, nevals...) into every chapter.
            row.update({f"{name}_{key}": value for key, value in chapter[index].items() if key not in entry})
        rows.append(row)
    return rows


def read_records(path):
    """Read an ``evaluations.jsonl`` file.

    A line that is not a whole JSON object (a torn line left by a crash or a
    full disk), or whose fields have types the evaluator never writes (an
    edit), is skipped, with one :class:`RuntimeWarning` naming the file;
    :meth:`RunDirectory.repair_records` moves such lines aside.

    :param path: the file.
    :returns: a list of record dicts (empty if the file does not exist).
    """
    records, damaged = _parse_records(path)
    if damaged:
        warnings.warn(f"{path}: skipped {len(damaged)} damaged line(s) (line {damaged[0][0]} first), left by an "
                      f"interrupted write or an edit; 'deap-lossgp resume' moves them aside", RuntimeWarning,
                      stacklevel=2)
    return records


def _parse_records(path):
    """``(records, damaged)``: the records, and ``(line number, raw bytes)`` of unreadable lines."""
    path = pathlib.Path(path)
    if not path.exists():
        return [], []
    records, damaged = [], []
    with open_for_reading(path) as stream:
        data = stream.read()
    for number, raw in enumerate(data.splitlines(keepends=True), 1):
        if not raw.strip():
            continue
        try:
            record = json_loads(raw)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            record = None
        if isinstance(record, dict) and raw.endswith(b"\n") and _well_formed(record):
            records.append(record)
        else:
            damaged.append((number, raw))
    return records, damaged


def _well_formed(record):
    """Whether the fields a run reads back from a record have the types the evaluator writes."""
    fitness, replicate = record.get("fitness"), record.get("replicate", 0)
    return (isinstance(record.get("status", ""), str) and isinstance(record.get("key"), (str, type(None)))
            and isinstance(record.get("expression", ""), str)
            and isinstance(replicate, int) and not isinstance(replicate, bool) and replicate >= 0
            and (fitness is None or isinstance(fitness, list) and all(
                isinstance(value, (int, float)) and not isinstance(value, bool) for value in fitness)))


def count_completed(records):
    """Count the evaluations that completed training, and every evaluation by status.

    An evaluation completed when its ``status`` is ``"ok"``: the candidate
    trained to the end on every task.  Any other status (``stopped``,
    ``failed``, ``invalid``, ``untrainable``, ``error``, or one added later)
    means it did not.  This is the one place that rule is written: the search
    exports a best loss only when some evaluation completed.

    :param records: evaluation records, e.g. from :func:`read_records`.
    :returns: ``(completed, statuses)``: the number of completed evaluations
              and a dict ``status -> number of records``, most frequent first.
    """
    statuses = collections.Counter(record.get("status", "unknown") for record in records)
    return statuses["ok"], dict(statuses.most_common())


def describe_statuses(statuses):
    """Say how many evaluations there were and how they ended, for messages.

    :param statuses: a dict ``status -> count`` (from :func:`count_completed`).
    :returns: a string such as ``"3 evaluations: 2 stopped, 1 invalid"``.
    """
    total = sum(statuses.values())
    text = f"{total} evaluation{'' if total == 1 else 's'}"
    if statuses:
        text += ": " + ", ".join(f"{count} {status}" for status, count in statuses.items())
    return text


class RunDirectory:
    """Paths and writers of one run directory.

    :param path: the directory (created if missing).
    """

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.config = self.path / "config.json"
        self.checkpoint = self.path / "checkpoint.pkl"
        self.records = self.path / "evaluations.jsonl"
        self.logbook = self.path / "logbook.csv"
        self.best = self.path / "best.json"
        self.best_loss = self.path / "best_loss.py"
        self.hall_of_fame = self.path / "hall_of_fame.csv"
        self.confirmation = self.path / "confirmation.json"
        self.confirmation_records = self.path / "confirmation.jsonl"
        self.plot = self.path / "fitness.png"
        self.lock_file = self.path / ".lock"
        self.damaged_records = self.path / "evaluations.damaged"
        self._lock = None

    def create(self):
        """Create the directory.

        :returns: this object.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def write_config(self, config):
        """Write ``config.json`` (atomically).

        :param config: a JSON-serialisable dict.
        :returns: the path written.
        """
        self._write_text(self.config, json_dumps(config, indent=2, sort_keys=True) + "\n")
        return self.config

    def read_config(self):
        """Read ``config.json``.

        :returns: the configuration dict.
        :raises FileNotFoundError: if this is not a run directory.
        :raises ValueError: if ``config.json`` is not a configuration that
                            ``evolve`` wrote.
        """
        if not self.config.exists():
            raise FileNotFoundError(
                f"{self.path} is not a run directory (no config.json); give the directory a search wrote"
            )
        config = self._read_json(self.config, "restore it from a backup or start a new run with 'deap-lossgp evolve'")
        missing = [key for key in _CONFIG_KEYS if not isinstance(config, dict) or key not in config]
        if not missing and "search_seed" not in config and "seed" not in config:
            missing = ["search_seed"]
        if missing:
            raise ValueError(f"{self.config} lacks {', '.join(map(repr, missing))}: it was not written by "
                             f"'deap-lossgp evolve'; restore it from a backup or start a new run")
        return config

    def read_best(self, required=("expression",)):
        """Read ``best.json``.

        :param required: the keys the caller needs.
        :returns: its dict.
        :raises ValueError: if the file is malformed or lacks a required key.
        """
        fix = f"delete it and run 'deap-lossgp resume {self.path}' to write it again"
        best = self._read_json(self.best, fix)
        missing = [key for key in required if not isinstance(best, dict) or key not in best]
        if missing:
            raise ValueError(f"{self.best} lacks {', '.join(map(repr, missing))}; {fix}")
        kinds = {"expression": str, "formula": str, "fitness": list, "verdict": str, "confirmed": (dict, type(None))}
        wrong = [key for key, kind in kinds.items() if key in best and not isinstance(best[key], kind)]
        fitness = best.get("fitness")
        if not wrong and isinstance(fitness, list) and (len(fitness) != 2 or not all(
                isinstance(value, (int, float)) and not isinstance(value, bool) for value in fitness)):
            wrong = ["fitness"]
        if wrong:
            raise ValueError(f"{self.best} holds a malformed {', '.join(map(repr, wrong))}; {fix}")
        return best

    @staticmethod
    def _read_json(path, fix):
        try:
            with open_for_reading(path) as stream:
                return json_loads(stream.read())
        except ValueError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); {fix}") from None

    @contextlib.contextmanager
    def lock(self):
        """Hold the run directory's lock: one writer per run directory.

        The lock is an :func:`fcntl.flock` on ``.lock``, which the system
        releases when the holder exits, even when it is killed, so a stale
        lock needs no cleaning.  Without :mod:`fcntl` (Windows) nothing is
        locked.

        :returns: a context manager.
        :raises RunLockedError: if another process holds the lock.
        """
        try:
            import fcntl
        except ImportError:
            yield self
            return
        handle = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(handle, 32, 0).decode("ascii", "replace").strip() or "unknown"
                raise RunLockedError(
                    f"{self.path} is in use by another process (pid {holder}); wait for it to finish or stop it, "
                    f"then run the command again"
                ) from None
            os.ftruncate(handle, 0)
            os.pwrite(handle, f"{os.getpid()}\n".encode("ascii"), 0)
            yield self
        finally:
            os.close(handle)

    def check_writable(self):
        """Check that a checkpoint can be written now, before training is spent.

        Writes and removes a probe file, and requires free space for two
        checkpoints (at least 1 MB).

        :returns: ``None``.
        :raises OSError: naming the directory, if it is not writable or full.
        """
        probe = self.path / ".write-test"
        handle = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            data = b"0" * 4096
            if os.write(handle, data) != len(data):
                raise OSError(errno.ENOSPC, "short write (is the disk full?)", str(probe))
            os.fsync(handle)
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(probe)) from None
        finally:
            os.close(handle)
            with contextlib.suppress(OSError):
                probe.unlink()
        size = self.checkpoint.stat().st_size if self.checkpoint.exists() else 0
        needed = max(2 * size, 1 << 20)
        if shutil.disk_usage(self.path).free < needed:
            raise OSError(errno.ENOSPC, f"less than {needed >> 20} MB free for the checkpoint", str(self.path))

    def repair_records(self):
        """Move the damaged lines of ``evaluations.jsonl`` aside.

        A crash or a full disk can leave a torn last line; appending after it
        would damage the next record too.  The readable records stay, the
        damaged lines are appended to ``evaluations.damaged`` (nothing is
        lost), and a :class:`RuntimeWarning` names both files.

        :returns: the number of damaged lines moved.
        """
        records, damaged = _parse_records(self.records)
        if not damaged:
            return 0
        with open_for_writing(self.damaged_records, "ab", append=True) as stream:
            stream.write(b"".join(raw if raw.endswith(b"\n") else raw + b"\n" for _, raw in damaged))
            stream.flush()
            os.fsync(stream.fileno())
        self._write_text(self.records, "".join(json_dumps(record) + "\n" for record in records))
        warnings.warn(f"{self.records}: moved {len(damaged)} damaged line(s) (left by an interrupted write or an edit) to "
                      f"{self.damaged_records}", RuntimeWarning, stacklevel=2)
        return len(damaged)

    def write_logbook(self, logbook):
        """Write ``logbook.csv``.

        :param logbook: the search's :class:`deap.tools.Logbook`.
        :returns: the path of ``logbook.csv``.
        """
        rows = logbook_rows(logbook)
        columns = list(dict.fromkeys(key for row in rows for key in row))
        temporary = self.logbook.with_suffix(".csv.tmp")
        try:
            with open_for_writing(temporary, "w") as stream:
                writer = csv.DictWriter(stream, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
            os.replace(temporary, self.logbook)
        except OSError as error:
            raise OSError(error.errno, error.strerror, error.filename or str(self.logbook)) from None
        return self.logbook

    def write_confirmation(self, confirmation):
        """Write ``confirmation.json`` (atomically).

        :param confirmation: :func:`~deap_lossgp.search.confirm.confirm`'s result.
        :returns: the path written.
        """
        self._write_text(self.confirmation, json_dumps(confirmation, indent=2) + "\n")
        return self.confirmation

    def write_best(self, individual, confirmation=None):
        """Write ``best.json`` and ``best_loss.py`` for the best individual.

        The per-task metrics come from the evaluation record of the same
        expression in ``evaluations.jsonl`` (or of an equivalent one).

        :param individual: the best individual (with a valid fitness).
        :param confirmation: the run's confirmation, whose first candidate
                             is *individual*, or ``None``.
        :returns: the dict written to ``best.json``: with a confirmation,
                  ``confirmed`` holds the individual's summary and
                  ``verdict`` the confirmation's; without, ``verdict`` is
                  ``"unconfirmed"``.
        """
        from ..gp.expression import canonical_key

        text = to_string(individual)
        # Records carry the key of their metric: by value or by gradient.
        keys = {canonical_key(text, by="value"), canonical_key(text, by="gradient")}
        record = None
        for candidate in read_records(self.records):
            if candidate.get("expression") == text:
                record = candidate
                break
            if record is None and candidate.get("key") in keys:
                record = candidate
        best = {
            "expression": text,
            "formula": to_formula(text),
            "latex": to_latex(text),
            "fitness": list(individual.fitness.values),
            "height": individual.height,
            "size": len(individual),
            "record": record,
            "verdict": "unconfirmed" if confirmation is None else confirmation["verdict"],
            "confirmed": None if confirmation is None else confirmation["candidates"][0],
        }
        self._write_text(self.best, json_dumps(best, indent=2) + "\n")
        self._write_text(self.best_loss, to_python_source(text))
        return best

    @staticmethod
    def _write_text(path, text):
        temporary = path.with_name(path.name + ".tmp")
        try:
            with open_for_writing(temporary, "w") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise OSError(error.errno, error.strerror, error.filename or str(path)) from None


class RecordReplay:
    """Reuse, on resume, the evaluations recorded after the last checkpoint.

    A run killed during a generation has records for the evaluations that
    finished, but its checkpoint predates them.  The resumed run redoes that
    generation with the same random state, so it asks for the same trees:
    this object answers those from their records instead of training them
    again (and writing their records twice).  It wraps the toolbox's
    ``screen`` and provides ``toolbox.recorded``, which
    :class:`~deap_lossgp.evaluation.Evaluation` consults before training,
    so a replayed evaluation counts exactly as the original one did
    (``nevals`` or ``nrejected``) and the resumed run's logbook, population
    and best equal an uninterrupted run's.

    A record is matched by its ``key`` and ``replicate`` (:meth:`LossEvaluator.key
    <deap_lossgp.fitness.LossEvaluator.key>`, the evaluation cache's key) and
    used once.  Keys already in the checkpoint's cache never reach the
    screen or the map, so only the unfinished generation's records are used
    (except for re-evaluations past the cache, such as ``eaNGL(...,
    reevaluate=True)``'s, which would take a key's earlier record: the search
    driver does not use them).

    :param records: the run's records (:func:`read_records`).
    :param key: the function that computed their ``key``.
    """

    def __init__(self, records, key):
        self.key = key
        self.pending = collections.defaultdict(collections.deque)
        for record in records:
            if record.get("key") is not None and isinstance(record.get("fitness"), list):
                rejected = record.get("status") in _REJECTED
                fitness = tuple(float(value) for value in record["fitness"])
                self.pending[record["key"], record.get("replicate", 0)].append((rejected, fitness))

    def _take(self, individual, rejected, replicate=0):
        """The recorded fitness of *individual* if its record is of that kind, else ``None``."""
        queue = self.pending.get((self.key(individual), replicate))
        if not queue or queue[0][0] != rejected:
            return None
        return queue.popleft()[1]

    def screen(self, screen):
        """Wrap a ``toolbox.screen`` function.

        :param screen: the screen to call for trees without a record.
        :returns: a screen that returns a recorded rejection, passes a tree
                  whose record says it was trained, and screens the others.
        """
        def replayed_screen(individual):
            queue = self.pending.get((self.key(individual), 0))
            if queue and not queue[0][0]:
                return None  # it passed the screen before and was trained: toolbox.recorded answers it
            fitness = self._take(individual, rejected=True)
            return screen(individual) if fitness is None else fitness

        return replayed_screen

    def recorded(self, individual, replicate=0):
        """The recorded fitness of a tree the unfinished generation trained.

        Registered as ``toolbox.recorded``:
        :class:`~deap_lossgp.evaluation.Evaluation` counts the answer as an
        evaluation, as the original training was.

        :param individual: a tree about to be trained.
        :param replicate: the replicate (training seed) about to be trained.
        :returns: its fitness, or ``None`` when it has no unused record.
        """
        return self._take(individual, rejected=False, replicate=replicate)

"""The run directory: everything a search leaves for a person to read and reuse.

=====================  ==========================================================
``config.json``        the exact configuration (preset, overrides, algorithm,
                       seed, backend), enough to resume or rerun the search
``checkpoint.pkl``     the resumable state after the last finished generation
                       (a pickle: load only your own or trusted files)
``evaluations.jsonl``  one JSON line per evaluation: expression, status,
                       per-task metrics, fitness, stop reasons, time
``logbook.csv``        one row per generation (evaluations, cache hits, time,
                       fitness statistics)
``best.json``          the best loss: expression, simplified formula, LaTeX,
                       fitness and its per-task metrics (only when at least
                       one candidate completed training, see
                       :func:`count_completed`)
``best_loss.py``       the best loss as a standalone Keras loss class (idem)
``hall_of_fame.csv``   the top distinct losses so far, ranked, with per-task
                       metrics (see :mod:`deap_lossgp.search.halloffame`)
``fitness.png``        best and median fitness per generation (written by
                       the command line, :mod:`deap_lossgp.app.plots`)
=====================  ==========================================================
"""

import collections
import csv
import json
import math
import os
import pathlib

from ..gp.expression import to_formula, to_latex, to_python_source, to_string

__all__ = ["RunDirectory", "logbook_rows", "read_records", "count_completed", "describe_statuses"]


def _json_safe(value):
    """Replace non-finite floats (e.g. the worst fitness) by strings JSON can hold."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


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

    :param path: the file.
    :returns: a list of record dicts (empty if the file does not exist).
    """
    path = pathlib.Path(path)
    if not path.exists():
        return []
    with path.open() as stream:
        return [json.loads(line) for line in stream if line.strip()]


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
        self.plot = self.path / "fitness.png"

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
        self._write_text(self.config, json.dumps(_json_safe(config), indent=2, sort_keys=True) + "\n")
        return self.config

    def read_config(self):
        """Read ``config.json``.

        :returns: the configuration dict.
        :raises FileNotFoundError: if this is not a run directory.
        """
        if not self.config.exists():
            raise FileNotFoundError(
                f"{self.path} is not a run directory (no config.json); give the directory a search wrote"
            )
        return json.loads(self.config.read_text())

    def write_logbook(self, logbook):
        """Write ``logbook.csv``.

        :param logbook: the search's :class:`deap.tools.Logbook`.
        :returns: the path of ``logbook.csv``.
        """
        rows = logbook_rows(logbook)
        columns = list(dict.fromkeys(key for row in rows for key in row))
        temporary = self.logbook.with_suffix(".csv.tmp")
        with temporary.open("w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temporary, self.logbook)
        return self.logbook

    def write_best(self, individual):
        """Write ``best.json`` and ``best_loss.py`` for the best individual.

        The per-task metrics come from the evaluation record of the same
        expression in ``evaluations.jsonl`` (or of an equivalent one).

        :param individual: the best individual (with a valid fitness).
        :returns: the dict written to ``best.json``.
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
        }
        self._write_text(self.best, json.dumps(_json_safe(best), indent=2) + "\n")
        self._write_text(self.best_loss, to_python_source(text))
        return best

    @staticmethod
    def _write_text(path, text):
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text)
        os.replace(temporary, path)

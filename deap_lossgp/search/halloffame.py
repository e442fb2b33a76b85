"""The top K distinct losses of a run, and ``hall_of_fame.csv``.

:class:`KeyedHallOfFame` is a :class:`deap.tools.HallOfFame` whose members
are distinct by the evaluation key (``toolbox.key``, e.g.
:meth:`~deap_lossgp.fitness.LossEvaluator.key`): a loss and the same loss
plus a constant train identically, so under a gradient key they take one
place, not two.  :func:`hall_of_fame_rows` joins its members with their
evaluation records into the rows of ``hall_of_fame.csv``:

==========================  ====================================================
``rank``                    1 = best (wins first, then average improvement)
``wins``, ``improvement``   the fitness; ``improvement`` is ``-inf`` when
                            nothing trained (see ``status``); with racing,
                            means over the training seeds
``seeds``, ``stderr``       how many training seeds the fitness rests on, and
                            the standard error of ``improvement`` over them
                            (empty for one seed)
``status``, ``reason``      how the evaluation ended (``ok``, ``stopped``...)
``<task> <metric>``         per task, the candidate's validation metric, the
``<task> CE <metric>``      cross-entropy model's, and the improvement
``<task> improvement``      (positive = better than cross-entropy)
``size``, ``height``        nodes and height of the tree
``expression``              the tree in prefix form (input of ``evaluate``)
``formula``                 the simplified formula
==========================  ====================================================
"""

import csv
import math
import operator
import os
import pathlib

from deap import tools

from ..checks import open_for_reading, open_for_writing
from ..evaluation import replicate_summary
from ..fitness.compare import METRIC_FIELDS
from ..gp.expression import to_formula, to_string

__all__ = ["KeyedHallOfFame", "hall_of_fame_rows", "write_hall_of_fame", "read_hall_of_fame", "format_fitness"]


class KeyedHallOfFame(tools.HallOfFame):
    """A hall of fame of the *maxsize* best individuals with distinct keys.

    :param maxsize: how many individuals it keeps.
    :param key: the function giving an individual's evaluation key
                (``toolbox.key``); ``None`` compares trees node by node,
                as :class:`deap.tools.HallOfFame` does.
    """

    def __init__(self, maxsize, key=None):
        super().__init__(maxsize, similar=self._same_key if key is not None else operator.eq)
        self.key = key
        # Keys by tree text: update() compares every candidate with every member.
        self._keys = {}

    def _same_key(self, first, second):
        return self._key_of(first) == self._key_of(second)

    def _key_of(self, individual):
        text = str(individual)
        if text not in self._keys:
            self._keys[text] = self.key(individual)
        return self._keys[text]


def format_fitness(fitness):
    """A fitness ``(wins, improvement)`` as text a person reads.

    :param fitness: two numbers (or their JSON strings, ``"-inf"``).
    :returns: e.g. ``"3 wins, improvement +0.0412"`` or
              ``"0 wins, improvement -inf (nothing trained)"``.
    """
    wins, value = (float(v) for v in fitness)
    improvement = f"{value:+.4g}" if math.isfinite(value) else f"{value} (nothing trained)"
    return f"{wins:g} win{'' if wins == 1 else 's'}, improvement {improvement}"


def _records_by_expression(records):
    """The last record of each expression and of each key (a later evaluation replaces an earlier one), and the
    per-seed fitness of each key (one record per training seed)."""
    by_text, by_key, seeds = {}, {}, {}
    for record in records:
        by_text[record.get("expression")] = record
        if record.get("key") is not None:
            by_key[record["key"]] = record
            if record.get("tasks") and isinstance(record.get("fitness"), list):
                seeds.setdefault(record["key"], {})[record.get("replicate", 0)] = tuple(record["fitness"])
    return by_text, by_key, seeds


def hall_of_fame_rows(halloffame, records=()):
    """The hall of fame as table rows, best first.

    :param halloffame: a :class:`deap.tools.HallOfFame` of evaluated individuals.
    :param records: evaluation records (``evaluations.jsonl``) giving each
                    member's per-task metrics; a member without a record
                    gets empty metric cells.
    :returns: a list of dicts with the columns of the module's table.
    """
    by_text, by_key, seeds = _records_by_expression(records)
    key = getattr(halloffame, "key", None)
    rows = []
    for rank, individual in enumerate(halloffame, start=1):
        text = to_string(individual)
        record = by_text.get(text) or (by_key.get(key(individual)) if key else None) or {}
        wins, improvement = individual.fitness.values
        trained = seeds.get(record.get("key"), {})
        summary = replicate_summary([trained[r] for r in sorted(trained)]) if trained else {"seeds": 0,
                                                                                           "stderr": None}
        row = {"rank": rank, "wins": wins, "improvement": improvement, "seeds": summary["seeds"],
               "stderr": "" if summary["stderr"] is None else summary["stderr"], "status": record.get("status", ""),
               "reason": record.get("reason") or ""}
        metric = METRIC_FIELDS.get(record.get("metric"), "val_accuracy")
        label = metric.removeprefix("val_")
        for task, values in (record.get("tasks") or {}).items():
            row[f"{task} {label}"] = values.get(metric)
            row[f"{task} CE {label}"] = (values.get("baseline") or {}).get(metric)
            row[f"{task} improvement"] = values.get("improvement")
        row.update(size=len(individual), height=individual.height, expression=text, formula=to_formula(text))
        rows.append(row)
    return rows


def write_hall_of_fame(path, rows):
    """Write rows of :func:`hall_of_fame_rows` as CSV, atomically.

    :param path: the file (``hall_of_fame.csv``).
    :param rows: the rows.
    :returns: the path.
    """
    path = pathlib.Path(path)
    head = ["rank", "wins", "improvement", "seeds", "stderr", "status"]
    tail = ["size", "height", "expression", "formula", "reason"]
    middle = [c for c in dict.fromkeys(c for row in rows for c in row) if c not in head + tail]
    temporary = path.with_name(path.name + ".tmp")
    with open_for_writing(temporary, "w") as stream:
        writer = csv.DictWriter(stream, fieldnames=head + middle + tail)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)
    return path


# The columns every reader of hall_of_fame.csv uses.
_REQUIRED = ("rank", "wins", "improvement", "size", "height", "expression", "formula")


def read_hall_of_fame(path):
    """Read ``hall_of_fame.csv``.

    :param path: the file.
    :returns: a list of dicts (strings, as CSV holds them); empty if the
              file does not exist.
    :raises ValueError: if it is not a table of the columns this module writes.
    """
    path = pathlib.Path(path)
    if not path.exists():
        return []
    fix = "delete it; the next generation of the run writes it again"
    try:
        with open_for_reading(path, "r") as stream:
            rows = list(csv.DictReader(stream))
    except (csv.Error, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not a readable table ({error}); {fix}") from None
    for row in rows:
        missing = [column for column in _REQUIRED if column not in row or row[column] is None]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}; {fix}")
        for column in ("wins", "improvement", "size", "height"):
            try:
                float(row[column])
            except ValueError:
                raise ValueError(f"{path} holds {row[column][:20]!r} in its {column!r} column, not a number; "
                                 f"{fix}") from None
    return rows

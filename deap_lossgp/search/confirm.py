"""Confirmation at the end of a run: the best losses trained again on fresh
seeds and measured on the held-out test split.

The search selects its best among noisy estimates, so the best's own
estimate is inflated (the winner's curse).  :func:`confirm` trains each of
the hall of fame's best ``confirm_top`` losses, and cross-entropy, under
``confirm_seeds`` training seeds that the search never used (replicates
:data:`~deap_lossgp.search.presets.MAX_SEEDS` and on: racing stops below),
on the same data split, and measures every model on the test split, which
the search never saw.

* The **confirmed ranking** orders the losses by their mean fitness on the
  fresh seeds (validation data, as in the search), so the test split stays
  out of every choice.
* The **verdict** compares the confirmed best with cross-entropy on the test
  split, paired by seed: the mean over the tasks of the test-accuracy
  difference, with its 95 % t interval over the seeds
  (:func:`~deap_lossgp.fitness.compare.paired_interval`).  ``"better"``
  when the interval lies above 0, ``"worse"`` when below, else
  ``"indistinguishable"``: no loss beat cross-entropy beyond seed noise.

Each training writes a record to ``confirmation.jsonl``; a resumed
confirmation reads them back instead of training again.
"""

import math

from ..evaluation import Executor, Scheduler, _unwrap, combine_replicates
from ..fitness import LossEvaluator
from ..fitness.compare import LEVEL, interval_verdict, mean_over_tasks, paired_interval
from ..gp.expression import to_string
from .presets import MAX_SEEDS
from .rundir import read_records

__all__ = ["VERDICTS", "confirm", "confirmation_replicates"]

#: The verdicts of a confirmation, best first.
VERDICTS = ("better", "indistinguishable", "worse", "unconfirmed")


def confirmation_replicates(seeds):
    """The replicates a confirmation trains: fresh for every search.

    :param seeds: how many.
    :returns: a list of replicate numbers.
    """
    return [MAX_SEEDS + j for j in range(seeds)]


class _RecordUnits:
    """A tree's trainings whose assembly is the whole evaluation record (not only the fitness)."""

    def __init__(self, trainings):
        self.trainings = trainings
        self.units = trainings.units
        self.stops = trainings.stops

    def assemble(self, results):
        return self.trainings.assemble_record(results)


def _train(fitness, trees, replicates, mapper, done):
    """Every (tree, replicate) record: from *done* when there, else trained now (in parallel on an Executor)."""
    wanted = [(tree, replicate) for tree in trees for replicate in replicates
              if (fitness.key(tree), replicate) not in done]
    works = [_RecordUnits(fitness.split(tree, test=True, replicate=replicate)) for tree, replicate in wanted]
    executor = _unwrap(mapper) if mapper is not None else None
    if isinstance(executor, Executor):
        scheduler = Scheduler(executor)
        tickets = [scheduler.add(work) for work in works]
        records = [scheduler.wait(ticket) for ticket in tickets]
    else:
        records = [work.assemble([unit() for unit in work.units]) for work in works]
    found = dict(done)
    for (tree, replicate), record in zip(wanted, records):
        found[fitness.key(tree), replicate] = record
    return found


def _test_accuracy(record, task):
    value = ((record.get("tasks") or {}).get(task) or {}).get("test_accuracy")
    return value if value is not None and math.isfinite(value) else None


def _summary(fitness, tree, replicates, records, baselines):
    key = fitness.key(tree)
    own = [records[key, replicate] for replicate in replicates]
    fitnesses = [tuple(record["fitness"]) for record in own]
    tasks = {}
    per_seed = []
    for task in fitness.config.resolved_tasks():
        candidate = [_test_accuracy(record, task.name) for record in own]
        reference = [baselines[replicate][task.name].get("test_accuracy") for replicate in replicates]
        differences = [None if c is None else c - r for c, r in zip(candidate, reference)]
        tasks[task.name] = {"test_accuracy": candidate, "ce_test_accuracy": reference,
                            "difference": paired_interval(differences)}
        per_seed.append(differences)
    # The mean over the tasks, per seed: a seed where some task did not train has no value.
    overall = mean_over_tasks(per_seed)
    return {
        "expression": to_string(tree),
        "key": key,
        "search_fitness": list(tree.fitness.values),
        "fitness": list(combine_replicates(fitnesses)),
        "validation_improvement": paired_interval([f[-1] for f in fitnesses]),
        "tasks": tasks,
        "test_difference": paired_interval(overall) if None not in overall else
        {"n": len(overall), "mean": None, "low": None, "high": None},
    }


def confirm(trees, config, seeds, mapper=None, records_path=None, baseline_dir=None):
    """Train the best losses and cross-entropy on fresh seeds; rank them; judge the best.

    :param trees: the candidates, best first by the search (e.g. the hall of
                  fame's first ``confirm_top``).
    :param config: the run's :class:`~deap_lossgp.fitness.FitnessConfig`.
    :param seeds: how many fresh training seeds (>= 2 for an interval).
    :param mapper: a map of :mod:`deap_lossgp.search.parallel` to train in
                   parallel, or ``None`` to train here.
    :param records_path: ``confirmation.jsonl``: records of earlier
                         sessions are reused, new ones appended.
    :param baseline_dir: where cross-entropy baselines are stored.
    :returns: a JSON-ready dict: ``replicates``, ``level``, ``candidates``
              (one summary per tree in the confirmed ranking, best first:
              ``expression``, ``search_fitness``, ``fitness`` on the fresh
              seeds, ``validation_improvement`` and, per task and over the
              tasks (``test_difference``), the test-accuracy difference
              from cross-entropy with its interval) and ``verdict`` (one of
              :data:`VERDICTS`, for the first candidate).
    """
    fitness = LossEvaluator(preset=config, records_path=records_path, baseline_dir=baseline_dir)
    replicates = confirmation_replicates(seeds)
    baselines = {replicate: fitness.prepare(replicate) for replicate in replicates}
    done = {}
    if records_path is not None:
        for record in read_records(records_path):
            if record.get("key") is not None and record.get("replicate") in replicates:
                done[record["key"], record["replicate"]] = record
    records = _train(fitness, trees, replicates, mapper, done)
    summaries = [_summary(fitness, tree, replicates, records, baselines) for tree in trees]
    # Ranked as the search ranks (wins, then improvement), on the fresh seeds; ties keep the search's order.
    ranked = sorted(summaries, key=lambda summary: tuple(summary["fitness"]), reverse=True)
    return {
        "replicates": replicates,
        "seeds": [config.seed + replicate for replicate in replicates],
        "level": LEVEL,
        "candidates": ranked,
        "verdict": interval_verdict(ranked[0]["test_difference"]) if ranked else "unconfirmed",
    }

"""``LossEvaluator``: the DEAP evaluation function of a loss search.

Register it as ``toolbox.register("evaluate", LossEvaluator(preset="quick"))``.
For every individual it checks validity under the configured rule
(:mod:`deap_lossgp.gp.validity`; an invalid or untrainable tree gets the worst
fitness without training), compiles the tree into a Keras loss, trains a
model with it on each task, compares each with the stored cross-entropy
baseline and returns ``(wins, average improvement)``
(:mod:`deap_lossgp.fitness.scoring`).  A training stopped early as hopeless
or diverging is scored from what it reached (status ``stopped``; under the
``loss`` metric it gets the worst fitness).  A candidate whose training
became non-finite or raised gets
:data:`~deap_lossgp.fitness.WORST_FITNESS`.  The reason is recorded either
way and the search goes on.  Problems of the setting itself (a missing dataset, a
baseline that does not train) raise, since no candidate could be scored.

The evaluator is picklable (it holds only its configuration and plain
baseline records), so it is sent to worker processes with each tree, or with
each training: :meth:`LossEvaluator.split` cuts an evaluation into one
training per task (:class:`Trainings`), the units of work that
:class:`~deap_lossgp.evaluation.Evaluation` spreads over the workers before
it assembles the fitness in the main process; the evaluation records are
then written there.  TensorFlow, the data and the baselines are loaded
lazily in each process.
It keeps no cache: the algorithms' evaluation object
(:class:`~deap_lossgp.evaluation.Evaluation`) owns de-duplication, in the
main process, with :meth:`LossEvaluator.key`.
"""

import datetime
import errno
import os
import time

from ..checks import deprecated_alias, json_dumps
from ..gp.expression import canonical_key, compile_loss, to_string
from ..gp.validity import verdict
from .baseline import get_baseline
from .datasets import load_task
from .scoring import WORST_FITNESS, incomparable, score
from .config import FitnessConfig, fitness_preset
from .runtime import configure_tensorflow
from .training import train_model

__all__ = ["LossEvaluator", "LossFitness", "Trainings"]

# The training record's fields copied into an evaluation record, per task.
_TASK_FIELDS = (
    "val_loss",
    "val_accuracy",
    "val_ce",
    "best_val_accuracy",
    "epochs",
    "time",
    "stop_reason",
    "stop_detail",
    "history",
)
_BASELINE_FIELDS = ("val_loss", "val_accuracy", "val_ce", "best_val_accuracy", "test_loss", "test_accuracy", "test_ce")


class LossEvaluator:
    """Evaluate loss trees by training models with them.

    :param preset: a preset name (``"quick"``, ``"paper-small"``,
                   ``"paper-large"``) or a
                   :class:`~deap_lossgp.fitness.FitnessConfig` (e.g. a
                   preset's ``.fitness``).
    :param records_path: a JSON-lines file that gets one line per evaluation
                         (expression, per-task metrics, fitness, time, stop
                         reason); ``None`` for no records.
    :param baseline_dir: where cross-entropy baselines are stored; ``None``
                         for ``~/.cache/deap_lossgp/baselines``.
    :param overrides: fitness settings to change (fields of
                      :class:`~deap_lossgp.fitness.FitnessConfig`), e.g. ``epochs=2``.
    :raises ValueError: for an unknown preset or setting, or an invalid value.

    .. attribute:: config

       The :class:`~deap_lossgp.fitness.FitnessConfig` in use.
    """

    def __init__(self, preset="quick", records_path=None, baseline_dir=None, **overrides):
        if isinstance(preset, FitnessConfig):
            self.config = preset.replace(**overrides)
        elif isinstance(preset, str):
            self.config = fitness_preset(preset, **overrides)
        else:
            raise ValueError(
                f"preset must be a preset name or a FitnessConfig, got {type(preset).__name__}; "
                "for a Preset pass its .fitness"
            )
        self.records_path = None if records_path is None else os.fspath(records_path)
        self.baseline_dir = None if baseline_dir is None else os.fspath(baseline_dir)
        self._baselines = {}

    def key(self, individual):
        """The cache key of a tree.

        Under ``accuracy`` and ``ce``, which judge only the trained model,
        trees whose gradients with respect to ``y_pred`` are identical train
        identically, so they share a key (e.g. ``L`` and ``L + c``).  Under
        ``loss`` and ``weighted``, which compare the loss value itself, only
        trees with identical values share a key.

        :param individual: a DEAP tree or an expression string.
        :returns: its :func:`~deap_lossgp.gp.expression.canonical_key`.
        :raises ValueError: if an expression string cannot be read.
        """
        by = "value" if self.config.metric in ("loss", "weighted") else "gradient"
        return canonical_key(individual, by=by)

    def screen(self, individual):
        """Check a tree under the configured validity rule, without training.

        Registered by :func:`~deap_lossgp.search.make_toolbox` as
        ``toolbox.screen``: the algorithms call it in the main process before
        they send a tree to be trained, so a rejected tree costs no training
        and is counted apart (``nrejected``).  A rejected tree's record is
        written here.

        :param individual: a DEAP tree/individual or an expression string.
        :returns: ``None`` when the tree may be trained, else the fitness to
                  give it (:data:`~deap_lossgp.fitness.WORST_FITNESS`).
        """
        record = self._check(individual, time.perf_counter())
        if record is None:
            return None
        self.finish_record(record)
        return tuple(record["fitness"])

    def _check(self, individual, start):
        # The rejection record of an invalid or untrainable tree, or None.
        status, reason = verdict(individual, self.config.validity)
        if status == "valid":
            return None
        record = self.new_record(individual, start)
        record.update(status=status, reason=reason, stop_reason=status)
        return record

    def new_record(self, individual, start, replicate=0):
        """A new evaluation record of *individual* (status ``ok`` and the worst fitness until filled in).

        :param individual: a tree or an expression string.
        :param start: :func:`time.perf_counter` at the evaluation's start.
        :param replicate: the replicate it is trained under.
        :returns: a dict.
        """
        try:
            expression, key = to_string(individual), self.key(individual)
        except ValueError:  # unreadable text: the validity check says why
            expression, key = str(individual), None
        return {
            "expression": expression,
            "key": key,
            "status": "ok",
            "reason": None,
            "stop_reason": "completed",
            "fitness": list(WORST_FITNESS),
            "metric": self.config.metric,
            "averaging": self.config.averaging,
            "validity": self.config.validity,
            "replicate": replicate,
            "seed": self.config.seed + replicate,
            "tasks": {},
            "start": start,
        }

    def finish_record(self, record):
        """Stamp an evaluation record with its time and append it to the records.

        :param record: a record from :meth:`new_record`, filled in.
        :returns: the record.
        """
        if "start" in record:
            record["time"] = time.perf_counter() - record.pop("start")
        record["timestamp"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self._append(record)
        return record

    def __call__(self, individual, replicate=0):
        """The fitness of a tree: :meth:`evaluate_detailed`'s ``fitness``.

        :param individual: a DEAP tree/individual or an expression string.
        :param replicate: train under the training seed ``seed + replicate``
                          (on the same data split), against cross-entropy
                          trained under that seed too.
        :returns: ``(wins, average_improvement)`` as floats.
        """
        return tuple(self.evaluate_detailed(individual, replicate=replicate)["fitness"])

    def _task_data(self, task):
        config = self.config
        return load_task(task, config.data_seed, config.validation_split, config.data_dir)

    def prepare(self, replicate=0):
        """Load or train every task's cross-entropy baseline now.

        Call it once before a parallel search, so that workers receive the
        baselines instead of training them concurrently.

        :param replicate: the replicate whose baselines to prepare (training
                          seed ``seed + replicate``).
        :returns: ``task name -> baseline record`` of that replicate.
        """
        configure_tensorflow(self.config.threads)
        config = self.config.replicate(replicate)
        for task in self.config.resolved_tasks():
            if (task.name, replicate) not in self._baselines:
                self._baselines[task.name, replicate] = get_baseline(task, self._task_data(task), config,
                                                                    self.baseline_dir)
        return {task.name: self._baselines[task.name, replicate] for task in self.config.resolved_tasks()}

    def baseline(self, task_name, replicate=0):
        """The cross-entropy record of a task and replicate (see :meth:`prepare`).

        :param task_name: the task's name.
        :param replicate: the replicate.
        :returns: the baseline's training record.
        """
        return self.prepare(replicate)[task_name]

    def evaluate_detailed(self, individual, test=False, replicate=0):
        """Evaluate a tree and return the full record (always trains).

        The tasks are trained one after the other in this process, and a
        non-finite training skips the tasks after it (see :meth:`split` for
        the same evaluation spread over workers).

        :param individual: a DEAP tree/individual or an expression string.
        :param test: also measure each trained model on the held-out test
                     split (for final reports; the search never uses it).
        :param replicate: as for :meth:`__call__`.
        :returns: a JSON-ready dict: ``expression``, ``key``, ``status``
                  (``ok``: trained to the end on every task; ``stopped``:
                  stopped early on a task, scored from what it reached;
                  ``invalid``, ``untrainable``: rejected before training, or
                  under ``loss`` a trained loss value that is not positive;
                  ``failed``: non-finite; ``error``), ``reason``,
                  ``stop_reason``, ``fitness`` (``[wins, average]``),
                  ``metric``, ``averaging``, ``tasks`` (per task name: the
                  candidate's metrics and history, its ``improvement`` and the
                  ``baseline``'s metrics), ``time`` (seconds) and ``timestamp``.
        """
        start = time.perf_counter()
        record = self._check(individual, start)
        if record is not None:
            return self.finish_record(record)
        trainings = self.split(individual, test, replicate)
        results = []
        for unit in trainings.units:
            results.append(unit())
            if Trainings.stops(results[-1]):
                break
        return trainings.assemble_record(results)

    def split(self, individual, test=False, replicate=0):
        """Split the evaluation of a tree into its trainings, one per task.

        Registered by :func:`~deap_lossgp.search.make_toolbox` as
        ``toolbox.split``: :class:`~deap_lossgp.evaluation.Evaluation` sends
        the trainings of all the trees it evaluates to the map as separate
        units of work and assembles each tree's fitness in this process,
        with the same result as :meth:`__call__` (see :class:`Trainings`).
        The cross-entropy baselines are loaded or trained here first
        (:meth:`prepare`), so that workers receive them.

        :param individual: a tree that :meth:`screen` accepted.
        :param test: also measure the trained models on the test splits.
        :param replicate: as for :meth:`__call__`.
        :returns: a :class:`Trainings`.
        """
        self.prepare(replicate)
        return Trainings(self, individual, test, replicate)

    def train_task(self, expression, index, test=False, replicate=0):
        """Train a loss on one task, the unit of work of :class:`Trainings`.

        :param expression: the loss as text.
        :param index: the task's index in the configuration.
        :param test: also measure the trained model on the test split.
        :param replicate: as for :meth:`__call__`.
        :returns: the training record, or ``{"stop_reason": "error", "reason": ...}``.
        """
        config = self.config.replicate(replicate)
        task = config.resolved_tasks()[index]
        baseline = self.baseline(task.name, replicate)
        data = self._task_data(task)
        try:
            return train_model(
                compile_loss(expression),
                data,
                chance_after=config.chance_after,
                baseline_accuracy=baseline["history"]["accuracy"],
                evaluate_test=test,
                reuse=expression,
                **config.training_arguments(),
            )
        except Exception as error:  # A broken candidate must not stop the search.
            return {"stop_reason": "error", "reason": f"{type(error).__name__}: {error}", "time": 0.0}

    def summarise(self, results, replicate=0):
        """The record fields of the trainings that count: every task, or those up to the first failure.

        :param results: the task trainings' records, in task order.
        :param replicate: the replicate they were trained under.
        :returns: a dict of record fields (``tasks``, ``status``, ``fitness``...).
        """
        config = self.config
        if results and results[-1]["stop_reason"] == "error":
            return {"status": "error", "stop_reason": "error", "reason": results[-1]["reason"]}
        tasks = config.resolved_tasks()
        baselines = [self.baseline(task.name, replicate) for task in tasks]
        entries = {}
        stopped = None
        for task, result, baseline in zip(tasks, results, baselines):
            entry = {name: result[name] for name in _TASK_FIELDS}
            entry.update({name: value for name, value in result.items() if name.startswith("test_")})
            entry["baseline"] = {name: baseline[name] for name in _BASELINE_FIELDS if name in baseline}
            entries[task.name] = entry
            if result["stop_reason"] == "nan":
                return {"tasks": entries, "status": "failed", "stop_reason": "nan",
                        "reason": f"{task.name}: {result['stop_detail']}"}
            if result["stop_reason"] != "completed" and stopped is None:
                stopped = {"status": "stopped", "stop_reason": result["stop_reason"],
                           "reason": f"{task.name}: {result['stop_detail']}"}
        fitness, improvements = score(results, baselines, config.metric, config.averaging, config.weight)
        for entry, value in zip(entries.values(), improvements):
            entry["improvement"] = value
        if fitness == WORST_FITNESS:
            unscored = [(task.name, incomparable(result, config.metric)) for task, result in zip(tasks, results)]
            unscored = [f"{name}: {why}" for name, why in unscored if why]
            if unscored:
                return {"tasks": entries, "status": "invalid", "reason": unscored[0]}
            reason = "a compared metric is not finite"
            return {"tasks": entries, "status": "failed", "stop_reason": "nan", "reason": reason}
        if stopped is not None:
            # A stopped training's own loss value says nothing comparable, so `loss` cannot grade it.
            graded = list(WORST_FITNESS) if config.metric == "loss" else list(fitness)
            return {"tasks": entries, "fitness": graded, **stopped}
        return {"tasks": entries, "fitness": list(fitness)}

    def _append(self, record):
        if self.records_path is None:
            return
        line = (json_dumps(record) + "\n").encode("utf-8")
        directory = os.path.dirname(self.records_path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        # One write to an O_APPEND file, so lines of parallel workers do not interleave.
        handle = os.open(self.records_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                         0o644)
        try:
            written = os.write(handle, line)
        except OSError as error:
            raise OSError(error.errno, f"{error.strerror} (appending an evaluation record)",
                          self.records_path) from None
        finally:
            os.close(handle)
        if written != len(line):
            # A short write leaves a torn line, which readers skip and resume moves aside.
            raise OSError(errno.ENOSPC, f"short write of an evaluation record ({written} of {len(line)} bytes; "
                          f"is the disk full?)", self.records_path)

    def __repr__(self):
        return f"LossEvaluator(metric={self.config.metric!r}, tasks={[t.name for t in self.config.tasks]})"


class _Training:
    """One unit of work: the training of one tree on one task (picklable)."""

    def __init__(self, fitness, expression, index, test, replicate):
        self.fitness = fitness
        self.expression = expression
        self.index = index
        self.test = test
        self.replicate = replicate

    def __call__(self):
        return self.fitness.train_task(self.expression, self.index, self.test, self.replicate)


class Trainings:
    """The evaluation of one tree split into its trainings, one per task.

    Made by :meth:`LossEvaluator.split`.  Each of :attr:`units` trains the
    tree on one task wherever it is called (a worker process, a SCOOP host,
    or here) and returns that training's record; :meth:`assemble` turns the
    records into the tree's fitness in the calling process and writes its
    evaluation record.

    The result does not depend on where or in which order the units ran: a
    task is trained with the same seed whatever else runs, and, as when the
    tasks are trained one after the other, the first task in task order
    whose training is not finite (or raised) ends the evaluation: the tasks
    after it are ignored.  A scheduler may therefore cancel the units after
    a failed one (:meth:`stops`) that have not started; units already
    running finish, and their trainings are wasted.  That is the price of
    training the tasks at the same time.

    :param fitness: the :class:`LossEvaluator`.
    :param individual: a tree that its validity rule accepts.
    :param test: also measure the trained models on the test splits.
    :param replicate: the replicate (training seed ``seed + replicate``).

    .. attribute:: units

       Picklable callables without arguments, one per task, in task order.
    """

    def __init__(self, fitness, individual, test=False, replicate=0):
        self.fitness = fitness
        self.replicate = replicate
        self.record = fitness.new_record(individual, time.perf_counter(), replicate)
        count = len(fitness.config.resolved_tasks())
        self.units = [_Training(fitness, self.record["expression"], index, test, replicate) for index in range(count)]

    @staticmethod
    def stops(result):
        """Whether a unit's result makes the units after it irrelevant.

        :param result: what a unit returned.
        :returns: ``True`` for a non-finite training or an error.
        """
        return result["stop_reason"] in ("nan", "error")

    def assemble(self, results):
        """The fitness from the units' results; writes the evaluation record.

        :param results: one entry per unit, in task order: what the unit
                        returned, or ``None`` for a unit that did not run
                        (only units after one that :meth:`stops` may be
                        missing).
        :returns: ``(wins, average_improvement)``.
        :raises ValueError: if a result that counts is missing.
        """
        return tuple(self.assemble_record(results)["fitness"])

    def assemble_record(self, results):
        """As :meth:`assemble`, returning the whole evaluation record.

        :param results: as for :meth:`assemble`.
        :returns: the record (see :meth:`LossEvaluator.evaluate_detailed`).
        :raises ValueError: if a result that counts is missing.
        """
        counted = []
        for result in results:
            if result is None:
                raise ValueError("a training before the first failed one has no result; run every unit "
                                 "that is not after a failed one")
            counted.append(result)
            if self.stops(result):
                break
        if len(counted) < len(self.units) and not (counted and self.stops(counted[-1])):
            raise ValueError(f"{len(counted)} of {len(self.units)} trainings have results; run them all")
        record = dict(self.record)
        record.update(self.fitness.summarise(counted, self.replicate))
        # The training time spent on this tree, wherever its units ran (ignored units included).
        record["time"] = sum(result["time"] for result in results if result is not None)
        record.pop("start")
        return self.fitness.finish_record(record)


#: The name of :class:`LossEvaluator` until 0.2 (an anagram of the DEAP fitness class ``FitnessLoss``).
LossFitness = deprecated_alias("LossFitness", LossEvaluator)

"""``LossFitness``: the DEAP evaluation function of a loss search.

Register it as ``toolbox.register("evaluate", LossFitness(preset="quick"))``.
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
baseline records), so it is sent to worker processes with each tree;
TensorFlow, the data and the baselines are loaded lazily in each process.
It keeps no cache: the algorithms' evaluation object
(:class:`~deap_lossgp.algorithms.Evaluation`) owns de-duplication, in the
main process, with :meth:`LossFitness.key`.
"""

import datetime
import json
import os
import time

from ..gp.expression import canonical_key, compile_loss, to_string
from ..gp.validity import verdict
from .baseline import get_baseline
from .datasets import load_task
from .scoring import WORST_FITNESS, incomparable, score
from .config import FitnessConfig, fitness_preset
from .runtime import configure_tensorflow
from .training import train_tasks

__all__ = ["LossFitness"]

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


class LossFitness:
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
        self._finish(record)
        return tuple(record["fitness"])

    def _check(self, individual, start):
        # The rejection record of an invalid or untrainable tree, or None.
        status, reason = verdict(individual, self.config.validity)
        if status == "valid":
            return None
        record = self._new_record(individual, start)
        record.update(status=status, reason=reason, stop_reason=status)
        return record

    def _new_record(self, individual, start):
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
            "tasks": {},
            "start": start,
        }

    def _finish(self, record):
        record["time"] = time.perf_counter() - record.pop("start")
        record["timestamp"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self._append(record)
        return record

    def __call__(self, individual):
        """The fitness of a tree: :meth:`evaluate_detailed`'s ``fitness``.

        :param individual: a DEAP tree/individual or an expression string.
        :returns: ``(wins, average_improvement)`` as floats.
        """
        return tuple(self.evaluate_detailed(individual)["fitness"])

    def _task_data(self, task):
        config = self.config
        return load_task(task, config.seed, config.validation_split, config.data_dir)

    def prepare(self):
        """Load or train every task's cross-entropy baseline now.

        Call it once before a parallel search, so that workers receive the
        baselines instead of training them concurrently.

        :returns: ``task name -> baseline record``.
        """
        configure_tensorflow(self.config.threads)
        for task in self.config.resolved_tasks():
            if task.name not in self._baselines:
                self._baselines[task.name] = get_baseline(task, self._task_data(task), self.config, self.baseline_dir)
        return dict(self._baselines)

    def evaluate_detailed(self, individual, test=False):
        """Evaluate a tree and return the full record (always trains).

        :param individual: a DEAP tree/individual or an expression string.
        :param test: also measure each trained model on the held-out test
                     split (for final reports; the search never uses it).
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
        if record is None:
            record = self._new_record(individual, start)
            self.prepare()
            record.update(self._train_all(record["expression"], test))
        return self._finish(record)

    def _train_all(self, expression, test):
        config = self.config
        tasks = config.resolved_tasks()
        data = [self._task_data(task) for task in tasks]
        baselines = [self._baselines[task.name] for task in tasks]
        try:
            results = train_tasks(
                compile_loss(expression),
                data,
                chance_after=config.chance_after,
                baseline_accuracy=[baseline["history"]["accuracy"] for baseline in baselines],
                evaluate_test=test,
                **config.training_arguments(),
            )
        except Exception as error:  # A broken candidate must not stop the search.
            return {"status": "error", "stop_reason": "error", "reason": f"{type(error).__name__}: {error}"}
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
        line = (json.dumps(record) + "\n").encode("utf-8")
        directory = os.path.dirname(self.records_path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        # One write to an O_APPEND file, so lines of parallel workers do not interleave.
        handle = os.open(self.records_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(handle, line)
        finally:
            os.close(handle)

    def __repr__(self):
        return f"LossFitness(metric={self.config.metric!r}, tasks={[t.name for t in self.config.tasks]})"

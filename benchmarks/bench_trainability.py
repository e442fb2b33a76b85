"""Measure the trainability screen and the hopeless-training stop on random trees.

Three figures, measured in one run on the machine at hand:

1. **Screen cost**: the time :func:`deap_lossgp.gp.validity.verdict` takes per
   tree under the ``screened`` rule, over ``--screen-trees`` random trees
   that pass the thesis's rule (median and 90th percentile; target: median
   < 50 ms on a 2-core CPU).
2. **The stop, checked after the fact**: a sample of ``--trees`` random trees
   of the ``quick`` preset that pass the thesis's rule is trained to the end
   on every task (no stop).  The stop rule
   (:func:`~deap_lossgp.fitness.training.is_hopeless`, with cross-entropy's
   stored learning curve) is then replayed on each training's per-epoch
   accuracies: a training is deterministic, so the live stop would have
   fired at exactly that epoch.  A stop is *wrong* when the full training
   ends with a validation accuracy above the chance threshold (the loss did
   learn).  Reported: wrong stops (target 0), right stops, and the share of
   epochs the stop saves.
3. **Share of trainings on trees that complete training** among the
   trees each validity rule admits (``thesis``: all sampled trees;
   ``screened``: those that pass the screen), with the stop on.  Target for
   ``screened``: >= 80 %.

It also trains two sound losses with the live stop on, where the stop used
to kill them: -p_true on the ``quick`` tasks, and cross-entropy written as
a tree with ``max_train_samples=300`` (every task capped at 300 samples).

Usage::

    python benchmarks/bench_trainability.py                  # 40 trees, about 5 min on 2 cores
    python benchmarks/bench_trainability.py --trees 10 --screen-trees 100
    python benchmarks/bench_trainability.py --output stop.json   # also keep every number
"""

import argparse
import functools
import json
import random
import statistics
import time

import numpy

from deap_lossgp.fitness import LossEvaluator
from deap_lossgp.fitness.training import chance_noise, chance_threshold, is_hopeless
from deap_lossgp.gp.losses import REFERENCE_EXPRESSIONS
from deap_lossgp.search.presets import get_preset
from deap_lossgp.search.toolbox import make_toolbox
from deap_lossgp.gp.validity import check_validity, verdict

MINUS_P_TRUE = "mul(neg(y_pred), mul(y_true, y_true))"


def random_trees(count, seed):
    """``count`` random trees of the ``quick`` preset that pass the thesis's rule."""
    preset = get_preset("quick")
    toolbox = make_toolbox(search=preset.search, fitness=lambda ind: (0.0, 0.0),
                           check=functools.partial(check_validity, rule="thesis"))
    random.seed(seed)
    return [toolbox.individual() for _ in range(count)]


def screen_cost(trees):
    """Median and 90th percentile of the screened verdict's time, in ms."""
    times = []
    for tree in trees:
        started = time.perf_counter()
        verdict(tree, "screened")
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), float(numpy.percentile(times, 90))


def replay_stop(record, fitness):
    """Per task: the epoch at which the stop would have fired (or None), and whether the loss learned."""
    replay = {}
    for task in fitness.config.resolved_tasks():
        entry = record["tasks"][task.name]
        data = fitness._task_data(task)
        threshold = chance_threshold(data.y_train, data.num_classes)
        noise = chance_noise(data.y_train, data.num_classes)
        baseline = fitness.prepare()[task.name]["history"]["accuracy"]
        accuracies = entry["history"]["accuracy"]
        stop = next((epoch for epoch in range(1, len(accuracies) + 1)
                     if is_hopeless(accuracies[:epoch], threshold, noise, baseline, fitness.config.chance_after)),
                    None)
        validation_threshold = chance_threshold(data.y_val, data.num_classes)
        replay[task.name] = {"stop_epoch": stop, "epochs": len(accuracies),
                             "learned": entry["val_accuracy"] > validation_threshold,
                             "accuracy": accuracies, "val_accuracy": entry["history"]["val_accuracy"],
                             "baseline": baseline, "threshold": threshold, "noise": noise}
    return replay


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", type=int, default=40, help="random trees trained to the end (default 40)")
    parser.add_argument("--screen-trees", type=int, default=300, help="random trees timed by the screen")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="write every measured number to this JSON file")
    args = parser.parse_args()

    median, p90 = screen_cost(random_trees(args.screen_trees, args.seed + 1))
    print(f"screen cost per tree over {args.screen_trees} random trees: median {median:.1f} ms, p90 {p90:.1f} ms")

    full = LossEvaluator("quick", chance_after=0, validity="thesis")
    full.prepare()
    rows = []
    for tree in random_trees(args.trees, args.seed):
        status, _ = verdict(tree, "screened")
        record = full.evaluate_detailed(tree)
        row = {"expression": record["expression"], "screen": status, "status": record["status"]}
        if record["status"] == "ok":
            row["tasks"] = replay_stop(record, full)
        rows.append(row)

    trained = [row for row in rows if "tasks" in row]
    stops = [task for row in trained for task in row["tasks"].values() if task["stop_epoch"] is not None]
    wrong = [task for task in stops if task["learned"]]
    epochs = sum(task["epochs"] for row in trained for task in row["tasks"].values())
    saved = sum(task["epochs"] - task["stop_epoch"] for task in stops)
    print(f"{len(rows)} random trees (thesis rule): {sum(r['screen'] == 'valid' for r in rows)} pass the screen; "
          f"{len(trained)} train without a non-finite value")
    print(f"the stop would fire on {len(stops)} of {3 * len(trained)} task trainings: {len(wrong)} wrongly "
          f"(the loss learned), saving {saved} of {epochs} epochs ({saved / max(epochs, 1):.1%})")

    def completes(row):
        return "tasks" in row and all(task["stop_epoch"] is None for task in row["tasks"].values())

    shares = {}
    for rule, admitted in (("thesis", rows), ("screened", [r for r in rows if r["screen"] == "valid"])):
        done = sum(completes(row) for row in admitted)
        shares[rule] = done / max(len(admitted), 1)
        print(f"{rule}: {done} of {len(admitted)} admitted trees complete training ({shares[rule]:.0%})")

    live = LossEvaluator("quick")
    capped = LossEvaluator("quick", max_train_samples=300)
    sound = {"-p_true (quick)": live.evaluate_detailed(MINUS_P_TRUE),
             "cross-entropy as a tree (max_train_samples=300)": capped.evaluate_detailed(REFERENCE_EXPRESSIONS["ce"])}
    for label, record in sound.items():
        epochs = {name: task["epochs"] for name, task in record["tasks"].items()}
        print(f"{label}: status {record['status']}, epochs per task {epochs}")

    if args.output:
        with open(args.output, "w") as stream:
            json.dump({"screen_ms": {"median": median, "p90": p90}, "trees": rows, "completed_share": shares,
                       "wrong_stops": len(wrong), "stops": len(stops), "epochs_saved": saved, "epochs": epochs,
                       "sound": {k: {"status": v["status"]} for k, v in sound.items()}}, stream, indent=2)


if __name__ == "__main__":
    main()

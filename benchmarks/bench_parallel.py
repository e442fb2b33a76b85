"""Benchmark trainings as the unit of parallel work, and the asynchronous variant.

Three figures:

1. **Speed-up of 2 workers over 1** for one generation of the thesis's
   N = 3 children on the ``quick`` preset (3 tasks each), with the evaluation
   of a tree split into its trainings (9 units of work, the default) and, for
   comparison, with whole trees as the unit (3 units: one worker idles while
   the other trains the third tree).  Target: >= 1.8x on 2 quiet cores.
   The children are distinct trees that train fully (reference losses and
   scaled cross-entropies, as in ``bench_search.py``); each layout is warmed
   up first (TensorFlow, datasets) and the fastest of ``--repeats`` counts.

2. **Worker utilisation** on this machine, busy time / (workers x wall
   time), of ``--generations`` generations of ``eaSampleTournament`` and of
   ``eaAsyncSampleTournament`` on the ``quick`` preset with 2 worker
   processes, both from the same evaluated initial population (its
   evaluation is not timed).  Busy time is the training time the evaluation
   records report.

3. **Simulated utilisation at 8 and 16 workers**, replaying the per-task
   training times recorded in the ``evaluations.jsonl`` of real runs
   (``--runs``, default the committed ``quick-screened`` benchmark runs of
   ``eaSampleTournament``).  The children of their generations 1.. form a
   pool; ``--children`` children are drawn from it (seeded) and scheduled
   on W workers, one unit per recorded training, first come first served:
   generationally (N = 3P/8 children per generation, all their trainings
   submitted at once, the next generation waits for the last one) and
   asynchronously (``eaAsyncSampleTournament``'s rule: 2W children in
   training in flight, results applied in submission order).  Rejected children cost
   nothing.  ``--retrace`` adds the seconds a training pays when its worker
   did not train the task before it for the same tree (it must trace the
   model again; part 1 prints that cost as measured here).

Usage::

    python benchmarks/bench_parallel.py                      # all three
    python benchmarks/bench_parallel.py --skip-real          # the simulation only (seconds)
    python benchmarks/bench_parallel.py --skip-utilisation --repeats 3
"""

import argparse
import copy
import glob
import heapq
import json
import os
import random
import statistics
import tempfile
import time
import warnings

from bench_search import load_average, trainable_trees

from deap_lossgp.algorithms import Evaluation, default_n_parents, eaAsyncSampleTournament, eaSampleTournament
from deap_lossgp.fitness import LossEvaluator, train_model
from deap_lossgp.gp.expression import compile_loss
from deap_lossgp.search.parallel import ProcessMap
from deap_lossgp.search.presets import get_preset
from deap_lossgp.search.toolbox import make_toolbox

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
DEFAULT_RUNS = os.path.join(RESULTS, "quick-screened", "seed-*", "sample-tournament")


# 1. Speed-up of one generation of N children.

def _fitness(args, threads, records_path=None):
    overrides = {"threads": threads}
    if args.epochs:
        overrides["epochs"] = args.epochs
    fitness = LossEvaluator("quick", baseline_dir=args.baseline_dir, records_path=records_path, **overrides)
    fitness.prepare()
    return fitness


def time_children(workers, threads, children, warmup, args):
    """Seconds to evaluate *children* on *workers* processes: (whole trees, trainings as units)."""
    fitness = _fitness(args, threads)
    with ProcessMap(workers=workers, tf_threads=threads) as pmap:
        pmap(fitness, warmup)
        started = time.perf_counter()
        pmap(fitness, copy.deepcopy(children))
        whole = time.perf_counter() - started
        toolbox = make_toolbox(fitness=fitness, map=pmap)
        started = time.perf_counter()
        Evaluation(toolbox)(copy.deepcopy(children))
        units = time.perf_counter() - started
    return whole, units


def retrace_seconds(args):
    """How much longer a training takes on a worker that has not compiled the tree's model."""
    fitness = _fitness(args, get_preset("quick").fitness.threads)
    config = fitness.config
    tasks = config.resolved_tasks()
    settings = dict(config.training_arguments(), chance_after=0)
    expression = trainable_trees(1)[0]
    data = [fitness._task_data(task) for task in tasks]
    train_model(compile_loss(str(expression)), data[0], **settings)  # warm-up
    fresh, kept = [], []
    for task_data in data[1:]:
        started = time.perf_counter()
        train_model(compile_loss(str(expression)), task_data, **settings)
        fresh.append(time.perf_counter() - started)
        train_model(compile_loss(str(expression)), data[0], reuse="bench", **settings)
        started = time.perf_counter()
        train_model(compile_loss(str(expression)), task_data, reuse="bench", **settings)
        kept.append(time.perf_counter() - started)
    return statistics.median(f - k for f, k in zip(fresh, kept))


def measure_speedup(args):
    warnings.filterwarnings("ignore", message="TensorFlow is already running", category=RuntimeWarning)
    threads = get_preset("quick").fitness.threads
    n = default_n_parents(args.population)
    children = trainable_trees(n)
    warmup = trainable_trees(4, offset=n)
    best = {}
    # Alternate the layouts and keep each one's fastest repeat: other load
    # on the machine only ever slows a repeat down.
    for _ in range(args.repeats):
        for workers in (1, 2):
            timings = time_children(workers, threads, children, warmup, args)
            best[workers] = tuple(min(pair) for pair in zip(timings, best.get(workers, timings)))
    tasks = len(get_preset("quick").fitness.tasks)
    print(f"1. one generation of N = {n} children x {tasks} tasks, quick preset, {threads} TensorFlow thread(s) "
          f"per worker (fastest of {args.repeats}):")
    for label, column in (("whole trees as units", 0), ("trainings as units", 1)):
        one, two = best[1][column], best[2][column]
        note = " (target >= 1.8x)" if column else ""
        print(f"   {label:21}: 1 worker {one:6.1f} s, 2 workers {two:6.1f} s, speed-up {one / two:.2f}x{note}")
    print(f"   a training on a worker without the tree's compiled model: +{retrace_seconds(args):.2f} s")


# 2. Utilisation of real runs with 2 workers.

def busy_seconds(records_path):
    """Training seconds of the evaluation records (rejected trees are screened in the main process)."""
    if not os.path.exists(records_path):
        return 0.0
    with open(records_path, encoding="utf-8") as stream:
        records = [json.loads(line) for line in stream]
    return sum(record["time"] for record in records if record["status"] not in ("invalid", "untrainable"))


def measure_utilisation(args):
    warnings.filterwarnings("ignore", message="TensorFlow is already running", category=RuntimeWarning)
    threads = get_preset("quick").fitness.threads
    workers = 2
    search = get_preset("quick", population=args.population).search
    print(f"2. utilisation with {workers} workers, quick preset, P = {args.population}, "
          f"{args.generations} generations of N = {default_n_parents(args.population)} children:")
    with tempfile.TemporaryDirectory() as directory, ProcessMap(workers=workers, tf_threads=threads) as pmap:
        fitness = _fitness(args, threads)
        random.seed(args.seed)
        toolbox = make_toolbox(fitness=fitness, search=search, map=pmap)
        initial = toolbox.population(n=args.population)
        Evaluation(toolbox)(initial)
        for algorithm in (eaSampleTournament, eaAsyncSampleTournament):
            records = os.path.join(directory, f"{algorithm.__name__}.jsonl")
            fitness = _fitness(args, threads, records_path=records)
            toolbox = make_toolbox(fitness=fitness, search=search, map=pmap)
            random.seed(f"{args.seed}-run")
            started = time.perf_counter()
            _, logbook = algorithm(copy.deepcopy(initial), toolbox, args.generations, verbose=False)
            wall = time.perf_counter() - started
            busy = busy_seconds(records)
            trained = sum(logbook.select("nevals"))
            print(f"   {algorithm.__name__:24}: {trained:3} evaluations trained, wall {wall:6.1f} s, "
                  f"busy {busy:6.1f} s, utilisation {100 * busy / (workers * wall):5.1f} %")


# 3. Simulated utilisation from recorded training times.

def load_children(pattern):
    """Per child of generations 1.. of the runs matching *pattern*: its recorded training seconds per task."""
    children = []
    for run in sorted(glob.glob(pattern)):
        with open(os.path.join(run, "evaluations.jsonl"), encoding="utf-8") as stream:
            records = [json.loads(line) for line in stream]
        with open(os.path.join(run, "logbook.csv"), encoding="utf-8") as stream:
            header = stream.readline().strip().split(",")
            first = next(stream).strip().split(",")
        initial = int(first[header.index("nevals")]) + int(first[header.index("nrejected")])
        children.extend([task["time"] for task in record["tasks"].values()] for record in records[initial:])
    if not children:
        raise SystemExit(f"no evaluation records under {pattern!r}; pass --runs with run directories")
    return children


def simulate(children, workers, inflight, retrace=0.0):
    """Schedule the trainings of *children* on *workers*; return (useful busy, wall) seconds.

    Children are submitted while fewer than *inflight* submitted children
    that need training wait to be applied (rejected children take no room);
    results are applied in submission order.  A freed worker takes the next training
    as :class:`~deap_lossgp.algorithms.Evaluation` picks it: the next task
    of the tree it just trained, else the first task of a tree not started,
    else the oldest training waiting.  A generational run is a sequence of
    such runs, one per generation, with ``inflight`` = its number of children.
    """
    waiting = []  # children with trainings not started, in submission order
    next_task = [0] * len(children)
    remaining = [len(durations) for durations in children]
    last_child = [None] * workers  # the tree each worker trained last
    free = list(range(workers))
    running = []  # (end, worker, child)
    now = busy = 0.0
    submitted = applied = 0
    while applied < len(children):
        while applied < submitted and remaining[applied] == 0:
            applied += 1
        while submitted < len(children) and sum(1 for c in range(applied, submitted) if children[c]) < inflight:
            if children[submitted]:
                waiting.append(submitted)
            submitted += 1
        if applied < submitted and remaining[applied] == 0:
            continue
        while free and waiting:
            worker = free.pop(0)
            child = last_child[worker]
            if child not in waiting or next_task[child] == 0:
                child = next((c for c in waiting if next_task[c] == 0), waiting[0])
            task = next_task[child]
            next_task[child] += 1
            if next_task[child] == len(children[child]):
                waiting.remove(child)
            seconds = children[child][task]
            busy += seconds  # useful work: a retrace counts as idle
            if task > 0 and last_child[worker] != child:
                seconds += retrace
            last_child[worker] = child
            heapq.heappush(running, (now + seconds, worker, child))
        if not running:
            continue
        now, worker, child = heapq.heappop(running)
        remaining[child] -= 1
        free.insert(0, worker)
    return busy, now


def measure_simulation(args):
    pool = load_children(args.runs)
    draw = random.Random(args.seed)
    children = [draw.choice(pool) for _ in range(args.children)]
    n = default_n_parents(args.population)
    trained = sum(1 for durations in pool if durations)
    print(f"3. simulated utilisation: {args.children} children drawn from {len(pool)} recorded children "
          f"({trained} trained, {sum(len(d) for d in pool)} trainings, median training "
          f"{statistics.median(s for d in pool for s in d):.2f} s) of {os.path.relpath(args.runs)}; "
          f"retrace {args.retrace:.2f} s (counted as idle)")
    print(f"   {'workers':>7}  {'generational (N = ' + str(n) + ')':>22}  {'asynchronous (2W in training)':>28}")
    for workers in args.workers:
        busy = wall = 0.0
        for start in range(0, len(children), n):
            generation = children[start:start + n]
            b, w = simulate(generation, workers, len(generation), args.retrace)
            busy, wall = busy + b, wall + w
        generational = busy / (workers * wall)
        busy, wall = simulate(children, workers, 2 * workers, args.retrace)
        asynchronous = busy / (workers * wall)
        print(f"   {workers:>7}  {100 * generational:21.1f} %  {100 * asynchronous:27.1f} %")


def main():
    parser = argparse.ArgumentParser(description="Trainings as the unit of parallel work: speed-up and utilisation.")
    parser.add_argument("--population", type=int, default=8, help="population size P (default: 8, so N = 3)")
    parser.add_argument("--generations", type=int, default=12,
                        help="generations of the utilisation runs (default: 12, the thesis's large scale)")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-dir", help="where cross-entropy baselines are stored (default: the user cache)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timings per worker count for the speed-up; the fastest counts (default: 1)")
    parser.add_argument("--runs", default=DEFAULT_RUNS,
                        help="glob of run directories whose evaluations.jsonl the simulation replays")
    parser.add_argument("--children", type=int, default=2000, help="children simulated (default: 2000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 8, 16],
                        help="worker counts simulated (default: 2 8 16)")
    parser.add_argument("--retrace", type=float, default=0.0,
                        help="seconds added to a training whose worker must compile the tree's model again")
    parser.add_argument("--skip-speedup", action="store_true")
    parser.add_argument("--skip-utilisation", action="store_true")
    parser.add_argument("--skip-real", action="store_true", help="only the simulation")
    args = parser.parse_args()
    # Other processes distort the real figures: show the load.
    print(f"{os.cpu_count()} CPU core(s), {load_average()}")
    if not (args.skip_real or args.skip_speedup):
        measure_speedup(args)
    if not (args.skip_real or args.skip_utilisation):
        measure_utilisation(args)
    measure_simulation(args)
    print(load_average())


if __name__ == "__main__":
    main()

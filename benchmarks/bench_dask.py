"""Benchmark the Dask backend against the serial and process backends.

Four figures, on the ``quick`` preset with 2 workers (a local Dask cluster of
single-thread worker processes, or a process pool):

1. **Same seed, same search**: ``eaSampleTournament`` from one seed, serial
   and on Dask; the logbooks and the best trees must be identical.
2. **Overhead of Dask over the process pool**, wall time of
   ``eaAsyncSampleTournament`` from one evaluated initial population (its
   evaluation is not timed), the backends alternating ``--repeats`` times;
   the fastest of each counts. Target: <= 10 %.
3. **Utilisation at 8 workers under Dask's scheduling**, simulated: the
   round trip of an empty task through each backend (submit, run, result;
   the gap a worker waits between two trainings, since a training is sent
   when one finishes) is measured here and added to every training of the
   simulation of ``bench_parallel.py``, which replays recorded training
   times. Target: asynchronous >= 90 %.
4. **A worker killed mid-run**: figure 1's search on Dask, with one worker
   killed (``SIGKILL``) while it trains, in generation 1; the search must be
   that of the serial run, and the rerun counted (``DaskMap.reruns``).

Usage::

    python benchmarks/bench_dask.py
    python benchmarks/bench_dask.py --skip-overhead       # figures 1, 3 and 4
"""

import argparse
import copy
import os
import random
import signal
import statistics
import threading
import time
import warnings

from bench_parallel import DEFAULT_RUNS, load_children, simulate
from bench_search import load_average

from deap_lossgp.algorithms import Evaluation, default_n_parents, eaAsyncSampleTournament, eaSampleTournament
from deap_lossgp.fitness import LossEvaluator
from deap_lossgp.search.parallel import DaskMap, ProcessMap, SerialMap
from deap_lossgp.search.presets import get_preset
from deap_lossgp.search.toolbox import make_toolbox


def _empty(item):
    return item


def _fitness(args):
    overrides = {"epochs": args.epochs} if args.epochs else {}
    fitness = LossEvaluator("quick", baseline_dir=args.baseline_dir, **overrides)
    fitness.prepare()
    return fitness


def _search(args, mapper, on_generation=None):
    """Figure 1's search: its comparable logbook and best tree."""
    search = get_preset("quick", population=args.population).search
    toolbox = make_toolbox(fitness=_fitness(args), search=search, map=mapper)
    random.seed(args.seed)
    population = toolbox.population(n=args.population)
    population, logbook = eaSampleTournament(population, toolbox, args.generations, verbose=False,
                                             on_generation=on_generation)
    best = max(population, key=lambda individual: individual.fitness)
    return [{k: v for k, v in record.items() if k != "time"} for record in logbook], str(best)


def measure_identity(args):
    print(f"1. same seed, serial vs Dask ({args.workers} workers): eaSampleTournament, P = {args.population}, "
          f"{args.generations} generations")
    started = time.perf_counter()
    serial = _search(args, SerialMap())
    serial_seconds = time.perf_counter() - started
    with DaskMap(workers=args.workers) as dask_map:
        started = time.perf_counter()
        distributed = _search(args, dask_map)
        dask_seconds = time.perf_counter() - started
    print(f"   serial {serial_seconds:.1f} s, Dask {dask_seconds:.1f} s; logbook identical: "
          f"{serial[0] == distributed[0]}, best tree identical: {serial[1] == distributed[1]} ({serial[1]})")
    return serial


def measure_overhead(args):
    print(f"2. eaAsyncSampleTournament, {args.workers} workers, P = {args.population}, {args.generations} "
          f"generations, wall time without the initial evaluation (fastest of {args.repeats}):")
    search = get_preset("quick", population=args.population).search
    threads = get_preset("quick").fitness.threads
    fitness = _fitness(args)
    walls = {"process": [], "dask": []}
    with ProcessMap(workers=args.workers, tf_threads=threads) as process_map, \
            DaskMap(workers=args.workers, tf_threads=threads) as dask_map:
        random.seed(args.seed)
        toolbox = make_toolbox(fitness=fitness, search=search, map=process_map)
        initial = toolbox.population(n=args.population)
        Evaluation(toolbox)(initial)
        maps = {"process": process_map, "dask": dask_map}
        for repeat in range(args.repeats + 1):  # the first round warms both up (TensorFlow, datasets, models)
            for name in ("process", "dask") if repeat % 2 else ("dask", "process"):
                toolbox = make_toolbox(fitness=fitness, search=search, map=maps[name])
                random.seed(f"{args.seed}-async")
                started = time.perf_counter()
                eaAsyncSampleTournament(copy.deepcopy(initial), toolbox, args.generations,
                                        inflight=2 * args.workers, verbose=False)
                if repeat:
                    walls[name].append(time.perf_counter() - started)
    best = {name: min(values) for name, values in walls.items()}
    print(f"   process pool {best['process']:.1f} s (all: {', '.join(f'{w:.1f}' for w in walls['process'])}), "
          f"Dask {best['dask']:.1f} s (all: {', '.join(f'{w:.1f}' for w in walls['dask'])}); "
          f"Dask overhead {100 * (best['dask'] / best['process'] - 1):+.1f} %")


def round_trip(mapper, count):
    """Median seconds from submitting an empty task to holding its result, one task at a time."""
    mapper.first_completed([mapper.submit(_empty, 0)])  # started and warm
    seconds = []
    for item in range(count):
        started = time.perf_counter()
        future = mapper.submit(_empty, item)
        mapper.first_completed([future]).result()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def measure_simulation(args):
    with ProcessMap(workers=args.workers, tf_threads=None) as process_map:
        process_gap = round_trip(process_map, args.round_trips)
    with DaskMap(workers=args.workers, tf_threads=None) as dask_map:
        dask_gap = round_trip(dask_map, args.round_trips)
    print(f"3. round trip of an empty task (median of {args.round_trips}): process pool {1000 * process_gap:.1f} ms, "
          f"Dask {1000 * dask_gap:.1f} ms; simulated utilisation with it added to every training, "
          f"replaying {os.path.relpath(args.runs)}:")
    pool = load_children(args.runs)
    draw = random.Random(args.seed)
    children = [draw.choice(pool) for _ in range(args.children)]
    n = default_n_parents(8)
    trainings = sum(len(durations) for durations in children)
    print(f"   {'workers':>7}  {'gap':>8}  {'generational (N = ' + str(n) + ')':>22}  {'asynchronous':>13}")
    for workers in args.simulated:
        for name, gap in (("none", 0.0), ("process", process_gap), ("dask", dask_gap)):
            padded = [[seconds + gap for seconds in durations] for durations in children]
            busy = wall = 0.0
            for start in range(0, len(padded), n):
                generation = padded[start:start + n]
                b, w = simulate(generation, workers, len(generation))
                busy, wall = busy + b - gap * sum(map(len, generation)), wall + w
            generational = busy / (workers * wall)
            busy, wall = simulate(padded, workers, 2 * workers)
            asynchronous = (busy - gap * trainings) / (workers * wall)
            print(f"   {workers:>7}  {name:>8}  {100 * generational:21.1f} %  {100 * asynchronous:12.1f} %")


class _Killer:
    """Kills one Dask worker while it trains, once, in generation 1 (an ``on_generation`` callback)."""

    def __init__(self, dask_map):
        self.dask_map = dask_map
        self.killed = None

    def __call__(self, population, logbook, halloffame):
        if len(logbook) == 1:  # generation 0 done: generation 1 is about to train
            threading.Thread(target=self._kill, daemon=True).start()

    def _kill(self):
        client = self.dask_map.client
        while self.killed is None:
            busy = client.run(lambda dask_worker: (os.getpid(), len(dask_worker.state.executing)))
            pids = [pid for pid, executing in busy.values() if executing]
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                self.killed = pids[0]
            time.sleep(0.2)


def measure_kill(args, serial):
    with DaskMap(workers=args.workers) as dask_map, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        killer = _Killer(dask_map)
        killed = _search(args, dask_map, on_generation=killer)
    reruns = [str(warning.message) for warning in caught if "Dask worker died" in str(warning.message)]
    print(f"4. a Dask worker killed mid-training (pid {killer.killed}): logbook identical to serial: "
          f"{killed[0] == serial[0]}, best tree identical: {killed[1] == serial[1]}; reruns counted: "
          f"{dask_map.reruns}; warnings: {reruns}")


def main():
    parser = argparse.ArgumentParser(description="The Dask backend: same results, overhead, utilisation, a kill.")
    parser.add_argument("--population", type=int, default=8, help="population size P (default: 8, so N = 3)")
    parser.add_argument("--generations", type=int, default=2, help="generations of each run (default: 2)")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (default: 1)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the real runs (default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-dir", help="where cross-entropy baselines are stored (default: the user cache)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per backend in figure 2 (default: 2)")
    parser.add_argument("--round-trips", type=int, default=200, help="empty tasks timed in figure 3 (default: 200)")
    parser.add_argument("--runs", default=DEFAULT_RUNS,
                        help="glob of run directories whose evaluations.jsonl the simulation replays")
    parser.add_argument("--children", type=int, default=2000, help="children simulated (default: 2000)")
    parser.add_argument("--simulated", type=int, nargs="+", default=[8], help="worker counts simulated (default: 8)")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU core(s), {load_average()}")
    serial = measure_identity(args)
    print(load_average())
    if not args.skip_overhead:
        measure_overhead(args)
        print(load_average())
    measure_simulation(args)
    measure_kill(args, serial)
    print(load_average())


if __name__ == "__main__":
    main()

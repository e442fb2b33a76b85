"""Benchmark the search machinery around the fitness evaluations.

Two figures, both ratios measured in one run on the machine at hand:

1. **GP overhead share**: the share of a ``quick``-preset search's wall time
   spent outside ``toolbox.evaluate`` (random valid trees, selection,
   variation, cache keys, bookkeeping, checkpoint writes). Target: < 2 %.
   The search is :func:`~deap_lossgp.algorithms.eaSampleTournament` with the
   serial map, a checkpoint file and the real ``quick`` fitness; the time
   inside ``toolbox.map`` counts as evaluation. The cross-entropy baselines
   are trained (or loaded) before timing starts, as a real run does once.

2. **Parallel speed-up**: wall time of one generation's evaluations on one
   worker process divided by the time on two (target on a 2-core machine:
   >= 1.6x). The ``quick`` preset trains each evaluation with one TensorFlow
   thread (``FitnessConfig.threads = 1``, so results are bit-identical in any
   process layout): that is the main comparison. A single worker given all
   cores (``threads`` = cores) is timed as well, to show what processes gain
   over TensorFlow's own intra-op threads. Each layout is warmed up first
   (TensorFlow import, datasets), as a long run amortises both. The
   generation is ``--population`` distinct trees that train fully (reference
   losses and scaled cross-entropies), so that no task stops early at chance
   level and every layout does the same work: the P evaluations of the initial
   population or of an NGL generation. Algorithm 1's generations hold only
   N = 3P/8 children (3 for P = 8, an odd number of tasks for 2 workers), so
   their figure is printed too.

Usage::

    python benchmarks/bench_search.py                      # the quick preset as is
    python benchmarks/bench_search.py --generations 2      # shorter overhead run
    python benchmarks/bench_search.py --skip-speedup
"""

import argparse
import os
import random
import tempfile
import time
import warnings

from deap_lossgp.algorithms import default_n_parents, eaSampleTournament
from deap_lossgp.gp.expression import from_string
from deap_lossgp.fitness import LossEvaluator
from deap_lossgp.gp.losses import REFERENCE_EXPRESSIONS
from deap_lossgp.search.parallel import ProcessMap, get_map
from deap_lossgp.search.presets import get_preset
from deap_lossgp.search.toolbox import LossIndividual, make_toolbox


class TimingMap:
    """A map that adds up the wall time spent in the map it wraps."""

    def __init__(self, inner):
        self.inner = inner
        self.seconds = 0.0

    def __call__(self, function, iterable):
        started = time.perf_counter()
        try:
            return self.inner(function, iterable)
        finally:
            self.seconds += time.perf_counter() - started


def measure_overhead(args):
    overrides = {"population": args.population, "generations": args.generations}
    if args.epochs:
        overrides["epochs"] = args.epochs
    preset = get_preset("quick", **overrides)
    fitness = LossEvaluator(preset, baseline_dir=args.baseline_dir)
    fitness.prepare()
    timing = TimingMap(get_map("serial"))
    with tempfile.TemporaryDirectory() as directory:
        random.seed(args.seed)
        started = time.perf_counter()
        toolbox = make_toolbox(fitness=fitness, search=preset.search, map=timing)
        population = toolbox.population(n=preset.search.population)
        population, logbook = eaSampleTournament(population, toolbox, preset.search.generations, verbose=False,
                                                 checkpoint=os.path.join(directory, "checkpoint.pkl"))
        total = time.perf_counter() - started
    overhead = total - timing.seconds
    nevals = sum(logbook.select("nevals"))
    print(f"quick preset: P={preset.search.population}, {preset.search.generations} generations, "
          f"{preset.fitness.epochs} epochs, {nevals} evaluations "
          f"({sum(logbook.select('ncached'))} from the cache)")
    print(f"  total {total:.1f} s, in evaluate {timing.seconds:.1f} s, GP machinery {overhead:.2f} s")
    print(f"  GP overhead share: {100 * overhead / total:.2f} % (target < 2 %)")


def trainable_trees(count, offset=0):
    """*count* distinct trees that train fully on every task (the reference
    losses that do on the quick tasks, then cross-entropy scaled by different
    constants), so that no evaluation stops early and all cost about the same."""
    from deap_lossgp.gp.primitives import make_pset

    pset = make_pset()
    texts = [REFERENCE_EXPRESSIONS[name] for name in ("ce", "ngl", "focal", "baikal")]
    scale = 0.5
    while len(texts) < offset + count:
        if scale != 1.0:  # 1.0 x CE is CE: the same canonical key
            texts.append(f"mul({scale!r}, {REFERENCE_EXPRESSIONS['ce']})")
        scale += 0.25
    return [LossIndividual(from_string(text, pset)) for text in texts[offset:offset + count]]


def time_generation(workers, threads, trees, warmup, args):
    overrides = {"threads": threads}
    if args.epochs:
        overrides["epochs"] = args.epochs
    fitness = LossEvaluator("quick", baseline_dir=args.baseline_dir, **overrides)
    fitness.prepare()
    with ProcessMap(workers=workers, tf_threads=threads) as pmap:
        pmap(fitness, warmup)
        started = time.perf_counter()
        pmap(fitness, trees)
        full = time.perf_counter() - started
        started = time.perf_counter()
        pmap(fitness, trees[:default_n_parents(len(trees))])
        children = time.perf_counter() - started
    return full, children


def measure_speedup(args):
    # This process only prepares baselines here; after the overhead run its
    # TensorFlow keeps its thread count, which is harmless: workers set theirs.
    warnings.filterwarnings("ignore", message="TensorFlow is already running", category=RuntimeWarning)
    preset_threads = get_preset("quick").fitness.threads
    cores = os.cpu_count() or 1
    layouts = {"1 worker": (1, preset_threads), "2 workers": (2, preset_threads),
               "1 worker, all cores": (1, cores)}
    trees = trainable_trees(args.population)
    warmup = trainable_trees(4, offset=args.population)
    n = default_n_parents(args.population)
    best = {}
    # Alternate the layouts and keep each one's fastest repeat: other load on
    # the machine only ever slows a repeat down.
    for _ in range(args.repeats):
        for name, (workers, threads) in layouts.items():
            timings = time_generation(workers, threads, trees, warmup, args)
            best[name] = tuple(min(pair) for pair in zip(timings, best.get(name, timings)))
    for name, (workers, threads) in layouts.items():
        full, children = best[name]
        print(f"  {name:20} ({workers} x {threads} TensorFlow thread(s)): {len(trees)} evaluations {full:.1f} s, "
              f"{n} evaluations {children:.1f} s")
    for other, note in (("1 worker", " (target >= 1.6x)"), ("1 worker, all cores", "")):
        print(f"  speed-up of 2 workers over {other}: generation of {len(trees)} "
              f"{best[other][0] / best['2 workers'][0]:.2f}x{note}, of N={n} children "
              f"{best[other][1] / best['2 workers'][1]:.2f}x")


def load_average():
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""


def main():
    parser = argparse.ArgumentParser(description="GP overhead share and parallel speed-up of the search.")
    parser.add_argument("--population", type=int, default=8, help="population size P (default: 8)")
    parser.add_argument("--generations", type=int, default=4, help="generations of the overhead run (default: 4)")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-dir", help="where cross-entropy baselines are stored (default: the user cache)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timings per worker layout for the speed-up; the fastest counts (default: 1)")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-speedup", action="store_true")
    args = parser.parse_args()
    # Other processes distort the figures, the speed-up most: show the load.
    print(f"{os.cpu_count()} CPU core(s), {load_average()}")
    if not args.skip_overhead:
        measure_overhead(args)
    if not args.skip_speedup:
        measure_speedup(args)
    print(load_average())


if __name__ == "__main__":
    main()

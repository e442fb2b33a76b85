"""The thesis's Algorithm 2 in a script: one initial population, copied; eaNGL
runs on the copy and eaSampleTournament on the original, each timed from after
the copy and each with an evaluation cache of its own.

The evaluation is the cheap stand-in of ``own_toolbox.py``, so the times here
measure the algorithms' bookkeeping, not training; the evaluation counts are
what the comparison is about.
"""

import copy
import random
import time

from deap_lossgp.algorithms import eaNGL, eaSampleTournament
from deap_lossgp.expression import canonical_key
from own_toolbox import rank_like_cross_entropy, toolbox


class CachedEvaluator:
    """An evaluator with the cache protocol the algorithms look for: a
    ``key(individual)`` method and a ``cache`` dict (as ``LossFitness`` has).
    Trees with the same key are evaluated once."""

    def __init__(self):
        self.cache = {}

    def key(self, individual):
        return canonical_key(individual)

    def __call__(self, individual):
        return rank_like_cross_entropy(individual)


random.seed(0)
population = toolbox.population(n=8)
baseline = copy.deepcopy(population)
results = {}
for name, algorithm, individuals in (("NGL", eaNGL, baseline), ("ours", eaSampleTournament, population)):
    toolbox.register("evaluate", CachedEvaluator())
    started = time.perf_counter()
    final, logbook = algorithm(individuals, toolbox, ngen=12, verbose=False)
    results[name] = {
        "seconds": time.perf_counter() - started,
        "evaluations": sum(logbook.select("nevals")),
        "saved by the cache": sum(logbook.select("ncached")),
        "best fitness": max(ind.fitness.values for ind in final),
    }

for name, result in results.items():
    print(name, result)
ratio = results["ours"]["evaluations"] / results["NGL"]["evaluations"]
print(f"evaluations, ours / NGL: {ratio:.2f}")
# P = 8: NGL evaluates up to P = 8 children per generation, ours N = 3.
assert results["ours"]["evaluations"] <= 8 + 12 * 3
assert ratio < 0.6

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

from deap_lossgp import check_validity
from deap_lossgp.algorithms import eaNGL, eaSampleTournament
from deap_lossgp.gp.expression import canonical_key
from own_toolbox import toolbox


def screen(individual):
    """``None`` for a tree worth evaluating, else the fitness to give it unevaluated."""
    valid, _ = check_validity(individual)  # the screened rule, in NumPy
    return None if valid else (0.0, float("-inf"))


# Cache and screen: the algorithms evaluate trees with equal keys once (each run
# keeps a cache of its own), and give a tree the screen rejects its fitness
# without sending it to toolbox.map.
toolbox.register("key", canonical_key)
toolbox.register("screen", screen)
# End of cache and screen

random.seed(0)
population = toolbox.population(n=8)
baseline = copy.deepcopy(population)
results = {}
for name, algorithm, individuals in (("NGL", eaNGL, baseline), ("ours", eaSampleTournament, population)):
    started = time.perf_counter()
    final, logbook = algorithm(individuals, toolbox, ngen=12, verbose=False)
    results[name] = {
        "seconds": time.perf_counter() - started,
        "evaluations": sum(logbook.select("nevals")),
        "rejected": sum(logbook.select("nrejected")),
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

"""The asynchronous variant: the same search serially and in a pool of workers.

``eaAsyncSampleTournament`` breeds a child whenever there is room for one,
instead of waiting for a generation.  Its result depends on how many children
are in training at a time (``inflight``, by default twice the map's workers),
never on which training happens to finish first: with ``inflight`` fixed, the
serial map and a pool of two processes give the same search.
"""

import random

from deap import tools

from deap_lossgp.algorithms import eaAsyncSampleTournament
from deap_lossgp.search.parallel import get_map
from own_toolbox import toolbox


def search():
    random.seed(0)
    population = toolbox.population(n=8)
    halloffame = tools.HallOfFame(1)
    population, logbook = eaAsyncSampleTournament(population, toolbox, ngen=4, inflight=4, halloffame=halloffame,
                                                  verbose=False)
    return str(halloffame[0]), logbook.select("gen", "nevals")


if __name__ == "__main__":  # worker processes import this module: keep the work here
    results = {}
    for backend in ("serial", "process"):
        # tf_threads=None: this stand-in evaluation does not train, so workers need no TensorFlow.
        with get_map(backend, workers=2, tf_threads=None) as pmap:
            toolbox.register("map", pmap)
            results[backend] = search()
        print(f"{backend:8} best: {results[backend][0]}")
        print(f"{'':8} children evaluated per 3 applied: {results[backend][1][1][1:]}")
    assert results["serial"] == results["process"]

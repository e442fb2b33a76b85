"""The same search, evaluated serially and in a pool of worker processes.

Run it as ``python parallel_search.py``; under SCOOP
(``python -m scoop -n 2 parallel_search.py``) it uses SCOOP's workers instead
of the process pool. Both runs give the same logbook and best tree.
"""

import random

from deap import tools

from deap_lossgp.algorithms import eaSampleTournament
from deap_lossgp.search.parallel import get_map
from own_toolbox import toolbox


def search():
    random.seed(0)
    population = toolbox.population(n=8)
    halloffame = tools.HallOfFame(1)
    population, logbook = eaSampleTournament(population, toolbox, ngen=4, halloffame=halloffame, verbose=False)
    return str(halloffame[0]), logbook.select("gen", "nevals")


if __name__ == "__main__":  # worker processes import this module: keep the work here
    import scoop

    parallel = "scoop" if scoop.IS_RUNNING else "process"
    results = {}
    for backend in ("serial", parallel):
        # tf_threads=None: this stand-in evaluation does not train, so workers need no TensorFlow.
        with get_map(backend, workers=2, tf_threads=None) as pmap:
            toolbox.register("map", pmap)
            results[backend] = search()
        print(f"{backend:8} best: {results[backend][0]}")
    assert results["serial"] == results[parallel]

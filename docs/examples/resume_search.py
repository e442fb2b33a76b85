"""Stop a search and resume it from its checkpoint: the result is the same."""

import os
import random
import tempfile

from deap import tools

from deap_lossgp.algorithms import eaSampleTournament
from own_toolbox import toolbox  # the toolbox of the previous example


def search(checkpoint, ngen):
    random.seed(0)
    population = toolbox.population(n=8)
    halloffame = tools.HallOfFame(1)
    population, logbook = eaSampleTournament(population, toolbox, ngen=ngen, halloffame=halloffame,
                                             verbose=False, checkpoint=checkpoint)
    return str(halloffame[0]), logbook.select("gen", "nevals")


with tempfile.TemporaryDirectory() as directory:
    uninterrupted = search(os.path.join(directory, "a.pkl"), ngen=4)

    stopped = os.path.join(directory, "b.pkl")
    search(stopped, ngen=2)  # as if the process were killed after generation 2
    resumed = search(stopped, ngen=4)  # same script, same path: continues at generation 3

print("best:", resumed[0])
assert resumed == uninterrupted

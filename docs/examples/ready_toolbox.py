"""The same search with make_toolbox, which registers the thesis's operators and defaults."""

import random

from deap import tools

from deap_lossgp.algorithms import eaSampleTournament
from deap_lossgp.search.presets import get_preset
from deap_lossgp.search.toolbox import make_toolbox
from own_toolbox import rank_like_cross_entropy

# The search settings of the "quick" preset: P = 8, 4 generations, Cr = 0.5, M_ST = 0.3, M_N = 0.1.
search = get_preset("quick").search
# Random trees pass the screened validity rule (the default check; a LossEvaluator
# brings its own rule, its key and its screen).
toolbox = make_toolbox(fitness=rank_like_cross_entropy, search=search)

random.seed(0)
population = toolbox.population(n=search.population)
halloffame = tools.HallOfFame(1)
population, logbook = eaSampleTournament(population, toolbox, ngen=search.generations,
                                         mutpb_subtree=search.mutpb_subtree, mutpb_point=search.mutpb_point,
                                         halloffame=halloffame, verbose=False)
print("best:", halloffame[0], halloffame[0].fitness.values)
print("evaluations per generation:", logbook.select("nevals"))
assert logbook.select("nevals") == [8, 3, 3, 3, 3]

"""Register deap_lossgp's operators in your own DEAP toolbox.

The evaluation is a cheap, deterministic stand-in for training so that this
script runs in seconds: it scores how closely a candidate ranks the samples of
three fixed probe batches like cross-entropy does.  For a real search, register
``fitness = LossEvaluator(preset="quick")`` as ``evaluate``, ``fitness.key`` as
``key`` and ``fitness.screen`` as ``screen`` (or use ``make_toolbox``).
"""

import functools
import os
import random
import tempfile

import numpy
from deap import base, creator, gp, tools

from deap_lossgp import (
    add_bloat_limits,
    check_validity,
    cxNewRandomParent,
    initValid,
    make_pset,
    mutOnePoint,
    selSampleTournament,
)
from deap_lossgp.algorithms import eaSampleTournament
from deap_lossgp.gp.expression import evaluate_numpy, probe_batch

# Three probe "tasks", loosely shaped like CIFAR-10, Fashion-MNIST and CIFAR-100.
PROBES = [probe_batch(seed=seed, batch=64, classes=classes) for seed, classes in ((1, 10), (2, 10), (3, 100))]


def rank_like_cross_entropy(individual):
    """Fitness ``(wins, average improvement)``: on each probe, the improvement
    is the correlation of the candidate's per-sample loss with cross-entropy's,
    minus 0.5; a probe is won when it is positive (the thesis's Algorithm 3
    then averages the winning improvements, or all of them if none wins)."""
    improvements = []
    for y_true, y_pred in PROBES:
        cross_entropy = -numpy.sum(y_true * numpy.log(y_pred), axis=1)
        with numpy.errstate(all="ignore"):
            candidate = numpy.mean(evaluate_numpy(individual, y_true, y_pred), axis=1)
            correlation = numpy.corrcoef(candidate, cross_entropy)[0, 1]
        if not numpy.isfinite(correlation):  # non-finite or constant loss
            return 0.0, float("-inf")
        improvements.append(float(correlation) - 0.5)
    wins = [value for value in improvements if value > 0]
    return float(len(wins)), float(numpy.mean(wins or improvements))


pset = make_pset()
creator.create("FitnessLoss", base.Fitness, weights=(1.0, 1.0))  # (wins, average improvement)
creator.create("Individual", gp.PrimitiveTree, fitness=creator.FitnessLoss)

toolbox = base.Toolbox()
toolbox.register("expr", gp.genHalfAndHalf, pset=pset, min_=2, max_=6)
# Random trees are drawn until one passes the validity rules (NumPy only, no
# training): the screened rule by default; rule="thesis" is the thesis's own.
toolbox.register("individual", initValid, creator.Individual, toolbox.expr,
                 check=functools.partial(check_validity, rule="screened"))
toolbox.register("population", tools.initRepeat, list, toolbox.individual)
toolbox.register("select", selSampleTournament)  # best N = G/2 of G = 3P/4
toolbox.register("mate", cxNewRandomParent, new_parent=toolbox.individual, pb=0.5)  # Cr = 0.5
# eaNGL's crossover: always with a partner from the population or the archive.
toolbox.register("mate_archive", cxNewRandomParent, new_parent=toolbox.individual, pb=1.0)
toolbox.register("expr_mut", gp.genFull, min_=0, max_=2)
toolbox.register("mutate_subtree", gp.mutUniform, expr=toolbox.expr_mut, pset=pset)
toolbox.register("mutate_point", mutOnePoint, pset=pset)
toolbox.register("evaluate", rank_like_cross_entropy)
add_bloat_limits(toolbox, max_height=17, max_size=60)

if __name__ == "__main__":
    stats = tools.Statistics(lambda ind: ind.fitness.values[1])
    stats.register("max", numpy.max)
    stats.register("median", numpy.median)
    halloffame = tools.HallOfFame(1)

    with tempfile.TemporaryDirectory() as directory:
        checkpoint = os.path.join(directory, "checkpoint.pkl")
        random.seed(0)
        population = toolbox.population(n=8)
        population, logbook = eaSampleTournament(
            population, toolbox, ngen=4, mutpb_subtree=0.3, mutpb_point=0.1,
            stats=stats, halloffame=halloffame, verbose=True, checkpoint=checkpoint,
        )
        assert os.path.exists(checkpoint)  # rerunning with this path would resume

    best = halloffame[0]
    print("best:", best, best.fitness.values)
    # Algorithm 1 evaluates the P = 8 initial trees, then only N = 3P/8 = 3 children per generation.
    assert logbook.select("nevals") == [8, 3, 3, 3, 3]

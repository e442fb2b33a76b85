"""Helpers shared by the test modules (import them: ``from conftest import build_toolbox``)
and the fixture of the real ``quick`` fitness."""

import random

import numpy
import pytest
from deap import base, creator, gp, tools

from deap_lossgp.gp.expression import canonical_key, evaluate_numpy, probe_batch
from deap_lossgp.gp.operators import add_bloat_limits, cxNewRandomParent, mutOnePoint, selSampleTournament
from deap_lossgp.gp.primitives import make_pset
from deap_lossgp.gp.validity import check_validity, initValid

creator.create("FitnessCheap", base.Fitness, weights=(1.0, 1.0))
creator.create("IndividualCheap", gp.PrimitiveTree, fitness=creator.FitnessCheap)

_PROBE_TRUE, _PROBE_PRED = probe_batch(seed=7, batch=32)
_PROBE_CE = -numpy.sum(_PROBE_TRUE * numpy.log(_PROBE_PRED), axis=1)


def cheap_fitness(individual):
    """A deterministic stand-in for training: how well the candidate ranks
    probe samples like cross-entropy does. Returns ``(wins, score)`` like
    LossEvaluator (wins: 1 if positively correlated)."""
    per_sample = numpy.mean(evaluate_numpy(individual, _PROBE_TRUE, _PROBE_PRED), axis=1)
    if not numpy.all(numpy.isfinite(per_sample)) or numpy.std(per_sample) == 0:
        return 0.0, float("-inf")
    corr = float(numpy.corrcoef(per_sample, _PROBE_CE)[0, 1])
    return float(corr > 0), corr


class CachingFitness:
    """cheap_fitness with LossEvaluator's ``key`` method (registered as
    ``toolbox.key``), recording the keys it evaluated in this process."""

    def __init__(self):
        self.evaluated = {}
        self.calls = 0

    def key(self, individual):
        return canonical_key(individual)

    def __call__(self, individual):
        self.calls += 1
        fitness = cheap_fitness(individual)
        self.evaluated[canonical_key(individual)] = fitness
        return fitness


def build_toolbox(population_size=8, evaluate=cheap_fitness, map_=map):
    """A toolbox registered by hand, with the thesis's defaults."""
    pset = make_pset()
    toolbox = base.Toolbox()
    toolbox.register("expr", gp.genHalfAndHalf, pset=pset, min_=1, max_=3)
    toolbox.register("individual", initValid, creator.IndividualCheap, toolbox.expr,
                     check=check_validity)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("select", selSampleTournament)
    toolbox.register("mate", cxNewRandomParent, new_parent=toolbox.individual, pb=0.5)
    toolbox.register("mate_archive", cxNewRandomParent, new_parent=toolbox.individual, pb=1.0)
    toolbox.register("expr_mut", gp.genFull, pset=pset, min_=0, max_=2)
    toolbox.register("mutate_subtree", gp.mutUniform, expr=toolbox.expr_mut, pset=pset)
    toolbox.register("mutate_point", mutOnePoint, pset=pset)
    add_bloat_limits(toolbox, max_height=8)
    toolbox.register("evaluate", evaluate)
    if callable(getattr(evaluate, "key", None)):
        toolbox.register("key", evaluate.key)
    toolbox.register("map", map_)
    return toolbox


def make_stats():
    stats = tools.Statistics(lambda ind: ind.fitness.values[1])
    stats.register("max", numpy.max)
    stats.register("avg", numpy.mean)
    return stats


def comparable(logbook):
    """Logbook records without the wall time."""
    return [{k: v for k, v in record.items() if k != "time"} for record in logbook]


def run(algorithm, seed, population_size=8, ngen=3, evaluate=cheap_fitness, **kwargs):
    random.seed(seed)
    toolbox = build_toolbox(population_size, evaluate)
    population = toolbox.population(n=population_size)
    hof = tools.HallOfFame(1)
    kwargs.setdefault("verbose", False)
    population, logbook = algorithm(population, toolbox, ngen=ngen, stats=make_stats(), halloffame=hof, **kwargs)
    return population, logbook, hof



@pytest.fixture(scope="module")
def quick_fitness(tmp_path_factory):
    """The real ``quick`` fitness, one epoch, baselines trained once in a temporary directory."""
    from deap_lossgp.fitness import LossEvaluator

    fitness = LossEvaluator("quick", epochs=1, baseline_dir=str(tmp_path_factory.mktemp("baselines")))
    fitness.prepare()
    return fitness

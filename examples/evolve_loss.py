"""Evolve a loss function with DEAP, registering deap_lossgp's operators by hand.

This is what ``deap_lossgp.search.toolbox.make_toolbox`` does for you, written out
the way a DEAP user writes any GP script: creator classes, a primitive set, a
toolbox, then the thesis's algorithm (``eaSampleTournament``) or its NGL
baseline (``--algorithm ngl``).

Run it::

    python examples/evolve_loss.py                        # serial
    python examples/evolve_loss.py --workers 2            # local worker processes
    python -m scoop -n 2 examples/evolve_loss.py          # SCOOP (add --hostfile for several machines)
    python examples/evolve_loss.py --population 4 --generations 1 --epochs 1   # a one-minute smoke run

SCOOP's broker listens on all network interfaces and exchanges pickles: use it
on trusted networks only. With ``--checkpoint run.pkl`` a stopped run resumes
where it stopped when started again with the same arguments.
"""

import argparse
import random

import numpy
from deap import base, creator, gp, tools

from deap_lossgp.algorithms import eaNGL, eaSampleTournament
from deap_lossgp.gp.expression import to_formula, to_python_source, to_string
from deap_lossgp.fitness import LossEvaluator
from deap_lossgp.gp.operators import add_bloat_limits, cxNewRandomParent, mutOnePoint, selSampleTournament
from deap_lossgp.search.parallel import get_map
from deap_lossgp.gp.primitives import make_pset
from deap_lossgp.gp.validity import initValid

# At module level, as DEAP requires for parallel evaluation: SCOOP workers
# import this module and must know the classes of the individuals they receive.
creator.create("FitnessLoss", base.Fitness, weights=(1.0, 1.0))  # (wins, average improvement)
creator.create("Individual", gp.PrimitiveTree, fitness=creator.FitnessLoss)
pset = make_pset()  # add sub mul div neg sqrt log exp sin cos, y_true, y_pred, constants in [-1, 1]


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithm", choices=("sample-tournament", "ngl"), default="sample-tournament")
    parser.add_argument("--population", type=int, default=8, help="population size P (default: 8)")
    parser.add_argument("--generations", type=int, default=4, help="generations (default: 4)")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs per task (default: 6)")
    parser.add_argument("--workers", type=int, default=1,
                        help="local worker processes (default: 1, serial); ignored under python -m scoop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", help="checkpoint file: saved every generation, resumed if it exists")
    parser.add_argument("--baseline-dir", help="where the cross-entropy baselines are stored")
    parser.add_argument("--export", help="write the best loss as a standalone Keras loss module to this file")
    return parser.parse_args()


def make_map(workers):
    import scoop

    if scoop.IS_RUNNING:
        # get_map("scoop") is SCOOP's futures.map plus per-worker TensorFlow threads.
        return get_map("scoop")
    return get_map("process" if workers > 1 else "serial", workers=workers)


def main():
    args = parse_arguments()
    fitness = LossEvaluator("quick", epochs=args.epochs, baseline_dir=args.baseline_dir)
    # Train (or load) the cross-entropy baselines once, before any worker needs them.
    fitness.prepare()

    toolbox = base.Toolbox()
    toolbox.register("expr", gp.genHalfAndHalf, pset=pset, min_=2, max_=6)
    toolbox.register("individual", initValid, creator.Individual, toolbox.expr)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    # Sample tournament: the best N = G/2 of G = 3P/4 individuals drawn at random.
    toolbox.register("select", selSampleTournament)
    # Cross with another parent (probability Cr = 0.5) or with a brand-new random tree.
    toolbox.register("mate", cxNewRandomParent, new_parent=toolbox.individual, pb=0.5)
    # NGL's crossover: always with a partner from the archive or the population.
    toolbox.register("mate_archive", cxNewRandomParent, new_parent=toolbox.individual, pb=1.0)
    toolbox.register("expr_mut", gp.genFull, min_=0, max_=2)
    toolbox.register("mutate_subtree", gp.mutUniform, expr=toolbox.expr_mut, pset=pset)
    toolbox.register("mutate_point", mutOnePoint, pset=pset)
    add_bloat_limits(toolbox, max_height=17, max_size=60)
    toolbox.register("evaluate", fitness)
    # Equivalent trees are trained once, untrainable children not at all (counted in nrejected).
    toolbox.register("key", fitness.key)
    toolbox.register("screen", fitness.screen)

    stats = tools.Statistics(lambda ind: ind.fitness.values)
    stats.register("best", max)
    stats.register("median_improvement", lambda values: float(numpy.median([v[1] for v in values])))
    halloffame = tools.HallOfFame(1)

    random.seed(args.seed)
    population = toolbox.population(n=args.population)
    with make_map(args.workers) as mapper:
        toolbox.register("map", mapper)
        if args.algorithm == "ngl":
            population, logbook = eaNGL(population, toolbox, args.generations, stats=stats,
                                        halloffame=halloffame, checkpoint=args.checkpoint)
        else:
            population, logbook = eaSampleTournament(population, toolbox, args.generations, stats=stats,
                                                     halloffame=halloffame, checkpoint=args.checkpoint)

    best = halloffame[0]
    wins, improvement = best.fitness.values
    print(f"best loss:   {to_string(best)}")
    print(f"formula:     {to_formula(best)}")
    print(f"fitness:     {wins:g} task(s) won, average improvement {improvement:+.4f}")
    print(f"evaluations: {sum(logbook.select('nevals'))} run, {sum(logbook.select('ncached'))} from the cache")
    if args.export:
        with open(args.export, "w") as stream:
            stream.write(to_python_source(best))
        print(f"wrote {args.export}: model.compile(loss=EvolvedLoss())")


if __name__ == "__main__":
    main()

"""eaSampleTournament and eaNGL with a cheap deterministic fitness (fast), and
once end to end with the real ``quick`` fitness (slow); the shared helpers are
in ``conftest.py``."""

import random

import numpy
import pytest
from deap import base, creator, gp, tools

from conftest import CachingFitness, build_toolbox, comparable, run
from deap_lossgp.algorithms import Evaluation, default_n_parents, eaNGL, eaSampleTournament
from deap_lossgp.gp.expression import canonical_key
from deap_lossgp.gp.operators import cxNewRandomParent
from deap_lossgp.gp.primitives import make_pset


def test_default_n_parents_is_three_eighths_of_p():
    assert default_n_parents(8) == 3
    assert default_n_parents(16) == 6
    assert default_n_parents(4) == 1
    assert default_n_parents(1) == 1


def test_sample_tournament_evaluates_n_children_and_keeps_p():
    population, logbook, _ = run(eaSampleTournament, seed=1, population_size=8, ngen=4)
    assert len(population) == 8
    assert logbook.select("gen") == [0, 1, 2, 3, 4]
    assert logbook.select("nevals") == [8, 3, 3, 3, 3]
    assert logbook.select("ncached") == [0] * 5
    assert all(t >= 0 for t in logbook.select("time"))
    assert logbook.header == ["gen", "nevals", "nrejected", "ncached", "nraced", "time", "max", "avg"]
    assert all(ind.fitness.valid for ind in population)


def test_sample_tournament_is_elitist_and_updates_hall_of_fame():
    population, logbook, hof = run(eaSampleTournament, seed=2, ngen=5)
    best = logbook.select("max")
    assert best == sorted(best)
    assert hof[0].fitness.values == max(ind.fitness.values for ind in population)
    assert [ind.fitness.values for ind in population] == sorted(
        (ind.fitness.values for ind in population), reverse=True)


def test_sample_tournament_calls_the_toolbox_as_documented():
    calls = []
    random.seed(3)
    toolbox = build_toolbox(8)
    for alias in ("select", "mate", "mutate_subtree", "mutate_point"):
        original = getattr(toolbox, alias)

        def spy(*args, _name=alias, _original=original, **kwargs):
            calls.append((_name, args, kwargs))
            return _original(*args, **kwargs)

        setattr(toolbox, alias, spy)
    population = toolbox.population(n=8)
    eaSampleTournament(population, toolbox, ngen=1, mutpb_subtree=1.0, mutpb_point=1.0, verbose=False)
    names = [name for name, _, _ in calls]
    assert names == ["select"] + ["mate", "mutate_subtree", "mutate_point"] * 3
    _, (pool, k), _ = calls[0]
    assert k == 3 and len(pool) == 8
    for name, args, kwargs in calls[1:]:
        if name == "mate":
            child, mates = args
            assert len(mates) == 3 and kwargs == {}
            assert all(child is not mate for mate in mates)


def test_ngl_evaluates_p_per_generation_and_fills_the_archive():
    archive = []
    population, logbook, _ = run(eaNGL, seed=4, population_size=8, ngen=3, archive=archive)
    assert len(population) == 8
    assert logbook.select("nevals") == [8, 8, 8, 8]
    assert len(archive) == 3 * 8
    worst_kept = min(ind.fitness for ind in population)
    assert all(ind.fitness <= worst_kept for ind in archive[-8:])


def test_ngl_reevaluation_is_optional_and_counted():
    _, logbook, _ = run(eaNGL, seed=4, population_size=8, ngen=2, reevaluate=True)
    assert logbook.select("nevals") == [8, 16, 16]
    # Re-evaluation goes past the cache: the parents are really evaluated again.
    evaluator = CachingFitness()
    _, logbook, _ = run(eaNGL, seed=4, population_size=8, ngen=2, reevaluate=True, evaluate=evaluator)
    nevals, ncached = logbook.select("nevals"), logbook.select("ncached")
    assert [n + c for n, c in zip(nevals, ncached)] == [8, 16, 16]
    assert evaluator.calls == sum(nevals) > len(evaluator.evaluated)


def test_ngl_crosses_with_archive_or_population_only():
    random.seed(5)
    toolbox = build_toolbox(8)
    fresh = []
    original_new_parent = toolbox.mate.keywords["new_parent"]

    def counting_new_parent():
        fresh.append(1)
        return original_new_parent()

    toolbox.register("mate_archive", cxNewRandomParent, new_parent=counting_new_parent, pb=1.0)
    seen = []
    mate_archive = toolbox.mate_archive

    def spy(child, mates, **kwargs):
        seen.append(kwargs)
        return mate_archive(child, mates, **kwargs)

    toolbox.mate_archive = spy
    toolbox.mate = None  # NGL never uses the thesis's crossover
    population = toolbox.population(n=8)
    eaNGL(population, toolbox, ngen=2, verbose=False)
    assert seen == [{}] * 16
    # A new random donor only when every candidate mate is a copy of the child.
    assert len(fresh) <= 2


@pytest.mark.parametrize("algorithm", [eaSampleTournament, eaNGL])
def test_same_seed_same_search(algorithm):
    pop_a, log_a, hof_a = run(algorithm, seed=11)
    pop_b, log_b, hof_b = run(algorithm, seed=11)
    assert comparable(log_a) == comparable(log_b)
    assert [str(ind) for ind in pop_a] == [str(ind) for ind in pop_b]
    assert str(hof_a[0]) == str(hof_b[0])
    _, log_c, _ = run(algorithm, seed=12)
    assert comparable(log_a) != comparable(log_c)


def test_algorithms_share_one_toolbox_and_initial_population():
    random.seed(21)
    toolbox = build_toolbox(8)
    population = toolbox.population(n=8)
    baseline = [toolbox.clone(ind) for ind in population]
    _, ngl_log = eaNGL(baseline, toolbox, ngen=4, verbose=False)
    _, ours_log = eaSampleTournament(population, toolbox, ngen=4, verbose=False)
    assert ngl_log[0]["nevals"] == ours_log[0]["nevals"] == 8
    ratio = sum(ours_log.select("nevals")[1:]) / sum(ngl_log.select("nevals")[1:])
    assert ratio == 3 / 8


def test_cache_saves_evaluations_but_not_results():
    evaluator = CachingFitness()
    population, logbook, _ = run(eaSampleTournament, seed=31, ngen=6, evaluate=evaluator)
    nevals, ncached = logbook.select("nevals"), logbook.select("ncached")
    assert [n + c for n, c in zip(nevals, ncached)] == [8] + [3] * 6
    assert evaluator.calls == sum(nevals) == len(evaluator.evaluated)
    for ind in population:
        assert evaluator.evaluated[canonical_key(ind)] == ind.fitness.values
    # The cache changes the cost, never the search.
    _, plain_log, _ = run(eaSampleTournament, seed=31, ngen=6)
    assert [{k: v for k, v in r.items() if k not in ("nevals", "ncached")} for r in comparable(logbook)] == \
        [{k: v for k, v in r.items() if k not in ("nevals", "ncached")} for r in comparable(plain_log)]


def test_evaluation_deduplicates_equivalent_trees_and_keeps_its_cache():
    pset = make_pset()
    evaluator = CachingFitness()
    toolbox = base.Toolbox()
    toolbox.register("evaluate", evaluator)
    toolbox.register("key", evaluator.key)
    texts = ["add(y_true, y_pred)", "add(y_pred, y_true)", "mul(y_true, log(y_pred))", "add(y_true, y_pred)"]
    individuals = [creator.IndividualCheap(gp.PrimitiveTree.from_string(t, pset)) for t in texts]
    evaluation = Evaluation(toolbox)
    assert evaluation(individuals) == (2, 2, 0)
    assert evaluator.calls == 2 and len(evaluation.cache) == 2
    assert individuals[0].fitness.values == individuals[1].fitness.values == individuals[3].fitness.values
    assert evaluation([toolbox.clone(individuals[2])]) == (0, 1, 0)
    assert evaluation([toolbox.clone(individuals[2])], refresh=True) == (1, 0, 0)
    assert evaluator.calls == 3


@pytest.mark.parametrize("caching", [True, False])
def test_screened_individuals_are_not_evaluated_and_counted_apart(caching):
    pset = make_pset()
    evaluator = CachingFitness()
    toolbox = base.Toolbox()
    toolbox.register("evaluate", evaluator)
    if caching:
        toolbox.register("key", evaluator.key)
    sent = []
    toolbox.register("map", lambda f, items: [f(item) for item in sent.extend(items) or items])
    worst = (0.0, float("-inf"))
    toolbox.register("screen", lambda ind: worst if "log" in str(ind) else None)
    texts = ["add(y_true, y_pred)", "mul(y_true, log(y_pred))", "neg(log(y_pred))"]
    individuals = [creator.IndividualCheap(gp.PrimitiveTree.from_string(t, pset)) for t in texts]
    evaluation = Evaluation(toolbox)
    assert evaluation(individuals) == (1, 0, 2)
    assert [str(ind) for ind in sent] == ["add(y_true, y_pred)"]
    assert individuals[1].fitness.values == individuals[2].fitness.values == worst
    assert len(evaluation.cache) == (3 if caching else 0)


def test_without_a_key_every_individual_is_evaluated():
    toolbox = build_toolbox(4)
    population = toolbox.population(n=4)
    evaluation = Evaluation(toolbox)
    assert evaluation(population + [toolbox.clone(population[0])]) == (5, 0, 0)
    assert evaluation.cache == {}


def test_a_smaller_population_than_the_toolbox_expects_still_runs():
    # G = 3P/4 follows the population given, so N = G/2 always fits.
    toolbox = build_toolbox(8)
    population, logbook = eaSampleTournament(toolbox.population(n=4), toolbox, ngen=1, verbose=False)
    assert logbook.select("nevals") == [4, 1] and len(population) == 4


@pytest.mark.parametrize("kwargs, message", [
    ({"n_parents": 0}, "n_parents"),
    ({"n_parents": 9}, "n_parents"),
    ({"mutpb_point": 1.5}, "mutpb_point"),
    ({"mutpb_subtree": -0.1}, "mutpb_subtree"),
    ({"ngen": -1}, "ngen"),
])
def test_bad_parameters_are_clear_errors(kwargs, message):
    random.seed(0)
    toolbox = build_toolbox(8)
    population = toolbox.population(n=8)
    kwargs.setdefault("ngen", 1)
    with pytest.raises(ValueError, match=message):
        eaSampleTournament(population, toolbox, verbose=False, **kwargs)


def test_ngl_bad_archive_probability():
    random.seed(0)
    toolbox = build_toolbox(4)
    with pytest.raises(ValueError, match="cxpb_archive"):
        eaNGL(toolbox.population(n=4), toolbox, ngen=1, cxpb_archive=2, verbose=False)
    with pytest.raises(ValueError, match="empty"):
        eaNGL([], toolbox, ngen=1, verbose=False)


def test_verbose_prints_the_logbook(capsys):
    run(eaSampleTournament, seed=41, ngen=2, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["gen", "nevals", "nrejected", "ncached", "nraced", "time", "max", "avg"]
    assert [line.split()[0] for line in lines[1:]] == ["0", "1", "2"]


@pytest.mark.slow
def test_end_to_end_with_the_quick_fitness(quick_fitness):
    import copy

    from deap_lossgp.fitness import WORST_FITNESS
    from deap_lossgp.search.presets import get_preset
    from deap_lossgp.search.toolbox import make_toolbox

    search = get_preset("quick", population=4, generations=1).search
    random.seed(0)
    toolbox = make_toolbox(fitness=quick_fitness, search=search)
    population = toolbox.population(n=search.population)
    baseline = copy.deepcopy(population)
    hof = tools.HallOfFame(1)
    ngl_population, ngl_log = eaNGL(baseline, toolbox, ngen=1, verbose=False)
    population, log = eaSampleTournament(population, toolbox, ngen=1, halloffame=hof, verbose=False)
    assert len(population) == len(ngl_population) == 4
    # Each run owns its evaluation cache: both train the same four initial trees.
    assert ngl_log[0]["nevals"] + ngl_log[0]["ncached"] == 4 and log[0]["nevals"] + log[0]["ncached"] == 4
    assert log[1]["nevals"] + log[1]["ncached"] + log[1]["nrejected"] == 1
    assert ngl_log[1]["nevals"] + ngl_log[1]["ncached"] + ngl_log[1]["nrejected"] == 4
    for ind in population + ngl_population:
        wins, improvement = ind.fitness.values
        assert 0 <= wins <= 3 and (ind.fitness.values == WORST_FITNESS or numpy.isfinite(improvement))
    assert hof[0].fitness.values == max(ind.fitness.values for ind in population)

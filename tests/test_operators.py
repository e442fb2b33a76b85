import collections
import random

import pytest
from deap import base, creator, gp

from deap_lossgp import add_bloat_limits, cxNewRandomParent, cxSubtree, make_pset, mutOnePoint, selSampleTournament

PSET = make_pset()
creator.create("OpFit", base.Fitness, weights=(1.0, 1.0))
creator.create("OpInd", gp.PrimitiveTree, fitness=creator.OpFit)


def population(n, seed=0):
    random.seed(seed)
    pop = [creator.OpInd(gp.genHalfAndHalf(PSET, 1, 4)) for _ in range(n)]
    for i, ind in enumerate(pop):
        ind.fitness.values = (float(i % 3), float(i))
    return pop


def test_sample_tournament_samples_uniformly_and_returns_best_of_sample():
    pop = population(8)
    random.seed(42)
    appearances = collections.Counter()
    trials = 4000
    for _ in range(trials):
        state = random.getstate()
        chosen = selSampleTournament(pop, k=3, sample_size=6)
        random.setstate(state)
        sample = random.sample(pop, 6)  # the same draw the operator made
        best = sorted(sample, key=lambda ind: ind.fitness, reverse=True)[:3]
        assert [id(c) for c in chosen] == [id(b) for b in best]
        assert all(any(c is p for p in pop) for c in chosen)  # references, not copies
        appearances.update(id(ind) for ind in sample)
    # Each individual is in the sample with probability 6/8; 4000 draws keep a
    # binomial count within 5 standard deviations (~137) of 3000.
    for ind in pop:
        assert abs(appearances[id(ind)] - trials * 6 / 8) < 5 * (trials * 0.75 * 0.25) ** 0.5


def test_sample_tournament_fitness_order_is_lexicographic():
    pop = population(6)
    pop[0].fitness.values = (3.0, -5.0)  # more wins beats a larger improvement
    pop[1].fitness.values = (1.0, 100.0)
    assert selSampleTournament(pop, k=1, sample_size=6)[0] is pop[0]


@pytest.mark.parametrize("k, size", [(4, 3), (1, 9)])
def test_sample_tournament_rejects_impossible_sizes(k, size):
    with pytest.raises(ValueError):
        selSampleTournament(population(8), k=k, sample_size=size)


def test_cx_subtree_takes_a_subtree_of_the_donor_and_leaves_it_untouched():
    random.seed(5)
    for _ in range(100):
        ind, donor = population(2, seed=random.randrange(10**6))
        donor_text = str(donor)
        donor_subtrees = {str(gp.PrimitiveTree(donor[donor.searchSubtree(i)])) for i in range(len(donor))}
        (child,) = cxSubtree(ind, donor)
        assert child is ind and str(donor) == donor_text
        child_subtrees = {str(gp.PrimitiveTree(child[child.searchSubtree(i)])) for i in range(len(child))}
        assert child_subtrees & donor_subtrees


def test_cx_new_random_parent_uses_a_new_tree_about_one_minus_pb_of_the_time():
    mates = population(4)
    new_parents = []

    def new_parent():
        tree = creator.OpInd(gp.genFull(PSET, 1, 2))
        new_parents.append(tree)
        return tree

    random.seed(11)
    trials, pb = 3000, 0.3
    for _ in range(trials):
        cxNewRandomParent(creator.OpInd(mates[0]), mates, new_parent, pb)
    share = len(new_parents) / trials
    assert abs(share - (1 - pb)) < 5 * ((pb * (1 - pb)) / trials) ** 0.5


def test_cx_new_random_parent_never_uses_the_individual_itself():
    mates = population(3)
    for ind in mates[1:]:
        ind[0:len(ind)] = list(mates[0])
    random.seed(0)
    calls = []
    cxNewRandomParent(creator.OpInd(mates[0]), mates, lambda: calls.append(1) or creator.OpInd(mates[0]), pb=1.0)
    assert calls == [1]  # all mates equal the individual: a new parent is drawn


def test_operators_are_deterministic_under_random_seed():
    def run():
        pop = population(6, seed=9)
        random.seed(123)
        out = []
        for ind in pop:
            (c,) = cxNewRandomParent(creator.OpInd(ind), pop, lambda: creator.OpInd(gp.genGrow(PSET, 1, 3)), 0.5)
            (c,) = mutOnePoint(c, PSET)
            (c,) = gp.mutUniform(c, lambda pset, type_: gp.genGrow(pset, 0, 2, type_), PSET)
            out.append(str(c))
        return out + [str(s) for s in selSampleTournament(pop, 2, 4)]

    assert run() == run()


def test_one_point_mutation_keeps_root_shape_and_arity():
    random.seed(2)
    changed = 0
    for ind in population(300, seed=4):
        before = list(ind)
        (after,) = mutOnePoint(ind, PSET)
        assert after[0] is before[0]  # the root is never touched
        assert len(after) == len(before)
        for old, new in zip(before, after):
            assert isinstance(new, gp.Primitive) == isinstance(old, gp.Primitive)
            if isinstance(old, gp.Primitive):
                assert new.arity == old.arity
        changed += str(after) != str(gp.PrimitiveTree(before))
    assert changed > 150


def test_bloat_limits_restore_trees_that_grow_too_much():
    toolbox = base.Toolbox()
    toolbox.register("mutate_subtree", gp.mutUniform, expr=lambda pset, type_: gp.genFull(pset, 6, 6, type_), pset=PSET)
    add_bloat_limits(toolbox, max_height=5, max_size=40)
    random.seed(1)
    for ind in population(50):
        before = str(ind)
        (child,) = toolbox.mutate_subtree(ind)
        assert child.height <= 5 and len(child) <= 40
        if child.height == ind.height and str(child) == before:
            continue
    grown = creator.OpInd(gp.genFull(PSET, 2, 2))
    (child,) = toolbox.mutate_subtree(grown)
    assert child.height <= 5

"""make_toolbox: the thesis's registrations, the default individual class and
user classes."""

import functools
import os
import pickle
import random
import subprocess
import sys

import pytest
from deap import base, creator, gp

from deap_lossgp.algorithms import eaNGL, eaSampleTournament
from deap_lossgp.fitness import LossEvaluator
from deap_lossgp.gp.operators import cxNewRandomParent, default_sample_size, selSampleTournament
from deap_lossgp.gp.validity import check_validity
from deap_lossgp.search.presets import SearchConfig, get_preset
from deap_lossgp.search.toolbox import FitnessLoss, LossIndividual, make_toolbox

from conftest import cheap_fitness

FAST_CHECK = functools.partial(check_validity, rule="screened")

creator.create("FitnessUser", base.Fitness, weights=(1.0, 1.0))
creator.create("IndividualUser", gp.PrimitiveTree, fitness=creator.FitnessUser)


def test_sample_size_is_three_quarters_of_p():
    assert [default_sample_size(p) for p in (1, 2, 4, 8, 16)] == [1, 1, 3, 6, 12]


def test_registers_the_thesis_defaults():
    search = SearchConfig(population=8)
    toolbox = make_toolbox(fitness=cheap_fitness, search=search, check=FAST_CHECK)
    for alias in ("expr", "individual", "population", "select", "mate", "expr_mut", "mutate_subtree",
                  "mutate_point", "mate_archive", "evaluate", "map", "clone"):
        assert hasattr(toolbox, alias), alias
    assert toolbox.select.func is selSampleTournament and toolbox.select.keywords == {}
    assert toolbox.evaluate.func is cheap_fitness
    assert toolbox.map.func is map
    # mate is decorated by the bloat limit: the wrapper wraps cxNewRandomParent.
    assert toolbox.mate.func.__wrapped__ is cxNewRandomParent
    assert toolbox.mate.keywords["pb"] == search.crossover_pb
    assert {p.name for p in toolbox.pset.primitives[toolbox.pset.ret]} >= {"div", "add", "log"}


def test_default_fitness_is_the_quick_loss_fitness():
    toolbox = make_toolbox(check=FAST_CHECK)
    assert isinstance(toolbox.evaluate.func, LossEvaluator)


def test_random_trees_follow_the_thesis_and_variation_respects_limits():
    random.seed(3)
    search = SearchConfig(population=8, init_min_height=2, init_max_height=4, max_height=6, max_size=25)
    toolbox = make_toolbox(fitness=cheap_fitness, search=search, check=FAST_CHECK)
    population = toolbox.population(n=30)
    assert all(isinstance(ind, LossIndividual) and isinstance(ind.fitness, FitnessLoss) for ind in population)
    assert all(2 <= ind.height <= 4 for ind in population)
    # Random trees never use div: the thesis draws it in one-point mutation only.
    assert not any(node.name == "div" for ind in population for node in ind)
    assert all(check_validity(ind)[0] for ind in population)
    for ind in population:
        (child,) = toolbox.mate(toolbox.clone(ind), population)
        (child,) = toolbox.mutate_subtree(child)
        (child,) = toolbox.mutate_point(child)
        assert child.height <= 6 and len(child) <= 25


def test_default_individuals_pickle_by_reference():
    random.seed(4)
    toolbox = make_toolbox(fitness=cheap_fitness, check=FAST_CHECK)
    ind = toolbox.individual()
    ind.fitness.values = (1.0, 0.5)
    data = pickle.dumps(ind)
    # A fresh interpreter that never called make_toolbox or creator.create reads it.
    code = ("import pickle, sys; ind = pickle.loads(sys.stdin.buffer.read()); "
            "print(type(ind).__name__, ind.fitness.values, str(ind))")
    out = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True, check=True).stdout
    assert out.decode().split(" ", 1)[0] == "LossIndividual"
    assert str(ind) in out.decode() and "(1.0, 0.5)" in out.decode()


def test_user_creator_classes_and_pset():
    random.seed(5)
    from deap_lossgp.gp.primitives import make_pset

    pset = make_pset(("add", "mul", "log", "neg"))
    toolbox = make_toolbox(pset=pset, fitness=cheap_fitness, individual=creator.IndividualUser, check=FAST_CHECK)
    population = toolbox.population(n=4)
    assert all(type(ind) is creator.IndividualUser for ind in population)
    assert {node.name for ind in population for node in ind if isinstance(node, gp.Primitive)} <= {
        "add", "mul", "log", "neg"}
    assert toolbox.pset is pset


def test_search_must_be_a_search_config():
    with pytest.raises(ValueError, match="SearchConfig"):
        make_toolbox(fitness=cheap_fitness, search={"population": 8})


@pytest.mark.parametrize("algorithm", [eaSampleTournament, eaNGL])
def test_toolbox_runs_both_algorithms(algorithm):
    random.seed(6)
    search = get_preset("quick", population=8).search
    toolbox = make_toolbox(fitness=cheap_fitness, search=search, check=FAST_CHECK)
    population = toolbox.population(n=search.population)
    population, logbook = algorithm(population, toolbox, ngen=2, verbose=False)
    assert len(population) == 8 and len(logbook) == 3


EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "evolve_loss.py")


@pytest.mark.slow
def test_by_hand_example_runs_under_scoop(tmp_path):
    command = [sys.executable, "-m", "scoop", "-n", "2", EXAMPLE, "--population", "4", "--generations", "1",
               "--epochs", "1", "--baseline-dir", str(tmp_path / "baselines"),
               "--checkpoint", str(tmp_path / "run.pkl"), "--export", str(tmp_path / "best_loss.py")]
    completed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "best loss:" in completed.stdout and "evaluations: " in completed.stdout
    assert (tmp_path / "run.pkl").exists()
    assert "CLASS_NAME = 'EvolvedLoss'" in (tmp_path / "best_loss.py").read_text()

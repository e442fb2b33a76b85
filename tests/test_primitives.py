import pickle
import random
import subprocess
import sys

import numpy as np
import pytest
from deap import base, creator, gp, tools

from deap_lossgp import make_pset
from deap_lossgp.gp.primitives import DEFAULT_OPERATORS
from deap_lossgp.gp.standalone import OPERATORS


def test_pset_has_thesis_vocabulary_and_renamed_arguments():
    pset = make_pset()
    names = {p.name for p in pset.primitives[pset.ret]}
    assert names == {"add", "sub", "mul", "div", "neg", "sqrt", "log", "exp", "sin", "cos"}
    assert pset.arguments == ["y_true", "y_pred"]
    assert "y_true" in pset.mapping and "y_pred" in pset.mapping


def test_operator_subset_and_constant_range():
    random.seed(3)
    pset = make_pset(operators=("add", "mul"), constant_range=(5.0, 6.0))
    assert {p.name for p in pset.primitives[pset.ret]} == {"add", "mul"}
    constants = [
        node.value
        for _ in range(50)
        for node in gp.genFull(pset, 2, 3)
        if isinstance(node, gp.Terminal) and not isinstance(node.value, str)
    ]
    assert constants and all(5.0 <= c <= 6.0 for c in constants)
    assert make_pset(constant_range=None).terms_count == 2


@pytest.mark.parametrize(
    "kwargs, message",
    [({"operators": ("add", "pow")}, "unknown operator"), ({"operators": ()}, "empty"), ({"constant_range": (1, 1)}, "low < high")],
)
def test_bad_pset_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_pset(**kwargs)


def test_make_pset_twice_with_different_ranges():
    assert make_pset(constant_range=(-1, 1)) is not make_pset(constant_range=(-2, 2))


EDGES = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-8, -3.0, 1e30, -1e30, 88.0, 1e4], dtype=np.float32)


@pytest.mark.parametrize("name", [op for op in DEFAULT_OPERATORS if op in ("div", "sqrt", "log", "exp")])
def test_protected_operators_finite_values_and_gradients_at_edges(name):
    import keras
    import tensorflow as tf

    arity, function = OPERATORS[name]
    x = tf.Variable(EDGES)
    y = tf.Variable(EDGES[::-1].copy())
    with tf.GradientTape() as tape:
        out = function(keras.ops, x, y) if arity == 2 else function(keras.ops, x)
        total = keras.ops.sum(out)
    grads = tape.gradient(total, [x, y] if arity == 2 else [x])
    assert np.all(np.isfinite(out.numpy())), out.numpy()
    for g in grads:
        assert g is not None and np.all(np.isfinite(g.numpy())), g
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        np_out = function(np, EDGES, EDGES[::-1].copy()) if arity == 2 else function(np, EDGES)
    assert np.all(np.isfinite(np_out))


def test_individuals_with_constants_pickle_in_this_and_a_fresh_process():
    pset = make_pset(constant_range=(-3.0, 3.0))
    creator.create("PickleFit", base.Fitness, weights=(1.0, 1.0))
    creator.create("PickleInd", gp.PrimitiveTree, fitness=creator.PickleFit)
    random.seed(1)
    ind = creator.PickleInd(gp.genFull(pset, 3, 3))
    while not any(isinstance(n, gp.Terminal) and not isinstance(n.value, str) for n in ind):
        ind = creator.PickleInd(gp.genFull(pset, 3, 3))
    ind.fitness.values = (1.0, 0.5)
    copy = pickle.loads(pickle.dumps(ind))
    assert str(copy) == str(ind) and copy.fitness.values == (1.0, 0.5)
    # A fresh interpreter that only recreates the creator classes can read it.
    script = (
        "import pickle, sys\n"
        "from deap import base, creator, gp\n"
        "creator.create('PickleFit', base.Fitness, weights=(1.0, 1.0))\n"
        "creator.create('PickleInd', gp.PrimitiveTree, fitness=creator.PickleFit)\n"
        "print(str(pickle.loads(sys.stdin.buffer.read())))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], input=pickle.dumps(ind), capture_output=True, check=True)
    assert out.stdout.decode().strip() == str(ind)


def test_deap_user_can_build_a_toolbox_from_our_pieces():
    from deap_lossgp import cxNewRandomParent, initValid, selSampleTournament

    pset = make_pset()
    creator.create("UserFit", base.Fitness, weights=(1.0, 1.0))
    creator.create("UserInd", gp.PrimitiveTree, fitness=creator.UserFit)
    toolbox = base.Toolbox()
    toolbox.register("expr", gp.genHalfAndHalf, pset=pset, min_=2, max_=4)
    toolbox.register("individual", initValid, creator.UserInd, toolbox.expr)
    toolbox.register("population", tools.initRepeat, list, toolbox.individual)
    toolbox.register("select", selSampleTournament, sample_size=6)
    toolbox.register("mate", cxNewRandomParent, new_parent=toolbox.individual, pb=0.5)
    random.seed(7)
    population = toolbox.population(n=8)
    for i, ind in enumerate(population):
        ind.fitness.values = (0.0, float(i))
    parents = toolbox.select(population, 3)
    (child,) = toolbox.mate(toolbox.clone(parents[0]), parents)
    assert isinstance(child, creator.UserInd) and len(parents) == 3
    assert "y_true" in str(population[0]) and "y_pred" in str(population[0])

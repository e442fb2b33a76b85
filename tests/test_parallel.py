"""Map backends: order, random-state isolation, portable individuals, and the
same search under serial, process-pool and SCOOP evaluation."""

import json
import os
import random
import subprocess
import sys
import textwrap

import numpy
import pytest
from deap import creator, gp, tools

from deap_lossgp.algorithms import eaNGL, eaSampleTournament
from deap_lossgp.gp.expression import from_string
from deap_lossgp.search.parallel import ProcessMap, SerialMap, get_map, portable
from deap_lossgp.gp.primitives import make_pset

from conftest import (
    CachingFitness,
    build_toolbox,
    cheap_fitness,
    comparable,
    make_stats,
    run,
)

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def rude_fitness(individual):
    """cheap_fitness that reseeds and consumes the global generators, as
    Keras's set_random_seed does during training."""
    random.seed(0)
    numpy.random.seed(0)
    random.random()
    numpy.random.random()
    return cheap_fitness(individual)


class RudeCachingFitness(CachingFitness):
    """rude_fitness behind the evaluation-cache protocol."""

    def __call__(self, individual):
        self.calls += 1
        return rude_fitness(individual)


def describe(item):
    """What a worker received, and where it ran."""
    return type(item).__name__, str(item), os.getpid()


def test_get_map_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown map backend 'threads'"):
        get_map("threads")
    with pytest.raises(ValueError, match="workers"):
        get_map("process", workers=0)
    with pytest.raises(ValueError, match="tf_threads"):
        get_map("process", tf_threads=0)


def test_scoop_backend_needs_python_m_scoop():
    with pytest.raises(ValueError, match="python -m scoop"):
        get_map("scoop")


def test_serial_map_keeps_order_and_random_state():
    random.seed(42)
    numpy.random.seed(42)
    python_state, numpy_state = random.getstate(), numpy.random.get_state()
    pset = make_pset()
    trees = [gp.PrimitiveTree.from_string(t, pset) for t in ("add(y_true, y_pred)", "mul(y_true, log(y_pred))")]
    with get_map("serial") as serial:
        assert isinstance(serial, SerialMap)
        assert serial(rude_fitness, trees) == [cheap_fitness(t) for t in trees]
    assert random.getstate() == python_state
    assert str(numpy.random.get_state()) == str(numpy_state)


def test_portable_strips_creator_classes_only():
    pset = make_pset()
    tree = gp.PrimitiveTree.from_string("add(0.25, mul(y_true, y_pred))", pset)
    individual = creator.IndividualCheap(tree)
    sent = portable(individual)
    assert type(sent) is gp.PrimitiveTree and str(sent) == str(individual)
    assert portable(tree) is tree
    assert portable("text") == "text"


@pytest.mark.parametrize("algorithm", [eaSampleTournament, eaNGL])
def test_rude_evaluator_does_not_change_the_search_through_serial_map(algorithm):
    _, expected, _ = run(algorithm, seed=8, evaluate=CachingFitness())
    _, logbook, _ = _run_with(algorithm, 8, RudeCachingFitness(), get_map("serial"))
    assert comparable(logbook) == comparable(expected)


def _run_with(algorithm, seed, evaluate, map_, ngen=3):
    random.seed(seed)
    toolbox = build_toolbox(8, evaluate, map_)
    population = toolbox.population(n=8)
    hof = tools.HallOfFame(1)
    population, logbook = algorithm(population, toolbox, ngen=ngen, stats=make_stats(), halloffame=hof,
                                    verbose=False)
    return population, logbook, hof


def test_process_map_runs_in_workers_in_order():
    pset = make_pset()
    texts = ["add(y_true, y_pred)", "mul(y_true, log(y_pred))", "sub(0.5, mul(y_pred, y_true))", "neg(y_pred)"]
    # Creator classes and ephemeral constants ("const" nodes) that the spawned workers never created.
    individuals = [creator.IndividualCheap(from_string(t, pset)) for t in texts]
    assert any(isinstance(type(node), gp.MetaEphemeral) for node in individuals[2])
    with ProcessMap(workers=2, tf_threads=None) as pmap:
        results = pmap(describe, individuals)
        assert pmap([].__len__, []) == []
    assert [name for name, _, _ in results] == ["PrimitiveTree"] * 4
    assert [text for _, text, _ in results] == texts
    assert os.getpid() not in {pid for _, _, pid in results}
    assert pmap._executor is None


@pytest.mark.parametrize("algorithm", [eaSampleTournament, eaNGL])
def test_process_pool_gives_the_serial_search(algorithm):
    _, expected, hof_serial = _run_with(algorithm, 9, CachingFitness(), get_map("serial"), ngen=4)
    with get_map("process", workers=2, tf_threads=None) as pmap:
        _, logbook, hof = _run_with(algorithm, 9, RudeCachingFitness(), pmap, ngen=4)
    assert comparable(logbook) == comparable(expected)
    assert str(hof[0]) == str(hof_serial[0])


def report_threads(_):
    import tensorflow as tf

    return tf.config.threading.get_intra_op_parallelism_threads()


@pytest.mark.slow
def test_process_workers_configure_tensorflow_threads():
    with get_map("process", workers=2, tf_threads=1) as pmap:
        assert pmap(report_threads, [0, 1]) == [1, 1]


SCOOP_SCRIPT = textwrap.dedent("""
    import json, random, sys
    from deap import tools
    from deap_lossgp.algorithms import eaNGL, eaSampleTournament
    from deap_lossgp.search.parallel import get_map
    from conftest import build_toolbox, comparable, make_stats
    from test_parallel import RudeCachingFitness

    def main():
        results = {}
        with get_map("scoop", tf_threads=None) as smap:
            for algorithm in (eaSampleTournament, eaNGL):
                random.seed(9)
                toolbox = build_toolbox(8, RudeCachingFitness(), smap)
                population = toolbox.population(n=8)
                hof = tools.HallOfFame(1)
                population, logbook = algorithm(population, toolbox, ngen=4, stats=make_stats(),
                                                halloffame=hof, verbose=False)
                results[algorithm.__name__] = {"logbook": comparable(logbook), "best": str(hof[0])}
        with open(sys.argv[1], "w") as stream:
            json.dump(results, stream)

    if __name__ == "__main__":
        main()
""")


@pytest.mark.slow
def test_scoop_gives_the_serial_search(tmp_path):
    script = tmp_path / "scoop_search.py"
    script.write_text(SCOOP_SCRIPT)
    output = tmp_path / "scoop.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")]))
    completed = subprocess.run([sys.executable, "-m", "scoop", "-n", "2", str(script), str(output)],
                               env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(output.read_text())
    for algorithm in (eaSampleTournament, eaNGL):
        _, expected, hof = _run_with(algorithm, 9, CachingFitness(), get_map("serial"), ngen=4)
        # JSON turns tuples into lists and -inf survives as -Infinity.
        assert results[algorithm.__name__]["logbook"] == json.loads(json.dumps(comparable(expected)))
        assert results[algorithm.__name__]["best"] == str(hof[0])

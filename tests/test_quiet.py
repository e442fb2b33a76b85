"""A library user's script is quiet by default: no TensorFlow log line, no NumPy warning of ours."""

import os
import pathlib
import re
import subprocess
import sys
import textwrap
import warnings

import pytest

from deap_lossgp.gp.validity import verdict

ROOT = pathlib.Path(__file__).resolve().parent.parent
# TensorFlow's log lines: absl's C++ format (I0000, W0000, E0000 ... cuInit), its import notices, Python loggers.
TF_LOG = re.compile(r"^[IWEF]\d{4} |absl|oneDNN|cpu_feature_guard|cuInit|TF_ENABLE_ONEDNN_OPTS|^WARNING:tensorflow",
                    re.M)
# Its gradients overflow Adam's second moment in the trainability screen.
OVERFLOWING = "mul(cos(sub(add(y_pred, y_pred), sqrt(y_pred))), sin(exp(div(y_true, y_pred))))"

USER_SCRIPT = f"""
import random
import sys
from deap import base, creator, gp, tools
from deap_lossgp import (LossEvaluator, cxNewRandomParent, eaSampleTournament, initValid,
                         make_pset, mutOnePoint, selSampleTournament, add_bloat_limits)

pset = make_pset()
creator.create("FitnessLoss", base.Fitness, weights=(1.0, 1.0))
creator.create("Individual", gp.PrimitiveTree, fitness=creator.FitnessLoss)

toolbox = base.Toolbox()
toolbox.register("expr", gp.genHalfAndHalf, pset=pset, min_=2, max_=6)
toolbox.register("individual", initValid, creator.Individual, toolbox.expr)
toolbox.register("population", tools.initRepeat, list, toolbox.individual)
toolbox.register("select", selSampleTournament)
toolbox.register("mate", cxNewRandomParent, new_parent=toolbox.individual, pb=0.5)
toolbox.register("expr_mut", gp.genFull, min_=0, max_=2)
toolbox.register("mutate_subtree", gp.mutUniform, expr=toolbox.expr_mut, pset=pset)
toolbox.register("mutate_point", mutOnePoint, pset=pset)
fitness = LossEvaluator(preset="quick", epochs=1, tasks=["digits"], max_train_samples=60, baseline_dir=sys.argv[1])
toolbox.register("evaluate", fitness)
toolbox.register("key", fitness.key)
toolbox.register("screen", fitness.screen)
add_bloat_limits(toolbox, max_height=17, max_size=60)
"""
USER_RUN = f"""
random.seed(0)
print("screened:", fitness.screen({OVERFLOWING!r}))
population, logbook = eaSampleTournament(toolbox.population(n=4), toolbox, ngen=1, verbose=False)
print("evaluations:", sum(logbook.select("nevals")))
"""
# The same search on a local Dask cluster, whose processes import the main module: its work under the guard.
DASK_SCRIPT = USER_SCRIPT + "if __name__ == '__main__':\n" + textwrap.indent(
    "from deap_lossgp.search.parallel import DaskMap\nwith DaskMap(workers=2) as dask_map:\n"
    "    toolbox.register('map', dask_map)\n" + textwrap.indent(USER_RUN, "    "), "    ")
USER_SCRIPT += USER_RUN


def _environment(**extra):
    # A user's shell: none of the settings an earlier quiet import in this process made.
    unset = ("TF_CPP_MIN_LOG_LEVEL", "DEAP_LOSSGP_QUIET_TENSORFLOW", "DEAP_LOSSGP_VERBOSE")
    environment = {key: value for key, value in os.environ.items() if key not in unset}
    environment.update(PYTHONPATH=str(ROOT), **extra)
    return environment


def _run(code, *arguments, **extra):
    return subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True,
                          env=_environment(**extra), timeout=900)


@pytest.mark.slow
def test_a_readme_style_script_prints_no_tensorflow_line_and_no_numpy_warning(tmp_path):
    result = _run(USER_SCRIPT, str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "evaluations:" in result.stdout
    assert not TF_LOG.search(output), output[-3000:]
    assert "Warning" not in output, output[-3000:]


# Dask's log lines ("2026-01-01 12:00:00,000 - distributed.nanny - INFO - Start Nanny at ...").
DASK_LOG = re.compile(r"(distributed|tornado)\.[\w.]+ +- +(DEBUG|INFO|WARNING)")


@pytest.mark.slow
def test_a_search_on_a_local_dask_cluster_prints_no_dask_or_tensorflow_line(tmp_path):
    pytest.importorskip("distributed")
    script = tmp_path / "dask_search.py"
    script.write_text(DASK_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                            env=_environment(), timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "evaluations:" in result.stdout
    assert not TF_LOG.search(output) and not DASK_LOG.search(output), output[-3000:]


@pytest.mark.slow
def test_the_opt_outs_show_tensorflow_as_it_is():
    script = ("import os\nfrom deap_lossgp.fitness.runtime import import_keras, verbose_tensorflow\n"
              "import sys\nif sys.argv[1] == 'call': verbose_tensorflow()\n"
              "keras = import_keras()\nkeras.ops.add(1.0, 1.0)\nprint(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))\n")
    quiet = _run(script, "-")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.strip() == "3"
    own = _run(script, "-", TF_CPP_MIN_LOG_LEVEL="0")
    assert own.stdout.strip() == "0", "a TF_CPP_MIN_LOG_LEVEL of the user's is left as it is"
    verbose = _run(script, "-", DEAP_LOSSGP_VERBOSE="1")
    called = _run(script, "call")
    assert verbose.stdout.strip() != "3" and called.stdout.strip() != "3"
    if not TF_LOG.search(own.stderr):
        pytest.skip("this TensorFlow build logs nothing here, so there is nothing to show")
    assert TF_LOG.search(verbose.stderr) and TF_LOG.search(called.stderr)


def test_the_screen_does_not_warn_about_its_expected_overflows():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert verdict(OVERFLOWING)[0] == "untrainable"

"""The package's shape: layers import only downwards, one driver, runs rebuilt
from their stored configuration, the same search as the stored reference."""

import ast
import csv
import json
import pathlib
import subprocess
import sys

import pytest

import deap_lossgp
from deap_lossgp.app.cli import main
from deap_lossgp.search.driver import make_config, resolve_config, run_search

PACKAGE = pathlib.Path(deap_lossgp.__file__).parent
# Lower numbers are lower layers; algorithms and fitness are peers that must not import each other.
# The package root ("__init__") is the top layer: it imports everything, so nothing else may import it.
LAYERS = {"_version": 0, "checks": 0, "gp": 1, "checkpoint": 2, "evaluation": 2, "algorithms": 2, "fitness": 2,
          "search": 3, "app": 4, "__init__": 5}
PEERS = {("algorithms", "fitness"), ("fitness", "algorithms"), ("checkpoint", "fitness"), ("fitness", "checkpoint"),
         ("evaluation", "fitness"), ("fitness", "evaluation"), ("evaluation", "algorithms")}
REFERENCE = json.loads((pathlib.Path(__file__).parent / "data" / "evolve_reference.json").read_text())


def _component(module):
    """The top component of a dotted module name inside the package ("__init__" for the root), or None."""
    parts = module.split(".")
    if parts[0] != "deap_lossgp":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _is_module(dotted):
    """Whether a dotted name inside the package is a module or package (not a name defined in one)."""
    path = PACKAGE.joinpath(*dotted.split(".")[1:])
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(path):
    """The deap_lossgp modules a file imports (relative imports resolved).

    ``from .. import X`` and ``from deap_lossgp import X`` import the module
    X when there is one, else a name of the package root: they then count as
    importing ``deap_lossgp`` itself.
    """
    module = "deap_lossgp." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    return module, _scan(package, path.read_text())


def _scan(package, source):
    """The deap_lossgp modules *source*, a module of *package*, imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            # "from T import X" imports the module T.X if there is one, else a name of T.
            names = [f"{target}.{alias.name}" if _is_module(f"{target}.{alias.name}") else target
                     for alias in node.names]
            found.update(name for name in names if name == "deap_lossgp" or name.startswith("deap_lossgp."))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names
                         if alias.name == "deap_lossgp" or alias.name.startswith("deap_lossgp."))
    return found


def _upward_imports():
    """``(module, imported)`` pairs where a module imports a higher layer or a peer."""
    upward = []
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "__init__.py":
            continue  # the public face imports everything
        module, imported = _imports(path)
        here = _component(module)
        for target in imported:
            there = _component(target)
            if there in LAYERS and (LAYERS[there] > LAYERS[here] or (here, there) in PEERS):
                upward.append((module, target))
    return upward


def test_no_module_imports_a_higher_layer():
    upward = [f"{module} -> {target}" for module, target in _upward_imports() if target != "deap_lossgp"]
    assert upward == []


def test_only_the_package_root_imports_the_package_root():
    # Expected to fail until search/driver.py and app/benchmark.py take their
    # versions from deap_lossgp._version (environment()) instead of `from .. import __version__`.
    root = sorted({module for module, target in _upward_imports() if target == "deap_lossgp"})
    assert root == [], (f"{', '.join(root)} import the package root (the top layer, which imports everything); "
                        "import __version__ or environment() from deap_lossgp._version instead")


@pytest.mark.parametrize("source, component", [
    ("from .. import __version__", "__init__"), ("from deap_lossgp import LossEvaluator", "__init__"),
    ("import deap_lossgp", "__init__"), ("from .. import gp", "gp"), ("from ..gp import expression", "gp"),
    ("from .._version import environment", "_version"), ("from . import rundir", "search"),
])
def test_the_import_scan_sees_imports_of_the_package_root(source, component):
    assert {_component(name) for name in _scan("deap_lossgp.search", source)} == {component}


def test_the_layers_cover_the_package():
    components = {path.relative_to(PACKAGE).parts[0].removesuffix(".py") for path in PACKAGE.rglob("*.py")}
    assert components == set(LAYERS)


def test_importing_the_package_does_not_start_tensorflow():
    script = "import sys, deap_lossgp, deap_lossgp.app.cli; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr[-2000:]


def test_configuration_round_trips_through_json():
    config = make_config("quick", algorithm="ngl", seed=4, epochs=2, population=6, validity="thesis")
    assert resolve_config(json.loads(json.dumps(config))) == resolve_config(config)
    fitness, search = resolve_config(config)
    assert (fitness.epochs, fitness.validity, search.population) == (2, "thesis", 6)
    with pytest.raises(ValueError, match="no 'resolved' fitness and search settings"):
        resolve_config({"preset": "quick"})


@pytest.mark.slow
def test_a_run_keeps_its_stored_settings_when_the_preset_changes_in_code(tmp_path, monkeypatch):
    from deap_lossgp.fitness import config as fitness_config
    from deap_lossgp.search import presets

    cheap = dict(population=2, generations=1, epochs=1, tasks=["digits"], max_train_samples=100,
                 confirm_top=1, confirm_seeds=2)
    config = make_config("quick", backend="serial", seed=2, **cheap)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(config))
    # An upgrade changes the preset's defaults: the stored run must not follow.
    changed = presets.PRESETS["quick"].fitness.replace(epochs=3, learning_rate=0.5)
    monkeypatch.setitem(fitness_config.FITNESS_PRESETS, "quick", changed)
    monkeypatch.setitem(presets.PRESETS, "quick", presets.Preset("quick", "changed", changed,
                                                                 presets.SearchConfig(population=5)))
    stored = json.loads((run_dir / "config.json").read_text())
    run_search(run_dir, stored, progress=False)
    records = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    trained = [r for r in records if r["tasks"]]
    assert trained and all(task["epochs"] == 1 for r in trained for task in r["tasks"].values())
    with (run_dir / "logbook.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert int(rows[0]["nevals"]) + int(rows[0]["nrejected"]) + int(rows[0]["ncached"]) == 2


@pytest.mark.slow
def test_fixed_seed_evolve_matches_the_stored_reference(tmp_path):
    output = tmp_path / "run"
    assert main([*REFERENCE["arguments"], "--output", str(output)]) == 0
    with (output / "logbook.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    columns = list(REFERENCE["logbook"][0])
    assert [{c: row[c] for c in columns} for row in rows] == REFERENCE["logbook"]
    best = json.loads((output / "best.json").read_text())
    assert best["expression"] == REFERENCE["best"] and best["fitness"] == REFERENCE["fitness"]

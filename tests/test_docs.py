"""The documentation builds without warnings, every example it shows runs, and
every command it shows is accepted by the command line, so the docs cannot
drift from the code."""

import importlib
import inspect
import pathlib
import pkgutil
import re
import shlex
import subprocess
import sys

import pytest

import deap_lossgp
from deap_lossgp.app.cli import build_parser
from deap_lossgp.gp.losses import REFERENCE_EXPRESSIONS
from deap_lossgp.search.presets import get_preset
from deap_lossgp.gp.standalone import parse

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = sorted((DOCS / "examples").glob("*.py"))
PAGES = sorted(DOCS.glob("*.rst"))
# Examples that train networks take longer than ~10 s.
SLOW_EXAMPLES = {"your_data.py", "compile_loss.py", "expression_tools.py", "metric_failure.py", "read_run_directory.py",
                 "hall_of_fame.py", "repeat_evaluation.py"}


def run(command, cwd, timeout=600):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def console_commands():
    """Every ``$ command`` line of the pages' console blocks, split at ``&&``."""
    commands = []
    for page in PAGES:
        for line in page.read_text().splitlines():
            line = line.strip()
            if line.startswith("$ "):
                commands += [(page.name, part.strip()) for part in line[2:].split("&&")]
    return commands


def test_docs_build_without_warnings(tmp_path):
    result = run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                  "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    for page in PAGES:
        assert (tmp_path / "html" / page.with_suffix(".html").name).exists(), page.name
    api = (tmp_path / "html" / "api.html").read_text()
    for name in ("algorithms.eaSampleTournament", "gp.operators.selSampleTournament", "fitness.evaluator.LossEvaluator",
                 "gp.expression.compile_loss", "search.parallel.get_map", "search.presets.get_preset",
                 "search.driver.run_search", "fitness.config.FitnessConfig", "app.report.write_report"):
        assert f'id="deap_lossgp.{name}"' in api, name


@pytest.mark.parametrize(
    "example",
    [pytest.param(path, marks=pytest.mark.slow) if path.name in SLOW_EXAMPLES else path for path in EXAMPLES],
    ids=lambda path: path.name,
)
def test_example_runs(example, tmp_path):
    result = run([sys.executable, str(example)], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip(), "an example shows what it does"


def test_parallel_example_runs_under_scoop(tmp_path):
    result = run([sys.executable, "-m", "scoop", "-n", "2", str(DOCS / "examples" / "parallel_search.py")],
                 cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "scoop    best:" in result.stdout


def test_every_example_is_shown_and_every_shown_file_is_run():
    included = set()
    for page in PAGES:
        included.update(re.findall(r"^\.\. literalinclude:: (\S+)$", page.read_text(), flags=re.MULTILINE))
    shown = {(DOCS / path).resolve() for path in included}
    assert set(EXAMPLES) <= shown, "an example file that no page shows"
    for path in shown:
        assert path in EXAMPLES or path.parent == ROOT / "examples", f"{path} is shown but not run by this file"


def test_python_code_appears_only_through_executed_files():
    # Literal blocks ("::") and Python code blocks would not be executed.
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith(".. code-block::"):
                assert stripped.split("::")[1].strip() in ("console", "text"), f"{page.name}:{number}"
            elif stripped.endswith("::") and not stripped.startswith(".. "):
                pytest.fail(f"{page.name}:{number}: literal block; include an example file instead")


@pytest.mark.parametrize("page, command", console_commands(), ids=lambda value: value)
def test_console_commands_are_valid(page, command):
    words = shlex.split(command)
    if words[0] == "deap-lossgp":
        args = build_parser().parse_args(words[1:])  # exits (fails the test) on an unknown option
        if args.command in ("evolve", "evaluate", "benchmark"):
            overrides = dict(args.overrides)
            overrides.update({name: getattr(args, name) for name in ("epochs", "population", "generations")
                              if getattr(args, name, None) is not None})
            get_preset(args.preset, **overrides)  # raises on an unknown field or a bad value
        if args.command == "evaluate":
            parse(REFERENCE_EXPRESSIONS.get(args.expression, args.expression))  # raises on a malformed expression
    elif words[0] == "python" and any(word.endswith(".py") for word in words):
        script = next(word for word in words if word.endswith(".py"))
        assert (ROOT / script).exists(), script
        if script == "examples/evolve_loss.py":
            parse_example_arguments(words[words.index(script) + 1:])
    elif words[0] == "dask" or "=" in words[0]:
        check_dask_command([word for word in words if "=" not in word or word.startswith("-")])
    else:
        assert words[0] in ("pip", "python"), f"{page}: unexpected command {command!r}"


def check_dask_command(words):
    """A ``dask scheduler`` or ``dask worker`` line (after environment settings) uses options that Dask has;
    ``dask cuda worker`` (dask-cuda, not installed in CI) only options that ``dask worker`` has too."""
    pytest.importorskip("distributed")
    words = [word for word in words if word != "cuda"]
    assert words[0] == "dask" and words[1] in ("scheduler", "worker"), words
    result = run([sys.executable, "-m", f"distributed.cli.dask_{words[1]}", "--help"], cwd=ROOT)
    for option in (word for word in words[2:] if word.startswith("--")):
        assert option in result.stdout, f"dask {words[1]} has no option {option}"


def parse_example_arguments(arguments):
    """Parse arguments with the example script's own parser, in a subprocess
    (the script creates DEAP creator classes at import)."""
    code = ("import runpy, sys; namespace = runpy.run_path(sys.argv[1]); "
            "sys.argv = ['evolve_loss.py', *sys.argv[2:]]; namespace['parse_arguments']()")
    result = run([sys.executable, "-c", code, str(ROOT / "examples" / "evolve_loss.py"), *arguments], cwd=ROOT)
    assert result.returncode == 0, result.stderr


def public_callables():
    """Every public function, class and method, by the module that defines it."""
    for info in pkgutil.walk_packages(deap_lossgp.__path__, "deap_lossgp."):
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if getattr(obj, "__module__", None) != info.name:
                continue  # documented where it is defined
            if inspect.isfunction(obj):
                yield f"{info.name}.{name}", obj
            elif inspect.isclass(obj):
                yield f"{info.name}.{name}", obj
                for attribute, member in vars(obj).items():
                    if isinstance(member, (classmethod, staticmethod)):
                        member = member.__func__
                    if inspect.isfunction(member) and (attribute == "__call__" or not attribute.startswith("_")):
                        yield f"{info.name}.{name}.{attribute}", member


def docstring_problems(name, obj):
    doc = inspect.getdoc(obj) or ""
    if not doc:
        return [f"{name}: no docstring"]
    problems = []
    try:
        parameters = inspect.signature(obj).parameters.values()
    except ValueError:  # exception classes: no signature of their own
        parameters = []
    if getattr(obj, "_is_protocol", False):
        parameters = []  # a typing.Protocol is a contract, never instantiated
    for parameter in parameters:
        if parameter.name not in ("self", "cls") and parameter.kind is not parameter.VAR_POSITIONAL:
            if f":param {parameter.name}:" not in doc:
                problems.append(f"{name}: no :param {parameter.name}:")
    if inspect.isfunction(obj) and ":returns:" not in doc:
        problems.append(f"{name}: no :returns:")
    return problems


def test_every_public_function_documents_its_parameters_and_result():
    # The API reference is generated from these docstrings.
    problems = []
    for name, obj in public_callables():
        problems += docstring_problems(name, obj)
    assert not problems, "\n".join(problems)

import json
import subprocess
import sys

import pytest

from deap_lossgp.app.cli import main

COMMANDS = ["evolve", "resume", "evaluate", "export", "show", "benchmark"]


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "deap_lossgp.app.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    assert main([command, "--help"]) == 0
    assert "usage: deap-lossgp " + command in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["evolve", "--preset", "nope"], "preset"),
        (["evolve", "--population", "0"], "population"),
        (["evolve", "--set", "metric=bogus"], "metric"),
        (["evaluate", "__import__('os')"], "cannot read loss expression"),
        (["show", "no-such-run"], "no-such-run does not exist"),
        (["export", "no-such-run"], "no-such-run does not exist"),
        (["resume", "no-such-run"], "no-such-run does not exist"),
    ],
)
def test_bad_arguments_give_one_clear_line_and_status_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_option_is_an_argparse_error():
    result = run_cli("evolve", "--no-such-option")
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_evolve_writes_a_complete_run_directory_then_show_export_resume(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    args = ["evolve", "--population", "4", "--generations", "1", "--epochs", "1", "--backend", "serial",
            "--set", "confirm_top=2", "--set", "confirm_seeds=2", "--set", 'tasks=["digits"]',
            "--set", "max_train_samples=200", "--set", "race_top=2", "--output", str(run_dir), "--quiet"]
    assert main(args) == 0
    for name in ("config.json", "checkpoint.pkl", "evaluations.jsonl", "logbook.csv", "best.json", "best_loss.py",
                 "fitness.png"):
        assert (run_dir / name).exists(), name
    best = json.loads((run_dir / "best.json").read_text())
    records = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    assert best["expression"] in {r["expression"] for r in records}
    logbook = (run_dir / "logbook.csv").read_text().splitlines()
    assert logbook[0].startswith("gen,nevals,nrejected,ncached") and len(logbook) == 3  # header + generations 0 and 1

    assert main(["export", str(run_dir), "--format", "py", "--output", str(tmp_path / "loss.py")]) == 0
    exported = (tmp_path / "loss.py").read_text()
    compile(exported, "loss.py", "exec")  # a valid module
    assert "EvolvedLoss = " in exported and best["expression"] in exported
    assert main(["export", str(run_dir), "--format", "latex"]) == 0
    assert main(["show", str(run_dir)]) == 0
    # Resuming a finished run does no new evaluation and gives the same best.
    before = (run_dir / "evaluations.jsonl").read_text()
    assert main(["resume", str(run_dir), "--quiet"]) == 0
    assert (run_dir / "evaluations.jsonl").read_text() == before
    assert json.loads((run_dir / "best.json").read_text())["expression"] == best["expression"]
    # A second evolve into the same directory is refused rather than overwriting it.
    assert main(args) == 2


def test_compare_ngl_script_is_the_benchmark_command():
    import pathlib

    script = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "compare_ngl.py"
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "usage: deap-lossgp benchmark" in result.stdout


# A search in which no candidate can complete training, by construction: under
# the thesis's validity rule a tree of height 1 is add or mul of y_true and
# y_pred (sub has a zero probe loss), and without mutation every child is built
# from such trees (or rejected), so no loss ever rewards the true class.  Every
# training stays at or falls below chance level and is stopped after epoch 2,
# when cross-entropy has clearly learned the full digits task.
NOTHING_TRAINS = ["--population", "2", "--generations", "1", "--epochs", "2", "--set", 'tasks=["digits"]',
                  "--set", "validity=thesis", "--set", "init_min_height=1", "--set", "init_max_height=1",
                  "--set", "mutpb_subtree=0", "--set", "mutpb_point=0", "--set", "rebreed=0",
                  "--set", "race_seeds=1"]


@pytest.mark.slow
def test_a_search_where_nothing_trained_exports_nothing_and_exits_3(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    assert main(["evolve", *NOTHING_TRAINS, "--backend", "serial", "--quiet", "--output", str(run_dir)]) == 3
    captured = capsys.readouterr()
    statuses = [json.loads(line)["status"] for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    assert statuses and "ok" not in statuses
    counts = f"no candidate completed training ({len(statuses)} evaluation"
    assert counts in captured.err and "Traceback" not in captured.err
    assert "validity=screened" in captured.err  # the hint that fits a run with validity=thesis
    assert "use it:" not in captured.out
    assert (run_dir / "logbook.csv").exists()
    assert not (run_dir / "best.json").exists() and not (run_dir / "best_loss.py").exists()

    assert main(["show", str(run_dir)]) == 0
    assert f"best:      none: {counts}" in capsys.readouterr().out
    assert main(["export", str(run_dir)]) == 3
    captured = capsys.readouterr()
    assert counts in captured.err and "resume" not in captured.err and len(captured.err.splitlines()) == 1
    assert captured.out == ""
    # Resuming the finished run trains nothing more and still has no loss to give.
    assert main(["resume", str(run_dir), "--quiet"]) == 3
    assert counts in capsys.readouterr().err and not (run_dir / "best.json").exists()


def test_help_lists_the_exit_statuses(capsys):
    assert main(["--help"]) == 0
    assert "3 nothing trained" in " ".join(capsys.readouterr().out.split())

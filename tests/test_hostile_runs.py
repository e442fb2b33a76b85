"""Hostile run directories and arguments: one line, exit status 2, nothing written outside the run (fast)."""

import json

import pytest

from deap_lossgp.app.cli import main
from deap_lossgp.search.driver import make_config
from deap_lossgp.search.rundir import RunDirectory

BEST = {"expression": "neg(mul(y_true, log(y_pred)))", "formula": "-y_true*log(y_pred)", "fitness": [3.0, 0.01],
        "verdict": "indistinguishable", "confirmed": None}
HALL = "rank,wins,improvement,status,size,height,expression,formula,reason\n1,3,0.01,ok,5,3,y_pred,y_pred,\n"


@pytest.fixture
def run_dir(tmp_path):
    run = RunDirectory(tmp_path / "run").create()
    run.write_config(make_config("quick", backend="serial", generations=1))
    run.logbook.write_text("gen,nevals,nrejected,ncached,nraced,time\n0,8,0,0,0,1.0\n1,3,0,0,0,1.0\n")
    run.best.write_text(json.dumps(BEST))
    run.hall_of_fame.write_text(HALL)
    return run


def _one_line_error(capsys, arguments, fragment):
    assert main(arguments) == 2
    # An earlier test of this process may have started TensorFlow, which a command's own process would not have.
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if "TensorFlow is already running" not in line]
    assert len(err) == 1 and fragment in err[0], err
    return err[0]


def test_a_sound_fake_run_is_shown(run_dir, capsys):
    assert main(["show", str(run_dir.path)]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 generations" in out and "verdict:" in out and "use it:" not in out


@pytest.mark.parametrize("name, content, fragment", [
    ("best.json", json.dumps(dict(BEST, fitness=5)), "malformed 'fitness'"),
    ("best.json", json.dumps(dict(BEST, expression=[1])), "malformed 'expression'"),
    ("hall_of_fame.csv", "rank\n1\n", "lacks the column(s)"),
    ("hall_of_fame.csv", "rank,formula\n1," + "x" * 140_000 + "\n", "not a readable table"),
    ("hall_of_fame.csv", HALL.replace("1,3,0.01", "1,abc,0.01"), "'abc' in its 'wins' column"),
    ("config.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_a_damaged_file_is_one_line_naming_it(run_dir, capsys, name, content, fragment):
    (run_dir.path / name).write_text(content)
    line = _one_line_error(capsys, ["show", str(run_dir.path)], fragment)
    assert name in line


@pytest.mark.parametrize("arguments, fragment", [
    (["evolve", "--bogus"], "unrecognized arguments: --bogus"),
    (["evolve", "--population", "99999999999999999999999999"], "population must be at most 10,000"),
    (["evolve", "--set", "tasks={}"], "needs a 'dataset'"),
    (["evolve", "--set", "epochs=1000000000"], "epochs must be at most"),
    (["evolve", "--workers", "5000"], "workers must be at most"),
])
def test_bad_arguments_are_one_line_before_anything_is_built(tmp_path, capsys, arguments, fragment):
    _one_line_error(capsys, [*arguments, "--output", str(tmp_path / "out")], fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", [".lock", ".write-test", "config.json.tmp", "checkpoint.pkl.tmp", "best.json.tmp",
                                  "logbook.csv.tmp", "hall_of_fame.csv.tmp"])
def test_a_planted_symbolic_link_is_never_written_through(tmp_path, capsys, name):
    from deap_lossgp.checkpoint import save_checkpoint
    from deap_lossgp.checks import open_for_writing

    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    run = RunDirectory(tmp_path / "run").create()
    (run.path / name).symlink_to(outside)
    with pytest.raises(OSError, match="symbolic link|Too many levels"):
        if name == ".lock":
            with run.lock():
                pass
        elif name == ".write-test":
            run.check_writable()
        elif name == "checkpoint.pkl.tmp":
            save_checkpoint(run.checkpoint, {"generation": 1})
        elif name == "config.json.tmp":
            run.write_config({"preset": "quick"})
        else:
            with open_for_writing(run.path / name) as stream:
                stream.write("x")
    assert outside.read_text() == "keep me"


@pytest.mark.parametrize("name", ["config.json", "best.json", "logbook.csv", "hall_of_fame.csv", "evaluations.jsonl",
                                  "checkpoint.pkl"])
def test_a_planted_symbolic_link_is_never_read_through(run_dir, tmp_path, capsys, name):
    outside = tmp_path / "outside"
    target = run_dir.path / name
    if target.exists():
        target.rename(outside)
    else:
        outside.write_text("{}\n")
    target.symlink_to(outside)
    if name in ("evaluations.jsonl", "checkpoint.pkl"):
        run_dir.logbook.unlink()  # unfinished, so resume reads the records and the checkpoint
        line = _one_line_error(capsys, ["resume", str(run_dir.path), "--quiet"], "symbolic link")
    else:
        line = _one_line_error(capsys, ["show", str(run_dir.path)], "refusing to read through a symbolic link")
    assert name in line


@pytest.mark.parametrize("command", ["resume", "show", "export"])
def test_a_path_with_a_too_long_component_is_one_line(tmp_path, capsys, command):
    _one_line_error(capsys, [command, str(tmp_path / ("a" * 300))], "File name too long")


def test_an_unknown_algorithm_or_a_malformed_checkpoint_is_one_line(run_dir, tmp_path, capsys):
    from deap_lossgp.algorithms import eaSampleTournament
    from deap_lossgp.checkpoint import CheckpointError, save_checkpoint

    config = json.loads(run_dir.config.read_text())
    run_dir.config.write_text(json.dumps(dict(config, algorithm="evil")))
    run_dir.logbook.unlink()  # unfinished, so resume goes on to run it
    _one_line_error(capsys, ["resume", str(run_dir.path)], "names the algorithm 'evil'")

    from conftest import build_toolbox

    toolbox = build_toolbox(4)
    path = tmp_path / "bad.pkl"
    save_checkpoint(path, {"algorithm": "eaSampleTournament", "params": {"population_size": 4, "n_parents": 1,
                                                                          "mutpb_subtree": 0.3, "mutpb_point": 0.1,
                                                                          "halloffame_size": None},
                           "generation": "3", "population": [], "halloffame": None, "logbook": None, "archive": [],
                           "random_state": None, "numpy_random_state": None, "cache": {}})
    with pytest.raises(CheckpointError, match="malformed generation"):
        eaSampleTournament(toolbox.population(n=4), toolbox, ngen=2, verbose=False, checkpoint=path)


@pytest.mark.parametrize("field, value", [("status", []), ("key", [1]), ("fitness", ["abc"]), ("fitness", [True]),
                                          ("replicate", "x"), ("expression", {})])
def test_a_record_with_a_field_of_the_wrong_type_is_set_aside(run_dir, field, value):
    from deap_lossgp.search.rundir import count_completed, read_records

    good = {"expression": "y_pred", "key": "k", "status": "ok", "fitness": [1.0, 0.1], "replicate": 0}
    run_dir.records.write_text(json.dumps(good) + "\n" + json.dumps(dict(good, **{field: value})) + "\n")
    with pytest.warns(RuntimeWarning, match="skipped 1 damaged line"):
        assert count_completed(read_records(run_dir.records)) == (1, {"ok": 1})
    with pytest.warns(RuntimeWarning, match="moved 1 damaged line"):
        assert run_dir.repair_records() == 1
    assert json.loads(run_dir.damaged_records.read_text())[field] == value


def test_a_flat_best_loss_exports_and_only_rescale_refuses_it(run_dir, capsys):
    run_dir.best.write_text(json.dumps(dict(BEST, expression="div(1, 0)")))
    assert main(["export", str(run_dir.path)]) == 0
    captured = capsys.readouterr()
    assert "EvolvedLoss = " in captured.out and "loss scale: none (" in captured.err
    _one_line_error(capsys, ["export", str(run_dir.path), "--rescale"], "export it without rescale")

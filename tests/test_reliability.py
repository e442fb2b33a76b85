"""Reliability: workers that die with their parent, records that survive torn
writes and are never written twice, checked checkpoints, one writer per run
directory, and every file-system fault or malformed file as one CLI line."""

import collections
import errno
import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from deap import tools

from deap_lossgp.algorithms import eaNGL, eaSampleTournament
from deap_lossgp.app.cli import main
from deap_lossgp.checkpoint import FORMAT, VERSION, CheckpointError, load_checkpoint, save_checkpoint
from deap_lossgp.checks import json_dumps
from deap_lossgp.fitness import LossEvaluator
from deap_lossgp.fitness.config import FitnessConfig
from deap_lossgp.search.driver import make_config
from deap_lossgp.search.rundir import RecordReplay, RunDirectory, RunLockedError, read_records

from conftest import CachingFitness, build_toolbox, comparable, make_stats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def strict_loads(text):
    def reject(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=reject)


def one_error_line(capsys, *fragments):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
    return lines[0]


# --- worker lifecycle --------------------------------------------------------

POOL_SCRIPT = textwrap.dedent("""
    import sys, time
    from deap_lossgp.search.parallel import get_map

    def work(item):
        time.sleep(120)
        return item

    if __name__ == "__main__":
        with get_map("process", workers=2, tf_threads=None) as pmap:
            futures = [pmap.submit(work, item) for item in range(2)]
            if sys.argv[1] == "exception":
                time.sleep(3)  # an error in the parent while both workers train
                raise RuntimeError("boom")
            pmap.as_completed(futures)
""")


def _children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stream:
                    fields = stream.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pids):
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stream:
                if stream.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(pid)
        except OSError:
            pass
    return alive


def _wait_gone(pids, seconds):
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(pids)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process table from /proc")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "exception"])
def test_pool_workers_and_resource_tracker_die_with_their_parent(tmp_path, how):
    script = tmp_path / "pool.py"
    script.write_text(POOL_SCRIPT)
    with open(tmp_path / "out.txt", "w") as out:
        process = subprocess.Popen([sys.executable, str(script), how], stdout=out, stderr=out)
    children = []
    try:
        deadline = time.monotonic() + 60
        while len(children) < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
            children = _children(process.pid)  # the resource tracker and two workers
        assert len(children) == 3, children
        if how != "exception":
            time.sleep(1.0)
            process.send_signal(getattr(signal, how))
        process.wait(timeout=30)  # before: an exception waited for the running tasks (120 s)
        assert _wait_gone(children, 5) == []
    finally:
        for pid in _alive(children):
            os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
def _terminal_ctrl_c():
    # A shell starts a command with Ctrl-C at its default; this test process may have it ignored or blocked
    # (code run in it, such as a worker initializer, does that), which the command would inherit.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_ctrl_c_prints_one_line_with_the_run_path_and_no_worker_traceback(tmp_path):
    run_dir = tmp_path / "my-run"
    with open(tmp_path / "err.txt", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "deap_lossgp.app.cli", "evolve", "--population", "4", "--generations", "3",
             "--epochs", "1", "--workers", "2", "--output", str(run_dir), "--quiet"],
            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True, cwd=tmp_path,
            preexec_fn=_terminal_ctrl_c)
    children = []
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "evaluations.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
            children = _children(process.pid) or children
        os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole group
        assert process.wait(timeout=60) == 130
        assert _wait_gone(children, 5) == []
    finally:
        for pid in _alive(children):
            os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.kill()
    err = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert f"interrupted; resume with 'deap-lossgp resume {run_dir}'" in err and "RUN_DIR" not in err


# --- records -----------------------------------------------------------------

def _record(key, fitness=(1.0, 0.5), status="ok"):
    return {"expression": key, "key": key, "status": status, "fitness": list(fitness)}


def test_a_torn_last_line_is_skipped_with_one_warning_and_repaired(tmp_path):
    run = RunDirectory(tmp_path).create()
    lines = [json_dumps(_record(f"k{i}")) + "\n" for i in range(3)]
    run.records.write_text("".join(lines) + lines[0][: len(lines[0]) // 2])
    with pytest.warns(RuntimeWarning, match=r"evaluations.jsonl: skipped 1 damaged line") as caught:
        records = read_records(run.records)
    assert [r["key"] for r in records] == ["k0", "k1", "k2"] and len(caught) == 1

    with pytest.warns(RuntimeWarning, match=r"moved 1 damaged line.*evaluations.damaged"):
        assert run.repair_records() == 1
    assert run.records.read_text() == "".join(lines)
    assert run.damaged_records.read_text() == lines[0][: len(lines[0]) // 2] + "\n"
    LossEvaluator(records_path=run.records)._append(_record("k3"))
    assert [r["key"] for r in read_records(run.records)] == ["k0", "k1", "k2", "k3"]
    assert run.repair_records() == 0


@pytest.mark.parametrize("fault", ["short", "enospc"])
def test_a_failed_record_append_is_an_error_naming_the_file(tmp_path, monkeypatch, fault):
    path = tmp_path / "evaluations.jsonl"
    real_write = os.write

    def write(handle, data):
        if fault == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(handle, data[:10])

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(OSError) as error:
        LossEvaluator(records_path=path)._append(_record("k"))
    assert error.value.filename == str(path) and error.value.errno == errno.ENOSPC


def test_records_and_best_are_strict_json_and_old_records_still_read(tmp_path):
    fitness = LossEvaluator(records_path=tmp_path / "evaluations.jsonl", tasks=["digits"])
    assert fitness.screen("add(y_true, y_true)") == (0.0, float("-inf"))  # no y_pred: rejected, recorded
    record = strict_loads((tmp_path / "evaluations.jsonl").read_text())
    assert record["fitness"] == [0.0, "-inf"] and record["status"] == "invalid"
    assert json_dumps({"a": [float("nan"), float("inf")]}) == '{"a": ["nan", "inf"]}'

    old = tmp_path / "old.jsonl"
    old.write_text('{"key": "k", "status": "ok", "fitness": [0.0, -Infinity]}\n')
    replay = RecordReplay(read_records(old), key=str)
    assert replay.recorded("k") == (0.0, float("-inf")) and replay.recorded("k") is None  # used once


class RecordingFitness(CachingFitness):
    """CachingFitness that appends a record per evaluation, like LossEvaluator,
    rejects trees with ``sin`` in a recorded screen, and can be interrupted
    after a number of calls (a kill in the middle of a generation)."""

    def __init__(self, path, stop_after=None):
        super().__init__()
        self.path, self.stop_after = path, stop_after

    def _write(self, key, fitness, status):
        with open(self.path, "a") as stream:
            stream.write(json_dumps(_record(key, fitness, status)) + "\n")

    def screen(self, individual):
        if "sin" not in str(individual):
            return None
        self._write(self.key(individual), (0.0, float("-inf")), "invalid")
        return 0.0, float("-inf")

    def __call__(self, individual):
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt
        fitness = super().__call__(individual)
        self._write(self.key(individual), fitness, "ok")
        return fitness


def _search(algorithm, records, checkpoint=None, stop_after=None, replay=False):
    random.seed(3)
    evaluate = RecordingFitness(records, stop_after)
    toolbox = build_toolbox(8, evaluate)
    toolbox.register("screen", evaluate.screen)
    if replay:
        recorded = RecordReplay(read_records(records), evaluate.key)
        toolbox.register("recorded", recorded.recorded)
        toolbox.register("screen", recorded.screen(toolbox.screen))
    population = toolbox.population(n=8)
    hof = tools.HallOfFame(2)
    population, logbook = algorithm(population, toolbox, ngen=4, stats=make_stats(), halloffame=hof,
                                    verbose=False, checkpoint=checkpoint)
    return ([str(i) for i in population], comparable(logbook), [str(i) for i in hof]), evaluate.calls


@pytest.mark.parametrize("algorithm", [eaSampleTournament, eaNGL])
@pytest.mark.parametrize("moment", [0.2, 0.5, 0.7, 0.9])
def test_resume_reuses_the_records_of_the_unfinished_generation(tmp_path, algorithm, moment):
    expected, calls = _search(algorithm, tmp_path / "reference.jsonl")
    stop_after = int(moment * calls)
    reference = [json.loads(line)["key"] for line in (tmp_path / "reference.jsonl").read_text().splitlines()]
    records, checkpoint = tmp_path / "evaluations.jsonl", tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        _search(algorithm, records, checkpoint, stop_after=stop_after)
    resumed, resumed_calls = _search(algorithm, records, checkpoint, replay=True)
    assert resumed == expected  # population, logbook (counts included) and hall of fame
    keys = [json.loads(line)["key"] for line in records.read_text().splitlines()]
    assert collections.Counter(keys) == collections.Counter(reference)  # no record twice, none missing
    assert resumed_calls + stop_after == calls  # nothing trained twice


# --- checkpoints -------------------------------------------------------------

def test_every_single_byte_flip_of_a_checkpoint_is_detected(tmp_path):
    path = tmp_path / "checkpoint.pkl"
    random.seed(1)
    toolbox = build_toolbox(8, CachingFitness())
    eaSampleTournament(toolbox.population(n=8), toolbox, ngen=2, stats=make_stats(), verbose=False,
                       checkpoint=path)
    os.remove(str(path) + ".prev")
    good = path.read_bytes()
    positions = random.Random(0).sample(range(len(good)), 200)
    for position in positions:
        flipped = bytearray(good)
        flipped[position] ^= 1 << random.Random(position).randrange(8)
        path.write_bytes(bytes(flipped))
        with pytest.raises(CheckpointError, match="checkpoint"):
            load_checkpoint(path)
        assert path.read_bytes() == bytes(flipped)  # left untouched


def test_a_checkpoint_that_cannot_be_written_leaves_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pkl"
    save_checkpoint(path, {"generation": 1})

    def full(handle):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, {"generation": 2})
    monkeypatch.undo()
    assert load_checkpoint(path) == {"generation": 1} and not os.path.exists(str(path) + ".tmp")


# --- run directory: lock, arguments, faults, malformed files -----------------

def _run_dir(tmp_path, **overrides):
    run = RunDirectory(tmp_path / "run").create()
    settings = dict(backend="serial", population=2, generations=1, epochs=1, confirm_top=1, confirm_seeds=2)
    run.write_config(make_config(**{**settings, **overrides}))
    return run


def test_one_writer_per_run_directory_and_a_killed_holder_leaves_no_stale_lock(tmp_path, capsys):
    run = _run_dir(tmp_path)
    with run.lock():
        with pytest.raises(RunLockedError, match=f"{run.path} is in use by another process \\(pid {os.getpid()}\\)"):
            with run.lock():
                pass
        assert main(["resume", str(run.path)]) == 2
        one_error_line(capsys, "in use by another process")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from deap_lossgp.search.rundir import RunDirectory
        with RunDirectory({str(run.path)!r}).lock():
            print("locked", flush=True)
            time.sleep(120)
    """)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunLockedError):
        with run.lock():
            pass
    holder.kill()
    holder.wait()
    with run.lock():
        pass


def test_a_missing_checkpoint_beside_records_is_reported_not_restarted(tmp_path, capsys):
    run = _run_dir(tmp_path)
    run.records.write_text("".join(json_dumps(_record(f"k{i}")) + "\n" for i in range(3)))
    before = run.records.read_text()
    assert main(["resume", str(run.path), "--quiet"]) == 2
    one_error_line(capsys, "3 evaluation records but no checkpoint.pkl", "checkpoint.pkl.prev", "evolve --output")
    assert run.records.read_text() == before and not run.checkpoint.exists()


@pytest.mark.slow
def test_a_run_killed_while_racing_its_first_generation_resumes(tmp_path, capsys):
    # Generation 0 wrote its P first trainings and a raced replicate, then died before its checkpoint.
    run = _run_dir(tmp_path, tasks=["digits"], max_train_samples=100, race_top=1, race_seeds=2)
    records = [_record("k0"), _record("k1"), dict(_record("k0"), replicate=1)]
    run.records.write_text("".join(json_dumps(record) + "\n" for record in records))
    assert main(["resume", str(run.path), "--quiet"]) == 0
    assert run.checkpoint.exists() and run.best.exists()


@pytest.mark.parametrize("args", [["--seed", "-1"], ["--backend", "scoop"], ["--seed", str(2**32)]])
def test_bad_arguments_leave_nothing_on_disk(tmp_path, capsys, args):
    output = tmp_path / "R3"
    assert main(["evolve", *args, "--output", str(output), "--quiet"]) == 2
    one_error_line(capsys, "seed must be an integer" if "--seed" in args else "python -m scoop")
    assert not output.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds a descriptor's file in /proc")
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_an_unwritable_run_directory_is_found_before_any_training(tmp_path, capsys, monkeypatch, code):
    run = _run_dir(tmp_path)
    real_write = os.write

    def write(handle, data):  # the fault hits the run directory only
        if os.readlink(f"/proc/self/fd/{handle}").startswith(str(run.path)):
            raise OSError(code, os.strerror(code))
        return real_write(handle, data)

    monkeypatch.setattr(os, "write", write)
    trained = []
    monkeypatch.setattr(LossEvaluator, "prepare", lambda self: trained.append(1))
    assert main(["resume", str(run.path), "--quiet"]) == 2
    one_error_line(capsys, str(run.path / ".write-test"), os.strerror(code),
                   f"then continue with 'deap-lossgp resume {run.path}'")
    assert trained == [] and not (run.path / ".write-test").exists()


def test_evolve_into_a_file_and_export_into_a_directory_are_clear_errors(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("mine")
    assert main(["evolve", "--output", str(target), "--quiet"]) == 2
    one_error_line(capsys, f"--output {target} is a file")
    assert target.read_text() == "mine"
    run = _run_dir(tmp_path)
    run.best.write_text(json_dumps({"expression": "neg(mul(y_true, log(y_pred)))", "formula": "f", "fitness": [1, 0]}))
    assert main(["export", str(run.path), "--output", str(tmp_path)]) == 2
    one_error_line(capsys, f"--output {tmp_path} is a directory")


@pytest.mark.parametrize("command", ["show", "resume"])
def test_a_config_json_of_the_wrong_shape_names_the_file(tmp_path, capsys, command):
    run = _run_dir(tmp_path)
    run.config.write_text("{}")
    assert main([command, str(run.path)]) == 2
    one_error_line(capsys, f"{run.config} lacks 'preset'")
    run.config.write_text('{"preset": ')
    assert main([command, str(run.path)]) == 2
    one_error_line(capsys, f"{run.config} is not valid JSON")


@pytest.mark.parametrize("command", ["show", "export"])
def test_a_best_json_without_expression_names_the_file(tmp_path, capsys, command):
    run = _run_dir(tmp_path)
    run.best.write_text('{"formula": "x"}')
    assert main([command, str(run.path)]) == 2
    one_error_line(capsys, f"{run.best} lacks 'expression'", "resume")


def test_a_checkpoint_with_a_valid_header_and_an_empty_state_names_the_file(tmp_path, capsys):
    run = _run_dir(tmp_path)
    save_checkpoint(run.checkpoint, {})
    assert main(["show", str(run.path)]) == 0  # show never unpickles
    # A process of its own: this one's TensorFlow may run with other threads already.
    # A user's shell: none of the TensorFlow log settings earlier tests made in this process.
    unset = ("TF_CPP_MIN_LOG_LEVEL", "DEAP_LOSSGP_VERBOSE", "DEAP_LOSSGP_QUIET_TENSORFLOW")
    result = subprocess.run([sys.executable, "-m", "deap_lossgp.app.cli", "resume", str(run.path), "--quiet"],
                            capture_output=True, text=True, timeout=600,
                            env={key: value for key, value in os.environ.items() if key not in unset})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert f"checkpoint '{run.checkpoint}' holds no " in lines[0]
    assert load_checkpoint(run.checkpoint, fallback=False) == {}


def test_a_task_with_a_non_numeric_label_noise_is_a_clear_error(tmp_path, capsys):
    output = tmp_path / "R"
    assert main(["evolve", "--set", 'tasks=[{"dataset":"digits","label_noise":"a"}]', "--output", str(output)]) == 2
    one_error_line(capsys, "label_noise must lie in [0, 1), got 'a'")
    assert not output.exists()


def test_config_json_models_are_not_imported_by_show_or_resume(tmp_path, capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "this", raising=False)
    run = _run_dir(tmp_path)
    config = json.loads(run.config.read_text())
    config["resolved"]["fitness"]["model"] = "this:nothing"
    run.config.write_text(json.dumps(config))
    assert FitnessConfig.from_dict(config["resolved"]["fitness"]).model == "this:nothing"
    assert main(["show", str(run.path)]) == 0
    assert main(["resume", str(run.path)]) == 2
    captured = capsys.readouterr()
    assert "Zen of Python" not in captured.out and "this" not in sys.modules
    assert "names the model 'this:nothing'" in captured.err and "--trust-model" in captured.err
    with pytest.raises(ValueError, match="unknown model"):
        FitnessConfig(model="not a model")


def test_checkpoint_header_states_format_version_length_and_digest(tmp_path):
    path = tmp_path / "c.pkl"
    save_checkpoint(path, {"generation": 1})
    header, body = path.read_bytes().split(b"\n", 1)
    name, version, length, digest = header.decode().split()
    assert (name, int(version), int(length)) == (FORMAT, VERSION, len(body)) and len(digest) == 64
    assert pickle.loads(body) == {"generation": 1}


# --- end to end: a killed search resumed --------------------------------------

@pytest.mark.slow
def test_a_search_killed_mid_generation_resumes_to_the_same_result_without_duplicates(tmp_path):
    args = ["--population", "8", "--generations", "2", "--epochs", "1", "--backend", "serial", "--quiet",
            "--set", 'tasks=["digits"]', "--set", "max_train_samples=200", "--set", "race_top=2",
            "--set", "confirm_top=2", "--set", "confirm_seeds=2"]

    def cli(*extra):
        return [sys.executable, "-m", "deap_lossgp.app.cli", *extra]

    reference = tmp_path / "reference"
    subprocess.run(cli("evolve", *args, "--output", str(reference)), check=True, capture_output=True, cwd=tmp_path)
    # A generation records its rejections first, then one line per training (children, then racing's
    # extra seeds): kill after its first training, while a second one runs, so the checkpoint predates
    # records of the generation.
    rows = [line.split(",") for line in (reference / "logbook.csv").read_text().splitlines()[1:]]
    before = 0
    for gen, nevals, nrejected, _, nraced, *_ in rows:
        if int(gen) > 0 and int(nevals) >= 2:
            target, generation = before + int(nrejected) + 1, int(gen)
            break
        before += int(nevals) + int(nrejected) + int(nraced)
    else:
        pytest.fail("no generation of the reference trained two children; give the search more generations")
    killed = tmp_path / "killed"
    process = subprocess.Popen(cli("evolve", *args, "--output", str(killed)), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=tmp_path)
    records = killed / "evaluations.jsonl"
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if records.exists() and records.read_bytes().count(b"\n") >= target:
            break
        time.sleep(0.02)
    process.kill()
    assert process.wait() == -signal.SIGKILL, "the search ended before it could be killed"
    assert load_checkpoint(killed / "checkpoint.pkl")["generation"] == generation
    subprocess.run(cli("resume", str(killed), "--quiet"), check=True, capture_output=True, cwd=tmp_path)

    def keys(run):
        return [json.loads(line)["key"] for line in (run / "evaluations.jsonl").read_text().splitlines()]

    assert collections.Counter(keys(killed)) == collections.Counter(keys(reference))
    best = [json.loads((run / "best.json").read_text()) for run in (killed, reference)]
    assert best[0]["expression"] == best[1]["expression"] and best[0]["fitness"] == best[1]["fitness"]

    def counts(run):  # gen, nevals, nrejected, ncached, nraced: the logbook without the wall time
        return [line.split(",")[:5] for line in (run / "logbook.csv").read_text().splitlines()]

    assert counts(killed) == counts(reference)

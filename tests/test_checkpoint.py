"""Checkpoints: atomic writes, clear errors, and resumed runs equal to
uninterrupted ones (in process, and after SIGKILL in a subprocess)."""

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
from deap_lossgp.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

from conftest import CachingFitness, build_toolbox, comparable, make_stats

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def search(algorithm, ngen, checkpoint=None, seed=5, evaluate=None, **kwargs):
    random.seed(seed)
    evaluate = evaluate or CachingFitness()
    toolbox = build_toolbox(8, evaluate)
    population = toolbox.population(n=8)
    hof = tools.HallOfFame(2)
    population, logbook = algorithm(population, toolbox, ngen=ngen, stats=make_stats(), halloffame=hof,
                                    verbose=False, checkpoint=checkpoint, **kwargs)
    return population, logbook, hof, evaluate


def outcome(population, logbook, hof):
    return ([str(ind) for ind in population], [ind.fitness.values for ind in population],
            comparable(logbook), [str(ind) for ind in hof])


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "run.ckpt"
    state = {"generation": 3, "numbers": [1.5, 2.5]}
    save_checkpoint(path, state)
    assert load_checkpoint(path) == state
    assert not os.path.exists(str(path) + ".tmp")
    save_checkpoint(str(path), {"generation": 4})
    assert load_checkpoint(str(path)) == {"generation": 4}


def test_stale_temporary_file_is_ignored_and_replaced(tmp_path):
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, {"generation": 1})
    with open(str(path) + ".tmp", "wb") as stream:
        stream.write(b"\x80\x05half a pickle")
    assert load_checkpoint(path) == {"generation": 1}
    save_checkpoint(path, {"generation": 2})
    assert load_checkpoint(path) == {"generation": 2}
    assert not os.path.exists(str(path) + ".tmp")


@pytest.mark.parametrize("content, message", [
    (b"", "corrupt"),
    (b"not a pickle at all", "corrupt"),
    (pickle.dumps({"format": "deap_lossgp.checkpoint", "version": 1, "state": {}})[:-7], "corrupt"),
    (pickle.dumps({"some": "dict"}), "not a deap_lossgp checkpoint"),
    (pickle.dumps({"format": "deap_lossgp.checkpoint", "version": 99, "state": {}}), "version 99"),
])
def test_unusable_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, trust_legacy=True)
    with pytest.raises(ValueError):
        load_checkpoint(path, trust_legacy=True)


class _Exits:
    def __reduce__(self):
        import sys

        return sys.exit, (7,)


def test_a_file_without_a_digest_header_is_never_unpickled_unless_trusted(tmp_path):
    path = tmp_path / "old.ckpt"
    path.write_bytes(pickle.dumps({"format": "deap_lossgp.checkpoint", "version": 1, "state": {"generation": 3}}))
    with pytest.raises(CheckpointError, match="no digest header.*--trust-checkpoint"):
        load_checkpoint(path)
    assert load_checkpoint(path, trust_legacy=True) == {"generation": 3}
    path.write_bytes(pickle.dumps(_Exits()))
    with pytest.raises(CheckpointError, match="no digest header"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="SystemExit"):  # even trusted, it cannot end the process
        load_checkpoint(path, trust_legacy=True)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "missing.ckpt")


@pytest.mark.parametrize("algorithm", [eaSampleTournament, eaNGL])
def test_corrupt_checkpoint_without_a_previous_one_is_rejected_and_never_overwritten(tmp_path, algorithm):
    path = tmp_path / "run.ckpt"
    search(algorithm, ngen=2, checkpoint=path)
    os.remove(str(path) + ".prev")
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        search(algorithm, ngen=4, checkpoint=path)
    assert path.read_bytes() == content[: len(content) // 2]


@pytest.mark.parametrize("algorithm", [eaSampleTournament, eaNGL])
def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path, algorithm):
    def kwargs():
        return {"archive": []} if algorithm is eaNGL else {}

    expected = outcome(*search(algorithm, ngen=4, **kwargs())[:3])
    path = tmp_path / "run.ckpt"
    search(algorithm, ngen=2, checkpoint=path, **kwargs())
    assert load_checkpoint(str(path) + ".prev")["generation"] == 2
    content = bytearray(path.read_bytes())
    content[-10] ^= 0x01
    path.write_bytes(bytes(content))
    with pytest.warns(RuntimeWarning, match=r"run.ckpt' is corrupt .*previous checkpoint .*run.ckpt.prev"):
        resumed = search(algorithm, ngen=4, checkpoint=path, **kwargs())
    assert outcome(*resumed[:3]) == expected


def test_checkpoint_of_another_algorithm_or_parameters_is_rejected(tmp_path):
    path = tmp_path / "run.ckpt"
    search(eaNGL, ngen=1, checkpoint=path)
    content = path.read_bytes()
    with pytest.raises(CheckpointError, match="eaNGL"):
        search(eaSampleTournament, ngen=2, checkpoint=path)
    with pytest.raises(CheckpointError, match="parameters"):
        search(eaNGL, ngen=2, checkpoint=path, cxpb_archive=0.9)
    assert path.read_bytes() == content


def test_checkpoint_holds_the_whole_state(tmp_path):
    path = tmp_path / "run.ckpt"
    archive = []
    population, logbook, hof, evaluator = search(eaNGL, ngen=2, checkpoint=path, archive=archive)
    state = load_checkpoint(path)
    assert state["algorithm"] == "eaNGL"
    assert state["generation"] == 3
    assert [str(i) for i in state["population"]] == [str(i) for i in population]
    assert [str(i) for i in state["archive"]] == [str(i) for i in archive] and len(archive) == 16
    assert [str(i) for i in state["halloffame"][0]] == [str(i) for i in hof]
    assert comparable(state["logbook"]) == comparable(logbook)
    assert state["cache"] == evaluator.evaluated
    assert state["random_state"] == random.getstate()


@pytest.mark.parametrize("algorithm", [eaSampleTournament, eaNGL])
def test_resume_continues_exactly(tmp_path, algorithm):
    def kwargs():
        return {"archive": []} if algorithm is eaNGL else {}

    expected = outcome(*search(algorithm, ngen=5, **kwargs())[:3])
    path = tmp_path / "run.ckpt"
    search(algorithm, ngen=2, checkpoint=path, **kwargs())
    # Another seed proves the state comes from the checkpoint, not the script.
    resumed = search(algorithm, ngen=5, checkpoint=path, seed=999, **kwargs())
    assert outcome(*resumed[:3]) == expected
    # The evaluation cache survived: nothing evaluated twice across the resume.
    assert resumed[3].calls == sum(resumed[1].select("nevals")[3:])
    # Finished: running again changes nothing.
    again = search(algorithm, ngen=5, checkpoint=path, seed=1234, **kwargs())
    assert outcome(*again[:3]) == expected


SCRIPT = textwrap.dedent("""
    import json, random, sys, time
    from deap import tools
    from deap_lossgp.algorithms import eaNGL, eaSampleTournament
    from conftest import CachingFitness, build_toolbox, comparable, make_stats

    class SlowFitness(CachingFitness):
        def __call__(self, individual):
            time.sleep(0.06)
            return super().__call__(individual)

    algorithm = {"eaSampleTournament": eaSampleTournament, "eaNGL": eaNGL}[sys.argv[1]]
    checkpoint, result = sys.argv[2], sys.argv[3]
    random.seed(17)
    toolbox = build_toolbox(8, SlowFitness())
    population = toolbox.population(n=8)
    hof = tools.HallOfFame(2)
    population, logbook = algorithm(population, toolbox, ngen=12, stats=make_stats(), halloffame=hof,
                                    verbose=False, checkpoint=checkpoint if checkpoint != "-" else None)
    with open(result, "w") as stream:
        json.dump({"population": [str(i) for i in population],
                   "fitness": [i.fitness.values for i in population],
                   "logbook": comparable(logbook), "hof": [str(i) for i in hof]}, stream)
""")


def _run_script(tmp_path, *args):
    script = tmp_path / "resumable.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen([sys.executable, str(script), *args], env=env)


def _generation(checkpoint):
    try:
        return load_checkpoint(checkpoint)["generation"]
    except CheckpointError:  # not written yet
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["eaSampleTournament", "eaNGL"])
def test_sigkill_and_resume_equals_uninterrupted(tmp_path, algorithm):
    reference = tmp_path / "reference.json"
    assert _run_script(tmp_path, algorithm, "-", str(reference)).wait(timeout=300) == 0
    checkpoint, result = tmp_path / "run.ckpt", tmp_path / "result.json"
    delays = random.Random(algorithm)
    resumed_from = []
    # Kill three runs, each soon after it saved a new generation (at a random
    # moment of the next one, writes included), then let the fourth finish.
    for _ in range(3):
        resumed_from.append(_generation(checkpoint))
        process = _run_script(tmp_path, algorithm, str(checkpoint), str(result))
        deadline = time.monotonic() + 300
        while _generation(checkpoint) <= resumed_from[-1] and process.poll() is None:
            assert time.monotonic() < deadline, "no generation finished in 300 s"
            time.sleep(0.02)
        time.sleep(delays.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert resumed_from == sorted(resumed_from) and len(set(resumed_from)) == 3
    assert _run_script(tmp_path, algorithm, str(checkpoint), str(result)).wait(timeout=300) == 0
    assert json.loads(result.read_text()) == json.loads(reference.read_text())


KILL_MID_WRITE = textwrap.dedent("""
    import os, signal, sys
    from deap_lossgp.checkpoint import save_checkpoint

    class DiesWhilePickled:
        def __reduce__(self):
            os.kill(os.getpid(), signal.SIGKILL)

    save_checkpoint(sys.argv[1], {"generation": 2, "payload": [b"x" * 100000, DiesWhilePickled()]})
""")


def test_kill_in_the_middle_of_a_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "run.ckpt"
    search(eaSampleTournament, ngen=2, checkpoint=path)
    before = path.read_bytes()
    script = tmp_path / "dies.py"
    script.write_text(KILL_MID_WRITE)
    process = subprocess.run([sys.executable, str(script), str(path)], timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    expected = outcome(*search(eaSampleTournament, ngen=4)[:3])
    assert outcome(*search(eaSampleTournament, ngen=4, checkpoint=path)[:3]) == expected

"""The Dask backend on a local cluster of 2 workers: the serial search under
every algorithm, the asynchronous variant, a worker killed mid-training (the
training rerun, the search unchanged), a lost scheduler (one clear error) and
the resume after it (the uninterrupted search's result)."""

import csv
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

psutil = pytest.importorskip("psutil")  # a dependency of distributed
pytest.importorskip("distributed")

from deap_lossgp.algorithms import eaAsyncSampleTournament, eaNGL, eaSampleTournament  # noqa: E402
from deap_lossgp.app.cli import main  # noqa: E402
from deap_lossgp.evaluation import Executor  # noqa: E402
from deap_lossgp.search.driver import make_config, run_search  # noqa: E402
from deap_lossgp.search.parallel import DaskMap, get_map  # noqa: E402

from conftest import CachingFitness, comparable  # noqa: E402
from test_parallel import RudeCachingFitness, _run_with, describe  # noqa: E402
from test_work_units import SplitFitness, _quick_search, _search  # noqa: E402

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def _kill_first(marker):
    """Kill the calling process the first time any process calls this with *marker* (an exclusive file)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return
    os.kill(os.getpid(), signal.SIGKILL)


class KillFirstUnit:
    """A unit of work whose first run, anywhere, kills the worker running it."""

    def __init__(self, unit, marker):
        self.unit, self.marker = unit, marker

    def __call__(self):
        _kill_first(self.marker)
        return self.unit()


class KillFirstSplit:
    """``toolbox.split`` whose first unit to run kills its worker mid-evaluation."""

    def __init__(self, split, marker):
        self.split, self.marker = split, marker

    def __call__(self, individual, **kwargs):
        trainings = self.split(individual, **kwargs)
        trainings.units = [KillFirstUnit(unit, self.marker) for unit in trainings.units]
        return trainings


def test_dask_settings_need_the_dask_backend():
    with pytest.raises(ValueError, match="needs the dask backend.*add --backend dask"):
        get_map("process", scheduler="127.0.0.1:8786")
    with pytest.raises(ValueError, match="needs the dask backend"):
        make_config("quick", backend="serial", scheduler="127.0.0.1:8786")
    with pytest.raises(ValueError, match="client or a scheduler address, not both"):
        DaskMap(client=object(), scheduler="127.0.0.1:8786")


def test_without_distributed_the_backend_says_how_to_install_it(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "distributed"
                        else find_spec(name, *args))
    with pytest.raises(ValueError, match=r"install it with pip install 'deap_lossgp\[dask\]'"):
        get_map("dask")


def test_cli_scheduler_without_dask_backend_is_one_line(capsys):
    assert main(["evolve", "--backend", "process", "--scheduler", "127.0.0.1:8786", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "add --backend dask" in error


def test_an_unreachable_scheduler_is_one_clear_error():
    import dask

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(ConnectionError, match=f"cannot reach the Dask scheduler at 127.0.0.1:{port}"):
            with get_map("dask", scheduler=f"127.0.0.1:{port}", tf_threads=None) as dmap:
                dmap.submit(describe, 1)


def test_dask_map_runs_in_workers_in_order_and_leaves_no_worker_behind():
    with get_map("dask", workers=2, tf_threads=None) as dmap:
        assert isinstance(dmap, Executor) and dmap.workers == 2
        results = dmap(describe, ["a", "b", "c", "d"])
        assert dmap([].__len__, []) == []
        pids = {pid for _, _, pid in results} | {dmap._cluster_process.pid}
        assert os.getpid() not in pids and len(pids) == 3
        future = dmap.submit(describe, "e")
        assert future.cancel() and future.cancelled()
    assert [text for _, text, _ in results] == ["a", "b", "c", "d"]
    assert not any(map(psutil.pid_exists, pids))
    assert multiprocessing.active_children() == []
    # An error (or Ctrl-C) in the search: running work is abandoned, and no process is left either.
    with pytest.raises(KeyError), get_map("dask", workers=2, tf_threads=None) as dmap:
        pids = {pid for _, _, pid in dmap(describe, ["a", "b"])} | {dmap._cluster_process.pid}
        dmap.first_completed([dmap.submit(time.sleep, 0), dmap.submit(time.sleep, 60)])
        raise KeyError("stop")
    assert not any(map(psutil.pid_exists, pids))


def test_dask_gives_the_serial_search():
    with get_map("dask", workers=2, tf_threads=None) as dmap:
        for algorithm in (eaSampleTournament, eaNGL):
            _, expected, hof_serial = _run_with(algorithm, 9, CachingFitness(), get_map("serial"), ngen=4)
            _, logbook, hof = _run_with(algorithm, 9, RudeCachingFitness(), dmap, ngen=4)
            assert comparable(logbook) == comparable(expected)
            assert str(hof[0]) == str(hof_serial[0])
        # Trainings as units (toolbox.split), taken as they complete.
        assert _search(eaSampleTournament, dmap) == _search(eaSampleTournament, map, split=False)
        assert dmap.reruns == 0


def test_async_variant_on_dask_is_the_serial_search():
    expected = _search(eaAsyncSampleTournament, map, split=False, inflight=4)
    with get_map("dask", workers=2, tf_threads=None) as dmap:
        assert _search(eaAsyncSampleTournament, dmap, inflight=4) == expected
        # Default inflight: twice the workers.
        assert _search(eaAsyncSampleTournament, dmap) == expected


def test_a_worker_killed_mid_evaluation_is_rerun_and_the_search_unchanged(tmp_path):
    expected = _search(eaSampleTournament, map, split=False)
    fitness = SplitFitness()
    fitness.split = KillFirstSplit(SplitFitness().split, str(tmp_path / "killed"))
    with get_map("dask", workers=2, tf_threads=None) as dmap:
        with pytest.warns(RuntimeWarning, match="a Dask worker died during a training, which then ran on another"):
            assert _search(eaSampleTournament, dmap, fitness=fitness) == expected
        assert dmap.reruns == 1
    assert (tmp_path / "killed").exists()


@pytest.mark.slow
def test_quick_search_on_dask_trains_as_in_series(quick_fitness, tmp_path):
    before = _quick_search(quick_fitness, map)
    with get_map("dask", workers=2) as dmap:
        assert _quick_search(quick_fitness, dmap) == before
        # A worker killed in a real training: the training runs again elsewhere, the search is the same.
        quick_fitness.split = KillFirstSplit(quick_fitness.split, str(tmp_path / "killed"))
        try:
            with pytest.warns(RuntimeWarning, match="ran on another worker"):
                assert _quick_search(quick_fitness, dmap) == before
        finally:
            del quick_fitness.split
        assert dmap.reruns == 1
        asynchronous = _quick_search(quick_fitness, map, algorithm=eaAsyncSampleTournament, inflight=4)
        assert _quick_search(quick_fitness, dmap, algorithm=eaAsyncSampleTournament, inflight=4) == asynchronous


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Cluster:
    """A scheduler and two single-thread workers started as the docs show, in their own process group."""

    def __init__(self, tmp_path):
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")]),
                   DASK_LOGGING__DISTRIBUTED="error")
        self.scheduler = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard", "--dashboard-address", "127.0.0.1:0"], env=env, cwd=tmp_path,
            start_new_session=True)
        self.workers = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--nworkers", "2", "--nthreads",
             "1", "--no-dashboard"], env=env, cwd=tmp_path, start_new_session=True)

    def kill_scheduler(self):
        os.killpg(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait()

    def close(self):
        for process in (self.workers, self.scheduler):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _results(run_dir):
    with (run_dir / "logbook.csv").open() as stream:
        rows = [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(stream)]
    best = json.loads((run_dir / "best.json").read_text())
    return rows, best["expression"], best["fitness"]


@pytest.mark.slow
def test_a_lost_scheduler_is_one_error_and_resume_gives_the_uninterrupted_result(tmp_path, capsys, monkeypatch):
    import dask

    from deap_lossgp.app import cli

    cheap = dict(population=4, generations=2, epochs=1, max_train_samples=100, confirm_top=0)
    expected_dir = tmp_path / "serial"
    run_search(expected_dir, make_config("quick", backend="serial", search_seed=3, tasks=["digits"], **cheap),
               progress=False)

    first, second = _Cluster(tmp_path), _Cluster(tmp_path)

    class LoseTheScheduler(cli._GenerationReport):
        """The command's per-generation report, and the scheduler killed after generation 0."""

        def __call__(self, run, logbook, halloffame):
            super().__call__(run, logbook, halloffame)
            if first.scheduler.poll() is None:
                first.kill_scheduler()

    run_dir = tmp_path / "dask"
    arguments = ["--population", "4", "--generations", "2", "--epochs", "1", "--seed", "3", "--quiet",
                 "--set", "tasks=[\"digits\"]", "--set", "max_train_samples=100", "--set", "confirm_top=0"]
    try:
        monkeypatch.setattr(cli, "_GenerationReport", LoseTheScheduler)
        capsys.readouterr()
        assert main(["evolve", "--backend", "dask", "--scheduler", first.address, "--workers", "2",
                     "--output", str(run_dir), *arguments]) == 2
        error = capsys.readouterr().err.strip()
        assert error == (f"deap-lossgp evolve: error: the Dask scheduler at {first.address} was lost; restart it "
                         f"and its workers, then continue with 'deap-lossgp resume {run_dir}'")
        assert (run_dir / "checkpoint.pkl").exists() and not (run_dir / "best.json").exists()
        monkeypatch.undo()
        # The stored address is gone: one line; resume joins the restarted cluster at its new address.
        with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
            assert main(["resume", str(run_dir), "--quiet"]) == 2
        error = capsys.readouterr().err.strip()
        assert "\n" not in error and f"cannot reach the Dask scheduler at {first.address}" in error
        assert main(["resume", str(run_dir), "--quiet", "--scheduler", second.address]) == 0
    finally:
        first.close()
        second.close()
    assert _results(run_dir) == _results(expected_dir)

"""Reliability figures: kills and resumes, checkpoint damage, bad inputs and faults.

1. Kill moments x resume: a small ``quick`` search (process backend, two
   workers) is run once uninterrupted, then, for each kill moment (a share of
   the reference's evaluation records), started again, killed with ``SIGKILL``
   once that many records exist, and resumed.  Each resumed run must end with
   the reference's best loss, fitness and logbook counts, with every
   evaluation recorded exactly once (0 duplicates), and no process of the
   killed run may outlive it (0 orphans).
2. Single-byte flips of the reference's ``checkpoint.pkl`` (one random bit
   at each of 200 random offsets): each must be a ``CheckpointError``.
3. Bad CLI inputs and simulated file-system faults (disk full, read-only
   directory, through a patched ``os.write``): each must end with status 2,
   one line on standard error and no traceback.
4. Hostile probes (the cases of a hostile review): damaged and planted run
   directories, planted symbolic links, pickles that act when loaded, huge
   settings, hostile task names, a full baseline cache and an amplifying
   loss text.  Counted: raw tracebacks, error lines that name no file or
   argument, files written outside the run directory or cache, read-only
   commands that unpickle, and the bytes a legal text's expansion prints.
5. Formula printing: the slowest of nested ``sin`` trees up to depth 18,
   chains of 200 and 500 operators and 2,000 random ``quick``-style trees.

Usage::

    python benchmarks/bench_reliability.py [--flips 200] [--output FILE]

The fast cases of 3 and 4 are also tests (``tests/test_hostile_runs.py``,
``tests/test_reliability.py``, ``tests/test_text_input.py``).

Not a test: it prints its figures (and writes them to ``--output``).
"""

import argparse
import collections
import json
import os
import pathlib
import pickle
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

SEARCH = ["--population", "8", "--generations", "2", "--epochs", "1", "--set", 'tasks=["digits"]',
          "--backend", "process", "--workers", "2", "--quiet"]
MOMENTS = (0.3, 0.7, 0.9)


def cli(*args):
    """The command line of ``deap-lossgp`` with *args*.

    :param args: the arguments.
    :returns: a list for :mod:`subprocess`.
    """
    return [sys.executable, "-m", "deap_lossgp.app.cli", *args]


def descendants(pid):
    """The processes whose parent is *pid* (Linux ``/proc``).

    :param pid: a process id.
    :returns: a list of process ids.
    """
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = pathlib.Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def alive(pids):
    """The processes of *pids* still running (zombies excluded).

    :param pids: process ids.
    :returns: a list of process ids.
    """
    running = []
    for pid in pids:
        try:
            if pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                running.append(pid)
        except OSError:
            pass
    return running


def summary(run):
    """What must match between runs: best loss, logbook counts, recorded (key, replicate) pairs.

    :param run: a run directory.
    :returns: ``(best, counts, keys)``.
    """
    best = json.loads((run / "best.json").read_text())
    counts = [line.split(",")[:4] for line in (run / "logbook.csv").read_text().splitlines()]
    keys = collections.Counter((record["key"], record.get("replicate", 0)) for record in
                               map(json.loads, (run / "evaluations.jsonl").read_text().splitlines()))
    return (best["expression"], best["fitness"]), counts, keys


def kill_and_resume(work, reference, records):
    """Kill a search at each moment, resume it, compare with the reference.

    :param work: a scratch directory.
    :param reference: the uninterrupted run directory.
    :param records: the reference's number of records.
    :returns: a list of result dicts, one per moment.
    """
    expected = summary(reference)
    results = []
    for moment in MOMENTS:
        target = max(1, int(moment * records))
        run = work / f"killed-{moment}"
        with open(work / "killed.log", "a") as log:
            process = subprocess.Popen(cli("evolve", *SEARCH, "--output", str(run)), stdout=log, stderr=log)
        path = run / "evaluations.jsonl"
        children = []
        deadline = time.monotonic() + 900
        while process.poll() is None and time.monotonic() < deadline:
            children = sorted(set(children) | set(descendants(process.pid)))
            if path.exists() and path.read_bytes().count(b"\n") >= target:
                break
            time.sleep(0.02)
        killed_at = path.read_bytes().count(b"\n") if path.exists() else 0
        process.send_signal(signal.SIGKILL)
        process.wait()
        time.sleep(3.0)
        orphans = alive(children)
        for pid in orphans:  # not to disturb the next measurement
            os.kill(pid, signal.SIGKILL)
        resumed = subprocess.run(cli("resume", str(run), "--quiet"), capture_output=True, text=True)
        outcome = summary(run) if resumed.returncode == 0 else None
        results.append({
            "moment": f"{killed_at} of {records} records",
            "identical": outcome is not None and outcome[:2] == expected[:2] and outcome[2] == expected[2],
            "duplicates": None if outcome is None else sum(count - 1 for count in outcome[2].values() if count > 1),
            "orphans": len(orphans),
            "resume_status": resumed.returncode,
        })
    return results


def byte_flips(checkpoint, work, flips):
    """Flip one random bit at *flips* random offsets of a checkpoint.

    :param checkpoint: a checkpoint file.
    :param work: a scratch directory.
    :param flips: how many offsets.
    :returns: the number of flips detected (a ``CheckpointError``).
    """
    from deap_lossgp.checkpoint import CheckpointError, load_checkpoint

    good = checkpoint.read_bytes()
    path = work / "flipped.pkl"
    rng = random.Random(0)
    detected = 0
    for offset in rng.sample(range(len(good)), flips):
        data = bytearray(good)
        data[offset] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        try:
            load_checkpoint(path)
        except CheckpointError:
            detected += 1
    return detected


FAULT = textwrap.dedent("""
    import errno, os, pathlib, sys
    from deap_lossgp.app.cli import main

    # The fault hits files under the given directory only, as a full or read-only file system there would.
    root, real_write, real_write_text = sys.argv.pop(1), os.write, pathlib.Path.write_text

    def fail(path):
        if str(path).startswith(root):
            raise OSError(errno.{code}, os.strerror(errno.{code}))

    def write(handle, data):
        fail(os.readlink(f"/proc/self/fd/{{handle}}"))
        return real_write(handle, data)

    def write_text(self, *args, **kwargs):
        fail(self.resolve())
        return real_write_text(self, *args, **kwargs)

    class Failing:
        # A file object of a full disk: what os.fdopen returns for a file under the root.
        def __init__(self, stream):
            self.stream = stream

        def __getattr__(self, name):
            return getattr(self.stream, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

        def write(self, data):
            fail(os.readlink(f"/proc/self/fd/{{self.stream.fileno()}}"))
            return self.stream.write(data)

    def fdopen(handle, mode="r", *args, **kwargs):
        stream = real_fdopen(handle, mode, *args, **kwargs)
        return Failing(stream) if set(mode) & set("wa+") else stream

    real_fdopen = os.fdopen
    os.write, pathlib.Path.write_text, os.fdopen = write, write_text, fdopen
    sys.exit(main(sys.argv[1:]))
""")


def make_unfinished(run):
    """Turn a finished run directory back into one that ``resume`` continues.

    :param run: a finished run directory (two generations or more).
    :returns: None
    """
    # The previous checkpoint and a logbook without the last generation.
    os.replace(run / "checkpoint.pkl.prev", run / "checkpoint.pkl")
    (run / "logbook.csv").write_text("\n".join((run / "logbook.csv").read_text().splitlines()[:-1]) + "\n")


def bad_inputs(work, reference):
    """Run the CLI on bad inputs and simulated faults.

    :param work: a scratch directory.
    :param reference: a finished run directory to copy.
    :returns: a list of ``(case, status, stderr lines, traceback?)``.
    """
    def copy(name, edit=None):
        run = work / name
        shutil.copytree(reference, run)
        if edit:
            edit(run)
        return str(run)

    def write(name, text):
        return lambda run: (run / name).write_text(text)

    def drop_checkpoint(run):
        make_unfinished(run)
        (run / "checkpoint.pkl").unlink()

    def empty_state(run):
        from deap_lossgp.checkpoint import save_checkpoint

        make_unfinished(run)
        save_checkpoint(run / "checkpoint.pkl", {})

    def untrusted_model(run):
        make_unfinished(run)
        config = json.loads((run / "config.json").read_text())
        config["resolved"]["fitness"]["model"] = "this:nothing"
        (run / "config.json").write_text(json.dumps(config))

    (work / "a-file").write_text("x")
    cases = [
        ("evolve --seed -1", cli("evolve", "--seed", "-1", "--output", str(work / "R3"))),
        ("evolve --backend scoop (no python -m scoop)", cli("evolve", "--backend", "scoop", "--output", str(work / "R4"))),
        ("evolve --output <existing file>", cli("evolve", "--output", str(work / "a-file"))),
        ("evolve --set tasks label_noise 'a'",
         cli("evolve", "--set", 'tasks=[{"dataset":"digits","label_noise":"a"}]', "--output", str(work / "R5"))),
        ("export --output <a directory>", cli("export", copy("export-dir"), "--output", str(work))),
        ("show, config.json of {}", cli("show", copy("config-empty", write("config.json", "{}")))),
        ("resume, config.json of {}", cli("resume", copy("config-empty-2", write("config.json", "{}")))),
        ("resume, config.json truncated", cli("resume", copy("config-torn", write("config.json", '{"preset": ')))),
        ("show, best.json without expression", cli("show", copy("best-bad", write("best.json", '{"formula": 1}')))),
        ("export, best.json without expression",
         cli("export", copy("best-bad-2", write("best.json", '{"formula": 1}')))),
        ("resume, checkpoint with valid header and empty state", cli("resume", copy("empty-state", empty_state))),
        ("resume, records but no checkpoint", cli("resume", copy("no-checkpoint", drop_checkpoint))),
        ("resume, config.json model 'this:nothing'", cli("resume", copy("model", untrusted_model))),
        ("resume, disk full",
         [sys.executable, "-c", FAULT.format(code="ENOSPC"), str(work), "resume", copy("disk-full", make_unfinished)]),
        ("resume, read-only run directory",
         [sys.executable, "-c", FAULT.format(code="EROFS"), str(work), "resume", copy("read-only", make_unfinished)]),
        ("export, disk full for the --output file",
         [sys.executable, "-c", FAULT.format(code="ENOSPC"), str(work), "export", copy("export-full"), "--output",
          str(work / "loss.py")]),
    ]
    results = []
    for name, command in cases:
        done = subprocess.run(command, capture_output=True, text=True, cwd=work)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        bad = ("Traceback" in done.stderr or "Zen of Python" in done.stdout
               or any((work / name).exists() for name in ("R3", "R4", "R5")))
        results.append((name, done.returncode, lines, bad))
    return results


class _Acts:
    """Pickles as a call of *function* on *arguments*: what a hostile pickle does when it is loaded."""

    def __init__(self, function, *arguments):
        self.call = (function, arguments)

    def __reduce__(self):
        return self.call


SYMLINKED = (".lock", ".write-test", "config.json.tmp", "checkpoint.pkl.tmp", "best.json.tmp", "logbook.csv.tmp",
             "hall_of_fame.csv.tmp")
AMPLIFYING = "((((y_pred*y_true+0.5)**8)**8)**8)**8"
PROGRESS = re.compile(r"[\w ]*:\s*\d+%\|[^|]*\|\s*\d+/\d+ \[[^\]]*\]")  # a progress bar, not a message


def snapshot(directory):
    """Names, sizes and modification times of the files under *directory*.

    :param directory: a directory.
    :returns: a dict.
    """
    return {str(path): (path.lstat().st_size, path.lstat().st_mtime_ns) for path in directory.rglob("*")}


def hostile_probes(work, reference, env):
    """Run the command line on the probe set.

    :param work: a scratch directory.
    :param reference: a finished run directory to copy.
    :param env: the environment of the commands (its ``HOME`` holds the baseline cache).
    :returns: ``(results, outside_writes, unpickled, cache_names_ok, printed)``: one dict per probe, the
              files changed outside the run directories and the cache, the probes whose pickle ran, whether
              every cache file is named by a hash, and the bytes printed for the amplifying text.
    """
    from deap_lossgp.checkpoint import load_checkpoint, save_checkpoint

    outside = work / "outside"
    outside.mkdir()
    for name in SYMLINKED:
        (outside / name).write_text("keep me\n")
    before = snapshot(outside)
    number = iter(range(10 ** 6))

    def copy(edit=None, unfinished=False):
        run = work / f"probe-{next(number)}"
        shutil.copytree(reference, run)
        if unfinished:
            make_unfinished(run)
        if edit:
            edit(run)
        return str(run)

    def best(expression=None, **fields):
        def edit(run):
            data = json.loads((run / "best.json").read_text())
            data.update(fields, **({"expression": expression} if expression else {}))
            (run / "best.json").write_text(json.dumps(data))
        return edit

    def text(name, content):
        return lambda run: (run / name).write_text(content)

    def config(**fields):
        def edit(run):
            data = json.loads((run / "config.json").read_text())
            for key, value in fields.items():
                target = {"epochs": data["resolved"]["fitness"], "population": data["resolved"]["search"]}
                target.get(key, data)[key] = value
            (run / "config.json").write_text(json.dumps(data))
        return edit

    def record(**fields):
        def edit(run):
            lines = (run / "evaluations.jsonl").read_text().splitlines()
            lines[0] = json.dumps(dict(json.loads(lines[0]), **fields))
            (run / "evaluations.jsonl").write_text("\n".join(lines) + "\n")
        return edit

    def checkpoint(transform, header=True, where="checkpoint.pkl"):
        def edit(run):
            state = transform(load_checkpoint(run / "checkpoint.pkl", trust_legacy=True))
            if header:
                save_checkpoint(run / where, state)
            else:
                if where != "checkpoint.pkl":
                    (run / "checkpoint.pkl").write_bytes(b"damaged")
                (run / where).write_bytes(pickle.dumps(state))
        return edit

    def acting(marker):
        return lambda state: dict(state, payload=_Acts(open, str(outside / f"unpickled-{marker}"), "w"))

    chain = "y_pred"
    for _ in range(200):
        chain = f"sin({chain})"
    deep = "[" * 100_000 + "]" * 100_000
    evaluate = ["evaluate", "--epochs", "1", "--set", "max_train_samples=200"]
    planted = []
    for name in SYMLINKED:
        run = work / f"planted-{name}"
        run.mkdir()
        (run / name).symlink_to(outside / name)
        planted.append((f"evolve into a directory with {name} -> outside",
                        cli("evolve", *SEARCH, "--output", str(run)), "link", True))
    fault = [sys.executable, "-c", FAULT.format(code="ENOSPC"), str(work / "home")]
    # (case, command, fragment the error line must hold, whether exit 0 is also right)
    probes = [
        ("evolve --set seed=1 --set epochs=0", cli("evolve", "--set", "seed=1", "--set", "epochs=0"), "epochs", False),
        ("benchmark --set seed=1 --set epochs=0", cli("benchmark", "--set", "seed=1", "--set", "epochs=0"), "epochs",
         False),
        ("evolve --set tasks={}", cli("evolve", "--set", "tasks={}"), "dataset", False),
        ("evolve --bogus (argparse)", cli("evolve", "--bogus"), "--bogus", False),
        ("evolve --population 10**26", cli("evolve", "--population", "9" * 26), "population", False),
        ("evolve --workers 10**26", cli("evolve", "--workers", "9" * 26), "workers", False),
        ("evolve --epochs 10**26", cli("evolve", "--epochs", "9" * 26), "epochs", False),
        ("evolve --set epochs=10**9", cli("evolve", "--set", "epochs=1000000000"), "epochs", False),
        ("resume <300-character component>", cli("resume", str(work / ("a" * 300))), "a" * 40, False),
        ("export, best.json div(1, 0)", cli("export", copy(best("div(1, 0)"))), "best.json", True),
        ("export --format latex, exp(exp(sqrt(log(0)...)))",
         cli("export", copy(best("exp(exp(sqrt(mul(log(0), add(y_true, y_pred)))))")), "--format", "latex"),
         "best.json", True),
        ("export, 200 nested sin", cli("export", copy(best(chain))), "best.json", True),
        ("show, 200 nested sin", cli("show", copy(best(chain, formula=None))), "best.json", True),
        ("show, best.json fitness 5", cli("show", copy(best(fitness=5))), "best.json", False),
        ("show, hall_of_fame.csv of a rank column", cli("show", copy(text("hall_of_fame.csv", "rank\n1\n"))),
         "hall_of_fame.csv", False),
        ("show, hall_of_fame.csv cell of 140,000 characters",
         cli("show", copy(text("hall_of_fame.csv", "rank,formula\n1," + "x" * 140_000 + "\n"))), "hall_of_fame.csv",
         False),
        ("show, hall_of_fame.csv 'abc' as a number",
         cli("show", copy(text("hall_of_fame.csv", "rank,wins,improvement,status,size,height,expression,formula,"
                                                   "reason\n1,abc,0.1,ok,1,1,y_pred,y_pred,\n"))),
         "hall_of_fame.csv", False),
        ("show, record status []", cli("show", copy(record(status=[]))), "evaluations.jsonl", True),
        ("export, record status []", cli("export", copy(record(status=[]))), "evaluations.jsonl", True),
        ("resume, record status []", cli("resume", copy(record(status=[]), unfinished=True), "--quiet"),
         "evaluations.jsonl", True),
        ("resume, record fitness 'abc'", cli("resume", copy(record(fitness="abc"), unfinished=True), "--quiet"),
         "evaluations.jsonl", True),
        ("show, config.json nested 100,000 deep", cli("show", copy(text("config.json", deep))), "config.json", False),
        ("show, a record nested 100,000 deep",
         cli("show", copy(lambda run: open(run / "evaluations.jsonl", "a").write(deep + "\n"))),
         "evaluations.jsonl", True),
        ("resume, config.json algorithm 'evil'", cli("resume", copy(config(algorithm="evil"), unfinished=True)),
         "config.json", False),
        ("resume, checkpoint generation '3'",
         cli("resume", copy(checkpoint(lambda state: dict(state, generation="3")), unfinished=True)),
         "checkpoint", False),
        ("resume, config.json population 10**9", cli("resume", copy(config(population=10 ** 9), unfinished=True)),
         "population", False),
        ("resume, config.json epochs 10**9", cli("resume", copy(config(epochs=10 ** 9), unfinished=True)),
         "epochs", False),
        ("show, a checkpoint that acts when unpickled",
         cli("show", copy(checkpoint(acting("show")), unfinished=True)), "checkpoint", True),
        ("export, a checkpoint that acts when unpickled",
         cli("export", copy(checkpoint(acting("export")), unfinished=True)), "checkpoint", True),
        ("resume, a headerless checkpoint that acts",
         cli("resume", copy(checkpoint(acting("resume"), header=False), unfinished=True)), "checkpoint", False),
        ("resume, a headerless .prev that acts",
         cli("resume", copy(checkpoint(acting("prev"), header=False, where="checkpoint.pkl.prev"),
                            unfinished=True)), "checkpoint", False),
        ("resume, a checkpoint calling sys.exit(7)",
         cli("resume", copy(checkpoint(lambda state: dict(state, payload=_Acts(sys.exit, 7))), unfinished=True)),
         "checkpoint", True),
        *planted,
        ("evaluate, task name '../../x'", cli(*evaluate, "--set", 'tasks=[{"dataset":"digits","name":"../../x"}]',
                                              "y_pred"), "tasks", True),
        ("evaluate, task name '/etc/cron.d/evil'",
         cli(*evaluate, "--set", 'tasks=[{"dataset":"digits","name":"/etc/cron.d/evil"}]', "y_pred"), "tasks", True),
        ("evaluate, disk full in the baseline cache", fault + [*evaluate, "--set", "seed=7", "y_pred"], "ce-", False),
        (f"evaluate {AMPLIFYING}", cli("evaluate", AMPLIFYING), "expands", False),
    ]
    results, printed = [], None
    for name, command, fragment, success_ok in probes:
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=work, env=env)
        seconds = time.perf_counter() - started
        lines = [line for line in PROGRESS.sub("", done.stderr).splitlines() if line.strip()]
        traceback = "Traceback" in done.stderr or done.returncode not in (0, 2, 3)
        clean = (done.returncode == 0 and success_ok) or (done.returncode == 2 and len(lines) == 1)
        results.append({"case": name, "status": done.returncode, "lines": len(lines), "traceback": traceback,
                        "clean": clean and not traceback,
                        "named": done.returncode != 2 or (bool(lines) and fragment in lines[-1]),
                        "seconds": seconds, "last": lines[-1].replace(str(work), "<scratch>") if lines else ""})
        if name.startswith("evaluate ((("):
            printed = len(done.stdout.encode()) + len(done.stderr.encode())
    after = snapshot(outside)
    changed = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    unpickled = sorted(pathlib.Path(name).name for name in changed if "unpickled-" in name)
    cache = work / "home" / ".cache" / "deap_lossgp" / "baselines"
    names_ok = all(path.name.startswith("ce-") and path.name.endswith(".json") for path in cache.iterdir())
    outside_writes = [name for name in changed if "unpickled-" not in name]
    outside_writes += [str(path) for path in work.rglob("*") if path.name in ("x", "evil")]
    return results, outside_writes, unpickled, names_ok, printed


def formula_times(trees=2_000):
    """The slowest formula printing of legal trees.

    :param trees: how many random ``quick``-style trees to print.
    :returns: ``(rows, crashes)``: ``(case, seconds)`` rows and the random trees whose printing raised.
    """
    from deap import gp

    from deap_lossgp import make_pset, to_formula

    def nested_sin(depth):
        text = "mul(y_true, log(y_pred))"
        for _ in range(depth):
            text = f"sin({text})"
        return text

    def chain(operator, length):
        text = "y_pred"
        for _ in range(length):
            text = f"{operator}({text})"
        return text

    cases = [(f"nested sin, depth {depth}", nested_sin(depth)) for depth in (12, 14, 16, 18)]
    cases += [("200 nested sin", chain("sin", 200)), ("500 nested neg", chain("neg", 500)),
              ("500 nested sqrt", chain("sqrt", 500))]
    to_formula("add(y_pred, y_true)")  # sympy's first use loads it: not a cost of the trees below
    rows = []
    for name, text in cases:
        started = time.perf_counter()
        to_formula(text)
        rows.append((name, time.perf_counter() - started))
    pset, rng = make_pset(), random.Random(0)
    random.seed(0)
    slowest, crashes = 0.0, 0
    for _ in range(trees):
        tree = gp.PrimitiveTree(gp.genHalfAndHalf(pset, 1, rng.randint(2, 8)))
        started = time.perf_counter()
        try:
            to_formula(tree)
        except Exception:  # counted: any exception is a crash of the printer
            crashes += 1
        slowest = max(slowest, time.perf_counter() - started)
    rows.append((f"slowest of {trees} random trees (height up to 2-8)", slowest))
    return rows, crashes


def main():
    """Run the measurements and print them.

    :returns: None
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flips", type=int, default=200)
    parser.add_argument("--output", type=pathlib.Path, help="also write the report here")
    args = parser.parse_args()
    command = "python benchmarks/bench_reliability.py" + "".join(f" {a}" for a in sys.argv[1:])
    with tempfile.TemporaryDirectory() as scratch:
        work = pathlib.Path(scratch).resolve()
        # Every command's baseline cache is in the scratch directory, to be inspected.
        env = dict(os.environ, HOME=str(work / "home"))
        reference = work / "reference"
        started = time.perf_counter()
        subprocess.run(cli("evolve", *SEARCH, "--output", str(reference)), check=True, capture_output=True, env=env)
        reference_seconds = time.perf_counter() - started
        records = (reference / "evaluations.jsonl").read_bytes().count(b"\n")
        kills = kill_and_resume(work, reference, records)
        flips = byte_flips(reference / "checkpoint.pkl", work, args.flips)
        faults = bad_inputs(work, reference)
        probes, outside_writes, unpickled, names_ok, printed = hostile_probes(work, reference, env)
        formulas, crashes = formula_times()

    lines = [f"command: {command}",
             f"search: deap-lossgp evolve {' '.join(SEARCH)} ({reference_seconds:.0f} s uninterrupted)", "",
             "1. SIGKILL at a moment, then resume (compared with the uninterrupted run)"]
    for k in kills:
        lines.append(f"   killed at {k['moment']:<20} identical={k['identical']}  duplicates={k['duplicates']}  "
                     f"orphans={k['orphans']}  resume status={k['resume_status']}")
    identical = sum(k["identical"] for k in kills)
    lines.append(f"   total: {identical}/{len(kills)} identical, {sum(k['duplicates'] or 0 for k in kills)} duplicate "
                 f"records, {sum(k['orphans'] for k in kills)} orphans")
    lines += ["", f"2. single-byte flips of checkpoint.pkl detected: {flips}/{args.flips}", "",
              "3. bad inputs and file-system faults (status, stderr lines, traceback)"]
    for name, status, err, bad in faults:
        lines.append(f"   {name:<52} status={status} lines={len(err)} traceback={'yes' if bad else 'no'}")
        lines.append(f"      {err[-1][:150] if err else ''}")
    clean = sum(status == 2 and len(err) == 1 and not bad for _, status, err, bad in faults)
    lines.append(f"   total: {sum(bad for *_, bad in faults)} tracebacks; {clean}/{len(faults)} exit 2 with one line")
    lines += ["", "4. hostile probes (status, stderr lines, traceback, file or argument named, seconds)"]
    for p in probes:
        lines.append(f"   {p['case'][:60]:<60} status={p['status']} lines={p['lines']} "
                     f"traceback={'yes' if p['traceback'] else 'no'} named={'yes' if p['named'] else 'no'} "
                     f"{p['seconds']:.1f} s")
        lines.append(f"      {p['last'][:150]}")
    lines += [f"   total over {len(probes)} probes: {sum(p['traceback'] for p in probes)} raw tracebacks; "
              f"{sum(p['clean'] for p in probes)}/{len(probes)} end with exit 0 where that is right, or exit 2 and "
              f"one line; {sum(not p['named'] for p in probes)} error lines name no file or argument",
              f"   files written outside the run directories and the cache: {len(outside_writes)}"
              + "".join(f"\n      {name}" for name in outside_writes),
              f"   read-only commands or refused checkpoints whose pickle ran: {len(unpickled)} {unpickled}",
              f"   cache files named by hash only: {'yes' if names_ok else 'no'}",
              f"   bytes printed for {AMPLIFYING!r} (24,575 nodes expanded): {printed}",
              "", "5. formula printing (seconds)"]
    lines += [f"   {name:<52} {seconds:.3f}" for name, seconds in formulas]
    lines.append(f"   random trees whose printing raised: {crashes}")
    report = "\n".join(lines).replace(str(work), "<scratch>") + "\n"
    print(report, end="")
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()

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

Usage::

    python benchmarks/bench_reliability.py [--flips 200] [--output FILE]

Not a test: it prints its figures (and writes them to ``--output``).
"""

import argparse
import collections
import json
import os
import pathlib
import random
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
    """What must match between runs: best loss, logbook counts, recorded keys.

    :param run: a run directory.
    :returns: ``(best, counts, keys)``.
    """
    best = json.loads((run / "best.json").read_text())
    counts = [line.split(",")[:4] for line in (run / "logbook.csv").read_text().splitlines()]
    keys = collections.Counter(json.loads(line)["key"] for line in (run / "evaluations.jsonl").read_text().splitlines())
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

    os.write, pathlib.Path.write_text = write, write_text
    sys.exit(main(sys.argv[1:]))
""")


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
        (run / "checkpoint.pkl").unlink()
        (run / "checkpoint.pkl.prev").unlink()

    def empty_state(run):
        from deap_lossgp.checkpoint import save_checkpoint

        save_checkpoint(run / "checkpoint.pkl", {})

    def unfinished(run):
        # The previous checkpoint: a run that resume continues, rather than reports finished.
        os.replace(run / "checkpoint.pkl.prev", run / "checkpoint.pkl")

    def untrusted_model(run):
        unfinished(run)
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
        ("show, checkpoint with valid header and empty state", cli("show", copy("empty-state", empty_state))),
        ("resume, records but no checkpoint", cli("resume", copy("no-checkpoint", drop_checkpoint))),
        ("resume, config.json model 'this:nothing'", cli("resume", copy("model", untrusted_model))),
        ("resume, disk full",
         [sys.executable, "-c", FAULT.format(code="ENOSPC"), str(work), "resume", copy("disk-full", unfinished)]),
        ("resume, read-only run directory",
         [sys.executable, "-c", FAULT.format(code="EROFS"), str(work), "resume", copy("read-only", unfinished)]),
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


def main():
    """Run the three measurements and print them.

    :returns: None
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flips", type=int, default=200)
    parser.add_argument("--output", type=pathlib.Path, help="also write the report here")
    args = parser.parse_args()
    command = "python benchmarks/bench_reliability.py" + "".join(f" {a}" for a in sys.argv[1:])
    with tempfile.TemporaryDirectory() as scratch:
        work = pathlib.Path(scratch).resolve()
        reference = work / "reference"
        started = time.perf_counter()
        subprocess.run(cli("evolve", *SEARCH, "--output", str(reference)), check=True, capture_output=True)
        reference_seconds = time.perf_counter() - started
        records = (reference / "evaluations.jsonl").read_bytes().count(b"\n")
        kills = kill_and_resume(work, reference, records)
        flips = byte_flips(reference / "checkpoint.pkl", work, args.flips)
        faults = bad_inputs(work, reference)

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
    report = "\n".join(lines).replace(str(work), "<scratch>") + "\n"
    print(report, end="")
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()

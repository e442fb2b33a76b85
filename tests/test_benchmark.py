import json

import pytest

from deap_lossgp.app.benchmark import run_benchmark


@pytest.mark.slow
def test_tiny_benchmark_runs_three_arms_and_resumes(tmp_path):
    output = tmp_path / "bench"
    cheap = dict(population=4, generations=1, epochs=1, tasks=["digits"], max_train_samples=200, race_top=2)
    messages = []
    report = run_benchmark(output, seeds=[0], backend="serial", confirm_seeds=2, progress=messages.append, **cheap)
    text = report.read_text()
    result = json.loads((output / "seed-0" / "result.json").read_text())
    arms = result["arms"]
    assert set(arms) == {"thesis", "ngl", "ours"}
    for arm in arms.values():
        assert arm["final"] is not None and set(arm["heldout"]) == {"digits"}
        assert len(arm["heldout"]["digits"]["values"]) == 2
        assert arm["final"] in arm["fresh"]
    # Paired by seed: every arm's held-out values come from the same fresh seeds, so CE's are equal.
    assert arms["thesis"]["heldout"]["digits"]["ce"] == arms["ours"]["heldout"]["digits"]["ce"]
    # Ours' confirmation already trained its top on these seeds: the benchmark reused its records.
    ours_records = (output / "seed-0" / "ours" / "confirmation.jsonl").read_text().splitlines()
    assert len(ours_records) == 2 * len(arms["ours"]["fresh"])
    assert arms["ours"]["verdict"] == json.loads((output / "seed-0" / "ours" / "best.json").read_text())["verdict"]
    assert "## Held-out test accuracy" in text and "## The winner's curse" in text and "## At equal wall time" in text
    # A second call reuses the finished seed instead of recomputing it.
    before = (output / "seed-0" / "result.json").stat().st_mtime_ns
    run_benchmark(output, seeds=[0], backend="serial", confirm_seeds=2, progress=messages.append, **cheap)
    assert (output / "seed-0" / "result.json").stat().st_mtime_ns == before

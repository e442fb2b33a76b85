import csv
import json

import pytest

from deap_lossgp.app.benchmark import run_benchmark


@pytest.mark.slow
def test_tiny_benchmark_report_agrees_with_its_logbooks(tmp_path):
    output = tmp_path / "bench"
    cheap = dict(population=4, generations=1, epochs=1, tasks=["digits"], max_train_samples=200)
    messages = []
    report = run_benchmark(output, seeds=[0], backend="serial", heldout_seeds=2, progress=messages.append, **cheap)
    text = report.read_text()
    result = json.loads((output / "seed-0" / "result.json").read_text())
    for key in ("ngl", "sample-tournament"):
        with (output / "seed-0" / key / "logbook.csv").open() as stream:
            rows = list(csv.DictReader(stream))
        assert [int(r["gen"]) for r in rows] == [0, 1]
        assert result[key]["nevals"] == sum(int(r["nevals"]) for r in rows)
        assert result[key]["ncached"] == sum(int(r["ncached"]) for r in rows)
        assert (output / "seed-0" / key / "best_loss.py").exists()
    # Algorithm 1 evaluates P + N trees (N = 3P/8 = 1), NGL P + P: trained, cached or rejected.
    ours, ngl = result["sample-tournament"], result["ngl"]
    assert ours["nevals"] + ours["ncached"] + ours["nrejected"] == 4 + 1
    assert ngl["nevals"] + ngl["ncached"] + ngl["nrejected"] == 4 + 4
    row = next(line for line in text.splitlines() if line.startswith("| 0 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[4]) == ngl["nevals"] and int(cells[5]) == ours["nevals"]
    assert float(cells[3]) == pytest.approx(ours["wall_time"] / ngl["wall_time"], abs=1e-3)
    assert "Held-out test accuracy" in text and "| ce |" in text and "0.36 small" in text
    for name in ("best_per_generation.png", "best_per_evaluation.png", "best_per_time.png", "time_to_target.png",
                 "heldout.json"):
        assert (output / name).exists()
    # A second call reuses the finished seed and the held-out table instead of recomputing them.
    before = (output / "seed-0" / "result.json").stat().st_mtime_ns
    run_benchmark(output, seeds=[0], backend="serial", heldout_seeds=2, progress=messages.append, **cheap)
    assert (output / "seed-0" / "result.json").stat().st_mtime_ns == before

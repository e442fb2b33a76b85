"""The benchmark report from synthetic per-seed results (fast: nothing trains)."""

import pytest

from deap_lossgp.app.report import ARMS, curse, heldout_mean, write_report


def _arm(wall, heldout, top, fresh, final="a", verdict="indistinguishable", confirm_time=0.0):
    return {"wall_time": wall, "confirm_time": confirm_time, "nevals": 10, "nraced": 2, "nrejected": 1,
            "ncached": 1, "trainings": 30, "evaluations_after_0": [3, 3], "best_fitness": [3.0, 0.05],
            "verdict": verdict, "final": final,
            "top": [{"expression": e, "fitness": [3.0, f]} for e, f in top],
            "fresh": {e: {"fitness": [3.0, f], "search_fitness": [3.0, 0.0]} for e, f in fresh},
            "curve": [{"gen": 0, "nevals": 4, "time": 1.0, "best": [3.0, 0.05]}],
            "heldout": {"digits": {"values": heldout, "ce": [0.90, 0.90]},
                        "digits-n300": {"values": heldout, "ce": [0.70, 0.70]}}}


def _seed(seed, ours, ngl, thesis):
    top = [("a", 0.08), ("b", 0.06), ("c", 0.04)]
    fresh = [("a", 0.03), ("b", 0.02), ("c", 0.01)]
    return {"seed": seed, "confirm_seeds": 2,
            "arms": {"thesis": _arm(40.0, thesis, top, fresh), "ngl": _arm(100.0, ngl, top, fresh),
                     "ours": _arm(50.0, ours, top, fresh, verdict="better" if seed else "indistinguishable",
                                  confirm_time=10.0)},
            "equal_time": {"seconds": 60.0, "ngl_generation": 4, "ngl_expression": "b",
                           "heldout": {"digits": {"values": ngl, "ce": [0.9, 0.9]},
                                       "digits-n300": {"values": ngl, "ce": [0.7, 0.7]}}}}


@pytest.fixture
def results():
    return [_seed(0, [0.92, 0.94], [0.91, 0.91], [0.90, 0.90]),
            _seed(1, [0.93, 0.93], [0.91, 0.92], [0.92, 0.92]),
            _seed(2, [0.95, 0.93], [0.92, 0.92], [0.90, 0.91])]


def test_heldout_mean_and_the_winners_curse(results):
    arm = results[0]["arms"]["ours"]
    assert heldout_mean(arm["heldout"]) == pytest.approx(0.93)
    assert heldout_mean(arm["heldout"], reference=True) == pytest.approx(0.80)
    measured = curse(arm)
    assert measured["gap"] == pytest.approx(0.04) and measured["rho"] == pytest.approx(1.0)
    arm["heldout"]["digits"]["values"][0] = None
    assert heldout_mean(arm["heldout"]) != heldout_mean(arm["heldout"])  # NaN: a training gave no accuracy


def test_report_pairs_arms_by_seed_with_intervals(tmp_path, results):
    text = write_report(tmp_path, results, "deap-lossgp benchmark --seeds 3", {"python": "3"}).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| 1 | 0.8000"))
    assert row.split("|")[5].strip() == "0.9300" and row.split("|")[6].strip() == "+0.0150"
    # ours − NGL is +0.02, +0.015, +0.02 over the seeds: an interval above 0.
    line = next(line for line in text.splitlines() if line.startswith("- ours − NGL:"))
    assert line.startswith("- ours − NGL: +0.0183 [") and "not distinguishable" not in line
    thesis = next(line for line in text.splitlines() if line.startswith("- thesis − NGL:"))
    assert "not distinguishable" in thesis
    assert "Ours ≥ NGL at ours' wall time on 3 of 3 seed(s) (0, 1, 2)" in text
    assert "| thesis / NGL wall time | 0.400 ± 0.000 | 0.36 small, 0.42 large |" in text
    assert "| ours / NGL wall time (search + confirmation) | 0.600 ± 0.000 | |" in text
    assert "- better: 2 of 3" in text and "- indistinguishable: 1 of 3" in text
    assert (tmp_path / "heldout.png").exists()
    curse_rows = [line for line in text.split("## The winner's curse")[1].splitlines() if "± 0" in line]
    assert len(curse_rows) == len(ARMS) and all("| 0.040 ± 0.000 | 1.000 ± 0.000 |" in r for r in curse_rows)

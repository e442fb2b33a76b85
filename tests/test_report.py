"""The benchmark report from synthetic per-seed results (fast: nothing trains)."""

import json
import statistics

import pytest

from deap_lossgp.app.report import equal_time, time_to_target, write_report

INF = float("inf")


def algorithm(bests, times, nevals, **counts):
    """A per-algorithm result in the current format; ``counts`` override nrejected, ncompleted..."""
    curve = [{"gen": gen, "nevals": n, "nrejected": 0, "ncached": 0, "time": t, "best": list(best),
              "wins_max": best[0], "improvement_max": best[1]}
             for gen, (best, t, n) in enumerate(zip(bests, times, nevals))]
    return {"wall_time": sum(times) + 1.0, "nevals": sum(nevals), "nrejected": 0, "ncached": 0,
            "ncompleted": sum(nevals), "best_fitness": list(bests[-1]), "generation_reached": 0,
            "best_expression": "neg(y_true)", "best_formula": "-y_true", "curve": curve, **counts}


def old_format(algorithm_result):
    """The same result as written before the trainability screen."""
    for field in ("nrejected", "ncompleted"):
        del algorithm_result[field]
    for row in algorithm_result["curve"]:
        del row["nrejected"], row["best"]
    return algorithm_result


def seed(number, ngl, st, **fields):
    return {"seed": number, "population": 8, "generations": 2, "validity": "screened", "ngl": ngl, "sample-tournament": st, **fields}


@pytest.fixture
def results():
    # Through JSON, as run_seed stores them: -inf may arrive as a float or as the string "-inf".
    reached_later = seed(
        0,
        algorithm([(1, 0.01), (2, 0.02), (2, 0.05)], [10, 5, 5], [8, 8, 8], ncompleted=18),
        algorithm([(1, 0.01), (2, 0.05), (3, 0.0)], [10, 2, 3], [8, 3, 3], nrejected=2, ncompleted=8),
    )
    never = seed(
        1,
        algorithm([(0, -INF), (1, 0.03), (1, 0.03)], [10, 10, 10], [8, 8, 8], ncompleted=12),
        algorithm([(0, -INF), (0, -INF), (0, -INF)], [10, 4, 4], [8, 3, 3], nrejected=1, ncompleted=0),
    )
    never["sample-tournament"]["best_fitness"] = [0, "-inf"]
    # Old results' per-generation maxima need not grow; the report makes them a best so far.
    at_start = seed(
        2,
        old_format(algorithm([(2, 0.04), (2, 0.04), (2, 0.04)], [8, 6, 6], [8, 8, 8])),
        old_format(algorithm([(2, 0.04), (1, 0.02), (1, 0.01)], [8, 3, 3], [8, 3, 3], best_fitness=[2, 0.04])),
    )
    del at_start["validity"]
    return json.loads(json.dumps([reached_later, never, at_start]))


def heldout_entry(values):
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values), "values": values}


HELDOUT = {
    "best of eaSampleTournament": {"digits": heldout_entry([0.95, 0.97]), "wine": heldout_entry([0.80, 0.82])},
    "best of eaNGL": {"digits": heldout_entry([0.94, 0.95]), "wine": heldout_entry([0.85, 0.87])},
    "ce": {"digits": heldout_entry([0.90, 0.92]), "wine": heldout_entry([0.84, 0.86])},
    "baikal": {"digits": heldout_entry([0.93, 0.95]), "wine": heldout_entry([0.70, 0.72])},
}


def table_rows(text, heading):
    """The cells of the rows of the first table after ``heading``, keyed by their first cell."""
    lines = text.splitlines()
    start = lines.index(heading)
    header = next(i for i in range(start, len(lines)) if lines[i].startswith("| "))
    rows = {}
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture
def report(tmp_path, results):
    path = write_report(tmp_path, results, HELDOUT, "deap-lossgp benchmark --seeds 3", {"python": "3"})
    return path.read_text()


def test_time_to_target_table(report):
    rows = table_rows(report, "## Time to NGL's final best")
    # target, ours' final best, generation, its share, wall time, its share, trainings, its share
    assert rows["0"] == ["(2, 0.0500)", "(3, 0.0000)", "1", "0.500", "12.0", "0.600", "11", "0.458"]
    assert rows["1"] == ["(1, 0.0300)", "(0, -inf)"] + ["never"] * 6
    assert rows["2"] == ["(2, 0.0400)", "(2, 0.0400)", "0", "0.000", "8.0", "0.400", "8", "0.333"]
    # Median of 0.6, +inf, 0.4.
    assert ("Median share of NGL's wall time that ours needed to reach the target: 0.600 "
            "(never reached on 1 of 3 seed(s), counted as +inf: seed 1).") in report
    assert "Ours' final best ≥ NGL's final best on 2 of 3 seed(s); ours ends worse on seed 1." in report
    assert "Reached at generation 0 on seed 2: the initial population" in report


def test_time_to_target_never_reached(results):
    reached = time_to_target(results[1])
    assert reached["target"] == (1.0, 0.03)
    assert reached["generation"] is None and reached["time_share"] is None
    assert (reached["ngl_generations"], reached["ngl_time"], reached["ngl_trainings"]) == (2, 30, 24)


def test_per_seed_table_shows_rejections_completed_shares_and_nothing_trained(report):
    rows = table_rows(report, "## Per seed")
    # After seed: time NGL, time ours, time ratio, evals NGL, evals ours, eval ratio, cache hits, then
    # rejected, completed NGL, completed ours, best NGL, best ours.
    assert rows["0"][7:12] == ["0 / 2", "0.750 (18 of 24)", "0.571 (8 of 14)", "(2, 0.0500)", "(3, 0.0000)"]
    assert rows["1"][7:12] == ["0 / 1", "0.500 (12 of 24)", "0.000 (0 of 14)", "(1, 0.0300)",
                               "(0, -inf) (nothing trained)"]
    assert rows["2"][7:12] == ["0 / 0", "n/a", "n/a", "(2, 0.0400)", "(2, 0.0400)"]
    assert ("Nothing completed training (marked `(nothing trained)`): NGL (eaNGL) on 0 of 3 seed(s); "
            "ours (eaSampleTournament) on 1 of 3 seed(s) (seed 1). Unknown for seed 2") in report
    aggregate = table_rows(report, "## Aggregated")
    assert aggregate["share of trainings that completed"][:2] == ["0.625 ± 0.18", "0.2857 ± 0.4"]
    assert aggregate["children rejected by the screen"][:2] == ["0 ± 0", "1 ± 1"]
    assert aggregate["best average improvement"][1] == "0.02 ± 0.028 (-inf on 1 seed(s), left out)"


def test_title_names_the_validity_mode(report):
    assert report.splitlines()[0].endswith("against eaNGL, validity: screened, unknown")


def test_heldout_best_reference_row_and_comparisons(report):
    rows = table_rows(report, "## Held-out test accuracy")
    assert rows["best reference loss"] == ["0.94 ± 0.014 (baikal)", "0.85 ± 0.014 (ce)"]
    assert rows["ce"] == ["0.91 ± 0.014", "0.85 ± 0.014"]
    assert ("- best of eaSampleTournament: ahead of the best reference loss by more than one std on 1 of 2 task(s) "
            "(digits), behind it on 1 (wine); ahead of ce by more than one std on 1 of 2 task(s) (digits), "
            "behind it on 1 (wine).") in report
    assert ("- best of eaNGL: ahead of the best reference loss by more than one std on 0 of 2 task(s), "
            "behind it on 0; ahead of ce by more than one std on 1 of 2 task(s) (digits), behind it on 0.") in report


def test_plots_are_written(tmp_path, report):
    for name in ("best_per_generation.png", "best_per_evaluation.png", "best_per_time.png", "time_to_target.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name


def test_report_without_heldout_table(tmp_path, results):
    text = write_report(tmp_path, results[:1], None, "command", {}).read_text()
    assert "Held-out" not in text and "| 0 |" in text


def test_equal_wall_time_table(report, results):
    rows = table_rows(report, "## At equal wall time")
    # ours' wall time, ours' final best, NGL's last generation within it, NGL's best then
    assert rows["0"] == ["15.0", "(3, 0.0000)", "1", "(2, 0.0200)"]
    assert rows["1"] == ["18.0", "(0, -inf)", "0", "(0, -inf)"]
    assert rows["2"] == ["14.0", "(2, 0.0400)", "1", "(2, 0.0400)"]
    assert "Ours at least as good as NGL at the same wall time on 3 of 3 seed(s) (seeds 0, 1, 2)." in report
    shorter = dict(results[0], **{"sample-tournament": dict(results[0]["sample-tournament"])})
    shorter["sample-tournament"]["curve"] = shorter["sample-tournament"]["curve"][:1]
    assert equal_time(shorter)["ngl_generation"] == 0  # NGL's generation 0 ended at 10 s, ours at 10 s

"""Scoring against the cross-entropy baseline (thesis Algorithm 3 and §5.2)."""

import math

import pytest

from deap_lossgp.fitness.scoring import AVERAGING, METRICS, WORST_FITNESS, aggregate, improvement, score

BASELINE = {"val_loss": 0.5, "val_accuracy": 0.8, "val_ce": 0.5}


def _record(loss, accuracy, ce):
    return {"val_loss": loss, "val_accuracy": accuracy, "val_ce": ce}


def test_relative_improvements_per_metric():
    candidate = _record(0.4, 0.84, 0.6)
    assert improvement(candidate, BASELINE, "loss") == pytest.approx(0.2)
    assert improvement(candidate, BASELINE, "accuracy") == pytest.approx(0.05)
    assert improvement(candidate, BASELINE, "ce") == pytest.approx(-0.2)
    assert improvement(candidate, BASELINE, "weighted", weight=0.75) == pytest.approx(0.75 * 0.05 + 0.25 * 0.2)
    assert improvement(candidate, BASELINE, "weighted", weight=1.0) == pytest.approx(0.05)
    # A negative loss value is not comparable with cross-entropy's: no credit by its sign.
    assert math.isnan(improvement(_record(-0.5, 0.8, 0.5), BASELINE, "loss"))
    with pytest.raises(ValueError, match="unknown metric"):
        improvement(candidate, BASELINE, "f1")


def test_thesis_averaging_uses_the_wins_or_all_when_none():
    assert aggregate([0.1, -0.3, 0.2]) == (2.0, pytest.approx(0.15))
    assert aggregate([-0.1, -0.3, -0.2]) == (0.0, pytest.approx(-0.2))
    assert aggregate([0.1, -0.3, 0.2], averaging="all") == (2.0, pytest.approx(0.0))
    # A tie is no win.
    assert aggregate([0.0, 0.0, 0.0]) == (0.0, 0.0)
    assert aggregate([0.0, -0.2]) == (0.0, pytest.approx(-0.1))
    assert aggregate([0.0, 0.3]) == (1.0, pytest.approx(0.3))


def test_fitness_ranks_wins_first_like_deap():
    from deap import base, creator

    creator.create("ScoringTestFitness", base.Fitness, weights=(1.0, 1.0))
    try:
        two_small = creator.ScoringTestFitness(aggregate([0.01, 0.01, -0.5]))
        one_big = creator.ScoringTestFitness(aggregate([0.9, -0.1, -0.1]))
        worst = creator.ScoringTestFitness(WORST_FITNESS)
        assert two_small > one_big > worst
    finally:
        del creator.ScoringTestFitness


def test_non_finite_or_missing_improvements_give_the_worst_fitness():
    assert aggregate([0.1, math.nan]) == WORST_FITNESS
    assert aggregate([math.inf]) == WORST_FITNESS
    assert aggregate([]) == WORST_FITNESS
    assert WORST_FITNESS == (0.0, -math.inf)
    with pytest.raises(ValueError, match="unknown averaging"):
        aggregate([0.1], averaging="median")


def test_score_combines_tasks():
    candidates = [_record(0.4, 0.84, 0.45), _record(0.6, 0.76, 0.55)]
    baselines = [BASELINE, BASELINE]
    fitness, improvements = score(candidates, baselines, metric="accuracy")
    assert improvements == [pytest.approx(0.05), pytest.approx(-0.05)]
    assert fitness == (1.0, pytest.approx(0.05))
    fitness, _ = score(candidates, baselines, metric="ce", averaging="all")
    assert fitness == (1.0, pytest.approx(0.0))
    with pytest.raises(ValueError, match="2 candidate records but 1"):
        score(candidates, baselines[:1])


def test_tiny_constant_times_ce_wins_only_under_the_loss_metric():
    # Thesis §4.3: the loss value is 1e-4 x cross-entropy's, the model learns little.
    tiny = _record(0.5e-4 * 4.0, 0.3, 2.0)
    assert score([tiny] * 3, [BASELINE] * 3, metric="loss")[0][0] == 3.0
    for metric in ("accuracy", "ce"):
        assert score([tiny] * 3, [BASELINE] * 3, metric=metric)[0][0] == 0.0


def test_names():
    assert set(METRICS) == {"loss", "accuracy", "ce", "weighted"}
    assert set(AVERAGING) == {"thesis", "all"}

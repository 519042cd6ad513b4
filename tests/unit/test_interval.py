"""The P90: calibrated on one part of the rows, it covers 90 % of rows it never saw, and a
wider spread gives a wider interval."""

import numpy as np
import pytest

from models.confidence import confidence_from_spread
from models.interval import (
    Interval,
    calibrate_scale,
    coverage,
    p90,
    scale_from_metadata,
    spread_of,
    tracked_coverage,
    tracking_deltas,
    tracking_factor,
    tracking_limit,
)


def test_spread_of_inverts_the_confidence_formula_above_its_floor():
    spread = np.array([0.1, 0.5, 5.0, 40.0])
    assert spread_of(confidence_from_spread(spread)) == pytest.approx(spread)
    assert spread_of(np.array([1.0, 0.99999])).tolist() == [0.1, 0.1]  # the floor


def test_rows_a_predictor_is_sure_of_do_not_blow_the_scale_up():
    rng = np.random.default_rng(8)
    y = rng.normal(0, 2, 400)
    confidence = np.where(np.arange(400) < 20, 1.0, confidence_from_spread(np.full(400, 2.0)))
    interval = Interval.fitted(y, np.zeros(400), confidence)
    assert interval.scale < 40  # 20 rows of spread 0 would have made it thousands
    assert interval.coverage > 0.8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_calibrated_scale_covers_90_percent_of_unseen_heteroscedastic_rows(seed):
    rng = np.random.default_rng(seed)
    n = 20_000
    spread = rng.uniform(0.5, 10.0, n)  # each row's true noise scale, known to the model
    y = 3.0 + spread * rng.standard_normal(n)
    confidence = confidence_from_spread(spread)
    interval = Interval.fitted(y, np.full(n, 3.0), confidence)
    assert interval.scale == pytest.approx(1.2816, abs=0.06)  # the normal's 0.9 quantile
    assert 0.88 <= interval.coverage <= 0.92
    assert (interval.calibration_rows, interval.evaluation_rows) == (10_000, 10_000)
    upper = p90(np.full(n, 3.0), confidence, interval.scale)
    wide, narrow = spread > 8, spread < 2
    assert (upper[wide] - 3.0).mean() > 4 * (upper[narrow] - 3.0).mean()


def test_calibration_uses_the_finite_sample_rank():
    y = np.arange(1.0, 20.0)  # 19 rows: rank ceil(20 * 0.9) = 18
    assert calibrate_scale(y, np.zeros(19), np.ones(19)) == 18.0
    assert coverage(y, np.full(19, 18.0)) == pytest.approx(18 / 19)


def test_too_few_rows_and_bad_metadata_are_refused_or_ignored():
    with pytest.raises(ValueError, match="at least 20 rows"):
        Interval.fitted(np.zeros(10), np.zeros(10), np.full(10, 0.5))
    assert scale_from_metadata({"p90": {"model": {"scale": 1.3}}}, "model") == 1.3
    for metadata in (
        {},
        {"p90": []},
        {"p90": {"model": {"scale": "x"}}},
        {"p90": {"model": {"scale": float("nan")}}},
    ):
        assert scale_from_metadata(metadata, "model") is None


def test_the_chance_of_exceeding_a_delay_matches_the_calibrated_rows():
    from models.interval import SCORE_LEVELS, exceedance

    rng = np.random.default_rng(3)
    n = 20_000
    spread = rng.uniform(1.0, 6.0, n)
    y = 4.0 + spread * rng.standard_normal(n)
    interval = Interval.fitted(y, np.full(n, 4.0), confidence_from_spread(spread))
    assert len(interval.quantiles) == len(SCORE_LEVELS) == 19
    assert interval.quantiles[9] == pytest.approx(0.0, abs=0.05)  # the median excess
    one = confidence_from_spread(np.array([5.0]))
    for minutes, expected in ((4.0, 0.5), (4.0 + 5 * 1.2816, 0.1), (4.0 - 5 * 1.2816, 0.9)):
        chance = exceedance(np.array([4.0]), one, minutes, interval.quantiles)[0]
        assert chance == pytest.approx(expected, abs=0.02), minutes


def drifting(seed: int, n: int, late_from: float) -> tuple[np.ndarray, ...]:
    """Rows in time order whose noise doubles from ``late_from`` (a share of the rows) on, with
    a scale calibrated on the calm first tenth; predictions 6 hours ahead, outcomes at pickup."""
    rng = np.random.default_rng(seed)
    spread = rng.uniform(1.0, 4.0, n)
    noise = np.where(np.arange(n) < late_from * n, 1.0, 2.0)
    y = rng.normal(0, 1, n) * spread * noise
    delay = np.zeros(n)
    calm = n // 10
    scale = calibrate_scale(y[:calm], delay[:calm], spread[:calm])
    pickup = np.arange(n) * 60.0
    return y, delay, spread, scale, pickup - 6 * 3600, pickup + np.maximum(y, 0) * 60


def test_online_tracking_brings_a_drifted_p90_back_to_90_percent():
    y, delay, spread, scale, predicted_at, observed_at = drifting(1, 40_000, late_from=0.3)
    static = coverage(y, delay + scale * spread)
    tracked = tracked_coverage(y, delay, spread, scale, predicted_at, observed_at)
    assert static < 0.8  # the noise doubled: the calibrated P90 misses far more than 1 in 10
    assert 0.88 <= tracked <= 0.92
    # Without drift it stays where calibration put it.
    y, delay, spread, scale, predicted_at, observed_at = drifting(2, 40_000, late_from=1.0)
    assert abs(tracked_coverage(y, delay, spread, scale, predicted_at, observed_at) - 0.9) < 0.02
    # Rate 0 is the calibrated P90.
    assert tracked_coverage(y, delay, spread, scale, predicted_at, observed_at, rate=0) == (
        coverage(y, delay + scale * spread)
    )


def test_the_tracked_factor_is_bounded_and_deltas_count_only_outcomes_with_a_p90():
    assert tracking_factor(-(10**9)) == pytest.approx(1 / 4)
    assert tracking_factor(float("nan")) == 1.0
    assert tracking_factor(50.0, rate=0) == 1.0
    assert tracking_limit(0.005) == pytest.approx(277.2588722)
    deltas = tracking_deltas(["m", "m", "m", "h"], [False, False, None, True])
    assert deltas == {"m": 1.8, "h": -0.1}


def test_an_outcome_known_before_its_prediction_is_judged_against_its_own_p90():
    # Pickups 15 minutes early on bookings made 5 minutes ahead: each outcome is clamped to
    # its prediction's time, and must still meet the P90 served for it.
    y = np.array([-15.0, -15.0, 30.0, -15.0])
    delay, spread = np.zeros(4), np.ones(4)
    pickup = np.arange(4) * 3600.0
    predicted_at, observed_at = pickup - 300, pickup + y * 60
    assert (observed_at[[0, 1, 3]] < predicted_at[[0, 1, 3]]).all()
    # Scale 1: the P90 is 1 minute; three early pickups within, one late beyond.
    assert tracked_coverage(y, delay, spread, 1.0, predicted_at, observed_at) == 0.75

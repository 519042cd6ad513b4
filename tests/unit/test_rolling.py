import json
import random
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from models.rolling import (
    BucketKey,
    MetricSums,
    Series,
    bucketize,
    by_arm,
    daily,
    hour_start,
    merge_buckets,
    merge_window,
)
from schemas.outcome import Outcome
from schemas.prediction import Arm

NOW = datetime(2026, 3, 12, 14, 37, tzinfo=UTC)


def outcome(
    i: int,
    arm: Arm,
    version: str,
    observed_at: datetime,
    predicted: float,
    actual: float,
    p90: float | None = None,
):
    return Outcome(
        booking_id=f"B-{i:06d}",
        arm=arm,
        served_by=arm,
        model_version=version,
        bucket=10.0 if arm is Arm.ML else 90.0,
        ml_traffic_percentage=50.0,
        predicted_delay_minutes=predicted,
        predicted_p90_minutes=p90,
        actual_delay_minutes=actual,
        error=predicted - actual,
        abs_error=abs(predicted - actual),
        scheduled_pickup_at=observed_at - timedelta(minutes=actual),
        predicted_at=observed_at - timedelta(hours=2),
        observed_at=observed_at,
        replay=observed_at < NOW - timedelta(days=30),
    )


def random_outcomes(n: int, seed: int, start: datetime = NOW - timedelta(days=3)):
    rng = np.random.default_rng(seed)
    arms = [(Arm.ML, "forest-7"), (Arm.ML, "forest-8"), (Arm.HEURISTIC, "heuristic-default")]
    choice = rng.integers(0, len(arms), n)
    offsets = np.sort(rng.uniform(0, 3 * 86_400, n))
    actual = np.round(rng.gamma(2.0, 4.0, n) - 3.0, 1)
    predicted = actual + rng.standard_t(4, n) * 3.0 + rng.normal(0.3, 0.1)
    # A P90 on most ML predictions (forest-8 has none), some of them exactly the actual.
    p90 = np.where(rng.uniform(size=n) < 0.1, actual, np.round(predicted + 4.0, 1))
    has_p90 = [arms[c] == (Arm.ML, "forest-7") for c in choice.tolist()]
    return [
        outcome(i, *arms[c], start + timedelta(seconds=s), p, a, q if has else None)
        for i, (c, s, p, a, q, has) in enumerate(
            zip(
                choice.tolist(),
                offsets.tolist(),
                predicted.tolist(),
                actual.tolist(),
                p90.tolist(),
                has_p90,
                strict=True,
            )
        )
    ]


def test_window_metrics_equal_an_offline_computation_within_1e_9():
    outcomes = random_outcomes(5_000, seed=1)
    window = merge_window(bucketize(outcomes), NOW - timedelta(days=4), NOW + timedelta(days=1))
    assert set(window) == {
        Series(Arm.ML, "forest-7"),
        Series(Arm.ML, "forest-8"),
        Series(Arm.HEURISTIC, "heuristic-default"),
    }
    for series, sums in window.items():
        mine = [o for o in outcomes if (o.arm, o.model_version) == series]
        y = np.array([o.actual_delay_minutes for o in mine])
        p = np.array([o.predicted_delay_minutes for o in mine])
        assert sums.n == len(mine)
        assert sums.mae == pytest.approx(mean_absolute_error(y, p), abs=1e-9)
        assert sums.rmse == pytest.approx(np.sqrt(mean_squared_error(y, p)), abs=1e-9)
        assert sums.r2 == pytest.approx(r2_score(y, p), abs=1e-9)
        assert sums.bias == pytest.approx(np.mean(p - y), abs=1e-9)
        assert sums.underestimate_share == pytest.approx(np.mean(y - p > 5), abs=1e-12)
        assert sums.n_underestimated == sum(o.underestimated for o in mine)
        with_p90 = [o for o in mine if o.predicted_p90_minutes is not None]
        covered = sum(o.actual_delay_minutes <= o.predicted_p90_minutes for o in with_p90)
        assert (sums.p90_n, sums.p90_covered) == (len(with_p90), covered)
        assert sums.p90_coverage == (covered / len(with_p90) if with_p90 else None)
    assert window[Series(Arm.ML, "forest-7")].p90_n > 1000
    assert window[Series(Arm.ML, "forest-8")].p90_coverage is None


def test_p90_coverage_counts_the_outcomes_with_a_p90_and_those_whose_actual_stayed_within_it():
    at = NOW
    outcomes = [
        outcome(1, Arm.ML, "m", at, predicted=5.0, actual=9.0, p90=12.0),  # within
        outcome(2, Arm.ML, "m", at, predicted=5.0, actual=12.0, p90=12.0),  # at it: within
        outcome(3, Arm.ML, "m", at, predicted=5.0, actual=12.5, p90=12.0),  # beyond
        outcome(4, Arm.ML, "m", at, predicted=5.0, actual=40.0),  # no P90: not counted
    ]
    sums = MetricSums.from_outcomes(outcomes)
    assert (sums.n, sums.p90_n, sums.p90_covered) == (4, 3, 2)
    assert sums.p90_coverage == 2 / 3
    assert [o.within_p90 for o in outcomes] == [True, True, False, None]
    (bucket,) = bucketize(outcomes).values()
    assert bucket == sums
    assert sums.summary()["p90_n"] == 3 and sums.summary()["p90_coverage"] == 2 / 3
    assert MetricSums.from_outcomes(outcomes[3:]).p90_coverage is None
    merged = sums + MetricSums.from_outcomes([outcome(5, Arm.ML, "m", at, 1.0, 1.0, p90=0.5)])
    assert (merged.p90_n, merged.p90_covered, merged.p90_coverage) == (4, 2, 0.5)


def test_merging_in_any_order_or_grouping_gives_exactly_the_same_result():
    sums = list(bucketize(random_outcomes(3_000, seed=2)).values())
    reference = MetricSums.merge_all(sums)
    rng = random.Random(3)
    for _ in range(20):
        shuffled = sums[:]
        rng.shuffle(shuffled)
        cut = sorted(rng.sample(range(1, len(shuffled)), 5))
        groups = [shuffled[a:b] for a, b in zip([0, *cut], [*cut, len(shuffled)], strict=True)]
        regrouped = MetricSums.merge_all(MetricSums.merge_all(g) for g in reversed(groups))
        assert regrouped == reference  # exact, not approximately
        assert regrouped.mae == reference.mae and regrouped.r2 == reference.r2


def test_batches_bucketized_separately_merge_to_the_buckets_of_the_whole():
    outcomes = random_outcomes(2_000, seed=4)
    whole = bucketize(outcomes)
    merged: dict[BucketKey, MetricSums] = {}
    for i in range(0, len(outcomes), 137):
        merged = merge_buckets(merged, bucketize(outcomes[i : i + 137]))
    assert merged == whole


def test_a_replay_of_old_data_lands_in_its_own_days():
    last_year = datetime(2025, 3, 12, 23, 30, tzinfo=UTC)
    old = [
        outcome(100_000 + i, Arm.ML, "forest-7", last_year + timedelta(minutes=i), 10.0, 7.0)
        for i in range(60)
    ]  # 30 on 12 March 2025 and 30 on 13 March 2025 (UTC)
    recent = random_outcomes(500, seed=5)
    days = daily(bucketize(recent + old))
    assert days[date(2025, 3, 12)][Series(Arm.ML, "forest-7")].n == 30
    assert days[date(2025, 3, 13)][Series(Arm.ML, "forest-7")].n == 30
    assert days[date(2025, 3, 13)][Series(Arm.ML, "forest-7")].mae == 3.0
    assert min(days) == date(2025, 3, 12)
    this_week = merge_window(bucketize(recent + old), NOW - timedelta(days=7), NOW)
    assert sum(s.n for s in this_week.values()) == sum(o.observed_at < NOW for o in recent)


def test_days_are_utc_days_of_the_observation():
    cet = datetime(2026, 3, 13, 0, 30, tzinfo=UTC).astimezone()  # any offset: UTC decides
    late = outcome(1, Arm.HEURISTIC, "h", datetime(2026, 3, 12, 23, 59, tzinfo=UTC), 1.0, 1.0)
    early = outcome(2, Arm.HEURISTIC, "h", cet, 1.0, 1.0)
    days = daily(bucketize([late, early]))
    assert sorted(days) == [date(2026, 3, 12), date(2026, 3, 13)]


def test_merge_window_takes_the_hours_in_the_half_open_interval():
    at = datetime(2026, 3, 12, 10, 0, tzinfo=UTC)
    outcomes = [
        outcome(i, Arm.ML, "m", at + timedelta(minutes=30 + 60 * i), 5.0, 4.0) for i in range(5)
    ]  # one outcome in each of the hours 10:00 … 14:00
    buckets = bucketize(outcomes)
    window = merge_window(buckets, at + timedelta(hours=1), at + timedelta(hours=3))
    assert window[Series(Arm.ML, "m")].n == 2  # the 11:00 and 12:00 buckets
    assert merge_window(buckets, at + timedelta(minutes=30), at + timedelta(hours=1)) == {}


def test_a_redelivered_outcome_is_counted_once():
    o = outcome(7, Arm.ML, "m", NOW, 5.0, 12.0)
    (sums,) = bucketize([o, o, o]).values()
    assert sums.n == 1 and sums.n_underestimated == 1


def test_hour_start_is_the_utc_hour_and_needs_an_aware_datetime():
    local = datetime(2026, 3, 12, 8, 45, 12, tzinfo=UTC).astimezone()
    assert hour_start(local) == datetime(2026, 3, 12, 8, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        hour_start(datetime(2026, 3, 12, 8, 45))


def test_undefined_metrics_are_none():
    zero = MetricSums.zero()
    assert (zero.mae, zero.rmse, zero.r2, zero.bias, zero.underestimate_share) == (None,) * 5
    constant = MetricSums.from_arrays(np.array([0.3, -0.1, 0.7]), np.full(3, 7.3))
    assert constant.r2 is None and constant.mae == pytest.approx(1.1 / 3)
    one = MetricSums.from_arrays(np.array([1.0]), np.array([2.0]))
    assert one.r2 is None and one.rmse == 1.0


def test_sums_are_exact_rationals_of_the_float_values():
    values = np.array([0.1, 0.2, 0.3, 1e-17, -0.6])
    sums = MetricSums.from_arrays(values, values)
    assert sums.sum_error == sum((Fraction(v) for v in values.tolist()), Fraction(0))
    assert sums.sum_sq_error == sum((Fraction(v) ** 2 for v in values.tolist()), Fraction(0))


def test_to_dict_is_json_and_round_trips_exactly():
    sums = MetricSums.merge_all(bucketize(random_outcomes(300, seed=6)).values())
    data = json.loads(json.dumps(sums.to_dict()))
    assert MetricSums.from_dict(data) == sums
    assert json.dumps(sums.summary(), allow_nan=False)
    assert sums.p90_n > 0


def test_a_dict_saved_before_p90_counts_existed_reads_as_no_p90():
    data = MetricSums.from_arrays(np.array([1.0, -6.0]), np.array([3.0, 8.0])).to_dict()
    del data["p90_n"], data["p90_covered"]
    old = MetricSums.from_dict(data)
    assert (old.n, old.p90_n, old.p90_covered, old.p90_coverage) == (2, 0, 0, None)


def test_by_arm_merges_model_versions():
    window = merge_window(bucketize(random_outcomes(1_000, seed=7)), NOW - timedelta(days=9), NOW)
    arms = by_arm(window)
    assert arms[Arm.ML] == window[Series(Arm.ML, "forest-7")] + window[Series(Arm.ML, "forest-8")]


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        MetricSums.from_arrays(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        MetricSums.from_arrays(np.array([1.0]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        MetricSums(1, Fraction(0), Fraction(0), Fraction(0), Fraction(0), Fraction(0), 2)
    with pytest.raises(ValueError):
        MetricSums(2, Fraction(0), Fraction(0), Fraction(0), Fraction(0), Fraction(0), 0, 1, 2)
    with pytest.raises(ValueError):
        MetricSums(1, Fraction(0), Fraction(0), Fraction(0), Fraction(0), Fraction(0), 0, 2, 0)
    with pytest.raises(ValueError):
        MetricSums.from_arrays(np.array([1.0]), np.array([1.0]), np.array([np.inf]))
    with pytest.raises(ValueError):
        MetricSums.from_arrays(np.array([1.0]), np.array([1.0]), np.array([1.0, 2.0]))

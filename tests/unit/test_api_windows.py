"""Event-time windows of the API and the metrics it computes from hourly bucket rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pytest

from models.rolling import MetricSums
from streams.api.windows import (
    arm_metrics,
    bucket_sums,
    daily_series,
    day_window,
    hour_window,
    hourly_series,
)

T = datetime(2026, 11, 23, 7, tzinfo=UTC)
WALL = datetime(2031, 5, 5, 12, 34, tzinfo=UTC)


def bucket_row(
    hour: datetime,
    arm: str,
    errors: list[float],
    actuals: list[float],
    p90s: list[float] | None = None,
) -> dict:
    """A metric_buckets row; ``p90s`` NaN where an outcome had no P90."""
    sums = MetricSums.from_arrays(
        np.array(errors), np.array(actuals), None if p90s is None else np.array(p90s)
    )
    return {
        "hour_start": hour,
        "arm": arm,
        "model_version": f"{arm}-v",
        "replay": False,
        "n": sums.n,
        "sum_error": float(sums.sum_error),
        "sum_abs_error": float(sums.sum_abs_error),
        "sum_sq_error": float(sums.sum_sq_error),
        "sum_actual": float(sums.sum_actual),
        "sum_actual_sq": float(sums.sum_actual_sq),
        "n_underestimated": sums.n_underestimated,
        "p90_n": sums.p90_n,
        "p90_covered": sums.p90_covered,
    }


def test_an_hour_window_ends_with_the_newest_live_hour_not_the_wall_clock():
    window = hour_window(T, 3, now=WALL)
    assert (window.start, window.end) == (T - timedelta(hours=2), T + timedelta(hours=1))


def test_an_hour_window_takes_the_newest_hour_in_any_offset_to_utc():
    window = hour_window(
        datetime(2026, 11, 23, 8, tzinfo=timezone(timedelta(hours=1))), 1, now=WALL
    )
    assert (window.start, window.end) == (T, T + timedelta(hours=1))


def test_without_any_live_outcome_the_window_ends_with_the_current_hour():
    window = hour_window(None, 24, now=WALL)
    assert window.end == datetime(2031, 5, 5, 13, tzinfo=UTC)
    assert window.start == window.end - timedelta(hours=24)


def test_a_day_window_starts_at_midnight_utc_days_minus_one_days_before_the_newest_day():
    window = day_window(T, 7, now=WALL)
    assert window.start == datetime(2026, 11, 17, tzinfo=UTC)
    assert window.end == T + timedelta(hours=1)


def test_hourly_series_has_every_hour_and_arm_oldest_first_with_exact_merged_metrics():
    rows = [
        bucket_row(T, "ml", [1.0, -2.0], [10.0, 12.0]),
        # Two model versions of the same arm and hour merge.
        {**bucket_row(T, "ml", [-7.0], [20.0]), "model_version": "ml-w"},
        bucket_row(T - timedelta(hours=2), "heuristic", [3.0], [4.0]),
    ]
    series = hourly_series(rows, hour_window(T, 3, now=WALL))
    assert [(s["hour_start"], s["arm"]) for s in series] == [
        (T - timedelta(hours=h), arm) for h in (2, 1, 0) for arm in ("ml", "heuristic")
    ]
    newest_ml = series[4]
    errors, actuals = np.array([1.0, -2.0, -7.0]), np.array([10.0, 12.0, 20.0])
    assert newest_ml["n"] == 3
    assert newest_ml["mae"] == pytest.approx(np.mean(np.abs(errors)), abs=1e-12)
    assert newest_ml["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)), abs=1e-12)
    assert newest_ml["bias"] == pytest.approx(np.mean(errors), abs=1e-12)
    r2 = 1 - np.sum(errors**2) / np.sum((actuals - actuals.mean()) ** 2)
    assert newest_ml["r2"] == pytest.approx(r2, abs=1e-12)
    assert newest_ml["underestimate_share"] == pytest.approx(1 / 3)
    empty = series[2]
    assert empty == {
        "hour_start": T - timedelta(hours=1),
        "arm": "ml",
        "n": 0,
        "mae": None,
        "rmse": None,
        "r2": None,
        "bias": None,
        "underestimate_share": None,
        "p90_n": 0,
        "p90_coverage": None,
    }
    assert series[1]["n"] == 1 and series[1]["r2"] is None  # one outcome: R² undefined


def test_daily_series_merges_the_hours_of_each_utc_day():
    rows = [
        bucket_row(T, "heuristic", [2.0], [5.0]),
        bucket_row(T - timedelta(hours=1), "heuristic", [-4.0], [9.0]),
        bucket_row(T - timedelta(days=1), "ml", [1.0], [3.0]),
    ]
    series = daily_series(rows, day_window(T, 2, now=WALL))
    assert [(s["day"], s["arm"], s["n"]) for s in series] == [
        (date(2026, 11, 22), "ml", 1),
        (date(2026, 11, 22), "heuristic", 0),
        (date(2026, 11, 23), "ml", 0),
        (date(2026, 11, 23), "heuristic", 2),
    ]
    assert series[3]["mae"] == 3.0 and series[3]["bias"] == -1.0


def test_p90_coverage_is_served_per_hour_and_arm_and_merged_over_the_window():
    nan = float("nan")
    rows = [
        # 3 with a P90 (actual 10 ≤ 10, 12 > 11, 20 ≤ 25), 1 without.
        bucket_row(
            T, "ml", [0.0, 0.0, 0.0, 0.0], [10.0, 12.0, 20.0, 30.0], [10.0, 11.0, 25.0, nan]
        ),
        {**bucket_row(T, "ml", [0.0], [5.0], [4.0]), "model_version": "ml-w"},  # 5 > 4
        bucket_row(T - timedelta(hours=1), "ml", [0.0, 0.0], [1.0, 2.0], [3.0, 3.0]),
        bucket_row(T, "heuristic", [1.0], [3.0]),  # no P90 at all
    ]
    series = hourly_series(rows, hour_window(T, 2, now=WALL))
    coverage = {(s["hour_start"], s["arm"]): (s["p90_n"], s["p90_coverage"]) for s in series}
    assert coverage == {
        (T - timedelta(hours=1), "ml"): (2, 1.0),
        (T - timedelta(hours=1), "heuristic"): (0, None),
        (T, "ml"): (4, 0.5),  # two model versions merged: 2 of 4 within
        (T, "heuristic"): (0, None),
    }
    ml = bucket_sums(rows[0]) + bucket_sums(rows[1]) + bucket_sums(rows[2])
    window = arm_metrics({"ml": ml, "heuristic": bucket_sums(rows[3])})
    assert (window["ml"]["p90_n"], window["ml"]["p90_coverage"]) == (6, 4 / 6)
    assert (window["heuristic"]["p90_n"], window["heuristic"]["p90_coverage"]) == (0, None)
    assert window["ml"]["n"] == 7

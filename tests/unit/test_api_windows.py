"""Event-time windows (one meaning on every screen) and the metrics computed from bucket rows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import numpy as np
import pytest

from models.rolling import MetricSums
from streams.outcomes.windows import (
    MIN_POINT_OUTCOMES,
    WINDOWS,
    Window,
    arm_metrics,
    bucket_sums,
    daily_series,
    day_window,
    event_window,
    period_series,
    series_step,
    span_window,
    window_totals,
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
    """A bucket row of ``hour`` (also as ``period_start``, as the period sums are keyed); ``p90s``
    NaN where an outcome had no P90."""
    sums = MetricSums.from_arrays(
        np.array(errors), np.array(actuals), None if p90s is None else np.array(p90s)
    )
    return {
        "hour_start": hour,
        "period_start": hour,
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


NEWEST = datetime(2026, 11, 23, 7, 42, 31, tzinfo=UTC)


def window(name: str, newest: datetime | None = NEWEST, oldest: datetime | None = None) -> Window:
    return event_window(name, newest_minute=newest, oldest_minute=oldest, now=WALL)


@pytest.mark.parametrize("name", ["15m", "1h", "24h", "7d"])
def test_a_named_window_ends_with_the_newest_live_minute_not_the_wall_clock(name):
    w = window(name)
    end = datetime(2026, 11, 23, 7, 43, tzinfo=UTC)
    assert (w.start, w.end, w.name) == (end - WINDOWS[name], end, name)


def test_the_window_takes_the_newest_minute_in_any_offset_to_utc():
    w = window("15m", newest=datetime(2026, 11, 23, 8, 42, 59, tzinfo=timezone(timedelta(hours=1))))
    assert w.end == datetime(2026, 11, 23, 7, 43, tzinfo=UTC)


def test_since_start_runs_from_the_oldest_live_minute():
    w = window("all", oldest=datetime(2026, 11, 20, 3, 15, 59, tzinfo=UTC))
    assert (w.start, w.end) == (
        datetime(2026, 11, 20, 3, 15, tzinfo=UTC),
        datetime(2026, 11, 23, 7, 43, tzinfo=UTC),
    )
    assert w.step == timedelta(hours=1) and w.label == "since start"
    assert window("all", newest=None).end - window("all", newest=None).start == timedelta(minutes=1)


def test_without_any_live_outcome_the_window_ends_with_the_current_minute():
    w = window("24h", newest=None)
    assert w.end == datetime(2031, 5, 5, 12, 35, tzinfo=UTC)
    assert w.start == w.end - timedelta(hours=24)


def test_an_unknown_window_is_refused_with_the_names_expected():
    with pytest.raises(ValueError, match="expected one of 15m, 1h, 24h, 7d, all"):
        window("2h")


def test_the_last_hours_are_the_named_window_of_the_same_span():
    assert span_window(timedelta(hours=24), newest_minute=NEWEST, now=WALL) == window("24h")
    custom = span_window(timedelta(hours=3), newest_minute=NEWEST, now=WALL)
    assert custom.name == "custom" and custom.end - custom.start == timedelta(hours=3)


@pytest.mark.parametrize(
    ("span", "step"),
    [
        (timedelta(minutes=15), timedelta(minutes=1)),
        (timedelta(hours=1), timedelta(minutes=5)),
        (timedelta(hours=24), timedelta(hours=1)),
        (timedelta(days=7), timedelta(hours=1)),
        (timedelta(days=8), timedelta(days=1)),
    ],
)
def test_a_chart_has_a_period_that_suits_its_span(span, step):
    assert series_step(span) == step


def test_a_day_window_starts_at_midnight_utc_days_minus_one_days_before_the_newest_day():
    window = day_window(T, 7, now=WALL)
    assert window.start == datetime(2026, 11, 17, tzinfo=UTC)
    assert window.end == T + timedelta(hours=1)


def hours_window(hours: int) -> Window:
    """The last ``hours`` up to the end of hour T (a whole-hour window: hourly periods)."""
    return Window(T + timedelta(hours=1 - hours), T + timedelta(hours=1))


def test_the_series_has_every_period_and_arm_oldest_first_with_exact_merged_metrics():
    rows = [
        bucket_row(T, "ml", [1.0, -2.0], [10.0, 12.0]),
        # Two model versions of the same arm and hour merge.
        {**bucket_row(T, "ml", [-7.0], [20.0]), "model_version": "ml-w"},
        bucket_row(T - timedelta(hours=2), "heuristic", [3.0], [4.0]),
    ]
    series = period_series(rows, hours_window(3))
    assert [(s["period_start"], s["arm"]) for s in series] == [
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
        "period_start": T - timedelta(hours=1),
        "arm": "ml",
        "n": 0,
        "mae": None,
        "rmse": None,
        "r2": None,
        "bias": None,
        "underestimate_share": None,
        "p90_n": 0,
        "p90_coverage": None,
        "few": False,
    }
    assert series[1]["n"] == 1 and series[1]["r2"] is None  # one outcome: R² undefined
    assert series[1]["few"] and newest_ml["few"]  # fewer than MIN_POINT_OUTCOMES


def test_a_period_with_enough_outcomes_is_not_few_and_the_totals_add_every_row():
    n = MIN_POINT_OUTCOMES
    rows = [
        bucket_row(T, "ml", [1.0] * n, [5.0] * n),
        bucket_row(T, "heuristic", [2.0] * (n - 1), [5.0] * (n - 1)),
        bucket_row(T - timedelta(hours=1), "heuristic", [4.0], [5.0]),
    ]
    series = period_series(rows, hours_window(2))
    newest = {s["arm"]: s for s in series if s["period_start"] == T}
    assert (newest["ml"]["few"], newest["heuristic"]["few"]) == (False, True)
    totals = window_totals(rows)
    assert (totals["ml"].n, totals["heuristic"].n) == (n, n)
    assert totals["heuristic"].sum_abs_error == pytest.approx(2.0 * (n - 1) + 4.0)


def test_minute_periods_start_on_the_windows_first_minute():
    w = window("15m")
    rows = [bucket_row(datetime(2026, 11, 23, 7, 42, tzinfo=UTC), "ml", [1.0], [2.0])]
    series = period_series(rows, w)
    assert len(series) == 15 * 2
    assert series[0]["period_start"] == datetime(2026, 11, 23, 7, 28, tzinfo=UTC)
    assert series[-2]["period_start"] == datetime(2026, 11, 23, 7, 42, tzinfo=UTC)
    assert series[-2]["n"] == 1


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


def test_p90_coverage_is_served_per_period_and_arm_and_merged_over_the_window():
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
    series = period_series(rows, hours_window(2))
    coverage = {(s["period_start"], s["arm"]): (s["p90_n"], s["p90_coverage"]) for s in series}
    assert coverage == {
        (T - timedelta(hours=1), "ml"): (2, 1.0),
        (T - timedelta(hours=1), "heuristic"): (0, None),
        (T, "ml"): (4, 0.5),  # two model versions merged: 2 of 4 within
        (T, "heuristic"): (0, None),
    }
    ml = bucket_sums(rows[0]) + bucket_sums(rows[1]) + bucket_sums(rows[2])
    merged = arm_metrics({"ml": ml, "heuristic": bucket_sums(rows[3])})
    assert (merged["ml"]["p90_n"], merged["ml"]["p90_coverage"]) == (6, 4 / 6)
    assert (merged["heuristic"]["p90_n"], merged["heuristic"]["p90_coverage"]) == (0, None)
    assert merged["ml"]["n"] == 7


def test_since_start_with_hourly_periods_reads_the_hourly_buckets_from_the_first_hour():
    long = window("all", oldest=datetime(2026, 11, 20, 3, 15, tzinfo=UTC))
    assert long.hourly and long.read_start == datetime(2026, 11, 20, 3, tzinfo=UTC)
    short = window("all", oldest=NEWEST - timedelta(minutes=10))
    assert short.step == timedelta(minutes=1) and not short.hourly
    assert short.read_start == short.start
    assert not window("7d").hourly  # its edges are minutes: the minute buckets answer

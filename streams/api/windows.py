"""Event-time windows and the metrics of hourly buckets, for the monitoring endpoints (pure).

A window of ``hours=H`` ends at ``as_of``, the end of the newest hour holding live outcomes
(their ``observed_at``), and starts H hours earlier; never the wall clock, so a replayed or a
quiet history shows its own last hours. Only when no live outcome exists at all does ``as_of``
fall back to the end of the current hour. Metrics, P90 coverage included, are exact merges of
the buckets' sums (:class:`models.rolling.MetricSums`).

>>> from datetime import UTC, datetime
>>> w = hour_window(datetime(2026, 11, 23, 7, tzinfo=UTC), 24, now=datetime(2030, 1, 1, tzinfo=UTC))
>>> w.start.isoformat(), w.end.isoformat()
('2026-11-22T08:00:00+00:00', '2026-11-23T08:00:00+00:00')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.postgres.history import SUM_COLUMNS
from models.rolling import MetricSums, hour_start

ARMS = ("ml", "heuristic")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Window:
    """Event time [start, end); ``end`` is the ``as_of`` of the answer."""

    start: datetime
    end: datetime


def _as_of(newest_hour: datetime | None, now: datetime) -> datetime:
    return hour_start(newest_hour or now) + HOUR


def hour_window(newest_hour: datetime | None, hours: int, *, now: datetime) -> Window:
    """The last ``hours`` hours up to the end of ``newest_hour`` (the newest live bucket)."""
    end = _as_of(newest_hour, now)
    return Window(end - hours * HOUR, end)


def day_window(newest_hour: datetime | None, days: int, *, now: datetime) -> Window:
    """The last ``days`` UTC days, the newest being the day of ``newest_hour``; ``start`` is
    midnight UTC, ``end`` the ``as_of`` (inside the newest day)."""
    end = _as_of(newest_hour, now)
    last_day = (end - HOUR).replace(hour=0)
    return Window(last_day - (days - 1) * DAY, end)


def bucket_sums(row: Mapping[str, Any]) -> MetricSums:
    """The sums of one ``metric_buckets`` row."""
    return MetricSums(*(row[name] for name in SUM_COLUMNS))


def _metrics(sums: MetricSums | None) -> dict[str, Any]:
    return (sums or MetricSums.zero()).summary()


def hourly_series(rows: Iterable[Mapping[str, Any]], window: Window) -> list[dict[str, Any]]:
    """One entry per hour of ``window`` and arm (model versions merged), oldest first; hours
    without outcomes have n = 0 and null metrics."""
    merged: dict[tuple[datetime, str], MetricSums] = {}
    for row in rows:
        key = (hour_start(row["hour_start"]), row["arm"])
        merged[key] = merged[key] + bucket_sums(row) if key in merged else bucket_sums(row)
    series = []
    hour = window.start.astimezone(UTC)
    while hour < window.end:
        for arm in ARMS:
            series.append({"hour_start": hour, "arm": arm, **_metrics(merged.get((hour, arm)))})
        hour += HOUR
    return series


def daily_series(rows: Iterable[Mapping[str, Any]], window: Window) -> list[dict[str, Any]]:
    """One entry per UTC day of ``window`` and arm, oldest first."""
    merged: dict[tuple[date, str], MetricSums] = {}
    for row in rows:
        key = (hour_start(row["hour_start"]).date(), row["arm"])
        merged[key] = merged[key] + bucket_sums(row) if key in merged else bucket_sums(row)
    series = []
    day = window.start.astimezone(UTC).date()
    while day <= (window.end - HOUR).astimezone(UTC).date():
        for arm in ARMS:
            series.append({"day": day, "arm": arm, **_metrics(merged.get((day, arm)))})
        day += DAY
    return series


def arm_metrics(sums: Mapping[str, MetricSums]) -> dict[str, dict[str, Any]]:
    """The metrics of each arm, both arms always present."""
    return {arm: _metrics(sums.get(arm)) for arm in ARMS}

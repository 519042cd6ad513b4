"""Event-time windows and the metrics of their periods: one meaning on every screen (pure).

Every screen that shows live figures (the API, the dashboard, ``delaycast ab report`` and the
demo's live line) asks for a window by the same names, and gets the same outcomes:

- ``15m``, ``1h``, ``24h``, ``7d``: the last span of event time up to ``as_of``;
- ``all``: since the oldest live outcome ("since start").

``as_of`` is the end of the newest minute holding live outcomes (their ``observed_at``), never
the wall clock, so a replayed or a quiet history shows its own last minutes. Only when no live
outcome exists at all does it fall back to the end of the current minute. Outcomes are summed
per minute (``metric_minutes``), so a window's edges are whole minutes and its metrics are
exact merges of the minutes' sums (:class:`models.rolling.MetricSums`).

A window's chart has one point per period (``step``): a minute for 15 minutes, five for an
hour, an hour up to a week, a day beyond. A point with fewer than :data:`MIN_POINT_OUTCOMES`
outcomes is marked ``few``: a mean of a handful of delays says little, and the dashboard draws
it as such, not as a figure.

>>> from datetime import UTC, datetime
>>> newest = datetime(2026, 11, 23, 7, 42, tzinfo=UTC)
>>> w = event_window("1h", newest_minute=newest, oldest_minute=None, now=newest)
>>> w.start.isoformat(), w.end.isoformat(), w.step
('2026-11-23T06:43:00+00:00', '2026-11-23T07:43:00+00:00', datetime.timedelta(seconds=300))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from connectors.postgres.history import SUM_COLUMNS
from models.rolling import MetricSums, hour_start

ARMS = ("ml", "heuristic")
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# The named windows, and their span (None: since the oldest live outcome).
WINDOWS: Final[dict[str, timedelta | None]] = {
    "15m": timedelta(minutes=15),
    "1h": HOUR,
    "24h": DAY,
    "7d": timedelta(days=7),
    "all": None,
}
DEFAULT_WINDOW: Final = "24h"
WINDOW_LABELS: Final = {
    "15m": "last 15 min",
    "1h": "last hour",
    "24h": "last 24 h",
    "7d": "last 7 days",
    "all": "since start",
}
# A chart point with fewer outcomes is marked ``few``.
MIN_POINT_OUTCOMES: Final = 20


def minute_start(value: datetime) -> datetime:
    """``value``'s UTC minute."""
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def series_step(span: timedelta) -> timedelta:
    """The period of a chart over ``span``: about 12 to 170 points."""
    if span <= timedelta(minutes=15):
        return MINUTE
    if span <= HOUR:
        return 5 * MINUTE
    if span <= timedelta(days=7):
        return HOUR
    return DAY


@dataclass(frozen=True)
class Window:
    """Event time [start, end); ``end`` is the ``as_of`` of the answer. ``name`` is one of
    :data:`WINDOWS`, or ``custom`` for other bounds. ``closed``: ``end`` was given, rather than
    taken from the newest outcome (its predictions then end there too)."""

    start: datetime
    end: datetime
    name: str = "custom"
    closed: bool = False

    @property
    def label(self) -> str:
        return WINDOW_LABELS.get(self.name, f"{self.start.isoformat()} to {self.end.isoformat()}")

    @property
    def step(self) -> timedelta:
        return series_step(self.end - self.start)

    @property
    def hourly(self) -> bool:
        """Whether the hourly buckets answer for it: since start (every outcome is in) with a
        period of an hour or more. Its first hour then starts before ``start``, at the hour."""
        return self.name == "all" and self.step >= HOUR

    @property
    def read_start(self) -> datetime:
        """Where the buckets to read start."""
        return hour_start(self.start) if self.hourly else self.start


def _as_of(newest_minute: datetime | None, now: datetime) -> datetime:
    return minute_start(newest_minute or now) + MINUTE


def event_window(
    name: str, *, newest_minute: datetime | None, oldest_minute: datetime | None, now: datetime
) -> Window:
    """The window ``name`` (a key of :data:`WINDOWS`) ending at the end of ``newest_minute``,
    the newest minute with live outcomes; ``all`` starts at ``oldest_minute``."""
    if name not in WINDOWS:
        raise ValueError(f"unknown window {name!r}; expected one of {', '.join(WINDOWS)}")
    end = _as_of(newest_minute, now)
    span = WINDOWS[name]
    if span is None:
        start = minute_start(oldest_minute) if oldest_minute is not None else end - MINUTE
        return Window(min(start, end - MINUTE), end, name)
    return Window(end - span, end, name)


def span_window(span: timedelta, *, newest_minute: datetime | None, now: datetime) -> Window:
    """The last ``span`` up to the end of ``newest_minute``; named when ``span`` is one of
    :data:`WINDOWS` (``hours=24`` is the ``24h`` window)."""
    end = _as_of(newest_minute, now)
    name = next((n for n, s in WINDOWS.items() if s == span), "custom")
    return Window(end - span, end, name)


def day_window(newest_hour: datetime | None, days: int, *, now: datetime) -> Window:
    """The last ``days`` UTC days, the newest being the day of ``newest_hour``; ``start`` is
    midnight UTC, ``end`` the end of that hour (inside the newest day)."""
    end = hour_start(newest_hour or now) + HOUR
    last_day = (end - HOUR).replace(hour=0)
    return Window(last_day - (days - 1) * DAY, end)


def bucket_sums(row: Mapping[str, Any]) -> MetricSums:
    """The sums of one bucket row (``metric_buckets``, ``metric_minutes`` or a sum of them)."""
    return MetricSums(*(row[name] for name in SUM_COLUMNS))


def _metrics(sums: MetricSums | None) -> dict[str, Any]:
    return (sums or MetricSums.zero()).summary()


def period_series(rows: Iterable[Mapping[str, Any]], window: Window) -> list[dict[str, Any]]:
    """One entry per period of ``window`` (its ``step``) and arm, oldest first, from rows with
    ``period_start`` and ``arm`` (model versions merged); periods without outcomes have n = 0
    and null metrics, and ``few`` marks those with fewer than :data:`MIN_POINT_OUTCOMES`."""
    step = window.step
    merged: dict[tuple[datetime, str], MetricSums] = {}
    for row in rows:
        key = (row["period_start"].astimezone(UTC), row["arm"])
        merged[key] = merged[key] + bucket_sums(row) if key in merged else bucket_sums(row)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    period = epoch + ((window.start.astimezone(UTC) - epoch) // step) * step
    series = []
    while period < window.end:
        for arm in ARMS:
            metrics = _metrics(merged.get((period, arm)))
            few = 0 < metrics["n"] < MIN_POINT_OUTCOMES
            series.append({"period_start": period, "arm": arm, **metrics, "few": few})
        period += step
    return series


def window_totals(rows: Iterable[Mapping[str, Any]]) -> dict[str, MetricSums]:
    """The sums of each arm over ``rows`` (every arm present, zero when it has none)."""
    totals = {arm: MetricSums.zero() for arm in ARMS}
    for row in rows:
        totals[row["arm"]] = totals[row["arm"]] + bucket_sums(row)
    return totals


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

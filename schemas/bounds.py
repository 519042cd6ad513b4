"""How an event's times must sit against its Kafka record's timestamp and the wall clock.

A producer's clock may be off, and a producer may be hostile: these windows keep any single event
from moving the join's event-time clock, expiring state, or landing in a metric bucket years
away. The record's timestamp (its producer's create time, or the broker's append time) is what
an event is checked against, so a replay of last year's records passes as it did then; only an
actual delay is also checked against the wall clock, since nothing can be observed in the future.

| event | field | allowed window (``t`` = record timestamp) |
|---|---|---|
| booking | created_at | t − max_age … t + max_skew |
| booking | scheduled_pickup_at | t − max_age … t + max_lead |
| actual delay | observed_at | t − max_age … min(t, now) + max_skew |
| prediction | predicted_at | t − max_age … min(t, now) + max_skew |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel

from schemas.actual import ActualDelay
from schemas.booking import BookingRequested
from schemas.prediction import Prediction


@dataclass(frozen=True)
class TimeBounds:
    max_skew: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=30)
    max_lead: timedelta = timedelta(days=400)


DEFAULT_BOUNDS = TimeBounds()


def time_problem(
    event: BaseModel,
    *,
    published: datetime,
    now: datetime,
    bounds: TimeBounds = DEFAULT_BOUNDS,
) -> str | None:
    """Why ``event``'s times are out of bounds, or None when they are within them.

    >>> from datetime import UTC
    >>> t = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    >>> a = ActualDelay(booking_id="B-1", actual_delay_minutes=4.0,
    ...                 observed_at=datetime(2099, 1, 1, tzinfo=UTC))
    >>> print(time_problem(a, published=t, now=t))  # doctest: +NORMALIZE_WHITESPACE
    observed_at 2099-01-01T00:00:00+00:00 is later than its record was published
    (2026-11-23T08:00:00+00:00) + 0:05:00
    >>> time_problem(a.model_copy(update={"observed_at": t}), published=t, now=t) is None
    True
    """
    latest_seen = min(published, now) + bounds.max_skew
    oldest = published - bounds.max_age
    checks: list[tuple[str, datetime, datetime, datetime]] = []
    if isinstance(event, BookingRequested):
        checks = [
            ("created_at", event.created_at, oldest, published + bounds.max_skew),
            ("scheduled_pickup_at", event.scheduled_pickup_at, oldest, published + bounds.max_lead),
        ]
    elif isinstance(event, ActualDelay):
        checks = [("observed_at", event.observed_at, oldest, latest_seen)]
    elif isinstance(event, Prediction):
        checks = [("predicted_at", event.predicted_at, oldest, latest_seen)]
    for name, value, low, high in checks:
        if value > high:
            if high == latest_seen and now < published:
                return f"{name} {value.isoformat()} is in the future (now {now.isoformat()})"
            return (
                f"{name} {value.isoformat()} is later than its record was published "
                f"({published.isoformat()}) + {high - published}"
            )
        if value < low:
            return (
                f"{name} {value.isoformat()} is more than {bounds.max_age.days} days before "
                f"its record was published ({published.isoformat()})"
            )
    return None

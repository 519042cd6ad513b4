"""The event-time window an endpoint answers for, from its ``window`` or ``hours`` parameter
(:mod:`streams.outcomes.windows` says what each name means)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import HTTPException

from connectors.postgres import history
from connectors.postgres import monitoring as queries
from streams.outcomes.windows import DEFAULT_WINDOW, Window, event_window, span_window


def requested_window(
    bind: history.Bind, *, window: str | None, hours: int | None, now: datetime
) -> Window:
    """``window`` by name, or the last ``hours``; the default window when neither is given.
    Both at once is a 400: they would disagree."""
    if window is not None and hours is not None:
        raise HTTPException(
            status_code=400,
            detail="window, hours: one of them, not both (window is one of 15m, 1h, 24h, 7d, "
            f"all), got window={window} and hours={hours}",
        )
    newest, oldest = queries.live_minute_range(bind)
    if hours is not None:
        return span_window(timedelta(hours=hours), newest_minute=newest, now=now)
    return event_window(
        window or DEFAULT_WINDOW, newest_minute=newest, oldest_minute=oldest, now=now
    )

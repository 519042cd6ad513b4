"""Reads for the monitoring API: bounded, newest-first queries that stay fast on a long history.

Each query walks one index backwards and stops at its limit or window bound: the newest
predictions through ``ix_predictions_predicted_at``, anomalies through
``ix_outcomes_observed_at`` within a window, alerts through ``ix_alerts_raised_at``, and the
newest live bucket hour and minute through the primary keys of ``metric_buckets`` and
``metric_minutes`` (time first). Rows come back as plain dicts with aware datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connectors.postgres.history import Bind, _transaction
from schemas import tables

PREDICTION_COLUMNS = (
    "booking_id",
    "predicted_at",
    "scheduled_pickup_at",
    "predicted_delay_minutes",
    "confidence",
    "risk_level",
    "arm",
    "served_by",
    "model_version",
    "fallback_reason",
    "latency_ms",
    "replay",
)
ANOMALY_COLUMNS = (
    "booking_id",
    "arm",
    "model_version",
    "predicted_delay_minutes",
    "actual_delay_minutes",
    "error",
    "abs_error",
    "observed_at",
)
ALERT_COLUMNS = (
    "alert_id",
    "kind",
    "severity",
    "subject",
    "message",
    "event_time",
    "raised_at",
    "evidence",
)


def _rows(bind: Bind, query: sa.Select[Any]) -> list[dict[str, Any]]:
    with _transaction(bind) as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def newest_live_hour(bind: Bind) -> datetime | None:
    """The start of the newest hour holding live (not replayed) outcomes, or None."""
    b = tables.metric_buckets.c
    query = sa.select(sa.func.max(b.hour_start)).where(sa.not_(b.replay))
    with _transaction(bind) as connection:
        value: datetime | None = connection.execute(query).scalar_one()
    return value


def live_minute_range(bind: Bind) -> tuple[datetime | None, datetime | None]:
    """The newest and the oldest minute holding live outcomes (None, None without any)."""
    m = tables.metric_minutes.c
    query = sa.select(sa.func.max(m.minute_start), sa.func.min(m.minute_start)).where(
        sa.not_(m.replay)
    )
    with _transaction(bind) as connection:
        newest, oldest = connection.execute(query).one()
    return newest, oldest


def recent_predictions(bind: Bind, *, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` newest predictions (live and replayed), newest ``predicted_at`` first."""
    p = tables.predictions.c
    query = (
        sa.select(*(p[name] for name in PREDICTION_COLUMNS))
        .order_by(p.predicted_at.desc())
        .limit(limit)
    )
    return _rows(bind, query)


def anomalies(
    bind: Bind, *, start: datetime, end: datetime, threshold: float, limit: int
) -> list[dict[str, Any]]:
    """Live outcomes observed in [start, end) whose ``abs_error`` exceeds ``threshold``, newest
    observed first, at most ``limit``."""
    o = tables.outcomes.c
    query = (
        sa.select(*(o[name] for name in ANOMALY_COLUMNS))
        .where(
            o.observed_at >= start,
            o.observed_at < end,
            sa.not_(o.replay),
            o.abs_error > threshold,
        )
        .order_by(o.observed_at.desc(), o.booking_id)
        .limit(limit)
    )
    return _rows(bind, query)


def label_counts(
    bind: Bind,
    *,
    due_before: datetime,
    pickup_since: datetime | None = None,
    predicted_since: datetime | None = None,
) -> dict[str, tuple[int, int]]:
    """(due, arrived) per arm of the live predictions whose actual is due: a scheduled pickup
    before ``due_before`` (and at ``pickup_since`` or later), made at ``predicted_since`` or
    later when given; arrived when the outcome of that very prediction is stored."""
    p, o = tables.predictions.c, tables.outcomes.c
    joined = tables.predictions.outerjoin(
        tables.outcomes,
        sa.and_(o.booking_id == p.booking_id, sa.not_(o.replay), o.predicted_at == p.predicted_at),
    )
    conditions = [sa.not_(p.replay), p.scheduled_pickup_at < due_before]
    if pickup_since is not None:
        conditions.append(p.scheduled_pickup_at >= pickup_since)
    if predicted_since is not None:
        conditions.append(p.predicted_at >= predicted_since)
    query = (
        sa.select(p.arm, sa.func.count(), sa.func.count(o.booking_id))
        .select_from(joined)
        .where(*conditions)
        .group_by(p.arm)
    )
    with _transaction(bind) as connection:
        return {arm: (int(due), int(arrived)) for arm, due, arrived in connection.execute(query)}


def shadow_sums(bind: Bind, *, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per UTC hour of observed_at, what served (ml, heuristic) and challenger version, the
    live outcomes in
    [start, end) that carry a shadow prediction: n, the sums of the challenger's and the served
    absolute errors, and of their differences d = shadow - served and d²."""
    o = tables.outcomes.c
    d = o.shadow_abs_error - o.abs_error
    hour = sa.func.date_trunc("hour", o.observed_at, "UTC")
    query = (
        sa.select(
            hour.label("hour_start"),
            o.served_by,
            o.shadow_model_version,
            sa.func.count().label("n"),
            sa.func.sum(o.shadow_abs_error).label("sum_shadow"),
            sa.func.sum(o.abs_error).label("sum_served"),
            sa.func.sum(d).label("sum_d"),
            sa.func.sum(d * d).label("sum_d2"),
        )
        .where(
            o.observed_at >= start,
            o.observed_at < end,
            sa.not_(o.replay),
            o.shadow_abs_error.is_not(None),
        )
        .group_by(hour, o.served_by, o.shadow_model_version)
        .order_by(hour, o.served_by, o.shadow_model_version)
    )
    return _rows(bind, query)


def _alert_filter(start: datetime, kind: str | None) -> list[sa.ColumnElement[bool]]:
    a = tables.alerts.c
    conditions = [a.event_time >= start]
    if kind is not None:
        conditions.append(a.kind == kind)
    return conditions


def recent_alerts(
    bind: Bind, *, since: datetime, limit: int, kind: str | None = None
) -> list[dict[str, Any]]:
    """Alerts whose event time is ``since`` or later (``kind`` only, when given), newest raised
    first, at most ``limit``."""
    a = tables.alerts.c
    query = (
        sa.select(*(a[name] for name in ALERT_COLUMNS))
        .where(*_alert_filter(since, kind))
        .order_by(a.raised_at.desc(), a.alert_id)
        .limit(limit)
    )
    return _rows(bind, query)


def estimate_sums(
    bind: Bind, *, since: datetime, until: datetime, factor: float
) -> list[dict[str, Any]]:
    """Per UTC hour of scheduled pickup in [since, until) and arm, over live predictions: how
    many, how many have a P90 and the sum of their expected absolute errors (``factor`` times
    P90 - delay), how many have their actual and the sum of those realized absolute errors,
    and over the predictions with both, the two sums side by side."""
    p, o = tables.predictions.c, tables.outcomes.c
    joined = tables.predictions.outerjoin(
        tables.outcomes,
        sa.and_(o.booking_id == p.booking_id, sa.not_(o.replay), o.predicted_at == p.predicted_at),
    )
    hour = sa.func.date_trunc("hour", p.scheduled_pickup_at, "UTC")
    expected = sa.func.greatest(p.delay_p90_minutes - p.predicted_delay_minutes, 0.0) * factor
    has_p90 = p.delay_p90_minutes.is_not(None)
    labelled = o.booking_id.is_not(None)
    both = sa.and_(has_p90, labelled)
    query = (
        sa.select(
            hour.label("hour_start"),
            p.arm,
            sa.func.count().label("n"),
            sa.func.count().filter(has_p90).label("n_estimated"),
            sa.func.coalesce(sa.func.sum(expected), 0.0).label("sum_estimated"),
            sa.func.count(o.booking_id).label("n_realized"),
            sa.func.coalesce(sa.func.sum(o.abs_error), 0.0).label("sum_realized"),
            sa.func.count().filter(both).label("n_both"),
            sa.func.coalesce(sa.func.sum(expected).filter(both), 0.0).label("sum_estimated_both"),
            sa.func.coalesce(sa.func.sum(o.abs_error).filter(both), 0.0).label("sum_realized_both"),
        )
        .select_from(joined)
        .where(sa.not_(p.replay), p.scheduled_pickup_at >= since, p.scheduled_pickup_at < until)
        .group_by(hour, p.arm)
        .order_by(hour, p.arm)
    )
    return _rows(bind, query)


def alerts_between(
    bind: Bind, *, since: datetime, until: datetime, limit: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` alerts with ``since <= event_time < until``, oldest first."""
    a = tables.alerts.c
    query = (
        sa.select(*(a[name] for name in ALERT_COLUMNS))
        .where(a.event_time >= since, a.event_time < until)
        .order_by(a.event_time.desc(), a.alert_id)
        .limit(limit)
    )
    return _rows(bind, query)[::-1]


def count_alerts(bind: Bind, *, since: datetime, kind: str | None = None) -> int:
    """How many alerts have an event time of ``since`` or later."""
    query = sa.select(sa.func.count()).select_from(tables.alerts).where(*_alert_filter(since, kind))
    with _transaction(bind) as connection:
        return int(connection.execute(query).scalar_one())


def schema_revision(bind: Bind) -> str | None:
    """The migration revision the database is at (None before any), read without alembic."""
    with _transaction(bind) as connection:
        if connection.execute(sa.text("SELECT to_regclass('alembic_version')")).scalar() is None:
            return None
        revision = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    return None if revision is None else str(revision)

"""``/api/ml-monitoring``: live metrics per arm over event-time windows, the newest predictions
and the outcomes the model got most wrong.

Windows end at ``as_of``, the end of the newest hour holding live outcomes (see
:mod:`streams.api.windows`); replayed outcomes never enter these numbers. Each answer reads one
PostgreSQL connection with a handful of bounded, indexed queries.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends

from connectors.postgres import arrived_counts, assignment_counts, metric_buckets_between
from connectors.postgres import monitoring as queries
from streams.ab_eval import arm_sums, compare
from streams.api.ab import ab_report
from streams.api.flags import current_flags
from streams.api.params import Days, Hours, Limit, ThresholdMae
from streams.api.resources import Resources, get_resources
from streams.api.responses import (
    Anomalies,
    DailySeries,
    HourlySeries,
    Predictions,
    Summary,
)
from streams.api.windows import (
    Window,
    arm_metrics,
    daily_series,
    day_window,
    hour_window,
    hourly_series,
)

router = APIRouter(prefix="/api/ml-monitoring", tags=["ML monitoring"])
Res = Annotated[Resources, Depends(get_resources)]


def _hours(resources: Resources, connection: sa.Connection, hours: int) -> Window:
    return hour_window(queries.newest_live_hour(connection), hours, now=resources.clock())


@router.get("/summary", response_model=Summary)
def summary(resources: Res, hours: Hours = 24) -> Summary:
    """Metrics per arm, flags, the split of bookings, the A/B verdict, alert and prediction
    counts, over the last ``hours`` of event time."""
    with resources.engine.connect() as connection:
        window = _hours(resources, connection, hours)
        rows = metric_buckets_between(connection, start=window.start, end=window.end)
        assigned = assignment_counts(connection, since=window.start, until=window.end)
        arrived = arrived_counts(connection, since=window.start, until=window.end)
        alerts = queries.count_alerts(connection, since=window.start)
    sums = arm_sums(rows)
    flags = current_flags(resources)
    if assigned.expected_ml_share is not None:
        percentage = 100.0 * assigned.expected_ml_share
    else:
        percentage = flags.ml_traffic_percentage if flags.ml_enabled else 0.0
    has_outcomes = any(s.n for s in sums.values())
    ab = (
        ab_report(compare(sums, assigned, min_samples=resources.settings.ab_min_samples), window)
        if has_outcomes
        else None
    )
    return Summary.model_validate(
        {
            "as_of": window.end,
            "window_start": window.start,
            "hours": hours,
            "arms": arm_metrics(sums),
            "flags": flags,
            "split": {"percentage": percentage, "assigned": assigned.by_arm, "arrived": arrived},
            "ab": ab,
            "alerts": alerts,
            "predictions": assigned.total,
        }
    )


@router.get("/metrics", response_model=HourlySeries)
def hourly(resources: Res, hours: Hours = 24) -> HourlySeries:
    """Metrics per hour and arm (model versions merged), oldest first."""
    with resources.engine.connect() as connection:
        window = _hours(resources, connection, hours)
        rows = metric_buckets_between(connection, start=window.start, end=window.end)
    return HourlySeries.model_validate(
        {
            "as_of": window.end,
            "window_start": window.start,
            "hours": hours,
            "series": hourly_series(rows, window),
        }
    )


@router.get("/daily", response_model=DailySeries)
def daily(resources: Res, days: Days = 7) -> DailySeries:
    """Metrics per UTC day and arm, oldest first; the newest day is the one of ``as_of``."""
    with resources.engine.connect() as connection:
        newest = queries.newest_live_hour(connection)
        window = day_window(newest, days, now=resources.clock())
        rows = metric_buckets_between(connection, start=window.start, end=window.end)
    return DailySeries.model_validate(
        {
            "as_of": window.end,
            "window_start": window.start,
            "days": days,
            "series": daily_series(rows, window),
        }
    )


@router.get("/anomalies", response_model=Anomalies)
def anomalies(
    resources: Res, threshold_mae: ThresholdMae = 5.0, hours: Hours = 24, limit: Limit = 100
) -> Anomalies:
    """Live outcomes whose absolute error exceeds ``threshold_mae`` minutes, newest first."""
    with resources.engine.connect() as connection:
        window = _hours(resources, connection, hours)
        items = queries.anomalies(
            connection, start=window.start, end=window.end, threshold=threshold_mae, limit=limit
        )
    return Anomalies.model_validate(
        {
            "threshold_mae": threshold_mae,
            "as_of": window.end,
            "window_start": window.start,
            "items": items,
        }
    )


@router.get("/predictions", response_model=Predictions)
def predictions(resources: Res, limit: Limit = 50) -> Predictions:
    """The newest predictions (live and replayed), newest first."""
    with resources.engine.connect() as connection:
        items = queries.recent_predictions(connection, limit=limit)
    return Predictions.model_validate({"items": items})

"""``/api/ml-monitoring``: live metrics per arm over event-time windows, the newest predictions
and the outcomes the model got most wrong.

Windows are named (15m, 1h, 24h, 7d, all) or the last ``hours``, and end at ``as_of``, the end
of the newest minute holding live outcomes (see :mod:`streams.outcomes.windows`); replayed outcomes
never enter these numbers. The summary's figures are
:func:`streams.outcomes.ab_eval.window_figures`, the same that ``delaycast ab report`` and the
demo's live line print. Each answer reads one PostgreSQL connection with a handful of bounded,
indexed queries.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from connectors.postgres import arrived_counts, metric_buckets_between, minute_sums_between
from connectors.postgres import monitoring as queries
from streams.operate.api.ab import ab_report
from streams.operate.api.flags import current_flags
from streams.operate.api.params import Days, Limit, OptionalHours, ThresholdMae, WindowName
from streams.operate.api.resources import Resources, get_resources
from streams.operate.api.responses import (
    Anomalies,
    DailySeries,
    PeriodSeries,
    Predictions,
    Summary,
)
from streams.operate.api.window_query import requested_window
from streams.outcomes.ab_eval import assignment_end, window_figures
from streams.outcomes.windows import (
    MIN_POINT_OUTCOMES,
    arm_metrics,
    daily_series,
    day_window,
    period_series,
)

router = APIRouter(prefix="/api/ml-monitoring", tags=["ML monitoring"])
Res = Annotated[Resources, Depends(get_resources)]


@router.get("/summary", response_model=Summary)
def summary(resources: Res, window: WindowName = None, hours: OptionalHours = None) -> Summary:
    """Metrics per arm, flags, the split of bookings, the A/B verdict, alert and prediction
    counts, over an event-time ``window`` (or the last ``hours``)."""
    with resources.engine.connect() as connection:
        now = resources.clock()
        chosen = requested_window(connection, window=window, hours=hours, now=now)
        figures = window_figures(
            connection, chosen, min_samples=resources.settings.ab_min_samples, now=now
        )
        # The outcomes of the same predictions as the assigned counts: the rows compare.
        until = assignment_end(chosen, now)
        arrived = arrived_counts(connection, since=chosen.start, until=until)
        alerts = queries.count_alerts(connection, since=chosen.start)
    flags = current_flags(resources)
    assigned = figures.assigned
    if assigned.expected_ml_share is not None:
        percentage = 100.0 * assigned.expected_ml_share
    else:
        percentage = flags.ml_traffic_percentage if flags.ml_enabled else 0.0
    ab = ab_report(figures.result, chosen) if figures.outcomes else None
    return Summary.model_validate(
        {
            "as_of": chosen.end,
            "window_start": chosen.start,
            "window": chosen.name,
            "window_label": chosen.label,
            "outcomes": figures.outcomes,
            "arms": arm_metrics(figures.sums),
            "flags": flags,
            "split": {"percentage": percentage, "assigned": assigned.by_arm, "arrived": arrived},
            "ab": ab,
            "alerts": alerts,
            "predictions": assigned.total,
        }
    )


@router.get("/metrics", response_model=PeriodSeries)
def series(resources: Res, window: WindowName = None, hours: OptionalHours = None) -> PeriodSeries:
    """Metrics per period and arm (model versions merged), oldest first; the period is a
    minute for 15m, 5 minutes for 1h, an hour up to 7 days and a day beyond."""
    with resources.engine.connect() as connection:
        chosen = requested_window(connection, window=window, hours=hours, now=resources.clock())
        rows = minute_sums_between(
            connection,
            start=chosen.read_start,
            end=chosen.end,
            step=chosen.step,
            hourly=chosen.hourly,
        )
    return PeriodSeries.model_validate(
        {
            "as_of": chosen.end,
            "window_start": chosen.start,
            "window": chosen.name,
            "window_label": chosen.label,
            "step_seconds": int(chosen.step.total_seconds()),
            "min_point_outcomes": MIN_POINT_OUTCOMES,
            "series": period_series(rows, chosen),
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
    resources: Res,
    threshold_mae: ThresholdMae = 5.0,
    window: WindowName = None,
    hours: OptionalHours = None,
    limit: Limit = 100,
) -> Anomalies:
    """Live outcomes of the window whose absolute error exceeds ``threshold_mae`` minutes,
    newest first."""
    with resources.engine.connect() as connection:
        chosen = requested_window(connection, window=window, hours=hours, now=resources.clock())
        items = queries.anomalies(
            connection, start=chosen.start, end=chosen.end, threshold=threshold_mae, limit=limit
        )
    return Anomalies.model_validate(
        {
            "threshold_mae": threshold_mae,
            "as_of": chosen.end,
            "window_start": chosen.start,
            "items": items,
        }
    )


@router.get("/predictions", response_model=Predictions)
def predictions(resources: Res, limit: Limit = 50) -> Predictions:
    """The newest predictions (live and replayed), newest first."""
    with resources.engine.connect() as connection:
        items = queries.recent_predictions(connection, limit=limit)
    return Predictions.model_validate({"items": items})

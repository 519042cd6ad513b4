"""The closed loop's endpoints: ``/api/ramp/status`` (where the guarded ramp stands and what
blocks its next step, as ``delaycast ramp status`` says), ``/api/labels/coverage`` (per arm,
the share of due actual delays that arrived), ``/api/shadow/report`` (the challenger in
shadow against what was served, paired, as ``delaycast ab report --shadow`` says) and
``/api/timeline`` (flag changes, model changes, ramp moves and alerts in time order) and
``/api/ml-monitoring/estimated`` (each pickup hour's estimated MAE beside the realized one)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from streams.operate import ramp
from streams.operate.api.params import Hours, Limit, OptionalHours, WindowName
from streams.operate.api.resources import Resources, get_resources
from streams.operate.api.responses import (
    ArmLabels,
    EstimatedMae,
    LabelCoverageReport,
    RampStatus,
    ShadowReport,
    Timeline,
    TimelineEntry,
)
from streams.operate.api.window_query import requested_window
from streams.operate.timeline import timeline as incident_timeline
from streams.outcomes.estimate import estimated_then_realized
from streams.outcomes.labels import label_coverage
from streams.outcomes.shadow import shadow_report

router = APIRouter(prefix="/api", tags=["closed loop"])
Res = Annotated[Resources, Depends(get_resources)]
WaitMinutes = Annotated[
    float | None,
    Query(
        ge=0,
        le=10080,
        allow_inf_nan=False,
        description="minutes from 0 to 10080 after the pickup when an actual is due "
        "(LABEL_WAIT_MINUTES when not given)",
    ),
]
SpanHours = Annotated[
    float | None,
    Query(
        gt=0,
        le=168,
        allow_inf_nan=False,
        description="hours above 0, at most 168, of due pickups (LABEL_COVERAGE_HOURS when not "
        "given)",
    ),
]


@router.get("/ramp/status", response_model=RampStatus)
def ramp_status(resources: Res) -> RampStatus:
    """The newest guarded ramp, a fresh look at its step's evidence (every check with its
    numbers), whether the next step is allowed and what blocks it, and its moves."""
    view = ramp.status(
        resources.engine, resources.flag_store, resources.initial_flags, now=resources.clock()
    )
    return RampStatus.model_validate(view)


@router.get("/labels/coverage", response_model=LabelCoverageReport)
def labels_coverage(
    resources: Res, wait_minutes: WaitMinutes = None, hours: SpanHours = None
) -> LabelCoverageReport:
    """Per arm, of the live predictions whose actual delay is due (pickup in the ``hours``
    before now less ``wait_minutes``), the share whose actual arrived."""
    s = resources.settings
    wait = s.label_wait_minutes if wait_minutes is None else wait_minutes
    span = s.label_coverage_hours if hours is None else hours
    now = resources.clock()
    items = label_coverage(resources.engine, now=now, wait_minutes=wait, hours=span)
    until = now - timedelta(minutes=wait)
    return LabelCoverageReport(
        as_of=now,
        wait_minutes=wait,
        pickups_from=until - timedelta(hours=span),
        pickups_until=until,
        target=s.label_coverage_target,
        arms=[
            ArmLabels(
                arm=item.arm,  # type: ignore[arg-type]
                due=item.due,
                arrived=item.arrived,
                coverage=item.coverage,
                missing_share=item.missing_share,
                below_target=item.coverage is not None
                and item.due >= s.label_coverage_min_due
                and item.coverage < s.label_coverage_target,
            )
            for item in items
        ],
    )


@router.get("/shadow/report", response_model=ShadowReport)
def shadow(resources: Res, window: WindowName = None, hours: OptionalHours = None) -> ShadowReport:
    """The challenger scored in shadow against the champion, the heuristic and all that was
    served, paired on identical bookings: MAE difference, 95 % interval, p-value, over an
    event-time ``window`` (or the last ``hours``) and per UTC hour."""
    with resources.engine.connect() as connection:
        chosen = requested_window(connection, window=window, hours=hours, now=resources.clock())
        report = shadow_report(connection, chosen)
    return ShadowReport.model_validate(report)


@router.get("/timeline", response_model=Timeline)
def timeline(resources: Res, hours: Hours = 24, limit: Limit = 200) -> Timeline:
    """Flag changes, promotions and rollbacks, ramp moves with their reasons, drift alarms,
    alerts and A/B verdict shifts of the last ``hours`` (wall clock), oldest first, at most the
    newest ``limit``; each entry links to its evidence."""
    until = resources.clock()
    since = until - timedelta(hours=hours)
    items = incident_timeline(
        resources.engine,
        model_dir=resources.settings.model_dir,
        since=since,
        until=until + timedelta(seconds=1),
        limit=limit,
    )
    return Timeline(
        since=since, until=until, items=[TimelineEntry.model_validate(e) for e in items]
    )


AheadHours = Annotated[
    int,
    Query(ge=0, le=168, description="a whole number of hours from 0 to 168 after now"),
]


@router.get("/ml-monitoring/estimated", response_model=EstimatedMae)
def estimated(resources: Res, hours: Hours = 24, ahead_hours: AheadHours = 6) -> EstimatedMae:
    """Per hour of scheduled pickup, from ``hours`` before now to ``ahead_hours`` after, and
    per arm: the MAE estimated from the predictions' P90s as soon as they are made, the
    realized MAE as the actuals arrive (it stands once LABEL_COVERAGE_TARGET of the hour's
    predictions have theirs), and the estimate's error on the predictions that have both."""
    now = resources.clock()
    report = estimated_then_realized(
        resources.engine,
        since=now - timedelta(hours=hours),
        until=now + timedelta(hours=ahead_hours),
        realized_share=resources.settings.label_coverage_target,
    )
    return EstimatedMae.model_validate(report)

"""The closed loop's endpoints: ``/api/ramp/status`` (where the guarded ramp stands and what
blocks its next step, as ``delaycast ramp status`` says), ``/api/labels/coverage`` (per arm,
the share of due actual delays that arrived) and ``/api/shadow/report`` (the challenger in
shadow against what was served, paired, as ``delaycast ab report --shadow`` says)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from streams.operate import ramp
from streams.operate.api.params import OptionalHours, WindowName
from streams.operate.api.resources import Resources, get_resources
from streams.operate.api.responses import (
    ArmLabels,
    LabelCoverageReport,
    RampStatus,
    ShadowReport,
)
from streams.operate.api.window_query import requested_window
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

"""Label coverage from the stored history, and its periodic alarm in the recorder."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from connectors.postgres.history import Bind
from connectors.postgres.monitoring import label_counts
from models.labels import CoverageAlarm, LabelCoverage, coverages
from schemas import Alert, Arm

ARMS = (Arm.ML.value, Arm.HEURISTIC.value)


def label_coverage(
    bind: Bind, *, now: datetime, wait_minutes: float, hours: float
) -> list[LabelCoverage]:
    """Per arm, the live predictions whose scheduled pickup lies in the ``hours`` before
    ``now - wait_minutes`` (their actual is due), and how many of those have one."""
    due_before = now - timedelta(minutes=wait_minutes)
    counts = label_counts(
        bind, due_before=due_before, pickup_since=due_before - timedelta(hours=hours)
    )
    return coverages(counts, ARMS)


def periodic_task(
    bind: Bind,
    *,
    clock: Callable[[], datetime],
    publish: Callable[[list[Alert]], None],
    target: float,
    min_due: int,
    wait_minutes: float,
    hours: float,
) -> Callable[[], None]:
    """A look at the label coverage that publishes a label_coverage alert for each arm whose
    coverage just fell below ``target``."""
    alarm = CoverageAlarm(target=target, min_due=min_due, wait_minutes=wait_minutes)

    def run() -> None:
        # To the minute: the recorders of several outcome workers raise the same alert id,
        # which PostgreSQL stores once.
        now = clock().replace(second=0, microsecond=0)
        alerts = alarm.check(
            label_coverage(bind, now=now, wait_minutes=wait_minutes, hours=hours), now
        )
        if alerts:
            publish(alerts)

    return run

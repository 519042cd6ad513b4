"""Label coverage: per arm, how many predictions whose actual delay is due have one.

An actual is due ``wait`` after the booking's scheduled pickup. A falling coverage means the
actuals feed is late or lossy; a coverage that differs between the arms means their MAEs compare
different populations (the guarded ramp rolls back on that, :mod:`models.ramp`).

:class:`CoverageAlarm` raises a ``label_coverage`` alert when an arm's coverage falls below its
target, once, and re-arms when it is back: a lasting shortfall is one alert, not one a minute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from models.alert_rules import alert_id
from schemas import Alert, AlertKind, Severity


@dataclass(frozen=True)
class LabelCoverage:
    arm: str
    due: int  # predictions whose actual is due
    arrived: int  # of those, the ones whose actual arrived

    @property
    def coverage(self) -> float | None:
        """The share of due actuals that arrived; None when none is due.

        >>> LabelCoverage("ml", 200, 150).coverage, LabelCoverage("ml", 0, 0).coverage
        (0.75, None)
        """
        return self.arrived / self.due if self.due else None

    @property
    def missing_share(self) -> float | None:
        return None if self.coverage is None else 1.0 - self.coverage


def coverages(counts: Mapping[str, tuple[int, int]], arms: tuple[str, ...]) -> list[LabelCoverage]:
    """One LabelCoverage per arm, in ``arms`` order, from (due, arrived) counts by arm."""
    return [LabelCoverage(arm, *counts.get(arm, (0, 0))) for arm in arms]


@dataclass
class CoverageAlarm:
    target: float
    min_due: int
    wait_minutes: float
    low: set[str] = field(default_factory=set)  # arms whose alert has fired and not cleared

    def check(self, items: list[LabelCoverage], now: datetime) -> list[Alert]:
        """Alerts for the arms whose coverage just fell below the target.

        >>> from datetime import UTC, datetime
        >>> alarm = CoverageAlarm(target=0.9, min_due=100, wait_minutes=30)
        >>> t = datetime(2026, 12, 7, tzinfo=UTC)
        >>> [a.subject for a in alarm.check([LabelCoverage("ml", 200, 150)], t)]
        ['ml']
        >>> alarm.check([LabelCoverage("ml", 400, 300)], t)  # still low: no repeat
        []
        >>> alarm.check([LabelCoverage("ml", 400, 390)], t), sorted(alarm.low)  # back: re-armed
        ([], [])
        """
        alerts = []
        for item in items:
            if item.due < self.min_due or item.coverage is None:
                continue
            if item.coverage >= self.target:
                self.low.discard(item.arm)
                continue
            if item.arm in self.low:
                continue
            self.low.add(item.arm)
            alerts.append(
                Alert(
                    alert_id=alert_id(AlertKind.LABEL_COVERAGE, item.arm, now),
                    kind=AlertKind.LABEL_COVERAGE,
                    severity=Severity.WARNING,
                    subject=item.arm,
                    message=(
                        f"{item.arm}'s actual delays arrived for {item.coverage * 100:.1f} % of "
                        f"the {item.due:,} bookings due {self.wait_minutes:g} min after pickup "
                        f"(target {self.target * 100:g} %): {item.due - item.arrived:,} missing"
                    ),
                    evidence={
                        "due": float(item.due),
                        "arrived": float(item.arrived),
                        "coverage": item.coverage,
                        "target": self.target,
                    },
                    event_time=now,
                    raised_at=now,
                )
            )
        return alerts

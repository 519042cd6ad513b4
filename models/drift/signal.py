"""DriftSignal: what a drift monitor reports, as pure data (the caller turns it into an Alert)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.alert import AlertKind


@dataclass(frozen=True)
class DriftSignal:
    """One alarm of a monitor.

    ``subject`` is what drifted (an arm, a feature name); ``statistic`` is the value that crossed
    ``threshold`` (same unit); ``event_time`` is the event time of the last event that the
    decision used; ``evidence`` holds the numbers an operator needs to judge it.
    """

    kind: AlertKind
    subject: str
    statistic: float
    threshold: float
    event_time: datetime
    evidence: dict[str, float | str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the kind as its value and the event time in ISO 8601."""
        return {
            "kind": self.kind.value,
            "subject": self.subject,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "event_time": self.event_time.isoformat(),
            "evidence": dict(self.evidence),
        }

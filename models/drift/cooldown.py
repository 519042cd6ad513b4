"""Cooldown: at most one alarm per subject per span of event time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from models.drift.persist import dict_of, int_of, time_of


class Cooldown:
    """Remembers the last alarm of each subject; :meth:`allow` says whether a new one may fire.

    Time is event time, so a replay cools down exactly as the live run did.

    >>> from datetime import UTC
    >>> c = Cooldown(timedelta(minutes=30))
    >>> t = datetime(2026, 3, 12, 8, 0, tzinfo=UTC)
    >>> minutes = [0, 29, 30]
    >>> [c.allow("ml", t + timedelta(minutes=m)) for m in minutes]
    [True, False, True]
    """

    def __init__(self, span: timedelta) -> None:
        if span < timedelta(0):
            raise ValueError("the cooldown must not be negative")
        self.span = span
        self.last_alarm: dict[str, datetime] = {}
        self.suppressed: dict[str, int] = {}

    def allow(self, subject: str, at: datetime) -> bool:
        """True (and the alarm is recorded) unless ``subject`` alarmed less than the span ago."""
        last = self.last_alarm.get(subject)
        if last is not None and at < last + self.span:
            self.suppressed[subject] = self.suppressed.get(subject, 0) + 1
            return False
        self.last_alarm[subject] = at
        return True

    def quiet_until(self, subject: str) -> datetime | None:
        last = self.last_alarm.get(subject)
        return None if last is None else last + self.span

    def to_data(self) -> dict[str, Any]:
        """The remembered alarms as JSON data (the span is the monitor's configuration)."""
        return {
            "last_alarm": {k: v.isoformat() for k, v in self.last_alarm.items()},
            "suppressed": dict(self.suppressed),
        }

    @classmethod
    def from_data(cls, span: timedelta, data: Any) -> Cooldown:
        """A cooldown continuing from :meth:`to_data`; ValueError when the data is malformed."""
        cooldown = cls(span)
        last = dict_of(data, "last_alarm")
        cooldown.last_alarm = {str(k): _aware(time_of(last, k)) for k in last}
        suppressed = dict_of(data, "suppressed")
        cooldown.suppressed = {str(k): int_of(suppressed, k) for k in suppressed}
        return cooldown


def _aware(at: datetime | None) -> datetime:
    if at is None:
        raise ValueError("a cooldown's last alarm without its time")
    return at

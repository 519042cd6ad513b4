"""Parameter types shared by the commands, so that bad input gets the same clear message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click


class IsoTime(click.ParamType):
    """An ISO 8601 time with a UTC offset, e.g. ``2026-11-22T08:00:00+01:00`` or ``...Z``.

    >>> IsoTime().convert("2026-11-22T08:00:00Z", None, None).isoformat()
    '2026-11-22T08:00:00+00:00'
    """

    name = "ISO-TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(
                f"{value!r} is not an ISO 8601 time; expected e.g. 2026-11-22T08:00:00+01:00",
                param,
                ctx,
            )
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            self.fail(f"{value!r} has no UTC offset; add one, e.g. +00:00 or Z", param, ctx)
        return parsed


ISO_TIME = IsoTime()

# models.synthetic.world.DEFAULT_WORLD_SEED, not imported: numpy would load for every command.
# Every command's default seed, so live weather matches the history's.
DEFAULT_WORLD_SEED = 42

# models.synthetic.incidents.MAX_RATE, not imported: numpy would load for every command.
MAX_INCIDENT_RATE = 0.5


class IncidentRate(click.ParamType):
    """The share of synthetic bookings that incidents hit: a number in [0, 0.5], 0 = none.

    >>> IncidentRate().convert("0.03", None, None)
    0.03
    """

    name = "RATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        expected = (
            f"expected the share of bookings hit by incidents, a number from 0 (none) "
            f"to {MAX_INCIDENT_RATE}, e.g. 0.03"
        )
        try:
            rate = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number; {expected}", param, ctx)
        if not 0.0 <= rate <= MAX_INCIDENT_RATE:  # NaN fails too
            self.fail(f"{value!r} is out of range; {expected}", param, ctx)
        return rate


INCIDENT_RATE = IncidentRate()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(at: datetime) -> int:
    """Kafka's timestamp for an aware ``at``: whole milliseconds since the epoch, rounded down.

    >>> epoch_ms(datetime(2026, 1, 1, 0, 0, 0, 999_999, tzinfo=UTC))
    1767225600999
    """
    return (at - _EPOCH) // timedelta(milliseconds=1)

"""ActualDelay: the observed pickup delay of a booking, on ``actual-delays``."""

from typing import Final, Literal

from pydantic import Field

from schemas._base import Event
from schemas._types import BookingId, EventTime

ACTUAL_SCHEMA_VERSION: Final = 1


class ActualDelay(Event):
    schema_version: Literal[1] = ACTUAL_SCHEMA_VERSION
    booking_id: BookingId
    actual_delay_minutes: float = Field(
        ge=-240, le=1440, description="Minutes after the scheduled pickup; negative when early."
    )
    observed_at: EventTime = Field(description="When the pickup happened (event time).")
    source: str | None = Field(default=None, max_length=64, description="e.g. driver_app")

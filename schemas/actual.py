"""ActualDelay: the observed pickup delay of a booking, on ``actual-delays``."""

from typing import Final, Literal

from pydantic import AwareDatetime, Field

from schemas._base import Event

ACTUAL_SCHEMA_VERSION: Final = 1


class ActualDelay(Event):
    schema_version: Literal[1] = ACTUAL_SCHEMA_VERSION
    booking_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    actual_delay_minutes: float = Field(
        ge=-240, le=1440, description="Minutes after the scheduled pickup; negative when early."
    )
    observed_at: AwareDatetime = Field(description="When the pickup happened (event time).")
    source: str | None = Field(default=None, max_length=64, description="e.g. driver_app")

"""Outcome: a prediction joined with the actual delay of its booking, on ``outcomes``."""

from typing import Final, Literal

from pydantic import Field

from schemas._base import Event
from schemas._types import BookingId, DelayMinutes, EventTime, Label
from schemas.prediction import Arm, FallbackReason

OUTCOME_SCHEMA_VERSION: Final = 1
UNDERESTIMATE_MINUTES: Final = 5.0


class Outcome(Event):
    """``error`` is predicted − actual: negative when the pickup was later than predicted."""

    schema_version: Literal[1] = OUTCOME_SCHEMA_VERSION
    booking_id: BookingId
    arm: Arm
    served_by: Arm
    model_version: Label
    bucket: float = Field(ge=0, lt=100)
    ml_traffic_percentage: float = Field(ge=0, le=100)
    fallback_reason: FallbackReason | None = None
    predicted_delay_minutes: DelayMinutes
    predicted_p90_minutes: DelayMinutes | None = Field(
        default=None,
        description="The prediction's delay_p90_minutes: a delay the actual one should stay "
        "below 9 times in 10; null when its producer did not compute one.",
    )
    actual_delay_minutes: DelayMinutes
    error: float = Field(ge=-20_160, le=20_160)
    abs_error: float = Field(ge=0, le=20_160)
    shadow_model_version: Label | None = Field(
        default=None, description="The challenger scored in shadow on the booking, if any."
    )
    shadow_predicted_delay_minutes: DelayMinutes | None = None
    shadow_abs_error: float | None = Field(
        default=None, ge=0, le=20_160, description="The challenger's absolute error."
    )
    scheduled_pickup_at: EventTime
    predicted_at: EventTime
    observed_at: EventTime = Field(description="The actual's event time; metrics use it.")
    replay: bool = False

    @property
    def underestimated(self) -> bool:
        """True when the pickup was more than 5 minutes later than predicted."""
        return self.actual_delay_minutes - self.predicted_delay_minutes > UNDERESTIMATE_MINUTES

    @property
    def within_p90(self) -> bool | None:
        """True when the actual delay was at most the predicted P90; None without a P90."""
        if self.predicted_p90_minutes is None:
            return None
        return self.actual_delay_minutes <= self.predicted_p90_minutes

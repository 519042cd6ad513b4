"""BookingRequested: a transport booking as published on the ``bookings`` topic."""

from enum import StrEnum
from typing import Final, Literal

from pydantic import Field

from schemas._base import Event
from schemas._types import BookingId, EventTime

BOOKING_SCHEMA_VERSION: Final = 1


class VehicleType(StrEnum):
    STANDARD = "standard"
    WHEELCHAIR = "wheelchair"
    STRETCHER = "stretcher"


class PatientPriority(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class BookingRequested(Event):
    """A booking for a pickup; keyed on Kafka by ``booking_id``."""

    schema_version: Literal[1] = BOOKING_SCHEMA_VERSION
    booking_id: BookingId
    scheduled_pickup_at: EventTime = Field(description="ISO 8601 with a UTC offset.")
    created_at: EventTime = Field(description="When the booking was made, with offset.")
    pickup_lat: float = Field(ge=-90, le=90)
    pickup_lon: float = Field(ge=-180, le=180)
    dropoff_lat: float = Field(ge=-90, le=90)
    dropoff_lon: float = Field(ge=-180, le=180)
    vehicle_type: VehicleType
    patient_priority: PatientPriority | None = None
    operator_id: str | None = Field(default=None, max_length=64)

"""Prediction: the predicted pickup delay of one booking, on ``predictions``."""

from enum import StrEnum
from typing import Final, Literal

from pydantic import Field

from schemas._base import Event
from schemas._types import (
    BookingId,
    DelayMinutes,
    DurationMs,
    EventTime,
    FeatureName,
    FeatureValue,
    Label,
)
from schemas.weather import Weather

PREDICTION_SCHEMA_VERSION: Final = 1


class Arm(StrEnum):
    ML = "ml"
    HEURISTIC = "heuristic"


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class FallbackReason(StrEnum):
    """Why a booking assigned to the ML arm was served by the heuristic."""

    NO_MODEL = "no_model"
    BAD_ARTIFACT = "bad_artifact"
    MODEL_ERROR = "model_error"
    MISSING_FEATURE = "missing_feature"
    AREA_MISMATCH = "area_mismatch"  # the champion was trained for another service area


class FlagSource(StrEnum):
    """Where the routing flags used for this prediction came from."""

    REDIS = "redis"
    LAST_SEEN = "last_seen"  # Redis unreachable: the last values read from it
    SETTINGS = "settings"  # Redis unreachable since start: the settings' initial values


class Prediction(Event):
    schema_version: Literal[1] = PREDICTION_SCHEMA_VERSION
    booking_id: BookingId
    predicted_delay_minutes: DelayMinutes
    delay_p90_minutes: DelayMinutes | None = Field(
        default=None,
        description="A delay the actual one stays below 9 times in 10 (calibrated on the "
        "training holdout); absent from producers that do not compute it.",
    )
    confidence: float = Field(ge=0, le=1)
    risk_level: RiskLevel
    arm: Arm = Field(description="The arm the flag assigned (intention to treat).")
    served_by: Arm = Field(description="The predictor that produced the number.")
    bucket: float = Field(ge=0, lt=100)
    model_version: Label = Field(description="The ML model or heuristic version that served it.")
    fallback_reason: FallbackReason | None = None
    fallback_detail: str | None = Field(default=None, max_length=500)
    shadow_model_version: Label | None = Field(
        default=None,
        description="The challenger scored in shadow on this booking: never served, joined "
        "with the actual like the served prediction; absent when there is no challenger.",
    )
    shadow_delay_minutes: DelayMinutes | None = Field(
        default=None, description="The challenger's predicted delay (shadow, not served)."
    )
    ml_enabled: bool
    ml_traffic_percentage: float = Field(ge=0, le=100)
    flag_source: FlagSource
    features: dict[FeatureName, FeatureValue] = Field(
        max_length=64, description="The feature values used, weather included."
    )
    weather: Weather
    scheduled_pickup_at: EventTime
    booking_created_at: EventTime
    predicted_at: EventTime
    processing_ms: DurationMs = Field(description="From the batch's arrival to its prediction.")
    latency_ms: DurationMs | None = Field(
        default=None, description="From the booking's Kafka timestamp to its prediction."
    )
    replay: bool = False

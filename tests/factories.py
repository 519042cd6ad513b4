"""Event builders for unit tests: valid events with neutral defaults, overridden per test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import Arm, Outcome, Prediction, RiskLevel, Weather

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)

WEATHER = Weather(
    temperature_c=5,
    precipitation_mm_h=0,
    wind_m_s=1,
    visibility_m=10000,
    humidity_pct=60,
    condition="clear",
    observed_at=T0,
    source="default",
    is_default=True,
)


def prediction(booking_id: str, *, at: datetime = T0, **fields: Any) -> Prediction:
    """A prediction made at ``at``; ``served_by`` follows ``arm`` unless given."""
    arm = fields.pop("arm", Arm.ML)
    values: dict[str, Any] = {
        "booking_id": booking_id,
        "predicted_delay_minutes": 5.0,
        "confidence": 0.5,
        "risk_level": RiskLevel.LOW,
        "arm": arm,
        "served_by": arm,
        "bucket": 12.5,
        "model_version": "rf-1" if arm is Arm.ML else "heuristic-1",
        "ml_enabled": True,
        "ml_traffic_percentage": 50,
        "flag_source": "redis",
        "features": {},
        "weather": WEATHER,
        "scheduled_pickup_at": at,
        "booking_created_at": at,
        "predicted_at": at,
        "processing_ms": 1.0,
    }
    values.update(fields)
    return Prediction(**values)


def outcome(booking_id: str, abs_error: float, *, arm: Arm = Arm.ML, at: datetime = T0) -> Outcome:
    """An outcome observed at ``at`` whose pickup was ``abs_error`` minutes later than predicted."""
    return Outcome(
        booking_id=booking_id,
        arm=arm,
        served_by=arm,
        model_version="rf" if arm is Arm.ML else "h",
        bucket=1,
        ml_traffic_percentage=50,
        predicted_delay_minutes=5,
        actual_delay_minutes=5 + abs_error,
        error=-abs_error,
        abs_error=abs_error,
        scheduled_pickup_at=at,
        predicted_at=at,
        observed_at=at,
    )


def seconds_after_t0(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)

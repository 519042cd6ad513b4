"""A corpus of hostile records: what no honest producer sends, and what each must become.

Each case is one Kafka record (topic, key, value) built relative to the moment it is published,
with the dead-letter kind the contract gives it. The unit test runs every case through the
decode path; the integration test mixes them into valid traffic on the real stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Case:
    name: str
    topic: str  # base name: bookings, actual-delays or predictions
    key: bytes | None
    value: bytes
    kind: str  # the dead letter's kind


def booking(booking_id: str, now: datetime, **changes: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "booking_id": booking_id,
        "created_at": (now - timedelta(minutes=40)).isoformat(),
        "scheduled_pickup_at": (now + timedelta(minutes=30)).isoformat(),
        "pickup_lat": 46.2044,
        "pickup_lon": 6.1432,
        "dropoff_lat": 46.1936,
        "dropoff_lon": 6.149,
        "vehicle_type": "wheelchair",
        "patient_priority": "urgent",
        **changes,
    }


def actual(booking_id: str, now: datetime, **changes: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "booking_id": booking_id,
        "actual_delay_minutes": 4.5,
        "observed_at": (now - timedelta(minutes=2)).isoformat(),
        **changes,
    }


def prediction(booking_id: str, now: datetime, **changes: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "booking_id": booking_id,
        "predicted_delay_minutes": 5.0,
        "confidence": 0.5,
        "risk_level": "low",
        "arm": "ml",
        "served_by": "ml",
        "bucket": 12.5,
        "model_version": "rf-forged",
        "ml_enabled": True,
        "ml_traffic_percentage": 50,
        "flag_source": "redis",
        "features": {"distance_km": 3.0},
        "weather": {
            "temperature_c": 5,
            "precipitation_mm_h": 0,
            "wind_m_s": 1,
            "visibility_m": 10000,
            "humidity_pct": 60,
            "condition": "clear",
            "observed_at": now.isoformat(),
            "source": "default",
            "is_default": True,
        },
        "scheduled_pickup_at": (now + timedelta(minutes=30)).isoformat(),
        "booking_created_at": (now - timedelta(minutes=10)).isoformat(),
        "predicted_at": now.isoformat(),
        "processing_ms": 1.0,
        **changes,
    }


def _json(data: Any) -> bytes:
    return json.dumps(data).encode()


def hostile_cases(now: datetime, prefix: str = "X-") -> list[Case]:
    """Every hostile case, its booking ids starting with ``prefix``, times relative to ``now``
    (the moment the records are published)."""
    cases: list[Case] = []

    def add(name: str, topic: str, value: bytes, kind: str, key: bytes | None = b"") -> None:
        booking_id = f"{prefix}{len(cases):03d}"
        cases.append(Case(name, topic, booking_id.encode() if key == b"" else key, value, kind))

    def bid() -> str:
        return f"{prefix}{len(cases):03d}"

    def b(**changes: Any) -> bytes:
        return _json(booking(bid(), now, **changes))

    def a(**changes: Any) -> bytes:
        return _json(actual(bid(), now, **changes))

    def p(**changes: Any) -> bytes:
        return _json(prediction(bid(), now, **changes))

    later = (now + timedelta(days=1)).isoformat()
    # Encodings and framing
    add("empty value", "bookings", b"", "decode")
    add("whitespace only", "bookings", b"  \n\t ", "decode")
    add("not JSON", "bookings", b"booking please", "decode")
    add("invalid UTF-8", "bookings", b'{"booking_id": "\xff\xfe"}', "decode")
    add("UTF-16 JSON", "bookings", json.dumps(booking(bid(), now)).encode("utf-16"), "decode")
    add("byte order mark", "bookings", b"\xef\xbb\xbf" + b(), "decode")
    add("trailing garbage", "bookings", b() + b"garbage", "decode")
    add("two objects", "bookings", b() + b(), "decode")
    add("truncated JSON", "bookings", b()[:-20], "decode")
    add("JSON array", "bookings", b"[" + b() + b"]", "validation")
    add("JSON null", "bookings", b"null", "validation")
    add("JSON string", "bookings", b'"a booking"', "validation")
    add("JSON number", "bookings", b"42", "validation")
    # Sizes and depth
    add("900 KB of garbage", "bookings", b"{" + b"x" * 900_000, "too_large")
    padded = booking(bid(), now, notes="n" * 70_000)
    add("70 KB valid-looking booking", "bookings", _json(padded), "too_large")
    add("nested 20,000 deep", "bookings", b'{"a":' + b"[" * 20_000 + b"]" * 20_000 + b"}", "decode")
    # Numbers
    add("NaN latitude", "bookings", b().replace(b"46.2044", b"NaN"), "validation")
    add("Infinity longitude", "bookings", b().replace(b"6.1432", b"Infinity"), "validation")
    add("NaN in an unknown field", "bookings", b(extra=0)[:-1] + b', "x": NaN}', "validation")
    add("1e400 latitude", "bookings", b().replace(b"46.2044", b"1e400"), "validation")
    add("latitude 91", "bookings", b(pickup_lat=91), "validation")
    add("latitude as a string", "bookings", b(pickup_lat="46.2"), "validation")
    add("latitude as a boolean", "bookings", b(pickup_lat=True), "validation")
    # Times
    add("pickup as epoch seconds", "bookings", b(scheduled_pickup_at=1_800_000_000), "validation")
    add("pickup as a numeric string", "bookings", b(scheduled_pickup_at="1800000000"), "validation")
    add(
        "pickup without offset",
        "bookings",
        b(scheduled_pickup_at="2026-11-23T08:30:00"),
        "validation",
    )
    add(
        "pickup in year 9999",
        "bookings",
        b(scheduled_pickup_at="9999-12-31T23:59:59+00:00"),
        "validation",
    )
    add(
        "pickup on February 30",
        "bookings",
        b(scheduled_pickup_at="2026-02-30T08:00:00Z"),
        "validation",
    )
    add(
        "pickup in 2099",
        "bookings",
        b(scheduled_pickup_at="2099-01-01T00:00:00+00:00"),
        "time_bounds",
    )
    add("created a day after publishing", "bookings", b(created_at=later), "time_bounds")
    old = (now - timedelta(days=60)).isoformat()
    add("created 60 days before publishing", "bookings", b(created_at=old), "time_bounds")
    # Keys, ids and types
    add("duplicate key", "bookings", b()[:-1] + b', "booking_id": "other"}', "validation")
    add(
        "missing booking_id",
        "bookings",
        _json({k: v for k, v in booking("x", now).items() if k != "booking_id"}),
        "validation",
        key=None,
    )
    add(
        "booking_id of 200 characters",
        "bookings",
        _json(booking("B" * 200, now)),
        "validation",
        key=None,
    )
    add(
        "booking_id with spaces",
        "bookings",
        _json(booking("B 1; DROP", now)),
        "validation",
        key=None,
    )
    add("booking_id with a NUL", "bookings", _json(booking("B\x001", now)), "validation", key=None)
    add("empty booking_id", "bookings", _json(booking("", now)), "validation", key=None)
    add("booking_id as a number", "bookings", _json(booking(123, now)), "validation", key=None)  # type: ignore[arg-type]
    add("unknown vehicle type", "bookings", b(vehicle_type="helicopter"), "validation")
    add("schema_version 2", "bookings", b(schema_version=2), "validation")
    add("schema_version as a string", "bookings", b(schema_version="1"), "validation")
    add("operator_id of 1,000 characters", "bookings", b(operator_id="o" * 1000), "validation")
    add("key is another booking", "bookings", b(), "key_mismatch", key=b"someone-else")
    # Actual delays
    add(
        "actual observed in 2099",
        "actual-delays",
        a(observed_at="2099-01-01T00:00:00+00:00"),
        "time_bounds",
    )
    hour_ahead = (now + timedelta(hours=1)).isoformat()
    add("actual observed an hour ahead", "actual-delays", a(observed_at=hour_ahead), "time_bounds")
    add(
        "actual delay of 1e200 minutes",
        "actual-delays",
        a(actual_delay_minutes=1e200),
        "validation",
    )
    add("actual delay as a string", "actual-delays", a(actual_delay_minutes="4.5"), "validation")
    add("actual observed as epoch", "actual-delays", a(observed_at=1_800_000_000), "validation")
    add("actual keyed by another booking", "actual-delays", a(), "key_mismatch", key=b"X-other")
    # Forged predictions
    add(
        "prediction of 1e200 minutes", "predictions", p(predicted_delay_minutes=1e200), "validation"
    )
    many = {f"f{i}": 1.0 for i in range(1000)}
    add("prediction with 1,000 features", "predictions", p(features=many), "validation")
    add("prediction made an hour ahead", "predictions", p(predicted_at=hour_ahead), "time_bounds")
    add("confidence of 2", "predictions", p(confidence=2), "validation")
    return cases

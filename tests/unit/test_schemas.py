from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from schemas import ActualDelay, BookingRequested, DeadLetter, DeadLetterKind, Prediction
from schemas.export import JSON_DIR, expected_files

BOOKING = {
    "booking_id": "B-1",
    "scheduled_pickup_at": "2026-11-22T08:30:00+01:00",
    "created_at": "2026-11-21T17:00:00+01:00",
    "pickup_lat": 46.2,
    "pickup_lon": 6.14,
    "dropoff_lat": 46.19,
    "dropoff_lon": 6.15,
    "vehicle_type": "wheelchair",
}


def test_exported_json_schema_files_match_the_code():
    expected = expected_files()
    on_disk = {p.name: p.read_text() for p in JSON_DIR.glob("*.schema.json")}
    assert sorted(on_disk) == sorted(expected), "run `make schemas`"
    for name, text in expected.items():
        assert on_disk[name] == text, f"{name} is stale: run `make schemas`"


def test_booking_round_trips_through_json():
    booking = BookingRequested.model_validate(BOOKING)
    again = BookingRequested.model_validate_json(booking.model_dump_json())
    assert again == booking
    assert again.scheduled_pickup_at.utcoffset() == timedelta(hours=1)
    assert again.schema_version == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("scheduled_pickup_at", "2026-11-22T08:30:00"),  # no offset
        ("pickup_lat", 91.0),
        ("pickup_lon", -181),
        ("vehicle_type", "helicopter"),
        ("booking_id", ""),
        ("booking_id", "has space"),
        ("schema_version", 2),
    ],
)
def test_booking_rejects_bad_values(field, value):
    with pytest.raises(ValidationError):
        BookingRequested.model_validate({**BOOKING, field: value})


def test_booking_rejects_nan_in_json():
    raw = (
        '{"booking_id":"B","scheduled_pickup_at":"2026-11-22T08:30:00+01:00",'
        '"created_at":"2026-11-22T08:00:00+01:00","pickup_lat":NaN,"pickup_lon":6,'
        '"dropoff_lat":46,"dropoff_lon":6,"vehicle_type":"standard"}'
    )
    with pytest.raises(ValidationError):
        BookingRequested.model_validate_json(raw)


def test_booking_missing_field_is_named_in_the_error():
    data = dict(BOOKING)
    del data["created_at"]
    with pytest.raises(ValidationError, match="created_at"):
        BookingRequested.model_validate(data)


def test_actual_delay_round_trip():
    actual = ActualDelay(
        booking_id="B-1",
        actual_delay_minutes=7.5,
        observed_at=datetime(2026, 11, 22, 7, 38, tzinfo=UTC),
    )
    assert ActualDelay.model_validate_json(actual.model_dump_json()) == actual


def test_dead_letter_keeps_the_original_bytes():
    raw = b"\xff\xfe not json"
    letter = DeadLetter(
        source_topic="bookings",
        source_partition=2,
        source_offset=41,
        source_key_b64=DeadLetter.encode_bytes(b"B-9"),
        original_value_b64=DeadLetter.encode_bytes(raw) or "",
        kind=DeadLetterKind.DECODE,
        error="not UTF-8",
        failed_at=datetime(2026, 11, 22, tzinfo=timezone(timedelta(hours=1))),
        agent="predict",
    )
    again = DeadLetter.model_validate_json(letter.model_dump_json())
    assert again.original_value == raw
    assert again.source_key == b"B-9"


def test_prediction_schema_requires_confidence_in_unit_interval():
    assert Prediction.model_json_schema()["properties"]["confidence"]["maximum"] == 1

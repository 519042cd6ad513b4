"""The input contract: every hostile record is refused with its own kind, every valid one is
accepted, and no dead letter is larger than the cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas import ActualDelay, BookingRequested, Prediction
from schemas.dead_letter import MAX_KEPT_VALUE_BYTES
from streams.decode import Inbound, dead_letter, decode_one
from tests.hostile.corpus import actual, booking, hostile_cases, prediction

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
MODELS = {"bookings": BookingRequested, "actual-delays": ActualDelay, "predictions": Prediction}
CASES = hostile_cases(NOW)


def inbound(topic, key, value, published=NOW):
    return Inbound(topic, 0, 7, key, value, timestamp_ms=published.timestamp() * 1000)


def test_the_corpus_has_at_least_forty_distinct_kinds_of_hostile_record():
    assert len({c.name for c in CASES}) == len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_hostile_record_is_refused_with_its_kind_and_a_reason(case):
    result = decode_one(inbound(case.topic, case.key, case.value), MODELS[case.topic], now=NOW)
    assert isinstance(result, tuple), f"accepted: {result!r}"
    kind, reason = result
    assert (kind.value, bool(reason)) == (case.kind, True), reason


@pytest.mark.parametrize(
    ("topic", "data"),
    [
        ("bookings", booking("OK-1", NOW)),
        ("bookings", booking("OK-2", NOW, created_at=(NOW + timedelta(minutes=4)).isoformat())),
        ("bookings", booking("OK-3", NOW, scheduled_pickup_at="2026-11-23 09:30:00+0100")),
        ("actual-delays", actual("OK-4", NOW)),
        ("actual-delays", actual("OK-5", NOW, observed_at="2026-11-23T08:03:00Z")),
        ("predictions", prediction("OK-6", NOW)),
    ],
)
def test_a_valid_record_is_accepted_with_or_without_a_key(topic, data):
    import json

    value = json.dumps(data).encode()
    for key in (data["booking_id"].encode(), None):
        event = decode_one(inbound(topic, key, value), MODELS[topic], now=NOW)
        assert not isinstance(event, tuple), event
        assert event.booking_id == data["booking_id"]


def test_a_record_is_judged_by_its_kafka_timestamp_so_a_replay_of_last_year_passes():
    import json

    year_ago = NOW - timedelta(days=365)
    value = json.dumps(booking("OLD-1", year_ago)).encode()
    replayed = decode_one(inbound("bookings", None, value, year_ago), BookingRequested, now=NOW)
    assert not isinstance(replayed, tuple)
    fresh = decode_one(inbound("bookings", None, value, NOW), BookingRequested, now=NOW)
    assert isinstance(fresh, tuple) and fresh[0].value == "time_bounds"


def test_an_actual_is_never_observed_after_the_wall_clock_whatever_its_timestamp_says():
    import json

    value = json.dumps(actual("A-1", NOW, observed_at=(NOW + timedelta(hours=2)).isoformat()))
    future_stamp = NOW + timedelta(hours=3)
    result = decode_one(
        inbound("actual-delays", None, value.encode(), future_stamp), ActualDelay, now=NOW
    )
    assert isinstance(result, tuple) and result[0].value == "time_bounds"
    assert "in the future" in result[1]


@pytest.mark.parametrize("size", [10, 40_000, 900_000, 5_000_000])
def test_a_dead_letter_never_exceeds_the_cap_and_says_what_it_cut(size):
    record = inbound("bookings", b"k" * 5000, b"x" * size)
    letter = dead_letter(record, "too_large", "big", agent="predict", now=NOW)
    encoded = letter.model_dump_json().encode()
    assert len(encoded) < 2 * MAX_KEPT_VALUE_BYTES
    assert letter.original_size == size
    assert letter.truncated is True
    assert letter.original_value == b"x" * min(size, MAX_KEPT_VALUE_BYTES)

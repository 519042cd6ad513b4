"""Malformed ``bookings`` values, one per kind of mistake, for dead-letter tests and demos."""

from __future__ import annotations

import json
import random
from typing import NamedTuple

import numpy as np


class InvalidPayload(NamedTuple):
    """A malformed ``bookings`` value: ``kind`` names what is wrong with it."""

    kind: str
    value: bytes


_VALID = {
    "schema_version": 1,
    "scheduled_pickup_at": "2026-11-23T08:30:00+01:00",
    "created_at": "2026-11-23T07:45:00+01:00",
    "pickup_lat": 46.2044,
    "pickup_lon": 6.1432,
    "dropoff_lat": 46.1930,
    "dropoff_lon": 6.1490,
    "vehicle_type": "wheelchair",
    "patient_priority": "routine",
}


def invalid_booking_payloads(rng: np.random.Generator | random.Random) -> list[InvalidPayload]:
    """One malformed value per kind, each with a fresh booking id drawn from ``rng``.

    Kinds: ``not_utf8``, ``empty``, ``not_json``, ``not_object``, ``missing_field``,
    ``wrong_type``, ``lat_out_of_range``, ``naive_datetime``, ``unknown_vehicle_type``,
    ``nan_value``. The first three are not JSON at all; the others are JSON that is not a valid
    BookingRequested. ``nan_value`` holds the bare token ``NaN``, which lenient JSON parsers
    accept and strict ones reject, so it may fail at either step.
    """

    def new_id() -> str:
        number = rng.getrandbits(32) if isinstance(rng, random.Random) else rng.integers(2**32)
        return f"BAD-{int(number):08x}"

    def payload(**changes: object) -> bytes:
        return json.dumps({"booking_id": new_id(), **_VALID, **changes}).encode()

    missing = json.loads(payload())
    del missing["scheduled_pickup_at"]
    return [
        InvalidPayload("not_utf8", b"\xff\xfe{\x00b\x00"),
        InvalidPayload("empty", b""),
        InvalidPayload("not_json", payload()[:-7]),
        InvalidPayload("not_object", b"[" + payload() + b"]"),
        InvalidPayload("missing_field", json.dumps(missing).encode()),
        InvalidPayload("wrong_type", payload(pickup_lat="forty-six")),
        InvalidPayload("lat_out_of_range", payload(pickup_lat=123.4)),
        InvalidPayload("naive_datetime", payload(scheduled_pickup_at="2026-11-23T08:30:00")),
        InvalidPayload("unknown_vehicle_type", payload(vehicle_type="helicopter")),
        InvalidPayload("nan_value", payload(pickup_lon=float("nan"))),
    ]

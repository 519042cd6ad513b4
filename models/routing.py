"""Deterministic, sticky routing of bookings to the ML arm or the heuristic.

The bucket of a booking is a stable hash of ``(salt, booking_id)`` in [0, 100) with two decimals:

    digest = SHA-256 of the UTF-8 bytes of  salt + ":" + booking_id
    u      = the first 8 bytes of digest as a big-endian unsigned 64-bit integer
    bucket = floor(u * 10000 / 2**64) / 100

A booking goes to the ML arm when ML is enabled and ``bucket < percentage``. Because the bucket
never changes for a booking and the test is a threshold, raising the percentage keeps every booking
already on ML on ML. ``schemas/vectors/bucket_hash.json`` holds test vectors for other languages.

>>> bucket("delaycast-v1", "B-000001")
71.86
>>> routes_to_ml(71.86, enabled=True, percentage=71.87)
True
>>> routes_to_ml(71.86, enabled=True, percentage=71.86)
False
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_SCALE = 10_000


def bucket(salt: str, booking_id: str) -> float:
    digest = hashlib.sha256(f"{salt}:{booking_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big")
    return ((u * _SCALE) >> 64) / 100


def buckets(salt: str, booking_ids: Iterable[str]) -> list[float]:
    return [bucket(salt, booking_id) for booking_id in booking_ids]


def routes_to_ml(bucket_value: float, *, enabled: bool, percentage: float) -> bool:
    return enabled and bucket_value < percentage

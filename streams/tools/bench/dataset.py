"""The benchmark's bookings and their actual delays, generated once per run, as encoded JSON.

Generation is vectorized (:meth:`models.synthetic.SyntheticWorld.past`), a few seconds for
50,000 bookings. Every booking id has the
form ``B-<tag>-<number>``; each scenario run substitutes a tag of its own (:meth:`Dataset.tagged`),
so the same bytes serve every repetition while no two runs share a booking id (the history
tables in PostgreSQL count a booking once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from models.synthetic import SyntheticWorld
from models.synthetic.world import DEFAULT_WORLD_SEED

PLACEHOLDER = "T0000000"
_MARK = b'"booking_id":"B-'
_PLACEHOLDER_MARK = _MARK + PLACEHOLDER.encode() + b"-"


def booking_id(tag: str, index: int) -> str:
    return f"B-{tag}-{index:07d}"


def retag(value: bytes, tag: str, old: str = PLACEHOLDER) -> bytes:
    """``value`` (an event's JSON) with the tag ``old`` of its booking id replaced by ``tag``.

    >>> retag(b'{"booking_id":"B-T0000000-0000001","x":1}', "r1a1")
    b'{"booking_id":"B-r1a1-0000001","x":1}'
    """
    return value.replace(_MARK + old.encode() + b"-", _MARK + tag.encode() + b"-", 1)


def retag_key(key: bytes, tag: str, old: str) -> bytes:
    """A booking id (as a Kafka key) with the tag ``old`` replaced by ``tag``."""
    return key.replace(f"B-{old}-".encode(), f"B-{tag}-".encode(), 1)


@dataclass(frozen=True)
class Dataset:
    bookings: list[bytes]  # BookingRequested JSON, booking ids with the placeholder tag
    actuals: list[bytes]  # ActualDelay JSON of the same bookings, in the same order

    def __len__(self) -> int:
        return len(self.bookings)

    def tagged(self, values: list[bytes], tag: str) -> list[tuple[bytes, bytes]]:
        """(key, value) of every event in ``values``, with the booking ids of ``tag``."""
        return [(booking_id(tag, i).encode(), retag(value, tag)) for i, value in enumerate(values)]


def generate(
    count: int, *, now: datetime, seed: int = 7, span: timedelta = timedelta(hours=24)
) -> Dataset:
    """``count`` bookings of the synthetic world whose pickups lie in the ``span`` (a day)
    before ``now`` (less the 3 hours within which any pickup is observed), and their actual
    delays: every actual is observed by ``now``, so publishing them at any later time respects
    the input's event-time bounds."""
    world = SyntheticWorld(DEFAULT_WORLD_SEED)
    ids = [booking_id(PLACEHOLDER, i) for i in range(count)]
    events = world.past(now, count, np.random.default_rng(seed), span=span, ids=ids, source="bench")
    encoded = Dataset(
        bookings=[e.booking.model_dump_json().encode() for e in events],
        actuals=[e.actual.model_dump_json().encode() for e in events],
    )
    if not all(_PLACEHOLDER_MARK in v for v in (encoded.bookings[0], encoded.actuals[0])):
        raise RuntimeError("the events' JSON does not spell booking_id as expected")
    return encoded

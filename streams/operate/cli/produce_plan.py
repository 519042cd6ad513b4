"""What ``delaycast produce synthetic`` publishes, and when: each record is due at a time on the
wall clock, never before the event it carries has happened.

A booking is due at its ``created_at`` (at once when that is past), its actual delay at its
``observed_at``: an actual is never published before it was observed, so the input's event-time
bounds (no event from the future) hold with no allowed skew at all.

>>> from datetime import UTC, datetime, timedelta
>>> now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)  # a Saturday
>>> plans = synthetic_plans(
...     count=3, invalid_fraction=0.0, seed=1, prefix="P", world_seed=42,
...     actual_after=timedelta(seconds=10), clock=lambda: now)
>>> schedule = Schedule()
>>> for plan in plans:
...     schedule.add(plan)
>>> [r.topic for r in schedule.pop_due(now)]
['bookings', 'bookings', 'bookings']
>>> len(schedule), schedule.next_due > now
(3, True)
>>> [r.topic for r in schedule.pop_due(now + timedelta(minutes=30))]
['actual-delays', 'actual-delays', 'actual-delays']
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.synthetic import IncidentConfig


@dataclass(frozen=True, order=True)
class Planned:
    """One record to publish once the wall clock reaches ``due``."""

    due: datetime
    seq: int  # generation order, which breaks ties
    topic: str = field(compare=False)  # catalogue name: "bookings" or "actual-delays"
    key: bytes = field(compare=False)
    value: bytes = field(compare=False)
    valid: bool = field(compare=False, default=True)


def synthetic_plans(
    *,
    count: int,
    invalid_fraction: float,
    seed: int | None,
    prefix: str,
    world_seed: int,
    actual_after: timedelta | None,
    clock: Callable[[], datetime],
    incidents: IncidentConfig | None = None,
) -> Iterator[tuple[Planned, ...]]:
    """The records of ``count`` bookings (endless when 0), one tuple per booking, some malformed.

    Without ``actual_after``: bookings created at ``clock()`` for pickups ahead. With it, each
    valid booking also has its ground-truth actual, observed about ``actual_after`` after the
    booking is generated (:meth:`models.synthetic.SyntheticWorld.due`), or its extra delay
    later when one of the world's ``incidents`` hits its pickup.
    """
    from models.synthetic import SyntheticWorld, invalid_booking_payloads

    rng = random.Random(seed)
    # The world (its weather and ground truth) must be the one the weather history came from.
    world = SyntheticWorld(world_seed, incidents)
    seq = itertools.count()
    numbers = itertools.count() if count == 0 else range(count)
    for n in numbers:
        now = clock()
        booking_id = f"{prefix}-{n:08d}"
        key = booking_id.encode()
        if invalid_fraction and rng.random() < invalid_fraction:
            _kind, payload = rng.choice(invalid_booking_payloads(rng))
            yield (Planned(now, next(seq), "bookings", key, payload, valid=False),)
            continue
        named = {"booking_id": booking_id}
        if actual_after is None:
            booking = world.booking(now, rng).model_copy(update=named)
            yield (Planned(now, next(seq), "bookings", key, booking.model_dump_json().encode()),)
            continue
        event = world.due(now, rng, after=actual_after)
        booking = event.booking.model_copy(update=named)
        actual = event.actual.model_copy(update=named)
        yield (
            Planned(
                max(now, booking.created_at),
                next(seq),
                "bookings",
                key,
                booking.model_dump_json().encode(),
            ),
            Planned(
                actual.observed_at,
                next(seq),
                "actual-delays",
                key,
                actual.model_dump_json().encode(),
            ),
        )


class Schedule:
    """Planned records, released in order of their due time."""

    def __init__(self) -> None:
        self._heap: list[Planned] = []

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, records: tuple[Planned, ...]) -> None:
        for record in records:
            heapq.heappush(self._heap, record)

    @property
    def next_due(self) -> datetime:
        return self._heap[0].due

    def pop_due(self, now: datetime) -> list[Planned]:
        """The records due at ``now`` or earlier, in due order, taken off the schedule."""
        out = []
        while self._heap and self._heap[0].due <= now:
            out.append(heapq.heappop(self._heap))
        return out

"""The benchmark's bookings and their actual delays, generated once per run, as encoded JSON.

Generation is vectorized (:func:`models.synthetic.bookings.make_bookings` and the ground truth
of :mod:`models.synthetic.truth`), a few seconds for 50,000 bookings. Every booking id has the
form ``B-<tag>-<number>``; each scenario run substitutes a tag of its own (:meth:`Dataset.tagged`),
so the same bytes serve every repetition while no two runs share a booking id (the history
tables in PostgreSQL count a booking once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from models.features import feature_matrix
from models.synthetic.bookings import lead_minutes, make_bookings
from models.synthetic.places import STATIONS, nearest_station
from models.synthetic.truth import day_effects, local_day, observed_delays
from models.synthetic.weather import weather_at
from schemas import ActualDelay, Weather
from streams.cli.produce_cmd import DEFAULT_WORLD_SEED

PLACEHOLDER = "T0000000"
_MARK = b'"booking_id":"B-'
_PLACEHOLDER_MARK = _MARK + PLACEHOLDER.encode() + b"-"
GRID_S = 300  # dispatch schedules pickups on a 5-minute grid
MIN_LEAD_MIN = 10.0


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


def generate(count: int, *, now: datetime, seed: int = 7) -> Dataset:
    """``count`` bookings created at ``now`` and the delays the synthetic world gives them."""
    rng = np.random.default_rng(seed)
    leads = np.maximum(lead_minutes(rng, count), MIN_LEAD_MIN)
    pickups = [
        datetime.fromtimestamp(math.ceil((now.timestamp() + m * 60) / GRID_S) * GRID_S, UTC)
        for m in leads.tolist()
    ]
    ids = [booking_id(PLACEHOLDER, i) for i in range(count)]
    bookings = make_bookings(ids, pickups, [now] * count, rng)
    weathers = _world_weather(
        np.array([b.pickup_lat for b in bookings]),
        np.array([b.pickup_lon for b in bookings]),
        pickups,
    )
    X = feature_matrix(bookings, weathers)
    days = np.array([local_day(p) for p in pickups], dtype=np.int64)
    distinct, index = np.unique(days, return_inverse=True)
    delays = observed_delays(X, day_effects(DEFAULT_WORLD_SEED, distinct)[index], rng).tolist()
    actuals = [
        ActualDelay(
            booking_id=b.booking_id,
            actual_delay_minutes=d,
            observed_at=b.scheduled_pickup_at + timedelta(minutes=d),
            source="bench",
        )
        for b, d in zip(bookings, delays, strict=True)
    ]
    encoded = Dataset(
        bookings=[b.model_dump_json().encode() for b in bookings],
        actuals=[a.model_dump_json().encode() for a in actuals],
    )
    if not all(_PLACEHOLDER_MARK in v for v in (encoded.bookings[0], encoded.actuals[0])):
        raise RuntimeError("the events' JSON does not spell booking_id as expected")
    return encoded


def _world_weather(lat: np.ndarray, lon: np.ndarray, at: list[datetime]) -> list[Weather]:
    """The synthetic world's weather at each pickup (nearest station, UTC hour), computed once
    per distinct station and hour."""
    stations = nearest_station(lat, lon).tolist()
    hours = [int(t.timestamp()) // 3600 for t in at]
    cache: dict[tuple[int, int], Weather] = {}
    out = []
    for station, hour in zip(stations, hours, strict=True):
        weather = cache.get((station, hour))
        if weather is None:
            place = STATIONS[station]
            instant = datetime.fromtimestamp(hour * 3600, UTC)
            weather = weather_at(DEFAULT_WORLD_SEED, place.lat, place.lon, instant)
            cache[station, hour] = weather
        out.append(weather)
    return out

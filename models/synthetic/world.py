"""The synthetic world of one seed: history for training, live bookings and their outcomes."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from models.features import LOCAL_TZ, feature_matrix
from models.history import HistoryRow, StationWeather
from models.synthetic.bookings import (
    DAY_VOLUME,
    GRID_S,
    lead_minutes,
    local_pickups,
    make_bookings,
    pickups_between,
)
from models.synthetic.incidents import IncidentConfig, exposure
from models.synthetic.places import STATIONS, nearest_station
from models.synthetic.truth import LATEST_DELAY_MIN, day_effects, local_day, observed_delays
from models.synthetic.weather import weather_at, weather_series
from schemas.actual import ActualDelay
from schemas.booking import BookingRequested
from schemas.weather import Weather

# A numpy Generator, or a stdlib random.Random from which one is seeded (deterministically).
Rng = np.random.Generator | random.Random


def as_generator(rng: Rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng.getrandbits(64))


# The seed every command uses unless told otherwise (the CLI's produce and synthetic commands,
# the bench), so live weather matches the history's.
DEFAULT_WORLD_SEED = 42

# An actual is observed at most this long after its scheduled pickup.
LATEST_OBSERVATION = timedelta(minutes=LATEST_DELAY_MIN)


@dataclass(frozen=True)
class WorldEvent:
    """A booking, the weather of its pickup hour and its actual delay, observed at the pickup
    (``actual.observed_at`` = scheduled pickup + delay). A producer publishes the booking no
    earlier than its ``created_at`` and the actual no earlier than its ``observed_at``."""

    booking: BookingRequested
    weather: Weather
    actual: ActualDelay


@dataclass(frozen=True)
class SyntheticHistory:
    rows: list[HistoryRow]  # sorted by scheduled pickup
    weather: list[StationWeather]  # hourly, every station, sorted by time
    row_weather: list[Weather]  # the weather each row's delay was drawn with, aligned with rows


class SyntheticWorld:
    """The world of one seed: its weather, its ground truth, and live bookings.

    The seed fixes the weather, the hidden day effects and the incidents (only with
    ``incidents``; without, the world has none); ``rng`` (a numpy Generator or a
    ``random.Random``) draws the bookings and the noise, so a caller controls reproducibility.

    >>> from datetime import UTC
    >>> world = SyntheticWorld(seed=7)
    >>> rng = np.random.default_rng(1)
    >>> now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    >>> booking = world.booking(now, rng)
    >>> booking.created_at == now and booking.scheduled_pickup_at > now
    True
    >>> weather = world.weather(booking.pickup_lat, booking.pickup_lon, booking.scheduled_pickup_at)
    >>> -15 <= world.actual_delay(booking, weather, rng) <= 180
    True

    Events whose pickups and observations are already past, for tests and replays:

    >>> events = world.past(now, 3, rng)
    >>> all(e.actual.observed_at <= now - timedelta(minutes=5) for e in events)
    True

    A booking reaching dispatch now, its pickup placed so that it is observed about a minute
    later (the demo's compressed clock: its lead time stays realistic, its created_at is earlier):

    >>> event = world.due(now, rng, after=timedelta(minutes=1))
    >>> event.booking.created_at <= event.booking.scheduled_pickup_at - timedelta(minutes=10)
    True
    >>> abs(event.actual.observed_at - (now + timedelta(minutes=1))) < timedelta(minutes=30)
    True
    """

    def __init__(self, seed: int, incidents: IncidentConfig | None = None) -> None:
        if seed < 0:
            raise ValueError("seed must be >= 0")
        self.seed = seed
        self.incidents = incidents

    def weather(self, lat: float, lon: float, at: datetime) -> Weather:
        """The weather at the station nearest to (lat, lon) during the UTC hour of ``at``."""
        return weather_at(self.seed, lat, lon, at)

    def booking(self, now: datetime, rng: Rng) -> BookingRequested:
        """A booking created at ``now`` (aware), with a realistic lead time and pickup hour."""
        gen = as_generator(rng)
        lead = float(lead_minutes(gen, 1)[0])
        if lead < 36 * 60:
            pickup = now + timedelta(minutes=lead)
        else:
            day = (now.astimezone(LOCAL_TZ) + timedelta(minutes=lead)).date()
            pickup = local_pickups(gen, day, 1)[0]
        # Dispatch schedules on a 5-minute grid, at least ten minutes ahead.
        pickup_s = math.ceil(max(pickup, now + timedelta(minutes=10)).timestamp() / 300) * 300
        scheduled = datetime.fromtimestamp(pickup_s, LOCAL_TZ)
        booking_id = f"SYN-{int(gen.integers(0, 2**48)):012x}"
        return make_bookings([booking_id], [scheduled], [now], gen)[0]

    def actual_delay(self, booking: BookingRequested, weather: Weather, rng: Rng) -> float:
        """The delay (minutes) this world's ground truth draws for the booking in that weather."""
        gen = as_generator(rng)
        return float(_delays(self.seed, [booking], [weather], gen, self.incidents)[0])

    def actual(self, booking: BookingRequested, weather: Weather, rng: Rng) -> ActualDelay:
        """An ``actual-delays`` event for the booking, observed at the pickup (scheduled time
        plus delay): publish it only once the clock has reached its ``observed_at``."""
        delay = self.actual_delay(booking, weather, rng)
        return _observed(booking, delay, "synthetic")

    def due(self, now: datetime, rng: Rng, *, after: timedelta) -> WorldEvent:
        """A booking that reaches dispatch at ``now`` with its pickup placed so that the actual
        is observed about ``after`` later: up to 5 minutes more, as pickups lie on the 5-minute
        grid, and give or take the change of the delay's expectation between the first
        placement and the final one (the delay is drawn there again, with the same noise).
        The pickup is placed as dispatch would plan it, knowing of no incident: a booking an
        incident hits is observed its extra delay (20–120 minutes) later than asked.

        Time is compressed between booking and pickup only: the lead time is drawn as for any
        booking and ``created_at`` is that much before the pickup (it may lie after ``now``
        for a short lead and an early pickup; publish the booking no earlier than it).
        """
        gen = as_generator(rng)
        lead = timedelta(seconds=round(float(lead_minutes(gen, 1)[0]) * 60))
        booking_id = f"SYN-{int(gen.integers(0, 2**48)):012x}"
        noise_seed = int(gen.integers(0, 2**63))
        target = now.astimezone(UTC) + after
        scheduled = _grid_ceil(target)
        booking = make_bookings([booking_id], [scheduled], [scheduled - lead], gen)[0]
        # Twice: the delay at the first placement moves the pickup, which may change the hour
        # (traffic, weather) and so the delay a little.
        for _ in range(2):
            delay = self._delay_at(booking, scheduled, noise_seed)
            scheduled = _grid_ceil(target - timedelta(minutes=delay))
            booking = booking.model_copy(
                update={"scheduled_pickup_at": scheduled, "created_at": scheduled - lead}
            )
        weather = self.weather(booking.pickup_lat, booking.pickup_lon, scheduled)
        delay = self.actual_delay(booking, weather, np.random.default_rng(noise_seed))
        return WorldEvent(booking, weather, _observed(booking, delay, "synthetic"))

    def _delay_at(self, booking: BookingRequested, at: datetime, noise_seed: int) -> float:
        """The delay at a pickup moved to ``at``, incidents left out."""
        moved = booking.model_copy(update={"scheduled_pickup_at": at})
        weather = self.weather(booking.pickup_lat, booking.pickup_lon, at)
        gen = np.random.default_rng(noise_seed)
        return float(_delays(self.seed, [moved], [weather], gen, None)[0])

    def past(
        self,
        now: datetime,
        count: int,
        rng: Rng,
        *,
        span: timedelta = timedelta(hours=24),
        ids: Sequence[str] | None = None,
        source: str = "synthetic",
    ) -> list[WorldEvent]:
        """``count`` events (sorted by pickup) whose actuals are all observed by ``now``:
        pickups in the ``span`` before ``now`` minus the latest observation (3 hours), as the
        hourly profile and weekday volume spread them; each booking made its lead time earlier.

        ``ids`` names the bookings (default: random ``SYN-`` ids). Vectorized: 50,000 events
        take a few seconds.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if ids is not None and len(ids) != count:
            raise ValueError(f"{len(ids)} ids for {count} events")
        gen = as_generator(rng)
        end = now - LATEST_OBSERVATION
        pickups = pickups_between(gen, end - span, end, count)
        leads = lead_minutes(gen, count).tolist()
        created = [
            p.astimezone(UTC) - timedelta(seconds=round(m * 60))
            for p, m in zip(pickups, leads, strict=True)
        ]
        if ids is None:
            ids = [f"SYN-{n:012x}" for n in gen.integers(0, 2**48, count).tolist()]
        bookings = make_bookings(ids, pickups, created, gen)
        weathers = self._pickup_weather(bookings)
        delays = _delays(self.seed, bookings, weathers, gen, self.incidents).tolist()
        return [
            WorldEvent(b, w, _observed(b, d, source))
            for b, w, d in zip(bookings, weathers, delays, strict=True)
        ]

    def _pickup_weather(self, bookings: Sequence[BookingRequested]) -> list[Weather]:
        """The weather of each booking's pickup, computed once per station and hour."""
        stations = nearest_station(
            np.array([b.pickup_lat for b in bookings]), np.array([b.pickup_lon for b in bookings])
        ).tolist()
        cache: dict[tuple[int, int], Weather] = {}
        out = []
        for booking, station in zip(bookings, stations, strict=True):
            hour = int(booking.scheduled_pickup_at.timestamp()) // 3600
            weather = cache.get((station, hour))
            if weather is None:
                place = STATIONS[station]
                weather = self.weather(place.lat, place.lon, booking.scheduled_pickup_at)
                cache[station, hour] = weather
            out.append(weather)
        return out


def _observed(booking: BookingRequested, delay: float, source: str) -> ActualDelay:
    return ActualDelay(
        booking_id=booking.booking_id,
        actual_delay_minutes=delay,
        observed_at=booking.scheduled_pickup_at + timedelta(minutes=delay),
        source=source,
    )


def _delays(
    seed: int,
    bookings: Sequence[BookingRequested],
    weathers: Sequence[Weather],
    rng: np.random.Generator,
    incidents: IncidentConfig | None,
) -> np.ndarray:
    """The observed delays of the bookings in their weathers, in the world of ``seed``: with
    the day effect of each pickup's local day, and the incidents at each pickup when given."""
    days = np.array([local_day(b.scheduled_pickup_at) for b in bookings], dtype=np.int64)
    distinct, index = np.unique(days, return_inverse=True)
    hits = None if incidents is None else exposure(seed, incidents, bookings)
    X = feature_matrix(bookings, weathers)
    return observed_delays(X, day_effects(seed, distinct)[index], rng, incidents=hits)


def _grid_ceil(at: datetime) -> datetime:
    """The first 5-minute grid instant at or after ``at``, in UTC (arithmetic on it is exact)."""
    return datetime.fromtimestamp(math.ceil(at.timestamp() / GRID_S) * GRID_S, UTC)


def generate_history(
    start: datetime,
    end: datetime,
    seed: int,
    bookings_per_day: float = 1000.0,
    weather_until: datetime | None = None,
    incidents: IncidentConfig | None = None,
) -> SyntheticHistory:
    """Bookings with scheduled pickups in [start, end) and their actual delays, plus the hourly
    weather of every station from ``start`` to ``weather_until`` (default ``end``).
    With ``incidents``, the world's incidents add to the delays of the bookings they hit (the
    bookings and the other delays stay those drawn without).

    ``bookings_per_day`` is the average over a week (weekdays busier than weekends). Each
    booking's weather is that of its nearest station in the hour of its pickup, which is what a
    recorded-weather lookup on the returned weather finds.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end <= start:
        raise ValueError("end must be after start")
    rng = np.random.default_rng([seed, 1])
    weather = weather_series(seed, start, max(end, weather_until or end))

    mean_volume = sum(DAY_VOLUME) / len(DAY_VOLUME)
    pickups: list[datetime] = []
    day = start.astimezone(LOCAL_TZ).date()
    while day <= end.astimezone(LOCAL_TZ).date():
        count = int(rng.poisson(bookings_per_day * DAY_VOLUME[day.weekday()] / mean_volume))
        pickups.extend(p for p in local_pickups(rng, day, count) if start <= p < end)
        day += timedelta(days=1)
    pickups.sort()
    leads = lead_minutes(rng, len(pickups)).tolist()
    created = [p - timedelta(seconds=round(m * 60)) for p, m in zip(pickups, leads, strict=True)]
    ids = [f"H{seed}-{i:07d}" for i in range(len(pickups))]
    bookings = make_bookings(ids, pickups, created, rng)

    by_station_hour = {
        (s.lat, s.lon, int(s.weather.observed_at.timestamp()) // 3600): s.weather for s in weather
    }
    stations = nearest_station(
        np.array([b.pickup_lat for b in bookings]), np.array([b.pickup_lon for b in bookings])
    )
    row_weather = [
        by_station_hour[
            STATIONS[s].lat, STATIONS[s].lon, int(b.scheduled_pickup_at.timestamp()) // 3600
        ]
        for b, s in zip(bookings, stations.tolist(), strict=True)
    ]
    delays = _delays(seed, bookings, row_weather, rng, incidents)
    rows = [HistoryRow(b, d) for b, d in zip(bookings, delays.tolist(), strict=True)]
    return SyntheticHistory(rows=rows, weather=weather, row_weather=row_weather)

"""Incidents: a road closure, an accident, a queue at a hospital, that make every pickup near
them late for an hour or two. They give the world's delays the heavy tail real ones have.

An incident has a centre (a hospital, or a point of a commune within its spread), a radius of
1–3 km and a window of 60–120 minutes. A booking whose pickup lies in the circle during the
window is *hit*: its delay grows by 20–120 minutes, drawn per booking from a Pareto tail cut to
that range (half of them below about half an hour, a few near two hours).

Incidents start at the same rate in every hour, a rate tuned (:func:`incidents_per_hour`) so
that a share ``rate`` of the bookings is hit. The incidents starting in a UTC hour are drawn
from a generator keyed by (seed, stream, hour) as in :mod:`~models.synthetic.noise`, so the
history, live bookings and their actual delays all see the same ones.

>>> from datetime import UTC, datetime, timedelta
>>> start = datetime(2026, 11, 23, tzinfo=UTC)
>>> week = incidents_between(7, IncidentConfig(), start, start + timedelta(days=7))
>>> 5 < len(week) < 80
True
>>> all(1.0 <= i.radius_km <= 3.0 for i in week)
True
>>> all(timedelta(minutes=60) <= i.end - i.start <= timedelta(minutes=120) for i in week)
True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from models.features import haversine_km
from models.synthetic.places import (
    COMMUNES,
    HOSPITALS,
    KM_PER_DEG_LAT,
    KM_PER_DEG_LON,
    Place,
    trip_coordinates,
    weighted_choice,
)
from schemas.booking import BookingRequested

INCIDENT_STREAM = 9  # see models.synthetic.noise
MAX_RATE = 0.5
# Where incidents happen: queues at hospitals (weighted by their traffic), accidents and
# closures in the communes (weighted by population).
CENTRES: tuple[Place, ...] = HOSPITALS + COMMUNES
HOSPITAL_SHARE = 0.3
_CENTRE_WEIGHTS = tuple(
    [HOSPITAL_SHARE * p.weight / sum(h.weight for h in HOSPITALS) for p in HOSPITALS]
    + [(1 - HOSPITAL_SHARE) * p.weight / sum(c.weight for c in COMMUNES) for p in COMMUNES]
)
# The rate is tuned on this many pickups and incident areas, drawn once with a fixed seed.
_TUNING_SEED, _TUNING_PICKUPS, _TUNING_AREAS = 20_261_123, 4_000, 2_000


@dataclass(frozen=True)
class IncidentConfig:
    """Incidents in the synthetic world. ``rate`` is the share of bookings hit (in (0, 0.5]);
    ``tail`` the Pareto shape of the extra delay (lower is heavier)."""

    rate: float = 0.03
    radius_km: tuple[float, float] = (1.0, 3.0)
    duration_min: tuple[float, float] = (60.0, 120.0)
    extra_min: tuple[float, float] = (20.0, 120.0)
    tail: float = 1.2

    def __post_init__(self) -> None:
        if not 0.0 < self.rate <= MAX_RATE:
            raise ValueError(f"incident rate must be in (0, {MAX_RATE}], got {self.rate}")
        for name in ("radius_km", "duration_min", "extra_min"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high")
        if self.tail <= 0.0:
            raise ValueError("tail must be > 0")


@dataclass(frozen=True)
class Incident:
    """Pickups within ``radius_km`` of (lat, lon) in [start, end) are hit."""

    place: str
    lat: float
    lon: float
    radius_km: float
    start: datetime
    end: datetime


@dataclass(frozen=True)
class IncidentExposure:
    """Which bookings of a batch incidents hit, and how their extra delay is drawn."""

    hit: np.ndarray  # bool, one per booking
    config: IncidentConfig

    def extra_minutes(self, rng: np.random.Generator) -> np.ndarray:
        """The extra delay of each booking: 0 where not hit. One draw per booking, hit or not,
        so a booking's draw does not depend on which others were hit."""
        low, high = self.config.extra_min
        a = self.config.tail
        u = rng.random(len(self.hit))
        # The inverse of a Pareto(a) distribution function truncated to [low, high].
        extra = low / (1.0 - u * (1.0 - (low / high) ** a)) ** (1.0 / a)
        return np.where(self.hit, extra, 0.0)


def _areas(
    rng: np.random.Generator, count: int, config: IncidentConfig
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Names, centre latitudes, centre longitudes and radii (km) of ``count`` incidents."""
    chosen = weighted_choice(rng, _CENTRE_WEIGHTS, count).tolist()
    places = [CENTRES[i] for i in chosen]
    spread = np.array([p.spread_km for p in places])
    lat = np.array([p.lat for p in places]) + rng.normal(0, 1, count) * spread / KM_PER_DEG_LAT
    lon = np.array([p.lon for p in places]) + rng.normal(0, 1, count) * spread / KM_PER_DEG_LON
    radius = rng.uniform(*config.radius_km, count)
    return [p.name for p in places], lat, lon, radius


# Cached: the tuning takes a few tenths of a second and its answer never changes.
@functools.lru_cache(maxsize=32)
def incidents_per_hour(config: IncidentConfig) -> float:
    """How many incidents start per hour so that a share ``config.rate`` of bookings is hit.

    A pickup at x is hit when one incident or more covers it: their number is Poisson with mean
    λ · E[duration] · p(x), p(x) the chance that an incident's circle covers x. λ solves
    mean over pickups of 1 − exp(−λ · E[duration] · p(x)) = rate, with p(x) estimated on
    pickups and circles drawn as the world draws them.

    Hitting 3 % of the bookings takes about three incidents a day:

    >>> round(24 * incidents_per_hour(IncidentConfig(rate=0.03)), 1)
    2.8
    """
    rng = np.random.default_rng(_TUNING_SEED)
    lat, lon, _, _ = trip_coordinates(rng, _TUNING_PICKUPS)
    _, c_lat, c_lon, radius = _areas(rng, _TUNING_AREAS, config)
    distance = haversine_km(lat[:, None], lon[:, None], c_lat[None, :], c_lon[None, :])
    covered = (distance <= radius[None, :]).mean(axis=1)
    hours = sum(config.duration_min) / 2 / 60

    def share_hit(per_hour: float) -> float:
        return float(np.mean(1.0 - np.exp(-per_hour * hours * covered)))

    low, high = 0.0, 1.0
    while share_hit(high) < config.rate:
        high *= 2
        if high > 1e6:
            raise ValueError(f"no incident rate hits {config.rate:.0%} of the bookings")
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if share_hit(middle) < config.rate else (low, middle)
    return (low + high) / 2


def hour_incidents(seed: int, config: IncidentConfig, hour: int) -> list[Incident]:
    """The incidents starting in a UTC hour (Unix seconds // 3600), by start."""
    rng = np.random.default_rng([seed, INCIDENT_STREAM, hour + 1_000_000])
    count = int(rng.poisson(incidents_per_hour(config)))
    if count == 0:  # most hours: skip the draws of nothing
        return []
    starts = np.sort(hour * 3600 + rng.uniform(0.0, 3600.0, count))
    durations = rng.uniform(*config.duration_min, count) * 60
    names, lat, lon, radius = _areas(rng, count, config)
    return [
        Incident(
            place=names[i],
            lat=round(float(lat[i]), 5),
            lon=round(float(lon[i]), 5),
            radius_km=round(float(radius[i]), 3),
            start=datetime.fromtimestamp(float(starts[i]), UTC),
            end=datetime.fromtimestamp(float(starts[i] + durations[i]), UTC),
        )
        for i in range(count)
    ]


def incidents_between(
    seed: int, config: IncidentConfig, start: datetime, end: datetime
) -> list[Incident]:
    """The incidents whose window overlaps [start, end), by start."""
    longest_s = config.duration_min[1] * 60
    first = math.floor((start.timestamp() - longest_s) / 3600)
    last = math.floor(end.timestamp() / 3600)
    return [
        incident
        for hour in range(first, last + 1)
        for incident in hour_incidents(seed, config, hour)
        if incident.start < end and incident.end > start
    ]


def incident_hits(
    seed: int, config: IncidentConfig, pickup_s: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> np.ndarray:
    """True for each pickup (Unix seconds, degrees) that an incident hits."""
    hit = np.zeros(len(pickup_s), dtype=bool)
    if len(pickup_s) == 0:
        return hit
    order = np.argsort(pickup_s, kind="stable")
    times = pickup_s[order]
    first = datetime.fromtimestamp(float(times[0]), UTC)
    last = datetime.fromtimestamp(float(times[-1]), UTC)
    for incident in incidents_between(seed, config, first, last + timedelta(seconds=1)):
        lo = np.searchsorted(times, incident.start.timestamp(), side="left")
        hi = np.searchsorted(times, incident.end.timestamp(), side="left")
        during = order[lo:hi]
        near = haversine_km(lat[during], lon[during], incident.lat, incident.lon)
        hit[during[near <= incident.radius_km]] = True
    return hit


def exposure(
    seed: int, config: IncidentConfig, bookings: Sequence[BookingRequested]
) -> IncidentExposure:
    """Which of the bookings the world's incidents hit, at their scheduled pickup."""
    pickup_s = np.array([b.scheduled_pickup_at.timestamp() for b in bookings], dtype=np.float64)
    lat = np.array([b.pickup_lat for b in bookings], dtype=np.float64)
    lon = np.array([b.pickup_lon for b in bookings], dtype=np.float64)
    return IncidentExposure(incident_hits(seed, config, pickup_s, lat, lon), config)

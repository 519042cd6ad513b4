"""What gets booked and when: volume by hour and weekday, vehicle mix, priorities, lead times.

Bookings per local hour follow a profile with peaks at 7–9 and 16–19 and quiet nights;
Saturdays and Sundays have about half the weekday volume. Vehicle types: standard 65 %,
wheelchair 25 %, stretcher 10 %. Lead times: 20 % urgent (10–90 min), 30 % same or next day,
50 % planned one to ten days ahead; urgent and emergency priorities are mostly short-notice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import numpy as np

from models.features import LOCAL_TZ
from models.synthetic.places import trip_coordinates, weighted_choice
from schemas.booking import BookingRequested, PatientPriority, VehicleType

# Relative booking volume per local hour (0–23).
WEEKDAY_PROFILE: tuple[float, ...] = (
    0.15, 0.1, 0.1, 0.1, 0.15, 0.4, 1.2, 3.0, 3.5, 2.8, 2.2, 2.0,
    1.8, 2.0, 2.2, 2.4, 3.0, 3.3, 3.0, 1.8, 1.0, 0.7, 0.4, 0.25,
)  # fmt: skip
WEEKEND_PROFILE: tuple[float, ...] = (
    0.2, 0.15, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.6, 2.0, 2.2, 2.2,
    2.0, 1.9, 2.0, 2.0, 1.9, 1.7, 1.5, 1.2, 0.9, 0.7, 0.5, 0.3,
)  # fmt: skip
# Relative volume per weekday, Monday first.
DAY_VOLUME: tuple[float, ...] = (1.15, 1.15, 1.15, 1.15, 1.15, 0.55, 0.45)
GRID_S = 300  # dispatch schedules pickups on a 5-minute grid
VEHICLE_MIX: tuple[tuple[VehicleType, float], ...] = (
    (VehicleType.STANDARD, 0.65),
    (VehicleType.WHEELCHAIR, 0.25),
    (VehicleType.STRETCHER, 0.10),
)


def lead_minutes(rng: np.random.Generator, size: int) -> np.ndarray:
    """Minutes between booking and pickup: urgent, same or next day, or planned."""
    kind = weighted_choice(rng, (0.2, 0.3, 0.5), size)
    urgent = rng.uniform(10, 90, size)
    soon = np.clip(rng.lognormal(math.log(360), 0.7, size), 90, 36 * 60)
    planned = rng.uniform(1, 10, size) * 24 * 60
    return np.select([kind == 0, kind == 1], [urgent, soon], planned)


def local_pickups(rng: np.random.Generator, day: date, count: int) -> list[datetime]:
    """``count`` pickup times on a local day, on a 5-minute grid, following the hourly profile."""
    profile = WEEKEND_PROFILE if day.weekday() >= 5 else WEEKDAY_PROFILE
    hours = weighted_choice(rng, profile, count)
    minutes = rng.integers(0, 12, count) * 5
    midnight = datetime(day.year, day.month, day.day, tzinfo=LOCAL_TZ)
    return [
        # Adding in UTC yields valid instants on DST days (23 or 25 hours long).
        (midnight.astimezone(UTC) + timedelta(hours=h, minutes=m)).astimezone(LOCAL_TZ)
        for h, m in zip(hours.tolist(), minutes.tolist(), strict=True)
    ]


# Each profile as shares of its day, so that a day's volume is DAY_VOLUME's whatever its profile.
_HOUR_SHARE = {
    weekend: np.array(profile) / sum(profile)
    for weekend, profile in ((False, WEEKDAY_PROFILE), (True, WEEKEND_PROFILE))
}


def pickups_between(
    rng: np.random.Generator, start: datetime, end: datetime, count: int
) -> list[datetime]:
    """``count`` pickup times in [start, end), sorted, on a 5-minute grid, as many per slot as
    the hourly profile and the weekday volume of its local day give it."""
    first = math.ceil(start.timestamp() / GRID_S)
    slots = np.arange(first, math.ceil(end.timestamp() / GRID_S), dtype=np.int64)
    if len(slots) == 0:
        raise ValueError("no 5-minute slot in [start, end)")
    local = [datetime.fromtimestamp(int(s) * GRID_S, LOCAL_TZ) for s in slots.tolist()]
    weights = np.array(
        [DAY_VOLUME[t.weekday()] * _HOUR_SHARE[t.weekday() >= 5][t.hour] for t in local]
    )
    chosen = np.sort(rng.choice(len(slots), size=count, p=weights / weights.sum()))
    return [local[i] for i in chosen.tolist()]


def _priorities(rng: np.random.Generator, lead_min: np.ndarray) -> list[PatientPriority | None]:
    u = rng.random(len(lead_min))
    out: list[PatientPriority | None] = []
    for value, short in zip(u.tolist(), (lead_min < 90).tolist(), strict=True):
        emergency, urgent, routine = (0.12, 0.45, 0.85) if short else (0.005, 0.06, 0.8)
        if value < emergency:
            out.append(PatientPriority.EMERGENCY)
        elif value < urgent:
            out.append(PatientPriority.URGENT)
        elif value < routine:
            out.append(PatientPriority.ROUTINE)
        else:
            out.append(None)
    return out


def make_bookings(
    ids: Sequence[str],
    pickups: Sequence[datetime],
    created: Sequence[datetime],
    rng: np.random.Generator,
) -> list[BookingRequested]:
    """Bookings with the given ids and times, and drawn places, vehicles and priorities."""
    n = len(ids)
    leads = np.array([(p - c).total_seconds() / 60 for p, c in zip(pickups, created, strict=True)])
    plat, plon, dlat, dlon = trip_coordinates(rng, n)
    vehicles = weighted_choice(rng, [w for _, w in VEHICLE_MIX], n).tolist()
    priorities = _priorities(rng, leads)
    return [
        BookingRequested(
            booking_id=ids[i],
            scheduled_pickup_at=pickups[i],
            created_at=created[i],
            pickup_lat=float(plat[i]),
            pickup_lon=float(plon[i]),
            dropoff_lat=float(dlat[i]),
            dropoff_lon=float(dlon[i]),
            vehicle_type=VEHICLE_MIX[vehicles[i]][0],
            patient_priority=priorities[i],
        )
        for i in range(n)
    ]

"""The cache key of a weather lookup: a grid cell and a UTC hour."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class WeatherKey:
    """A grid cell (its centre, in degrees) and the start of a UTC hour.

    Every point in the cell and every instant in the hour share one observation, which is what
    makes the weather of a busy city cacheable.
    """

    lat: float
    lon: float
    hour: datetime

    def __str__(self) -> str:
        return f"{self.lat:.5f},{self.lon:.5f}:{self.hour:%Y-%m-%dT%HZ}"


def utc_hour(at: datetime) -> datetime:
    """The start of the UTC hour containing ``at``; refuses naive datetimes."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"weather lookups need a timezone-aware datetime, got {at!r}")
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def snap_to_cell(value: float, cell_deg: float) -> float:
    """The centre of the grid line nearest ``value``; rounded so equal cells compare equal."""
    return round(round(value / cell_deg) * cell_deg, 6)


def weather_key(lat: float, lon: float, at: datetime, cell_deg: float) -> WeatherKey:
    """The key of the cell containing (lat, lon) and of the UTC hour containing ``at``.

    >>> from datetime import timezone, timedelta
    >>> at = datetime(2024, 5, 1, 15, 40, tzinfo=timezone(timedelta(hours=2)))
    >>> str(weather_key(44.3461, 10.9917, at, 0.05))
    '44.35000,11.00000:2024-05-01T13Z'
    """
    if cell_deg <= 0:
        raise ValueError("cell_deg must be positive")
    return WeatherKey(snap_to_cell(lat, cell_deg), snap_to_cell(lon, cell_deg), utc_hour(at))

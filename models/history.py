"""Record shapes of the dataset files: a past booking with its outcome, a station's weather.

Columns of their CSV form are in :mod:`schemas.datasets`; reading and writing the files is
:mod:`connectors.datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.booking import BookingRequested
from schemas.weather import Weather


@dataclass(frozen=True)
class HistoryRow:
    """A past booking and how late its pickup actually was (minutes; negative when early)."""

    booking: BookingRequested
    actual_delay_minutes: float


@dataclass(frozen=True)
class StationWeather:
    """One hourly observation of a weather station at ``lat``/``lon`` (degrees)."""

    lat: float
    lon: float
    weather: Weather

    epoch_hour: int = field(init=False, repr=False, compare=False)
    """The UTC hour containing ``observed_at``, in hours since 1970-01-01T00:00Z; a station has
    at most one observation per value. Derived once here: readers and indexes all key on it."""

    def __post_init__(self) -> None:
        hour = int(self.weather.observed_at.timestamp() // 3600)
        object.__setattr__(self, "epoch_hour", hour)  # the frozen dataclass's own idiom

"""Record shapes of the dataset files: a past booking with its outcome, a station's weather.

Columns of their CSV form are in :mod:`schemas.datasets`; reading and writing the files is
:mod:`connectors.datasets`.
"""

from __future__ import annotations

from dataclasses import dataclass

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

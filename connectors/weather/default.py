"""The weather served when no real observation is available."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from connectors.weather.base import Point, WeatherError
from connectors.weather.keys import utc_hour
from schemas.weather import Weather, WeatherSource

MILD_WEATHER = Weather(
    temperature_c=15.0,
    precipitation_mm_h=0.0,
    wind_m_s=3.0,
    visibility_m=10_000.0,
    humidity_pct=70.0,
    condition="clear",
    observed_at=datetime(1970, 1, 1, tzinfo=UTC),
    source=WeatherSource.DEFAULT,
    is_default=True,
)
"""Dry, light wind, full visibility, 15 °C: weather that neither slows nor speeds a pickup.

It plays the part of the old system's constant 0.5 weather factor, and ``is_default`` lets
features and metrics tell it from a real observation. ``observed_at`` is a placeholder: use
:func:`mild_weather` to get the record for a given time.
"""


def mild_weather(at: datetime) -> Weather:
    """:data:`MILD_WEATHER`, observed at the start of the UTC hour containing ``at``."""
    return MILD_WEATHER.model_copy(update={"observed_at": utc_hour(at)})


class DefaultWeather:
    """A provider that always answers :data:`MILD_WEATHER`; never fails, never blocks."""

    name = "default"
    current_only = False

    def fetch(self, lat: float, lon: float, at: datetime) -> Weather:
        return mild_weather(at)

    def fetch_each(self, points: Sequence[Point]) -> list[Weather | WeatherError]:
        return [mild_weather(at) for _, _, at in points]

    def __repr__(self) -> str:
        return "DefaultWeather()"

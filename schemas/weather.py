"""The normalized weather record that every weather provider returns."""

from enum import StrEnum

from pydantic import Field

from schemas._base import Event
from schemas._types import EventTime


class WeatherSource(StrEnum):
    OPENWEATHER = "openweather"
    RECORDED = "recorded"
    DEFAULT = "default"


class Weather(Event):
    """Weather at a place and time, in SI-like units whatever the provider's own."""

    temperature_c: float = Field(ge=-80, le=70)
    precipitation_mm_h: float = Field(ge=0, le=500)
    wind_m_s: float = Field(ge=0, le=120)
    visibility_m: float = Field(ge=0, le=100_000)
    humidity_pct: float = Field(ge=0, le=100)
    condition: str = Field(min_length=1, max_length=40, description="e.g. clear, clouds, rain")
    observed_at: EventTime
    source: WeatherSource
    is_default: bool = Field(
        default=False, description="True when no real observation was available."
    )

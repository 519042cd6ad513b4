"""Hourly weather at the stations, from smooth random processes keyed by (seed, hour).

Seasonal and daily temperature cycles with multi-day anomalies; rain episodes (snow when
cold); wind with bise episodes (stronger in winter); fog on autumn and winter nights and
mornings when humid and calm; humidity. Each station has its own climate offsets and hourly
jitter. The weather of an hour is the same whether a history or a single live hour is asked for.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np

from models.features import LOCAL_TZ
from models.history import StationWeather
from models.synthetic.noise import smooth_noise
from models.synthetic.places import STATIONS, nearest_station
from schemas.weather import Weather, WeatherSource

# Per station: temperature offset (°C; the city is warmer), wind factor, rain factor.
STATION_CLIMATE = ((0.0, 1.15, 1.0), (0.8, 0.8, 1.0), (-0.6, 1.0, 1.1))
_TEMP_SLOW, _TEMP_FAST, _WET_SLOW, _WET_FAST, _WIND, _BISE, _FOG, _CLOUD = range(8)
_STATION_STREAM = 100  # + 10 × station index + component
MEASUREMENTS = ("temperature_c", "precipitation_mm_h", "wind_m_s", "visibility_m", "humidity_pct")


def station_weather(seed: int, station: int, hours: np.ndarray) -> dict[str, np.ndarray]:
    """Measurements of one station (index in STATIONS) for UTC hours (Unix seconds // 3600)."""
    t_off, wind_factor, rain_factor = STATION_CLIMATE[station]
    own = _STATION_STREAM + 10 * station
    local = [datetime.fromtimestamp(int(h) * 3600, LOCAL_TZ) for h in hours.tolist()]
    doy = np.array([d.timetuple().tm_yday for d in local], dtype=np.float64)
    hour = np.array([d.hour for d in local], dtype=np.float64)
    summer = np.sin(2 * np.pi * (doy - 105.0) / 365.25)  # +1 mid-July, −1 mid-January
    afternoon = np.cos(2 * np.pi * (hour - 15.0) / 24.0)  # +1 at 15:00, −1 at 03:00

    temperature = (
        11.0
        + 9.0 * summer
        + (3.5 + 1.5 * summer) * afternoon
        + 3.0 * smooth_noise(seed, _TEMP_SLOW, hours, 72)
        + 1.0 * smooth_noise(seed, _TEMP_FAST, hours, 6)
        + t_off
        + 0.3 * smooth_noise(seed, own, hours, 1)
    )
    wetness = (
        0.8 * smooth_noise(seed, _WET_SLOW, hours, 36)
        + 0.6 * smooth_noise(seed, _WET_FAST, hours, 6)
        - 0.15 * summer
    )
    jitter = np.exp(0.4 * smooth_noise(seed, own + 1, hours, 1))
    precipitation = np.where(wetness > 0.9, (wetness - 0.9) * 3.0 * jitter * rain_factor, 0.0)
    raining = precipitation > 0.1
    bise = np.maximum(smooth_noise(seed, _BISE, hours, 48) - 0.5, 0.0) * (1.0 - 0.5 * summer)
    wind = wind_factor * np.maximum(
        2.5
        + 2.0 * smooth_noise(seed, _WIND, hours, 12)
        + 3.0 * bise
        + 1.0 * raining
        + 0.5 * smooth_noise(seed, own + 2, hours, 1),
        0.0,
    )
    humidity = np.clip(
        72.0
        - 8.0 * summer
        - 10.0 * afternoon
        + 20.0 * raining
        + 8.0 * smooth_noise(seed, _CLOUD, hours, 12),
        20.0,
        100.0,
    )
    fog_drive = smooth_noise(seed, _FOG, hours, 24)
    foggy = (
        (summer < 0.2)
        & ((hour >= 22) | (hour < 11))
        & (wind < 3.5)
        & (humidity > 80.0)
        & (fog_drive > 0.3)
    )
    visibility = np.where(
        foggy,
        np.clip(1200.0 - 900.0 * (fog_drive - 0.3), 100.0, 1500.0),
        np.clip(25_000.0 / (1.0 + 0.6 * precipitation), 2_000.0, 30_000.0),
    )
    return {
        "temperature_c": np.round(np.clip(temperature, -25.0, 40.0), 1),
        "precipitation_mm_h": np.round(np.clip(precipitation, 0.0, 60.0), 2),
        "wind_m_s": np.round(np.clip(wind, 0.0, 40.0), 1),
        "visibility_m": np.round(visibility, -1),
        "humidity_pct": np.round(humidity, 0),
    }


def condition(temperature: float, precipitation: float, visibility: float, humidity: float) -> str:
    if precipitation > 0.1:
        return "snow" if temperature < 1.0 else "rain"
    if visibility < 1000.0:
        return "fog"
    return "clouds" if humidity > 80.0 else "clear"


def _record(values: dict[str, float], hour: int) -> Weather:
    return Weather.model_validate(
        {
            **values,
            "condition": condition(
                values["temperature_c"],
                values["precipitation_mm_h"],
                values["visibility_m"],
                values["humidity_pct"],
            ),
            "observed_at": datetime.fromtimestamp(hour * 3600, UTC),
            "source": WeatherSource.RECORDED,
        }
    )


def weather_series(seed: int, start: datetime, end: datetime) -> list[StationWeather]:
    """Hourly weather of every station for the UTC hours overlapping [start, end), by time."""
    first = math.floor(start.timestamp() / 3600)
    last = math.ceil(end.timestamp() / 3600)
    hours = np.arange(first, max(last, first + 1), dtype=np.int64)
    out: list[StationWeather] = []
    for index, station in enumerate(STATIONS):
        values = station_weather(seed, index, hours)
        columns = [values[k].tolist() for k in MEASUREMENTS]
        for h, row in zip(hours.tolist(), zip(*columns, strict=True), strict=True):
            weather = _record(dict(zip(MEASUREMENTS, row, strict=True)), h)
            out.append(StationWeather(lat=station.lat, lon=station.lon, weather=weather))
    out.sort(key=lambda s: (s.weather.observed_at, s.lat, s.lon))
    return out


def weather_at(seed: int, lat: float, lon: float, at: datetime) -> Weather:
    """The weather of the station nearest to (lat, lon) during the UTC hour of ``at``."""
    station = int(nearest_station(np.array([lat]), np.array([lon]))[0])
    hour = math.floor(at.timestamp() / 3600)
    values = station_weather(seed, station, np.array([hour], dtype=np.int64))
    return _record({k: float(v[0]) for k, v in values.items()}, hour)

"""Weather from a history CSV: replays, training and demos without an API key.

The file (columns :data:`schemas.datasets.WEATHER_COLUMNS`) holds one observation per station
and hour. A station is a distinct (lat, lon) pair.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from connectors.weather.base import Point, WeatherNotFound
from connectors.weather.keys import utc_hour
from schemas.datasets import WEATHER_COLUMNS
from schemas.weather import Weather, WeatherSource

EARTH_RADIUS_KM = 6371.0088
_MEASUREMENTS = ("temperature_c", "precipitation_mm_h", "wind_m_s", "visibility_m", "humidity_pct")


class WeatherHistoryError(ValueError):
    """The weather history CSV cannot be used; the message names the file and the line."""


class RecordedWeather:
    """Answers the observation of the nearest station for the hour containing ``at``.

    The nearest station that has an observation within ``tolerance`` of that hour wins; of its
    observations the closest in time is served (the earlier one on a tie, as it was known at
    ``at``). Lookups cost O(stations · log observations); :meth:`fetch_each` and
    :meth:`fetch_many` do them for a whole batch at once with numpy, for the weather service
    and for training over many bookings.
    """

    name = "recorded"
    current_only = False

    def __init__(self, path: Path | str, *, tolerance: timedelta = timedelta(hours=3)) -> None:
        if tolerance < timedelta(0):
            raise ValueError("tolerance must not be negative")
        self._path = Path(path)
        self._tolerance = tolerance
        self._tolerance_h = int(tolerance.total_seconds() // 3600)
        stations = _load(self._path)
        self._records: list[Weather] = []
        hours: list[int] = []
        bounds: list[tuple[int, int]] = []
        for observations in stations.values():
            start = len(self._records)
            for hour, weather in sorted(observations.items()):
                hours.append(hour)
                self._records.append(weather)
            bounds.append((start, len(self._records)))
        self._hours = np.asarray(hours, dtype=np.int64)
        self._bounds = bounds
        coords = np.radians(np.asarray(list(stations), dtype=np.float64).reshape(-1, 2))
        self._station_lat, self._station_lon = coords[:, 0], coords[:, 1]

    def __repr__(self) -> str:
        return (
            f"RecordedWeather({str(self._path)!r}, stations={self.stations}, "
            f"observations={len(self)}, tolerance={self._tolerance})"
        )

    def __len__(self) -> int:
        return len(self._records)

    @property
    def stations(self) -> int:
        return len(self._bounds)

    def fetch(self, lat: float, lon: float, at: datetime) -> Weather:
        """The observation for (lat, lon) at ``at``; raises :class:`WeatherNotFound`."""
        return self.fetch_many([(lat, lon, at)])[0]

    def fetch_each(self, points: Sequence[Point]) -> list[Weather | WeatherNotFound]:
        """One answer per (lat, lon, at) point, in order: the observation, or
        :class:`WeatherNotFound` for a point without one within the tolerance."""
        return [
            self._records[index] if index >= 0 else self._not_found(point)
            for point, index in zip(points, self._indices(points), strict=True)
        ]

    def fetch_many(
        self, points: Sequence[Point], *, default: Weather | None = None
    ) -> list[Weather]:
        """One observation per (lat, lon, at) point, in order.

        A point without an observation within the tolerance gets ``default`` (re-dated to the
        start of the point's UTC hour), or raises :class:`WeatherNotFound` when none is given.
        """
        found: list[Weather] = []
        for point, index in zip(points, self._indices(points), strict=True):
            if index >= 0:
                found.append(self._records[index])
            elif default is not None:
                found.append(default.model_copy(update={"observed_at": utc_hour(point[2])}))
            else:
                raise self._not_found(point)
        return found

    def _not_found(self, point: Point) -> WeatherNotFound:
        lat, lon, at = point
        return WeatherNotFound(
            f"no recorded observation within {self._tolerance} of {at.isoformat()} "
            f"near ({lat}, {lon})"
        )

    def _indices(self, points: Sequence[Point]) -> list[int]:
        if not points:
            return []
        count = len(points)
        lat = np.radians(np.fromiter((p[0] for p in points), np.float64, count))
        lon = np.radians(np.fromiter((p[1] for p in points), np.float64, count))
        hours = np.fromiter((_epoch_hour(p[2]) for p in points), np.int64, count)
        indices: list[int] = self._match(lat, lon, hours).tolist()
        return indices

    def _match(
        self,
        lat: npt.NDArray[np.float64],
        lon: npt.NDArray[np.float64],
        hours: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.int64]:
        """Index into ``_records`` of each point's observation, or -1."""
        best = np.full(hours.shape, -1, dtype=np.int64)
        best_km = np.full(hours.shape, np.inf)
        # One vectorized pass per station: stations are few, points are many.
        for station, (start, end) in enumerate(self._bounds):
            station_hours = self._hours[start:end]
            after = np.searchsorted(station_hours, hours).clip(0, end - start - 1)
            before = (after - 1).clip(0, None)
            gap_before = np.abs(hours - station_hours[before])
            gap_after = np.abs(station_hours[after] - hours)
            nearest = np.where(gap_after < gap_before, after, before)
            gap = np.minimum(gap_before, gap_after)
            km = _haversine_km(lat, lon, self._station_lat[station], self._station_lon[station])
            better = (gap <= self._tolerance_h) & (km < best_km)
            best = np.where(better, start + nearest, best)
            best_km = np.where(better, km, best_km)
        return best


def _epoch_hour(at: datetime) -> int:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"weather lookups need a timezone-aware datetime, got {at!r}")
    return int(at.timestamp() // 3600)


def _haversine_km(
    lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64], lat0: float, lon0: float
) -> npt.NDArray[np.float64]:
    """Great-circle distances from each (lat, lon) to (lat0, lon0), all in radians."""
    a = np.sin((lat - lat0) / 2) ** 2 + np.cos(lat) * np.cos(lat0) * np.sin((lon - lon0) / 2) ** 2
    return np.asarray(2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def _load(path: Path) -> dict[tuple[float, float], dict[int, Weather]]:
    """Observations per station and epoch hour; raises :class:`WeatherHistoryError`."""
    stations: dict[tuple[float, float], dict[int, Weather]] = {}
    lines: dict[tuple[float, float, int], int] = {}
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise WeatherHistoryError(f"cannot read weather history {path}: {exc}") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in WEATHER_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise WeatherHistoryError(
                f"{path}, line 1: missing column(s) {', '.join(missing)}; "
                f"expected {', '.join(WEATHER_COLUMNS)}"
            )
        for row in reader:
            line = reader.line_num
            lat, lon, weather = _parse_row(row, f"{path}, line {line}")
            hour = int(weather.observed_at.timestamp() // 3600)
            if (lat, lon, hour) in lines:
                raise WeatherHistoryError(
                    f"{path}, line {line}: a second observation for station ({lat}, {lon}) "
                    f"and hour {weather.observed_at.isoformat()} (first on line "
                    f"{lines[lat, lon, hour]})"
                )
            lines[lat, lon, hour] = line
            stations.setdefault((lat, lon), {})[hour] = weather
    if not stations:
        raise WeatherHistoryError(f"{path}: no observations")
    return stations


def _parse_row(row: dict[str, str | None], where: str) -> tuple[float, float, Weather]:
    problem: str
    try:
        lat = _coordinate(row["lat"], "lat", 90.0)
        lon = _coordinate(row["lon"], "lon", 180.0)
        weather = Weather.model_validate(
            {
                **{column: row[column] for column in _MEASUREMENTS},
                "condition": (row["condition"] or "").strip().lower(),
                "observed_at": row["observed_at"],
                "source": WeatherSource.RECORDED,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        problem = f"{field}: {first['msg']} (got {row.get(field)!r})"
    except ValueError as exc:
        problem = str(exc)
    else:
        return lat, lon, weather
    raise WeatherHistoryError(f"{where}: {problem}")


def _coordinate(raw: str | None, field: str, limit: float) -> float:
    try:
        value = float(raw or "")
    except ValueError:
        raise ValueError(f"{field}: not a number (got {raw!r})") from None
    if not -limit <= value <= limit:
        raise ValueError(f"{field}: {value} is outside [-{limit:g}, {limit:g}]")
    return value

"""Read and write the history CSV and the weather history CSV.

Columns are :data:`schemas.datasets.HISTORY_COLUMNS` and :data:`schemas.datasets.WEATHER_COLUMNS`
(extra columns are ignored). Every value is validated with the event contracts, and a bad row
raises :class:`DatasetError` naming the file, the line and the field. This is the only parser of
these files: the ``recorded`` weather provider builds its index from :func:`read_weather`. Files
are written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from models.history import HistoryRow, StationWeather
from schemas.actual import ActualDelay
from schemas.booking import BookingRequested
from schemas.datasets import HISTORY_COLUMNS, WEATHER_COLUMNS
from schemas.weather import Weather, WeatherSource

T = TypeVar("T")
_BOOKING_COLUMNS = tuple(c for c in HISTORY_COLUMNS if c != "actual_delay_minutes")
_WEATHER_VALUES = tuple(c for c in WEATHER_COLUMNS if c not in ("lat", "lon", "condition"))


class DatasetError(ValueError):
    """A dataset file cannot be used; the message names the file and the line."""


def read_history(path: Path) -> list[HistoryRow]:
    """Every row of a history CSV, in file order."""
    return [row for _, row in _read(Path(path), HISTORY_COLUMNS, _history_row)]


def scan_history(path: Path) -> Iterator[tuple[int, HistoryRow | DatasetError]]:
    """(line, row) for every row of a history CSV, where a bad row is the DatasetError naming
    its line instead of the end of the reading; a file that cannot be read at all (missing
    columns, not CSV, not UTF-8) still raises."""
    return _scan(Path(path), HISTORY_COLUMNS, _history_row)


def read_weather(path: Path) -> list[StationWeather]:
    """Every observation of a weather history CSV, in file order (source ``recorded``).

    A station is a distinct (lat, lon) pair with at most one observation per UTC hour; a second
    one is refused, naming both lines.
    """
    path = Path(path)
    observations: list[StationWeather] = []
    first_lines: dict[tuple[float, float, int], int] = {}
    # closing(): an error raised here must not leave the file open until the traceback goes.
    with closing(_read(path, WEATHER_COLUMNS, _weather_row)) as rows:
        for line, observation in rows:
            lat, lon = observation.lat, observation.lon
            first = first_lines.setdefault((lat, lon, observation.epoch_hour), line)
            if first != line:
                raise DatasetError(
                    f"{path}, line {line}: a second observation for station ({lat}, {lon}) "
                    f"and hour {observation.weather.observed_at.isoformat()} "
                    f"(first on line {first})"
                )
            observations.append(observation)
    return observations


def write_history(path: Path, rows: Iterable[HistoryRow]) -> int:
    """Write a history CSV; returns the number of rows written."""
    return _write(
        Path(path),
        HISTORY_COLUMNS,
        (
            [
                r.booking.booking_id,
                r.booking.created_at.isoformat(),
                r.booking.scheduled_pickup_at.isoformat(),
                repr(r.booking.pickup_lat),
                repr(r.booking.pickup_lon),
                repr(r.booking.dropoff_lat),
                repr(r.booking.dropoff_lon),
                r.booking.vehicle_type.value,
                r.booking.patient_priority.value if r.booking.patient_priority else "",
                repr(r.actual_delay_minutes),
            ]
            for r in rows
        ),
    )


def write_weather(path: Path, observations: Iterable[StationWeather]) -> int:
    """Write a weather history CSV; returns the number of rows written."""
    return _write(
        Path(path),
        WEATHER_COLUMNS,
        (
            [
                o.weather.observed_at.isoformat(),
                repr(o.lat),
                repr(o.lon),
                repr(o.weather.temperature_c),
                repr(o.weather.precipitation_mm_h),
                repr(o.weather.wind_m_s),
                repr(o.weather.visibility_m),
                repr(o.weather.humidity_pct),
                o.weather.condition,
            ]
            for o in observations
        ),
    )


def _history_row(row: dict[str, str]) -> HistoryRow:
    data: dict[str, Any] = {c: row[c] for c in _BOOKING_COLUMNS}
    data["patient_priority"] = data["patient_priority"].strip() or None
    booking = BookingRequested.model_validate(data)
    # The ActualDelay contract holds the valid range of a delay; validating one keeps them equal.
    actual = ActualDelay.model_validate(
        {
            "booking_id": booking.booking_id,
            "actual_delay_minutes": row["actual_delay_minutes"],
            "observed_at": booking.scheduled_pickup_at,
        }
    )
    return HistoryRow(booking=booking, actual_delay_minutes=actual.actual_delay_minutes)


def _weather_row(row: dict[str, str]) -> StationWeather:
    lat = _coordinate(row["lat"], "lat", 90.0)
    lon = _coordinate(row["lon"], "lon", 180.0)
    data: dict[str, Any] = {c: row[c] for c in _WEATHER_VALUES}
    data["condition"] = row["condition"].strip().lower()
    data["source"] = WeatherSource.RECORDED
    return StationWeather(lat=lat, lon=lon, weather=Weather.model_validate(data))


def _coordinate(raw: str, name: str, limit: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}: not a number (got {raw!r})") from None
    if not -limit <= value <= limit:  # also false for nan
        raise ValueError(f"{name}: {value} is outside [-{limit:g}, {limit:g}]")
    return value


def _read(
    path: Path, columns: Sequence[str], parse: Callable[[dict[str, str]], T]
) -> Generator[tuple[int, T], None, None]:
    """(line, parsed row) for every row; raises :class:`DatasetError` naming the line."""
    # closing(): a bad row must not leave the file open until the traceback goes.
    with closing(_scan(path, columns, parse)) as rows:
        for line, parsed in rows:
            if isinstance(parsed, DatasetError):
                raise parsed
            yield line, parsed


def _scan(
    path: Path, columns: Sequence[str], parse: Callable[[dict[str, str]], T]
) -> Generator[tuple[int, T | DatasetError], None, None]:
    """(line, parsed row or the DatasetError naming the line) for every row."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, [])
            missing = [c for c in columns if c not in header]
            if missing:
                raise DatasetError(
                    f"{path}, line 1: missing column(s) {', '.join(missing)}; "
                    f"expected {', '.join(columns)}"
                )
            # csv.reader rather than DictReader: about a quarter less time per row, and a short
            # row is one length check (up to the last needed column) instead of one per column.
            needed = 1 + max(i for i, name in enumerate(header) if name in columns)
            for values in reader:
                if not values:
                    continue  # a blank line, skipped as DictReader does
                if len(values) < needed:
                    yield (
                        reader.line_num,
                        DatasetError(f"{path}, line {reader.line_num}: too few values"),
                    )
                    continue
                row = dict(zip(header, values, strict=False))
                try:
                    parsed: T | DatasetError = parse(row)
                except ValidationError as exc:
                    parsed = DatasetError(f"{path}, line {reader.line_num}: {_describe(exc, row)}")
                except ValueError as exc:
                    parsed = DatasetError(f"{path}, line {reader.line_num}: {exc}")
                yield reader.line_num, parsed
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path}, line {reader.line_num}: {exc}") from None


def _describe(exc: ValidationError, row: dict[str, str]) -> str:
    first = exc.errors()[0]
    name = ".".join(str(p) for p in first["loc"])
    return f"{name}: {first['msg']} (got {row.get(name)!r})"


def _write(path: Path, columns: Sequence[str], rows: Iterable[list[str]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            for row in rows:
                writer.writerow(row)
                count += 1
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count

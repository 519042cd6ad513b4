"""``delaycast synthetic``: generate synthetic datasets from the synthetic world."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from streams.operate.cli.params import DEFAULT_WORLD_SEED, INCIDENT_RATE


def _parse_end(value: str | None) -> datetime:
    from streams.clock import utc_now

    if value is None:
        return utc_now().replace(minute=0, second=0, microsecond=0)
    try:
        end = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date or time", param_hint="--end"
        ) from None
    return end if end.tzinfo is not None else end.replace(tzinfo=UTC)


@click.group()
def synthetic() -> None:
    """Generate synthetic datasets (bookings around Geneva, their delays, hourly weather).

    \b
    Example:
      delaycast synthetic history --out data --days 90
    """


@synthetic.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for history.csv and weather.csv.",
)
@click.option("--days", type=click.IntRange(1, 3650), default=90, show_default=True)
@click.option(
    "--end",
    help="End of the history, ISO 8601 (no offset = UTC)  [default: now, to the hour].",
)
@click.option("--seed", type=click.IntRange(min=0), default=DEFAULT_WORLD_SEED, show_default=True)
@click.option(
    "--bookings-per-day",
    type=click.FloatRange(min=1),
    default=1000.0,
    show_default=True,
    help="Average over a week (weekdays busier than weekends).",
)
@click.option(
    "--weather-days-after",
    type=click.IntRange(0, 365),
    default=14,
    show_default=True,
    help="Days of weather beyond --end, so a live demo using recorded weather finds it.",
)
@click.option(
    "--incidents",
    type=INCIDENT_RATE,
    default=0.0,
    show_default=True,
    help="Share of bookings hit by incidents (road closures, accidents, hospital queues), "
    "each 20–120 minutes later, clustered by area and hour; 0 = none.",
)
def history(
    out: Path,
    days: int,
    end: str | None,
    seed: int,
    bookings_per_day: float,
    weather_days_after: int,
    incidents: float,
) -> None:
    """Write history.csv (bookings and actual delays) and weather.csv (hourly, 3 stations).

    With --incidents, the world's incidents (fixed by the seed) make the delays heavy-tailed,
    as real ones are; the bookings and every delay no incident hits stay those of the same
    seed without.

    \b
    Examples:
      delaycast synthetic history --out data --days 90 --seed 42
      delaycast synthetic history --out data --days 90 --incidents 0.03
    """
    from connectors.datasets import write_history, write_weather
    from models.synthetic import IncidentConfig, generate_history

    until = _parse_end(end)
    start = until - timedelta(days=days)
    click.echo(f"generating {days} days of synthetic history ending {until.isoformat()}", err=True)
    data = generate_history(
        start,
        until,
        seed=seed,
        bookings_per_day=bookings_per_day,
        weather_until=until + timedelta(days=weather_days_after),
        incidents=IncidentConfig(rate=incidents) if incidents else None,
    )
    history_csv, weather_csv = out / "history.csv", out / "weather.csv"
    rows = write_history(history_csv, data.rows)
    observations = write_weather(weather_csv, data.weather)
    click.echo(
        json.dumps(
            {
                "history": str(history_csv),
                "rows": rows,
                "weather": str(weather_csv),
                "weather_rows": observations,
                "start": start.isoformat(),
                "end": until.isoformat(),
                "weather_until": (until + timedelta(days=weather_days_after)).isoformat(),
                "seed": seed,
                "incidents": incidents,
            },
            indent=2,
        )
    )

"""``delaycast weather``: check the weather provider the workers are configured with."""

from __future__ import annotations

import json
import logging
from datetime import datetime

import click

from streams.operate.cli.params import ISO_TIME


@click.group()
def weather() -> None:
    """Check the weather provider (WEATHER_PROVIDER) the workers use.

    \b
    Examples:
      delaycast weather check
      delaycast weather check --lat 46.52 --lon 6.63 --json
      WEATHER_PROVIDER=recorded WEATHER_HISTORY_CSV=data/weather.csv \\
        delaycast weather check --at 2026-11-02T07:30:00+00:00
    """


@weather.command()
@click.option(
    "--lat", type=click.FloatRange(-90, 90), default=46.2044, show_default=True, help="Latitude."
)
@click.option(
    "--lon", type=click.FloatRange(-180, 180), default=6.1432, show_default=True, help="Longitude."
)
@click.option(
    "--at",
    type=ISO_TIME,
    default=None,
    help="Time of the observation (recorded provider) [default: now]; OpenWeather only "
    "knows the present.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1, max=60),
    default=None,
    help="Seconds to wait for OpenWeather [default: WEATHER_TIMEOUT_S].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check(
    lat: float, lon: float, at: datetime | None, timeout: float | None, as_json: bool
) -> None:
    """Call the provider once and say whether it works; exit status 0 only when it does.

    For OpenWeather it tells a refused key (401), a rate limit (429), a timeout, an
    unreachable server and a malformed reply apart, and shows the weather when the key works.
    The API key is never printed: the URL shown has appid=***. With WEATHER_PROVIDER=default
    there is nothing to call: it passes with a note.

    \b
    Examples:
      delaycast weather check
      delaycast weather check --lat 46.52 --lon 6.63 --timeout 5
      delaycast weather check --json | jq .status
    """
    from streams.clock import utc_now
    from streams.operate.weather_probe import describe_weather, probe_weather
    from streams.settings import get_settings

    # The client logs its own failure too; the verdict below says it once, better.
    logging.getLogger("connectors.weather.openweather").setLevel(logging.ERROR)
    result = probe_weather(get_settings(), lat=lat, lon=lon, at=at or utc_now(), timeout_s=timeout)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        click.echo(f"provider  {result.provider}")
        if result.url:
            click.echo(f"url       {result.url}")
        if result.http_status is not None:
            click.echo(f"http      {result.http_status} after {result.elapsed_ms:.0f} ms")
        verdict = "PASS" if result.status.passes else "FAIL"
        click.echo(f"result    {verdict} {result.status.value}: {result.detail}")
        if result.weather is not None:
            click.echo(f"weather   {describe_weather(result.weather)}")
    if not result.status.passes:
        raise SystemExit(1)

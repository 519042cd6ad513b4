"""``delaycast train``: fit a model and its heuristic on a history CSV and save the artifact."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import click

from models.history import HistoryRow
from schemas.weather import Weather


def history_weather(rows: Sequence[HistoryRow], weather_csv: Path | None) -> list[Weather]:
    """The weather of each row at its pickup: the nearest recorded station within the hour, else
    the default weather (``weather_is_default`` = 1), as the live path falls back to it."""
    from connectors.weather.default import MILD_WEATHER, DefaultWeather
    from connectors.weather.recorded import RecordedWeather

    if weather_csv is None:
        default = DefaultWeather()
        return [
            default.fetch(r.booking.pickup_lat, r.booking.pickup_lon, r.booking.scheduled_pickup_at)
            for r in rows
        ]
    points = [
        (r.booking.pickup_lat, r.booking.pickup_lon, r.booking.scheduled_pickup_at) for r in rows
    ]
    return RecordedWeather(weather_csv).fetch_many(points, default=MILD_WEATHER)


@click.command()
@click.option(
    "--history",
    "history_csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="History CSV: one booking per row with its actual delay.",
)
@click.option(
    "--weather",
    "weather_csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Weather history CSV; without it every booking gets the default weather.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Model directory [default: MODEL_DIR from the settings].",
)
@click.option(
    "--holdout-fraction",
    type=click.FloatRange(0.01, 0.9),
    default=0.2,
    show_default=True,
    help="The most recent share of rows (by pickup time) kept out of training for evaluation.",
)
@click.option("--trees", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Random state of the forest.")
@click.option(
    "--champion/--no-champion",
    default=True,
    show_default=True,
    help="Make the new model the champion the workers serve.",
)
def train(
    history_csv: Path,
    weather_csv: Path | None,
    out: Path | None,
    holdout_fraction: float,
    trees: int,
    seed: int,
    champion: bool,
) -> None:
    """Train a model and its heuristic from a history CSV.

    The most recent 20 % of the history (by scheduled pickup) is held out; both the forest and
    the fitted heuristic are scored on it. Progress goes to stderr (a line per stage, and every
    10 s while a stage runs), a JSON summary to stdout, and a one-line summary to stderr.

    \b
    Examples:
      delaycast train --history history.csv --weather weather.csv --out .delaycast/models
      delaycast train --history history.csv --trees 200 --no-champion   # a candidate only
    """
    from connectors.datasets import DatasetError, read_history
    from connectors.model_store import save_artifact
    from connectors.weather.recorded import WeatherHistoryError
    from models.forest import ForestConfig
    from models.training import TrainingConfig
    from models.training import train as train_model
    from streams.clock import utc_now

    if out is None:
        from streams.settings import get_settings

        out = get_settings().model_dir
    from streams.cli.progress import heartbeat

    started = time.perf_counter()
    stage_now = ["start"]

    def step(stage: str, detail: str) -> None:
        stage_now[0] = stage
        click.echo(f"[{time.perf_counter() - started:7.1f}s] {stage}: {detail}", err=True)

    def still(_elapsed: float) -> str:
        return f"[{time.perf_counter() - started:7.1f}s] {stage_now[0]}: still working"

    try:
        step("history", f"reading {history_csv}")
        rows = read_history(history_csv)
        step("weather", f"looking up {len(rows)} bookings in {weather_csv or 'default weather'}")
        weathers = history_weather(rows, weather_csv)
    except (DatasetError, WeatherHistoryError) as exc:
        raise click.ClickException(str(exc)) from None
    defaulted = sum(w.is_default for w in weathers)
    if weather_csv is not None and defaulted:
        step("weather", f"{defaulted} bookings had no observation nearby: default weather")

    config = TrainingConfig(
        holdout_fraction=holdout_fraction,
        forest=ForestConfig(n_estimators=trees, random_state=seed),
    )
    fit_started = time.perf_counter()
    try:
        with heartbeat(still, every_s=10.0):
            result = train_model(rows, weathers, config, progress=step)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    fit_seconds = time.perf_counter() - fit_started
    step("save", f"writing the artifact under {out}")
    info = save_artifact(out, result, created_at=utc_now(), make_champion=champion)
    step("done", f"{info.version}{' (champion)' if champion else ''}")

    summary = {
        "model_version": info.version,
        "artifact": str(info.path),
        "champion": champion,
        **result.summary(),
        "beats_heuristic": result.model_scores.mae < result.heuristic_scores.mae
        and result.model_scores.r2 > result.heuristic_scores.r2,
        "default_weather_rows": defaulted,
        "model_bytes": info.model_bytes,
        "train_seconds": round(fit_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
    }
    click.echo(json.dumps(summary, indent=2))
    model, rule = result.model_scores, result.heuristic_scores
    click.echo(
        f"trained {info.version}{' (champion)' if champion else ''} on {result.train_rows} rows "
        f"in {summary['total_seconds']:.1f} s: holdout MAE {model.mae:.2f} min, R² {model.r2:.3f} "
        f"(heuristic {rule.mae:.2f} min, {rule.r2:.3f})",
        err=True,
    )

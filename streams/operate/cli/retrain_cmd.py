"""``delaycast retrain``: train on the served history, register the best as challenger."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from streams.operate.cli.params import ISO_TIME
from streams.operate.cli.train_cmd import training_config, training_options


@click.command()
@click.option(
    "--since",
    type=ISO_TIME,
    required=True,
    help="Start of the window of scheduled pickups, ISO 8601.",
)
@click.option(
    "--until", type=ISO_TIME, required=True, help="End of that window (excluded), ISO 8601."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Model directory [default: MODEL_DIR from the settings].",
)
@click.option(
    "--min-outcomes",
    type=click.IntRange(min=100),
    default=1000,
    show_default=True,
    help="Refuse to train on fewer bookings with an actual delay.",
)
@training_options
def retrain(
    since: datetime,
    until: datetime,
    out: Path | None,
    min_outcomes: int,
    holdout_fraction: float,
    candidates: str,
    zone_cell_km: float,
    trees: int,
    seed: int,
) -> None:
    """Train the candidates on the bookings served in a window, with the features they were
    served with (weather as it was then) and their actual delays from PostgreSQL; save the best
    and register it as challenger (CHALLENGER in the model directory), never as champion.

    The latest part of the window (--holdout-fraction) is held out: every candidate, the
    heuristic and the constant are scored on it, and the challenger is compared with the
    current champion on the same bookings (MAE difference, 95 % interval, p-value). Progress
    goes to stderr, a JSON summary to stdout.

    \b
    Examples:
      delaycast retrain --since 2026-11-01T00:00:00+00:00 --until 2026-12-01T00:00:00+00:00
      delaycast retrain --since 2026-11-01T00:00Z --until 2026-12-01T00:00Z --candidates boosting
    """
    from connectors.postgres import make_engine
    from streams.clock import utc_now
    from streams.operate.cli.progress import Stages, heartbeat, history_errors
    from streams.outcomes.retrain import RetrainRefused
    from streams.outcomes.retrain import retrain as run
    from streams.settings import get_settings

    config = training_config(holdout_fraction, candidates, zone_cell_km, trees, seed)
    settings = get_settings()
    step = Stages()
    engine = make_engine(settings.database_url.get_secret_value())
    try:
        with history_errors(), heartbeat(step.still, every_s=10.0):
            summary = run(
                engine,
                out=out if out is not None else settings.model_dir,
                since=since,
                until=until,
                config=config,
                min_outcomes=min_outcomes,
                area=settings.service_area,
                now=utc_now(),
                progress=step,
            )
    except RetrainRefused as exc:
        raise click.ClickException(f"not retrained: {exc}") from None
    finally:
        engine.dispose()
    click.echo(json.dumps(summary, indent=2))
    against = summary["against_champion"]
    if against is not None and "error" not in against:
        click.echo(
            f"challenger {summary['challenger']} against champion {against['champion']} on the "
            f"{against['n']} latest bookings: MAE {against['mae_a']:.3f} vs "
            f"{against['mae_b']:.3f}, difference {against['mae_difference']:+.3f} "
            f"({against['interval'][0]:.3f} to {against['interval'][1]:.3f}), "
            f"p = {against['p_value']:.2g}",
            err=True,
        )
        if against["champion_saw_the_holdout"]:
            click.echo(
                f"  the champion was trained on bookings from {against['champion_trained_from']} "
                f"to {against['champion_trained_until']}, some of them in this holdout: it looks "
                "better here than it is",
                err=True,
            )

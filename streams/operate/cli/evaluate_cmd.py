"""``delaycast evaluate``: models scored on the bookings already served, on identical rows."""

from __future__ import annotations

import json
from datetime import datetime

import click

from streams.operate.cli.params import ISO_TIME


@click.command()
@click.option(
    "--since",
    type=ISO_TIME,
    required=True,
    help="Start of the window of scheduled pickups, ISO 8601 with offset.",
)
@click.option(
    "--until",
    type=ISO_TIME,
    required=True,
    help="End of that window (excluded), ISO 8601 with offset.",
)
@click.option(
    "--models",
    default="heuristic,champion",
    show_default=True,
    help="Comma-separated: heuristic (the champion's fitted heuristic), champion, served (what "
    "the bookings were served), or a model version (`delaycast model list`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate(since: datetime, until: datetime, models: str, as_json: bool) -> None:
    """Score stored bookings with each model, from the features they were served with, against
    their actual delays: the MAE of each model on identical rows, and for each pair the
    difference with its 95 % interval and p-value. Live traffic is not touched.

    \b
    Examples:
      delaycast evaluate --since 2026-11-22T00:00:00+00:00 --until 2026-11-23T00:00:00+00:00
      delaycast evaluate --since 2026-11-22T00:00Z --until 2026-11-29T00:00Z \\
          --models served,heuristic,champion,gb-20261122T080000Z-1a2b3c4d --json
    """
    from connectors.postgres import make_engine
    from streams.operate.cli.progress import history_errors
    from streams.outcomes.counterfactual import EvaluationError, parse_models
    from streams.outcomes.counterfactual import evaluate as run
    from streams.settings import get_settings

    try:
        names = parse_models(models)
    except EvaluationError as exc:
        raise click.BadParameter(str(exc), param_hint="--models") from None
    settings = get_settings()
    engine = make_engine(settings.database_url.get_secret_value())
    try:
        with history_errors():
            result = run(
                engine,
                model_dir=settings.model_dir,
                area=settings.service_area,
                models=names,
                since=since,
                until=until,
            )
    except EvaluationError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    doc = result.as_dict()
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    click.echo(
        f"{doc['rows']} bookings scheduled from {doc['since']} to {doc['until']} "
        f"({doc['left_out']} left out: features missing)"
    )
    click.echo(f"{'model':<24} {'version':<36} {'MAE':>8} {'RMSE':>8} {'bias':>8}")
    for name, m in doc["models"].items():
        click.echo(
            f"{name:<24} {m['version']:<36} {m['mae']:>8.3f} {m['rmse']:>8.3f} {m['bias']:>+8.3f}"
        )
    for difference in result.differences:
        click.echo(difference.describe())

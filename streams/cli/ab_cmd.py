"""``delaycast ab``: the A/B outcome of ML against the heuristic."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import click


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time; expected e.g. 2026-11-22T08:00:00+01:00"
        ) from None
    if parsed.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no UTC offset; add one, e.g. +00:00")
    return parsed


@click.group()
def ab() -> None:
    """The A/B experiment: ML against the heuristic.

    \b
    Examples:
      delaycast ab report
      delaycast ab report --since 2026-11-15T00:00:00+00:00 --json
    """


@ab.command()
@click.option(
    "--since", help="Start of the window (event time), ISO 8601 with offset; default 7 days ago."
)
@click.option("--until", help="End of the window; default: the newest outcome.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--min-samples", type=click.IntRange(min=2), default=None, help="Per arm.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Report file (default: under DELAYCAST_HOME/reports).",
)
def report(
    since: str | None, until: str | None, as_json: bool, min_samples: int | None, out: str | None
) -> None:
    """Compare the arms' MAE with confidence intervals, check the split, give a verdict.

    \b
    Examples:
      delaycast ab report
      delaycast ab report --since 2026-11-21T00:00:00Z --json
    """
    from pathlib import Path

    from sqlalchemy.exc import SQLAlchemyError

    from connectors.postgres import make_engine
    from streams.ab_eval import evaluate
    from streams.clock import utc_now
    from streams.settings import delaycast_home, get_settings

    settings = get_settings()
    now = utc_now()
    start = _parse_time(since) if since else now - timedelta(days=7)
    end = _parse_time(until) if until else None
    if end is not None and end <= start:
        raise click.BadParameter("must be after --since", param_hint="--until")
    engine = make_engine(settings.database_url.get_secret_value())
    try:
        evaluation = evaluate(
            engine,
            start=start,
            end=end,
            min_samples=min_samples or settings.ab_min_samples,
            now=now,
        )
    except SQLAlchemyError as exc:
        raise click.ClickException(
            f"cannot read the history from PostgreSQL: {type(exc).__name__}"
        ) from None
    finally:
        engine.dispose()
    result = evaluation.result
    end = evaluation.window_end
    heading = f"delaycast A/B report, {start.isoformat()} to {end.isoformat()}"
    text = f"{heading}\n\n{result.render_text()}\n"
    path = (
        Path(out) if out else delaycast_home() / "reports" / f"ab-report-{now:%Y%m%dT%H%M%SZ}.txt"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "window_start": start.isoformat(),
                    "window_end": now.isoformat(),
                    "report_file": str(path),
                    **result.to_dict(),
                }
            )
        )
    else:
        click.echo(text)
        click.echo(f"report written to {path}")

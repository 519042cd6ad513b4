"""``delaycast ab``: the A/B outcome of ML against the heuristic."""

from __future__ import annotations

import json
from datetime import datetime

import click

from streams.outcomes.windows import WINDOWS, minute_start


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
      delaycast ab report --window 15m --json
      delaycast ab report --since 2026-11-15T00:00:00+00:00 --json
    """


@ab.command()
@click.option(
    "--window",
    type=click.Choice(list(WINDOWS)),
    default=None,
    help="The event-time window, as on the dashboard: the last 15m, 1h, 24h or 7d, or all "
    "(since start). Default: 24h.",
)
@click.option(
    "--since",
    help="Start of a window of your own (event time), ISO 8601 with offset; windows are whole "
    "minutes, so seconds are dropped.",
)
@click.option(
    "--until",
    help="End of that window (its minute excluded when it has seconds); default: the end of "
    "the newest outcome's minute.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--shadow",
    is_flag=True,
    help="The challenger in shadow against what was served, paired on identical bookings "
    "(per hour with --json), instead of the A/B arms.",
)
@click.option("--min-samples", type=click.IntRange(min=2), default=None, help="Per arm.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    help="Report file (default: under DELAYCAST_HOME/reports).",
)
def report(
    window: str | None,
    since: str | None,
    until: str | None,
    as_json: bool,
    shadow: bool,
    min_samples: int | None,
    out: str | None,
) -> None:
    """Compare the arms' MAE with confidence intervals, check the split, give a verdict.

    The figures are those the API and the dashboard show for the same window. The result is
    also stored (``ab_test_results``) and written to a report file.

    \b
    Examples:
      delaycast ab report
      delaycast ab report --window all
      delaycast ab report --since 2026-11-21T00:00:00Z --json
      delaycast ab report --shadow --window 24h
    """
    from pathlib import Path

    from connectors.postgres import make_engine
    from connectors.postgres import monitoring as queries
    from streams.clock import utc_now
    from streams.operate.cli.progress import history_errors
    from streams.outcomes.ab_eval import evaluate, latest_window
    from streams.outcomes.windows import DEFAULT_WINDOW, MINUTE, Window, arm_metrics
    from streams.settings import delaycast_home, get_settings

    if window is not None and (since or until):
        raise click.UsageError("give --window or --since/--until, not both")
    if shadow and (out or min_samples):
        raise click.UsageError(
            "--shadow prints the paired comparison only: it takes no --out or --min-samples"
        )
    if until and not since:
        raise click.UsageError("--until needs --since")
    # Windows are sums of whole minutes: a bound with seconds starts its minute.
    start = minute_start(_parse_time(since)) if since else None
    end = minute_start(_parse_time(until)) if until else None
    if start is not None and end is not None and end <= start:
        raise click.BadParameter("must be after --since", param_hint="--until")
    settings = get_settings()
    now = utc_now()
    engine = make_engine(settings.database_url.get_secret_value())
    try:
        with history_errors():
            if start is None:
                chosen = latest_window(engine, window or DEFAULT_WINDOW, now=now)
            else:
                closed = end is not None
                if end is None:
                    newest, _ = queries.live_minute_range(engine)
                    end = max(minute_start(newest or now) + MINUTE, start + MINUTE)
                chosen = Window(start, end, closed=closed)
            if shadow:
                from streams.outcomes.shadow import render_text, shadow_report

                paired = shadow_report(engine, chosen)
                click.echo(json.dumps(paired, default=str) if as_json else render_text(paired))
                return
            evaluation = evaluate(
                engine, chosen, min_samples=min_samples or settings.ab_min_samples, now=now
            )
    finally:
        engine.dispose()
    result = evaluation.result
    heading = (
        f"delaycast A/B report, {chosen.label}: "
        f"{chosen.start.isoformat()} to {chosen.end.isoformat()}"
    )
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
                    "window": chosen.name,
                    "window_start": chosen.start.isoformat(),
                    "window_end": chosen.end.isoformat(),
                    "report_file": str(path),
                    "metrics": arm_metrics(evaluation.figures.sums),
                    "predictions": evaluation.figures.assigned.total,
                    **result.to_dict(),
                }
            )
        )
    else:
        click.echo(text)
        click.echo(f"report written to {path}")

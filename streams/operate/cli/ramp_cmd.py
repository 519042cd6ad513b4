"""``delaycast ramp``: a guarded ramp of ML's share that advances and rolls back by itself."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from streams.operate.cli.flags_cmd import default_actor

MAX_ACTOR = 200  # the audit columns' width


def _actor(value: str) -> str:
    if not value.strip() or len(value) > MAX_ACTOR:
        raise click.BadParameter(
            f"expected a name of 1 to {MAX_ACTOR} characters, got {len(value)}",
            param_hint="--actor",
        )
    return value


class Duration(click.ParamType):
    """Seconds, or a number with a unit: 90s, 30m, 2h."""

    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from models.ramp import RampConfigError, parse_duration

        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value))
        except RampConfigError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()


@contextmanager
def _servers() -> Iterator[tuple[Any, Any, Any]]:
    """PostgreSQL engine, flag store and the settings' initial flags; errors of either server
    become a one-line message."""
    import redis
    import sqlalchemy as sa

    from connectors.postgres import make_engine
    from streams.operate.flag_change import flag_store, settings_flags
    from streams.settings import get_settings

    settings = get_settings()
    engine = make_engine(settings.database_url.get_secret_value())
    try:
        yield engine, flag_store(settings), settings_flags(settings)
    except sa.exc.OperationalError as exc:
        raise click.ClickException(
            f"cannot reach PostgreSQL: {str(exc.orig).splitlines()[0]}"
        ) from None
    except (redis.RedisError, OSError) as exc:
        raise click.ClickException(f"cannot reach Redis: {type(exc).__name__}: {exc}") from None
    finally:
        engine.dispose()


@click.group()
def ramp() -> None:
    """A guarded ramp: ML's share moves up step by step while an always-valid test shows it not
    worse than the heuristic, and rolls back by itself when a guardrail breaks.

    \b
    Examples:
      delaycast ramp start --steps 10,25,50,100 --min-outcomes 1000 --hold 30m
      delaycast ramp run                 # the controller (keep it running)
      delaycast ramp status
      delaycast ramp pause | resume | stop
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


@ramp.command()
@click.option(
    "--steps",
    default="10,25,50,100",
    show_default=True,
    help="Increasing percentages of bookings routed to ML, comma-separated.",
)
@click.option(
    "--min-outcomes",
    type=click.IntRange(30),
    default=1000,
    show_default=True,
    help="Outcomes each arm needs in a step before it may advance.",
)
@click.option(
    "--hold",
    type=DURATION,
    default="30m",
    show_default=True,
    help="Least time spent at each step (90s, 30m, 2h).",
)
@click.option(
    "--margin",
    type=click.FloatRange(0),
    default=0.25,
    show_default=True,
    help="Minutes of MAE by which ML may trail the heuristic and still advance.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Level of the confidence sequence.",
)
@click.option(
    "--label-wait",
    type=DURATION,
    default="30m",
    show_default=True,
    help="How long after the pickup an actual delay is due.",
)
@click.option(
    "--label-target",
    type=click.FloatRange(0, 1),
    default=None,
    help="Share of due actuals each arm must have for the ramp to move on "
    "[default: LABEL_COVERAGE_TARGET, the label_coverage alert's].",
)
@click.option(
    "--drift-quiet",
    type=DURATION,
    default="30m",
    show_default=True,
    help="How long a feature-drift alarm holds the ramp (the drift monitor raises one per "
    "feature at most every 30 min while the drift lasts).",
)
@click.option(
    "--max-p99-ms",
    type=click.FloatRange(1),
    default=1000.0,
    show_default=True,
    help="p99 latency of ML's bookings above which, two windows running, the ramp rolls back.",
)
@click.option(
    "--coverage-band",
    default=None,
    metavar="LOW,HIGH",
    help="Band of ML's P90 coverage outside which the ramp rolls back [default: the "
    "interval_coverage alert's, COVERAGE_ALERT_LOW and COVERAGE_ALERT_HIGH].",
)
@click.option(
    "--settle",
    type=DURATION,
    default="2s",
    show_default=True,
    help="Time for every worker to see a flag change before a step's evidence counts.",
)
@click.option(
    "--actor",
    default=default_actor,
    show_default="user@host",
    callback=lambda ctx, param, value: _actor(value),
    help="Who starts it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the new ramp as JSON.")
def start(
    steps: str, min_outcomes: int, hold: float, margin: float, alpha: float, label_wait: float,
    label_target: float | None, drift_quiet: float, max_p99_ms: float, coverage_band: str | None,
    settle: float, actor: str, as_json: bool,
) -> None:  # fmt: skip
    """Start a ramp at its first step (the flags change at once); `delaycast ramp run` moves it.

    \b
    Example:
      delaycast ramp start --steps 10,25,50,100 --min-outcomes 1000 --hold 30m
    """
    from connectors.postgres.ramp import RampConflict, start_ramp
    from models.alert_rules import min_coverage_window
    from models.ramp import RampConfig, RampConfigError, parse_steps
    from streams.clock import utc_now
    from streams.operate.ramp import RampController
    from streams.settings import get_settings

    settings = get_settings()
    low, high = settings.coverage_alert_low, settings.coverage_alert_high
    if coverage_band is not None:
        try:
            low, high = (float(x) for x in coverage_band.split(","))
        except ValueError:
            raise click.BadParameter(
                f"expected two shares such as 0.85,0.95, got {coverage_band!r}",
                param_hint="--coverage-band",
            ) from None
    try:
        config = RampConfig(
            steps=parse_steps(steps),
            min_outcomes=min_outcomes,
            hold_s=hold,
            margin=margin,
            alpha=alpha,
            label_wait_s=label_wait,
            label_target=settings.label_coverage_target if label_target is None else label_target,
            drift_quiet_s=drift_quiet,
            max_p99_ms=max_p99_ms,
            severe_p99_ms=max(3 * max_p99_ms, max_p99_ms + 1),
            coverage_low=low,
            coverage_high=high,
            # as many outcomes as the interval_coverage alert needs to judge this band
            coverage_min_n=min_coverage_window(low, high) or 200,
            settle_s=settle,
        )
    except RampConfigError as exc:
        raise click.UsageError(str(exc)) from None
    with _servers() as (engine, flags, initial):
        before = flags.read() or initial
        try:
            started = start_ramp(
                engine,
                config=config,
                actor=actor,
                now=utc_now(),
                from_percentage=before.ml_traffic_percentage if before.ml_enabled else 0.0,
                flag_version=before.version,
            )
        except RampConflict as exc:
            raise click.ClickException(str(exc)) from None
        if as_json:
            click.echo(json.dumps({"id": started.id, "config": config.to_dict()}))
        else:
            click.echo(started.reason)
            click.echo("The controller moves it: keep `delaycast ramp run` running.")
        _first_flag(RampController(engine, flags, initial), started)


def _first_flag(controller: Any, ramp: Any) -> None:
    """Put the ramp's share in force now; when Redis does not take it, the ramp stands in
    PostgreSQL and the controller writes it at its next look: say so, and fail."""
    import redis

    try:
        controller.apply_flag(ramp)
    except (redis.RedisError, OSError) as exc:
        raise click.ClickException(
            f"the ramp is recorded, but its flag change did not reach Redis ({type(exc).__name__}:"
            f" {exc}); the controller writes it at its next look once Redis answers"
        ) from None


@ramp.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(as_json: bool) -> None:
    """Where the ramp stands, whether its next step is allowed, and what blocks it.

    \b
    Examples:
      delaycast ramp status
      delaycast ramp status --json
    """
    from streams.clock import utc_now
    from streams.operate.ramp import status as ramp_status

    with _servers() as (engine, flags, initial):
        view = ramp_status(engine, flags, initial, now=utc_now())
    if as_json:
        click.echo(json.dumps(view, default=str))
        return
    click.echo(render_status(view))


def render_status(view: dict[str, Any]) -> str:
    ramp = view.get("ramp")
    flags = view["flags"]
    lines = []
    if ramp is not None:
        steps = ",".join(f"{s:g}" for s in ramp["steps"])
        lines += [
            f"ramp {ramp['id']}: {ramp['status'].replace('_', ' ')} at {ramp['percentage']:g} % "
            f"(steps {steps}; started {ramp['started_at']} by {ramp['started_by']})",
            f"step started     {ramp['step_started_at']}",
        ]
        look = view["controller"]["seconds_since_last_look"]
        lines.append(
            "controller       "
            + ("has not looked yet" if look is None else f"last looked {look:g} s ago")
        )
    enabled = "enabled" if flags["ml_enabled"] else "disabled"
    lines.append(f"flags            ML {enabled} at {flags['ml_traffic_percentage']:g} %")
    lines.append(f"next step        {'allowed' if view['next_step_allowed'] else 'not allowed'}")
    lines.append(view["summary"])
    for check in view.get("checks", []):
        mark = "-- " if not check.get("judged", True) else "ok " if check["ok"] else "NO "
        lines.append(f"  {mark}{check['kind']:<9} {check['name']:<22} {check['detail']}")
    if ramp is not None and view.get("moves"):
        lines.append("moves:")
        lines += [
            f"  {m['seq']:>3} {m['at']} {m['kind']:<8} {m['from_percentage']:g} -> "
            f"{m['to_percentage']:g} % by {m['actor']}: {m['reason']}"
            for m in view["moves"][-10:]
        ]
    return "\n".join(lines)


def _operator(what: str, actor: str) -> None:
    from streams.clock import utc_now
    from streams.operate import ramp as controller

    action = {"pause": controller.pause, "resume": controller.resume, "stop": controller.stop}
    with _servers() as (engine, flags, initial):
        try:
            moved = action[what](engine, actor=actor, now=utc_now(), flags=flags.read() or initial)
        except controller.RampRefused as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(moved.reason)
        if not moved.flag_applied:
            _first_flag(controller.RampController(engine, flags, initial), moved)


_ACTOR = click.option(
    "--actor",
    default=default_actor,
    show_default="user@host",
    callback=lambda ctx, param, value: _actor(value),
    help="Who is doing it.",
)


@ramp.command()
@_ACTOR
def pause(actor: str) -> None:
    """Stop the ramp where it is; ML keeps its share. Example: delaycast ramp pause"""
    _operator("pause", actor)


@ramp.command()
@_ACTOR
def resume(actor: str) -> None:
    """Let a paused or rolled-back ramp move again, its step's evidence counted afresh.
    Example: delaycast ramp resume"""
    _operator("resume", actor)


@ramp.command()
@_ACTOR
def stop(actor: str) -> None:
    """End the ramp; the flags stay as they are. Example: delaycast ramp stop"""
    _operator("stop", actor)


@ramp.command()
@click.option("--interval", type=DURATION, default="15s", show_default=True,
              help="Time between two looks at the evidence.")  # fmt: skip
def run(interval: float) -> None:
    """Run the controller until SIGTERM or Ctrl-C: one look every INTERVAL, one controller at a
    time (others wait for its lock).

    \b
    Example:
      delaycast ramp run --interval 15s
    """
    from connectors.postgres import make_engine
    from streams.operate import ramp as controller
    from streams.operate.flag_change import flag_store, settings_flags
    from streams.settings import get_settings

    if interval <= 0:
        raise click.BadParameter(
            "expected a positive duration, such as 15s", param_hint="--interval"
        )
    settings = get_settings()
    engine = make_engine(settings.database_url.get_secret_value())
    stop_event = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop_event.set())
    look = controller.RampController(engine, flag_store(settings), settings_flags(settings))
    try:
        controller.run(look, engine, interval_s=interval, stop=stop_event)
    finally:
        engine.dispose()
        logging.getLogger("delaycast.ramp").info("[Ramp] controller stopped")

"""``delaycast flags``: see and change the ML rollout."""

from __future__ import annotations

import getpass
import json
import logging
import socket
import sys

import click
import redis

from connectors.flags import FlagState, FlagStore
from connectors.postgres import make_engine
from streams.clock import utc_now
from streams.operate import flag_change
from streams.settings import Settings, get_settings


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _store(settings: Settings) -> FlagStore:
    return flag_change.flag_store(settings)


def change_flags(
    settings: Settings, *, ml_enabled: bool, percentage: float | None, actor: str
) -> tuple[FlagState, FlagState]:
    """Change the flags in Redis, then record the change in PostgreSQL and the log
    (``percentage`` None keeps the one in force)."""
    engine = make_engine(settings.database_url.get_secret_value())
    try:
        return flag_change.change_flags(
            _store(settings),
            engine,
            initial=flag_change.settings_flags(settings),
            ml_enabled=ml_enabled,
            percentage=percentage,
            actor=actor,
            now=utc_now(),
        )
    finally:
        engine.dispose()


def _print_state(state: FlagState, as_json: bool, *, stored: bool = True) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ml_enabled": state.ml_enabled,
                    "ml_traffic_percentage": state.ml_traffic_percentage,
                    "salt": state.salt,
                    "version": state.version,
                    "updated_at": state.updated_at.isoformat() if state.updated_at else None,
                    "updated_by": state.updated_by,
                    "stored_in_redis": stored,
                }
            )
        )
        return
    click.echo(f"ML_ENABLED            {str(state.ml_enabled).lower()}")
    click.echo(f"ML_TRAFFIC_PERCENTAGE {state.ml_traffic_percentage:g}")
    click.echo(f"salt                  {state.salt}")
    click.echo(f"version               {state.version}")
    if state.updated_at:
        click.echo(f"changed               {state.updated_at.isoformat()} by {state.updated_by}")
    if not stored:
        click.echo("(no flags in Redis yet: these are the settings' initial values)")


def _fail(exc: Exception) -> None:
    if isinstance(exc, flag_change.AuditNotRecorded):
        raise click.ClickException(str(exc))  # the change itself went through: say so
    raise click.ClickException(f"cannot reach Redis, flags unchanged: {type(exc).__name__}: {exc}")


@click.group()
def flags() -> None:
    """Show or change the ML rollout flags (every worker sees a change within 1 s).

    \b
    Examples:
      delaycast flags status
      delaycast flags enable --percentage 10
      delaycast flags enable --percentage 25 --actor alice
      delaycast flags disable          # the kill switch
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)


@flags.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(as_json: bool) -> None:
    """Print the flags in force.

    \b
    Examples:
      delaycast flags status
      delaycast flags status --json
    """
    settings = get_settings()
    try:
        state = _store(settings).read()
    except redis.RedisError as exc:
        _fail(exc)
    _print_state(state or flag_change.settings_flags(settings), as_json, stored=state is not None)


@flags.command()
@click.option(
    "--percentage",
    type=click.FloatRange(0, 100),
    required=True,
    help="Share of bookings routed to the ML model, 0-100.",
)
@click.option(
    "--actor", default=default_actor, show_default="user@host", help="Who is changing it."
)
@click.option("--json", "as_json", is_flag=True, help="Print the new state as JSON.")
def enable(percentage: float, actor: str, as_json: bool) -> None:
    """Route PERCENTAGE % of bookings to the ML model.

    \b
    Example:
      delaycast flags enable --percentage 25 --actor alice
    """
    try:
        _, new = change_flags(get_settings(), ml_enabled=True, percentage=percentage, actor=actor)
    except (redis.RedisError, OSError) as exc:
        _fail(exc)
    except Exception as exc:  # PostgreSQL errors come from several driver layers
        _fail(exc)
    _print_state(new, as_json)


@flags.command()
@click.option(
    "--actor", default=default_actor, show_default="user@host", help="Who is changing it."
)
@click.option("--json", "as_json", is_flag=True, help="Print the new state as JSON.")
def disable(actor: str, as_json: bool) -> None:
    """Kill switch: send every booking to the heuristic (the percentage is kept).

    \b
    Example:
      delaycast flags disable --actor alice
    """
    try:
        _, new = change_flags(get_settings(), ml_enabled=False, percentage=None, actor=actor)
    except Exception as exc:
        _fail(exc)
    _print_state(new, as_json)

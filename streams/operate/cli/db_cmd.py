"""``delaycast db``: the PostgreSQL schema."""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa


@click.group()
def db() -> None:
    """Manage delaycast's PostgreSQL schema.

    \b
    Examples:
      delaycast db upgrade        # apply every migration not applied yet
      delaycast db current        # show the revision the database is at
      delaycast db backup --out backups/delaycast.dump
      delaycast db restore backups/delaycast.dump --yes
    """


def _engine() -> sa.Engine:
    from connectors.postgres import make_engine
    from streams.settings import get_settings

    return make_engine(get_settings().database_url.get_secret_value())


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(revision: str) -> None:
    """Apply the migrations up to REVISION (idempotent).

    \b
    Example:
      delaycast db upgrade
    """
    from sqlalchemy.exc import SQLAlchemyError

    from connectors.postgres import current_revision
    from connectors.postgres import upgrade as run_upgrade

    engine = _engine()
    try:
        before = current_revision(engine)
        after = run_upgrade(engine, revision)
    except SQLAlchemyError as exc:
        detail = getattr(exc, "orig", None) or exc
        raise click.ClickException(
            f"cannot migrate the database: {type(exc).__name__}: {detail}"
        ) from None
    finally:
        engine.dispose()
    if before == after:
        click.echo(f"database already at revision {after}")
    else:
        click.echo(f"database migrated from {before or 'empty'} to {after}")


@db.command()
def current() -> None:
    """Print the database's revision and the newest one available.

    \b
    Example:
      delaycast db current
    """
    from connectors.postgres import current_revision, head_revision

    engine = _engine()
    try:
        click.echo(f"current {current_revision(engine) or 'empty'}, head {head_revision()}")
    finally:
        engine.dispose()


def _pg_tool(name: str) -> str:
    import shutil

    from streams.tools.stack.postgres_server import find_pg_bindir

    bindir = find_pg_bindir()
    if bindir is not None and (bindir / name).is_file():
        return str(bindir / name)
    found = shutil.which(name)
    if found is None:
        raise click.ClickException(f"{name} not found: install PostgreSQL's client tools")
    return found


def _pg_env() -> tuple[dict[str, str], str]:
    """libpq environment for the settings' database (the password in PGPASSWORD, never argv)."""
    import os

    from streams.settings import get_settings

    url = sa.engine.make_url(get_settings().database_url.get_secret_value())
    env = dict(os.environ)
    for var, value in (
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value is not None:
            env[var] = str(value)
    return env, f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"


def _run_pg(argv: list[str], env: dict[str, str], what: str) -> None:
    import subprocess

    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        # libpq's messages name host and user, never the password.
        raise click.ClickException(f"{what} failed: {done.stderr.strip()[-2000:]}")


@db.command()
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    required=True,
    help="The dump file to write (pg_dump's custom format).",
)
def backup(out: Path) -> None:
    """Dump the whole database (history, buckets, alerts, flag audit, checkpoints) to a file.

    \b
    Example:
      delaycast db backup --out backups/delaycast-$(date -u +%Y%m%dT%H%M%SZ).dump
    """
    env, where = _pg_env()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    _run_pg([_pg_tool("pg_dump"), "--format=custom", "--file", str(partial)], env, "pg_dump")
    partial.replace(out)  # a dump that failed half-way never looks like a backup
    click.echo(f"backed up {where} to {out} ({out.stat().st_size:,} bytes)")


@db.command()
@click.argument("dump", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask before replacing the current data.")
def restore(dump: Path, yes: bool) -> None:
    """Replace the database's tables with those of DUMP (made by `delaycast db backup`).

    Stop the workers and the API first: the restore drops and recreates every table.

    \b
    Example:
      delaycast db restore backups/delaycast-20261122T040000Z.dump --yes
    """
    env, where = _pg_env()
    if not yes:
        click.confirm(f"replace every delaycast table in {where} with {dump}?", abort=True)
    _run_pg(
        [
            _pg_tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--single-transaction",
            "--dbname",
            env.get("PGDATABASE", "delaycast"),
            str(dump),
        ],
        env,
        "pg_restore",
    )
    click.echo(f"restored {where} from {dump}")

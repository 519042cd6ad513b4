"""``delaycast db``: the PostgreSQL schema."""

from __future__ import annotations

import click
import sqlalchemy as sa


@click.group()
def db() -> None:
    """Manage delaycast's PostgreSQL schema.

    \b
    Examples:
      delaycast db upgrade        # apply every migration not applied yet
      delaycast db current        # show the revision the database is at
    """


def _engine() -> sa.Engine:
    from connectors.postgres import make_engine
    from streams.settings import get_settings

    return make_engine(get_settings().database_url.get_secret_value())


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(revision: str) -> None:
    """Apply the migrations up to REVISION (idempotent)."""
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
    """Print the database's revision and the newest one available."""
    from connectors.postgres import current_revision, head_revision

    engine = _engine()
    try:
        click.echo(f"current {current_revision(engine) or 'empty'}, head {head_revision()}")
    finally:
        engine.dispose()

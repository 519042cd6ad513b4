"""A PostgreSQL database of the benchmark's own, so that its outcome runs never add 150,000
synthetic outcomes, metric buckets and alerts to the history an operator looks at.

Created next to the configured database (same server, same role: the local stack's role may
create databases), migrated, and dropped at the end of the run. Where the role may not create
one, the configured database is used, and the runner says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from connectors.postgres import drop_database, make_engine, upgrade
from schemas.tables import outcomes


@dataclass(frozen=True)
class BenchDatabase:
    url: str  # may hold a password: never print it
    name: str
    own: bool  # created (and dropped) by the benchmark


@contextmanager
def bench_database(url: str, run_id: str) -> Iterator[BenchDatabase]:
    base = sa.make_url(url)
    name = f"delaycast_bench_{run_id}"
    admin = make_engine(url, pool_size=1)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        own = True
        target = base.set(database=name).render_as_string(hide_password=False)
    except SQLAlchemyError:
        own, name, target = False, base.database or "", url
    engine = make_engine(target, pool_size=1)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    try:
        yield BenchDatabase(url=target, name=name, own=own)
    finally:
        if own:
            drop_database(admin, name)
        admin.dispose()


def outcomes_recorded(engine: sa.Engine, tag: str) -> int:
    """How many outcomes of the booking ids of ``tag`` the history holds."""
    query = (
        sa.select(sa.func.count())
        .select_from(outcomes)
        .where(outcomes.c.booking_id.startswith(f"B-{tag}-", autoescape=True))
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())

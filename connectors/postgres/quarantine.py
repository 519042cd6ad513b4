"""The quarantine in PostgreSQL: events the recorder could not store, once per source record."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from connectors.postgres.history import Bind, _transaction
from schemas import tables
from schemas.quarantine import QuarantinedEvent


def write_quarantine(bind: Bind, *, events: Sequence[QuarantinedEvent]) -> int:
    """Store quarantined events; returns how many were new (one already stored from the same
    topic, partition and offset is not)."""
    if not events:
        return 0
    table = tables.quarantined_events
    statement = (
        pg_insert(table)
        .values([asdict(e) for e in events])
        .on_conflict_do_nothing()
        .returning(table.c.source_offset)
    )
    with _transaction(bind) as connection:
        return len(connection.execute(statement).all())


def read_quarantine(
    bind: Bind, *, source_topic: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest quarantined events (of ``source_topic`` when given), newest first."""
    q = tables.quarantined_events
    query = sa.select(q).order_by(q.c.quarantined_at.desc(), q.c.source_offset.desc()).limit(limit)
    if source_topic is not None:
        query = query.where(q.c.source_topic == source_topic)
    with _transaction(bind) as connection:
        return [dict(row._mapping) for row in connection.execute(query)]

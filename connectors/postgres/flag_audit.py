"""The audit trail of flag changes in PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from connectors.flags.state import FlagState
from schemas.tables import flag_changes


def record_flag_change(
    engine: sa.Engine, *, old: FlagState, new: FlagState, actor: str, changed_at: datetime
) -> None:
    with engine.begin() as connection:
        connection.execute(
            flag_changes.insert().values(
                changed_at=changed_at,
                actor=actor,
                old_ml_enabled=old.ml_enabled,
                old_ml_traffic_percentage=old.ml_traffic_percentage,
                new_ml_enabled=new.ml_enabled,
                new_ml_traffic_percentage=new.ml_traffic_percentage,
                version=new.version,
                salt=new.salt,
            )
        )


def flag_changes_between(
    engine: sa.Engine, *, since: datetime, until: datetime, limit: int
) -> list[dict[str, Any]]:
    """The newest ``limit`` flag changes with ``since <= changed_at < until``, oldest first."""
    f = flag_changes.c
    query = (
        flag_changes.select()
        .where(f.changed_at >= since, f.changed_at < until)
        .order_by(f.changed_at.desc(), f.id.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)][::-1]


def recent_flag_changes(engine: sa.Engine, *, limit: int = 20) -> list[dict[str, Any]]:
    query = flag_changes.select().order_by(flag_changes.c.id.desc()).limit(limit)
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]

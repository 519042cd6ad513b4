"""Changing the routing flags: Redis first, then the audit row in PostgreSQL, then the log.

``delaycast flags enable|disable`` and the monitoring API's POST endpoints both go through
:func:`change_flags`, so a change looks the same in Redis, in ``flag_changes`` and in the log,
whoever made it. Blocking: call it from a thread, never from an event loop.
"""

from __future__ import annotations

import logging
from datetime import datetime

import redis
import sqlalchemy as sa

from connectors.flags import FlagState, FlagStore
from connectors.postgres import record_flag_change
from streams.settings import Settings

log = logging.getLogger("delaycast.flags")


class AuditNotRecorded(Exception):
    """The new flags are in force (Redis holds them) but PostgreSQL did not take the audit row."""

    def __init__(self, old: FlagState, new: FlagState, cause: Exception) -> None:
        super().__init__(
            f"flags changed to {new.describe()} and in force, but PostgreSQL did not record the "
            f"audit row ({type(cause).__name__}); note the change in the incident log"
        )
        self.old, self.new, self.cause = old, new, cause


def settings_flags(settings: Settings) -> FlagState:
    """The flags the settings give: in force until someone writes flags to Redis."""
    return FlagState(
        ml_enabled=settings.ml_enabled,
        ml_traffic_percentage=settings.ml_traffic_percentage,
        salt=settings.ml_hash_salt,
    )


def flag_store(settings: Settings, *, timeout_s: float = 2.0) -> FlagStore:
    """The flags in the Redis of ``settings``, with short timeouts."""
    client = redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
    )
    return FlagStore(client, settings.flags_redis_key)


def change_flags(
    store: FlagStore,
    engine: sa.Engine,
    *,
    initial: FlagState,
    ml_enabled: bool,
    percentage: float | None,
    actor: str,
    now: datetime,
    expected_version: int | None = None,
) -> tuple[FlagState, FlagState]:
    """Write the new flags to Redis, record the change in ``flag_changes`` and log it.

    ``percentage`` None keeps the percentage in force (the kill switch keeps it for the next
    enable). ``initial`` stands for the flags when Redis has none yet. Returns (old, new).
    Raises the Redis error as it comes (nothing changed), :class:`FlagConflict` when
    ``expected_version`` is given and the flags moved past it (nothing changed), or
    :class:`AuditNotRecorded` when only the audit failed (the change is in force).
    """
    if percentage is None:
        percentage = (store.read() or initial).ml_traffic_percentage
    old, new = store.update(
        initial=initial,
        ml_enabled=ml_enabled,
        ml_traffic_percentage=percentage,
        actor=actor,
        now=now,
        expected_version=expected_version,
    )
    try:
        record_flag_change(engine, old=old, new=new, actor=actor, changed_at=now)
    except sa.exc.SQLAlchemyError as exc:
        log.warning(
            "[FeatureFlag] %s -> %s by %s (version %d) NOT AUDITED: %s",
            old.describe(),
            new.describe(),
            actor,
            new.version,
            type(exc).__name__,
        )
        raise AuditNotRecorded(old, new, exc) from exc
    log.info(
        "[FeatureFlag] %s -> %s by %s (version %d)",
        old.describe(),
        new.describe(),
        actor,
        new.version,
    )
    return old, new

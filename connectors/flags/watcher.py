"""Keeps a worker's view of the flags fresh by polling Redis; survives Redis being down.

Polling one small hash every ``interval_s`` bounds how long a change takes to reach every worker
(well under a second by default) and needs no reconnect logic for subscriptions. When Redis cannot
be read, the last values seen stay in force (or the initial values when none was ever read), and
:attr:`source` says which, so each prediction can carry it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from connectors.flags.state import FlagFormatError, FlagState, parse_flags

log = logging.getLogger("delaycast.flags")

SOURCE_REDIS = "redis"
SOURCE_LAST_SEEN = "last_seen"
SOURCE_SETTINGS = "settings"


class FlagWatcher:
    def __init__(
        self,
        client: aioredis.Redis,
        key: str,
        initial: FlagState,
        *,
        interval_s: float,
        timeout_s: float = 0.5,
        on_change: Callable[[FlagState, FlagState], None] | None = None,
    ) -> None:
        self._client = client
        self._key = key
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._on_change = on_change
        self.state = initial
        self.source = SOURCE_SETTINGS
        self._ever_read = False
        self._reachable: bool | None = None  # None until the first attempt

    async def refresh(self) -> None:
        """Read Redis once and update :attr:`state` and :attr:`source`."""
        try:
            raw = await asyncio.wait_for(self._client.hgetall(self._key), self._timeout_s)
            fresh = parse_flags(raw)
        except (RedisError, OSError, TimeoutError, FlagFormatError) as exc:
            self._mark_unreachable(exc)
            return
        if fresh is None:
            # No flags in Redis yet: the values in force stand until someone writes them.
            fresh = self.state
        if self._reachable is not True:
            log.info("[FeatureFlag] reading flags from Redis: %s", fresh.describe())
        self._reachable = True
        self.source = SOURCE_REDIS
        self._ever_read = True
        if fresh != self.state:
            old, self.state = self.state, fresh
            log.info(
                "[FeatureFlag] flags changed: %s -> %s (version %d, by %s)",
                old.describe(),
                fresh.describe(),
                fresh.version,
                fresh.updated_by or "unknown",
            )
            if self._on_change is not None:
                self._on_change(old, fresh)

    def _mark_unreachable(self, exc: BaseException) -> None:
        self.source = SOURCE_LAST_SEEN if self._ever_read else SOURCE_SETTINGS
        if self._reachable is not False:
            self._reachable = False
            log.warning(
                "[FeatureFlag] cannot read flags from Redis (%s: %s); keeping %s values: %s",
                type(exc).__name__,
                exc,
                "the last seen" if self._ever_read else "the initial settings'",
                self.state.describe(),
            )

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._interval_s)

"""Reading and changing the flags in Redis, atomically (used by the CLI and the API)."""

from __future__ import annotations

from datetime import datetime

import redis

from connectors.flags.state import FlagState, parse_flags, render_flags


class FlagConflict(Exception):
    """The flags moved on since the version the writer expected; nothing was written."""

    def __init__(self, current: FlagState) -> None:
        super().__init__(
            f"the flags changed meanwhile: {current.describe()} (version {current.version})"
        )
        self.current = current


class FlagStore:
    def __init__(self, client: redis.Redis, key: str) -> None:
        self._client = client
        self._key = key

    def read(self) -> FlagState | None:
        return parse_flags(self._client.hgetall(self._key))

    def initialize(self, initial: FlagState) -> FlagState:
        """Write ``initial`` only when no flags exist yet; return what is stored."""
        with self._client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self._key)
                    current = parse_flags(pipe.hgetall(self._key))
                    if current is not None:
                        pipe.unwatch()
                        return current
                    pipe.multi()
                    pipe.hset(self._key, mapping=render_flags(initial))  # type: ignore[arg-type]
                    pipe.execute()
                    return initial
                except redis.WatchError:
                    continue

    def update(
        self,
        *,
        initial: FlagState,
        ml_enabled: bool,
        ml_traffic_percentage: float,
        actor: str,
        now: datetime,
        expected_version: int | None = None,
    ) -> tuple[FlagState, FlagState]:
        """Change the flags atomically; returns (old, new). ``initial`` is used when none exist.
        With ``expected_version``, only if the flags are still at that version, else
        :class:`FlagConflict` and nothing written."""
        with self._client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(self._key)
                    old = parse_flags(pipe.hgetall(self._key)) or initial
                    if expected_version is not None and old.version != expected_version:
                        pipe.unwatch()
                        raise FlagConflict(old)
                    new = FlagState(
                        ml_enabled=ml_enabled,
                        ml_traffic_percentage=ml_traffic_percentage,
                        salt=old.salt,
                        version=old.version + 1,
                        updated_at=now,
                        updated_by=actor,
                    )
                    pipe.multi()
                    pipe.hset(self._key, mapping=render_flags(new))  # type: ignore[arg-type]
                    pipe.execute()
                    return old, new
                except redis.WatchError:
                    continue

"""The tracked P90 sums in Redis: written by the outcome path, read by the prediction path.

One Redis hash (``P90_TRACKING_REDIS_KEY``) maps each served version (a model version or a
heuristic version) to its sum S (see :func:`models.interval.tracking_factor`). Every outcome
worker adds its batches' deltas with one atomic script per version that also bounds the sum,
so workers sharing partitions never lose each other's updates. Prediction workers read the
hash every few seconds; until they can, every factor is 1 (the calibrated P90).

A batch redelivered after a crash is added again: a few outcomes counted twice move the factor
by a fraction of a percent, which the tracking then corrects like any other error.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping

import redis
import redis.asyncio as aioredis

log = logging.getLogger("delaycast.p90")

# HINCRBYFLOAT, then bound the result to [-limit, limit] (ARGV: field, delta, limit).
_ADD_BOUNDED = """
local value = redis.call('HINCRBYFLOAT', KEYS[1], ARGV[1], ARGV[2])
local limit = tonumber(ARGV[3])
local number = tonumber(value)
if number > limit then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return ARGV[3]
elseif number < -limit then
  redis.call('HSET', KEYS[1], ARGV[1], '-' .. ARGV[3])
  return '-' .. ARGV[3]
end
return value
"""


class TrackingStore:
    """The outcome path's side: add deltas to the sums (blocking client)."""

    def __init__(self, client: redis.Redis, key: str, *, limit: float) -> None:
        self._client = client
        self._key = key
        self._limit = limit
        self._script = client.register_script(_ADD_BOUNDED)

    def add(self, deltas: Mapping[str, float]) -> dict[str, float]:
        """Add each version's delta; the new sums. Raises RedisError or OSError when Redis
        does not answer. A field Redis refuses to add to (not a number: written by hand, say)
        loses its version's delta, logged with the version, never the other versions'."""
        sums = {}
        for version, delta in deltas.items():
            if delta == 0 or not math.isfinite(delta):
                continue
            try:
                value = self._script(
                    keys=[self._key], args=[version, repr(delta), repr(self._limit)]
                )
            except redis.ResponseError as exc:
                log.warning("[P90] cannot add to the tracked sum of %s: %s", version, exc)
                continue
            sums[version] = float(value)
        return sums

    def read(self) -> dict[str, float]:
        return _parse(self._client.hgetall(self._key))


class TrackingWatcher:
    """The prediction path's side: the sums, re-read every ``interval_s``; ``sums`` stays as
    last read when Redis does not answer (empty before the first read: factors of 1)."""

    def __init__(
        self, client: aioredis.Redis, key: str, *, interval_s: float, timeout_s: float = 0.5
    ) -> None:
        self._client = client
        self._key = key
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self.sums: dict[str, float] = {}
        self._failing = False

    async def refresh(self) -> None:
        try:
            raw = await asyncio.wait_for(self._client.hgetall(self._key), self._timeout_s)
            sums = _parse(raw)
        except Exception as exc:  # a Redis down or a hash garbled by hand: never the worker's end
            if not self._failing:
                log.warning(
                    "[P90] cannot read the tracked P90 sums (%s); keeping the last read",
                    type(exc).__name__,
                )
            self._failing = True
            return
        self._failing = False
        self.sums = sums

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._interval_s)


def _parse(raw: Mapping[bytes | str, bytes | str]) -> dict[str, float]:
    """The hash as {version: sum}; fields that are not finite numbers are left out."""
    sums = {}
    for field, value in raw.items():
        name = field.decode(errors="replace") if isinstance(field, bytes) else field
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            sums[name] = number
    return sums

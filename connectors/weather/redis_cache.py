"""The weather cache shared by every worker, in Redis.

Values are :class:`Weather` as JSON under ``{prefix}:{lat},{lon}:{hour}``, e.g.
``delaycast:weather:44.35000,11.00000:2024-05-01T13Z``, expiring after the TTL given to
:meth:`RedisWeatherCache.set_many`. Keys are read and written a batch at a time, each batch
in one round trip on one pooled connection. Errors propagate: the caller (``WeatherService``)
decides to skip the cache while Redis is down.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydantic import SecretStr, ValidationError
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from connectors.weather.keys import WeatherKey
from schemas.weather import Weather

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "delaycast:weather"


class RedisWeatherCache:
    """A :class:`connectors.weather.base.SharedCache` over a ``redis.asyncio`` client.

    The client is used from the event loop that awaits these methods.
    """

    def __init__(self, client: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self._client = client
        self._prefix = prefix

    @classmethod
    def from_url(
        cls, url: SecretStr | str, *, timeout_s: float = 0.5, prefix: str = DEFAULT_PREFIX
    ) -> RedisWeatherCache:
        """A cache with its own client; a lookup fails within about ``timeout_s`` when Redis is
        down instead of redis-py's default retries, since a miss is cheaper than waiting."""
        raw = url.get_secret_value() if isinstance(url, SecretStr) else url
        client = Redis.from_url(
            raw,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, prefix=prefix)

    def __repr__(self) -> str:
        # The client's URL may hold a password: never shown.
        return f"RedisWeatherCache(prefix={self._prefix!r})"

    def redis_key(self, key: WeatherKey) -> str:
        return f"{self._prefix}:{key}"

    async def get_many(self, keys: Sequence[WeatherKey]) -> list[Weather | None]:
        """The cached weather of each key, in one round trip (MGET); None where absent or
        unreadable (unreadable entries are dropped)."""
        if not keys:
            return []
        names = [self.redis_key(key) for key in keys]
        found: list[Weather | None] = []
        unreadable: list[str] = []
        for name, raw in zip(names, await self._client.mget(names), strict=True):
            try:
                found.append(None if raw is None else Weather.model_validate_json(raw))
            except ValidationError:
                found.append(None)
                unreadable.append(name)
        if unreadable:
            # Written by an incompatible version or by hand: a miss, and not one to hit again.
            log.warning(
                "[Weather] dropping %d unreadable cache entries, e.g. %s",
                len(unreadable),
                unreadable[0],
            )
            await self._client.delete(*unreadable)
        return found

    async def set_many(self, items: Sequence[tuple[WeatherKey, Weather]], ttl_s: float) -> None:
        """Stores every item in one round trip (a pipeline, not a transaction: each SET stands
        on its own)."""
        if not items:
            return
        ttl_ms = max(1, round(ttl_s * 1000))
        async with self._client.pipeline(transaction=False) as pipe:
            for key, weather in items:
                pipe.set(self.redis_key(key), weather.model_dump_json(), px=ttl_ms)
            await pipe.execute()

    async def aclose(self) -> None:
        await self._client.aclose()

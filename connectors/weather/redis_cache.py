"""The weather cache shared by every worker, in Redis.

Values are :class:`Weather` as JSON under ``{prefix}:{lat},{lon}:{hour}``, e.g.
``delaycast:weather:44.35000,11.00000:2024-05-01T13Z``, expiring after the TTL given to
:meth:`RedisWeatherCache.set`. Errors propagate: the caller (``WeatherService``) decides to skip
the cache while Redis is down.
"""

from __future__ import annotations

import logging

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

    async def get(self, key: WeatherKey) -> Weather | None:
        """The cached weather, or None when absent or unreadable (then the entry is dropped)."""
        name = self.redis_key(key)
        raw = await self._client.get(name)
        if raw is None:
            return None
        try:
            return Weather.model_validate_json(raw)
        except ValidationError:
            # Written by an incompatible version or by hand: a miss, and not one to hit again.
            log.warning("[Weather] dropping unreadable cache entry %s", name)
            await self._client.delete(name)
            return None

    async def set(self, key: WeatherKey, weather: Weather, ttl_s: float) -> None:
        await self._client.set(
            self.redis_key(key), weather.model_dump_json(), px=max(1, round(ttl_s * 1000))
        )

    async def aclose(self) -> None:
        await self._client.aclose()

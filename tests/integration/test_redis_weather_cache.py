"""RedisWeatherCache and WeatherService against the real Redis of the test stack."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from pydantic import SecretStr

from connectors.weather import (
    MILD_WEATHER,
    RedisWeatherCache,
    WeatherService,
    weather_key,
)
from schemas.weather import Weather, WeatherSource

AT = datetime(2024, 5, 1, 13, 20, tzinfo=UTC)
OBSERVED = Weather(
    temperature_c=7.5,
    precipitation_mm_h=1.2,
    wind_m_s=6.0,
    visibility_m=4000,
    humidity_pct=93,
    condition="rain",
    observed_at=datetime(2024, 5, 1, 13, 4, tzinfo=UTC),
    source=WeatherSource.OPENWEATHER,
)


class CountingProvider:
    name = "counting"
    current_only = False

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def fetch(self, lat: float, lon: float, at: datetime) -> Weather:
        with self._lock:
            self.calls += 1
        return OBSERVED.model_copy(update={"observed_at": at})


@pytest.fixture
def redis_url(stack: Any) -> str:
    url = stack.redis_url
    return url.get_secret_value() if isinstance(url, SecretStr) else str(url)


@pytest.fixture
def prefix() -> str:
    return f"delaycast:test-weather:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=4)
    yield pool
    pool.shutdown(wait=True)


def service_for(shared: Any, provider: Any, executor: Any, **options: Any) -> WeatherService:
    return WeatherService(
        provider,
        shared=shared,
        executor=executor,
        clock=lambda: datetime(2024, 5, 1, 12, tzinfo=UTC),
        cell_deg=0.05,
        ttl_s=options.get("ttl_s", 60.0),
        failure_ttl_s=30.0,
        breaker_failures=3,
        breaker_reset_s=30.0,
        default=MILD_WEATHER,
        shared_retry_s=options.get("shared_retry_s", 5.0),
    )


def test_weather_round_trips_as_json_under_the_documented_key_with_a_ttl(redis_url):
    async def scenario() -> None:
        cache = RedisWeatherCache.from_url(redis_url)
        raw = aioredis.Redis.from_url(redis_url, decode_responses=True)
        # A year no other test uses, so the default prefix is safe to write to.
        key = weather_key(44.346, 10.99, AT.replace(year=1999), 0.05)
        name = "delaycast:weather:44.35000,11.00000:1999-05-01T13Z"
        try:
            await cache.set(key, OBSERVED, ttl_s=120)
            assert await cache.get(key) == OBSERVED
            stored = await raw.get(name)
            assert stored is not None
            assert json.loads(stored) == json.loads(OBSERVED.model_dump_json())
            assert 118_000 <= await raw.pttl(name) <= 120_000
        finally:
            await raw.delete(name)
            await raw.aclose()
            await cache.aclose()

    asyncio.run(scenario())


def test_an_absent_key_is_a_miss_and_an_entry_expires_after_its_ttl(redis_url, prefix):
    async def scenario() -> None:
        cache = RedisWeatherCache.from_url(redis_url, prefix=prefix)
        key = weather_key(44.35, 11.0, AT, 0.05)
        try:
            assert await cache.get(key) is None
            await cache.set(key, OBSERVED, ttl_s=0.3)
            assert await cache.get(key) == OBSERVED
            await asyncio.sleep(0.5)
            assert await cache.get(key) is None
        finally:
            await cache.aclose()

    asyncio.run(scenario())


def test_an_unreadable_entry_is_a_miss_and_is_dropped(redis_url, prefix):
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        cache = RedisWeatherCache(client, prefix=prefix)
        key = weather_key(44.35, 11.0, AT, 0.05)
        try:
            await client.set(cache.redis_key(key), b'{"temperature_c": "warm"}', ex=60)
            assert await cache.get(key) is None
            assert await client.exists(cache.redis_key(key)) == 0
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_a_second_worker_is_served_from_redis_without_calling_its_provider(
    redis_url, prefix, executor
):
    async def scenario() -> None:
        first_cache = RedisWeatherCache.from_url(redis_url, prefix=prefix)
        second_cache = RedisWeatherCache.from_url(redis_url, prefix=prefix)
        first_provider, second_provider = CountingProvider(), CountingProvider()
        first = service_for(first_cache, first_provider, executor)
        second = service_for(second_cache, second_provider, executor)
        points = [(44.35, 11.0, AT), (44.45, 11.0, AT), (44.35, 11.0, AT + timedelta(hours=1))]
        try:
            fetched = await first.get_many(points, wait_s=2)
            await first.wait_idle()  # the Redis writes run after the answers
            shared = await second.get_many(points, wait_s=2)
        finally:
            await first_cache.aclose()
            await second_cache.aclose()

        assert [lookup.note for lookup in shared] == [None, None, None]
        assert [lookup.weather for lookup in shared] == [lookup.weather for lookup in fetched]
        assert (first_provider.calls, second_provider.calls) == (3, 0)
        assert first.stats().shared_hits == 0 and first.stats().api_calls == 3
        assert second.stats().shared_hits == 3 and second.stats().api_calls == 0

    asyncio.run(scenario())


def test_an_unreachable_redis_fails_fast_and_the_service_keeps_serving(executor, caplog):
    async def scenario() -> None:
        cache = RedisWeatherCache.from_url(f"redis://127.0.0.1:{_closed_port()}/0", timeout_s=0.2)
        provider = CountingProvider()
        service = service_for(cache, provider, executor, shared_retry_s=0.0)
        started = time.monotonic()
        try:
            with pytest.raises(redis.exceptions.ConnectionError):
                await cache.get(weather_key(44.35, 11.0, AT, 0.05))
            assert time.monotonic() - started < 1.0
            lookups = [await service.get(44.35 + n * 0.05, 11.0, AT, wait_s=2) for n in range(3)]
            await service.wait_idle()
        finally:
            await cache.aclose()

        assert [lookup.note for lookup in lookups] == [None, None, None]
        assert provider.calls == 3
        stats = service.stats()
        assert stats.api_calls == 3
        assert stats.shared_errors == 6  # each lookup's get and set, with no skip window
        assert stats.defaults_served == 0

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # rate-limited: one per minute
    assert warnings[0].startswith("[Weather] shared weather cache unavailable")


def test_the_cache_repr_never_shows_the_redis_password():
    cache = RedisWeatherCache.from_url(SecretStr("redis://:s3cret-pw@127.0.0.1:6399/0"))
    assert "s3cret-pw" not in repr(cache)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

"""RedisWeatherCache and WeatherService against the real Redis of the test stack."""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import redis.exceptions
from pydantic import SecretStr

from connectors.weather import (
    MILD_WEATHER,
    RecordedWeather,
    RedisWeatherCache,
    WeatherService,
    weather_key,
)
from schemas.datasets import WEATHER_COLUMNS
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
            await cache.set_many([(key, OBSERVED)], ttl_s=120)
            assert await cache.get_many([key]) == [OBSERVED]
            stored = await raw.get(name)
            assert stored is not None
            assert json.loads(stored) == json.loads(OBSERVED.model_dump_json())
            assert 118_000 <= await raw.pttl(name) <= 120_000
        finally:
            await raw.delete(name)
            await raw.aclose()
            await cache.aclose()

    asyncio.run(scenario())


def test_a_batch_round_trips_in_order_with_misses_as_none_and_every_entry_with_the_ttl(
    redis_url, prefix
):
    async def scenario() -> None:
        cache = RedisWeatherCache.from_url(redis_url, prefix=prefix)
        raw = aioredis.Redis.from_url(redis_url)
        keys = [weather_key(44.0 + n * 0.05, 11.0, AT, 0.05) for n in range(300)]
        stored = [
            (key, OBSERVED.model_copy(update={"temperature_c": n / 10}))
            for n, key in enumerate(keys)
            if n % 3
        ]
        try:
            assert await cache.get_many([]) == []
            await cache.set_many([], ttl_s=60)  # nothing to send: no round trip, no error
            await cache.set_many(stored, ttl_s=60)
            found = await cache.get_many(keys)

            assert found == [dict(stored).get(key) for key in keys]
            assert sum(weather is not None for weather in found) == len(stored) == 200
            ttls = [await raw.pttl(cache.redis_key(key)) for key, _ in stored]
            assert all(58_000 <= ttl <= 60_000 for ttl in ttls)
            assert await raw.pttl(cache.redis_key(keys[0])) == -2  # never written
        finally:
            await raw.aclose()
            await cache.aclose()

    asyncio.run(scenario())


def test_an_absent_key_is_a_miss_and_an_entry_expires_after_its_ttl(redis_url, prefix):
    async def scenario() -> None:
        cache = RedisWeatherCache.from_url(redis_url, prefix=prefix)
        key = weather_key(44.35, 11.0, AT, 0.05)
        try:
            assert await cache.get_many([key]) == [None]
            await cache.set_many([(key, OBSERVED)], ttl_s=0.3)
            assert await cache.get_many([key]) == [OBSERVED]
            await asyncio.sleep(0.5)
            assert await cache.get_many([key]) == [None]
        finally:
            await cache.aclose()

    asyncio.run(scenario())


def test_an_unreadable_entry_is_a_miss_and_is_dropped_while_its_neighbours_are_served(
    redis_url, prefix
):
    async def scenario() -> None:
        client = aioredis.Redis.from_url(redis_url)
        cache = RedisWeatherCache(client, prefix=prefix)
        good, bad = weather_key(44.35, 11.0, AT, 0.05), weather_key(44.45, 11.0, AT, 0.05)
        try:
            await cache.set_many([(good, OBSERVED)], ttl_s=60)
            await client.set(cache.redis_key(bad), b'{"temperature_c": "warm"}', ex=60)
            assert await cache.get_many([bad, good]) == [None, OBSERVED]
            assert await client.exists(cache.redis_key(bad)) == 0
            assert await client.exists(cache.redis_key(good)) == 1
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
                await cache.get_many([weather_key(44.35, 11.0, AT, 0.05)])
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


def test_a_batch_of_500_bookings_over_300_keys_is_answered_from_recorded_weather_in_time(
    redis_url, prefix, tmp_path
):
    """The agent's case: wait_s=0.25, Redis's default pool of 100 connections, 4 threads."""
    provider = RecordedWeather(recorded_history(tmp_path / "weather.csv"))
    rng = random.Random(3)
    keys = [(44.0 + n * 0.05, 11.0, AT + timedelta(hours=h)) for n in range(30) for h in range(10)]
    chosen = keys + [rng.choice(keys) for _ in range(200)]
    rng.shuffle(chosen)
    points = [(lat + rng.uniform(-0.02, 0.02), lon, at) for lat, lon, at in chosen]

    async def answer(service: WeatherService) -> tuple[list[Any], float]:
        started = time.perf_counter()
        lookups = await service.get_many(points, wait_s=0.25)
        elapsed = time.perf_counter() - started
        await service.wait_idle()
        return lookups, elapsed

    async def scenario() -> None:
        raw = aioredis.Redis.from_url(redis_url)
        first_cache = RedisWeatherCache.from_url(redis_url, prefix=prefix)
        second_cache = RedisWeatherCache.from_url(redis_url, prefix=prefix)
        with ThreadPoolExecutor(max_workers=4) as pool:
            first = service_for(first_cache, provider, pool, ttl_s=600.0)
            second = service_for(second_cache, provider, pool, ttl_s=600.0)
            try:
                cold, cold_s = await answer(first)
                warm, warm_s = await answer(second)  # another worker: everything is in Redis
                stored = await raw.keys(f"{prefix}:*")
                ttl = await raw.pttl(stored[0])
            finally:
                await first_cache.aclose()
                await second_cache.aclose()
                await raw.aclose()
        print(
            f"\n500 points / 300 keys: cold {cold_s * 1000:.1f} ms, "
            f"from Redis {warm_s * 1000:.1f} ms"
        )

        centres = [first.key_for(*point) for point in points]
        expected = [provider.fetch(key.lat, key.lon, key.hour) for key in centres]
        assert len(set(centres)) == 300
        assert [lookup.weather for lookup in cold] == expected
        assert [lookup.weather for lookup in warm] == expected
        assert first.stats().as_dict() == {
            **EMPTY_STATS,
            "misses": 500,
            "coalesced": 200,
            "api_calls": 300,
        }
        assert second.stats().as_dict() == {
            **EMPTY_STATS,
            "misses": 500,
            "coalesced": 200,
            "shared_hits": 300,
        }
        assert len(stored) == 300 and 590_000 <= ttl <= 600_000
        assert cold_s < 2.0 and warm_s < 2.0  # generous: the real bound is zero defaults

    asyncio.run(scenario())


EMPTY_STATS: dict[str, Any] = {
    "memory_hits": 0,
    "failure_hits": 0,
    "misses": 0,
    "coalesced": 0,
    "shared_hits": 0,
    "shared_errors": 0,
    "api_calls": 0,
    "api_errors": 0,
    "not_found": 0,
    "defaults_served": 0,
    "breaker_state": "closed",
}


def recorded_history(path: Path) -> Path:
    """Three stations along the test cells, every hour of the test day."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=WEATHER_COLUMNS)
        writer.writeheader()
        for station, lat in enumerate((44.2, 44.8, 45.3)):
            for hour in range(24):
                writer.writerow(
                    {
                        "observed_at": datetime(2024, 5, 1, hour, tzinfo=UTC).isoformat(),
                        "lat": lat,
                        "lon": 11.0,
                        "temperature_c": 5 + station * 10 + hour / 10,
                        "precipitation_mm_h": 0.0,
                        "wind_m_s": 3.0,
                        "visibility_m": 10_000,
                        "humidity_pct": 70,
                        "condition": "clear",
                    }
                )
    return path


def test_the_cache_repr_never_shows_the_redis_password():
    cache = RedisWeatherCache.from_url(SecretStr("redis://:s3cret-pw@127.0.0.1:6399/0"))
    assert "s3cret-pw" not in repr(cache)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

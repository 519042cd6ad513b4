"""Every Redis client of delaycast takes a REDIS_URL with a password, against a real Redis that
requires one (as docker compose runs it), and a wrong password fails with a message that never
repeats it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from connectors.flags import FlagState, FlagStore
from connectors.weather import MILD_WEATHER
from connectors.weather.keys import weather_key
from connectors.weather.redis_cache import RedisWeatherCache
from streams.operate.api.health import check_redis
from streams.operate.api.resources import Resources
from streams.operate.preflight import redis_checks
from streams.predict.path import write_initial_flags
from streams.settings import load_settings
from streams.tools.stack.ports import pick_port
from streams.tools.stack.redis_server import find_redis_server

PASSWORD = "redis-pw-3f9d1c7a"
WRONG = "not-the-pw-55e2"


@pytest.fixture(scope="module")
def protected_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Redis on loopback that refuses clients without PASSWORD; its port."""
    exe = find_redis_server()
    assert exe is not None, "redis-server missing: run `delaycast stack install --for-tests`"
    directory = tmp_path_factory.mktemp("protected-redis")
    port = pick_port(26_379)
    conf = directory / "redis.conf"
    conf.write_text(
        f'bind 127.0.0.1\nport {port}\nrequirepass {PASSWORD}\nsave ""\nappendonly no\n'
        f'dir "{directory}"\n'
    )
    conf.chmod(0o600)
    process = subprocess.Popen(
        [exe, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, password=PASSWORD)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        client.close()
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def url(port: int, password: str) -> str:
    return f"redis://:{password}@127.0.0.1:{port}/0"


def test_without_a_password_this_redis_refuses(protected_redis):
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=protected_redis).set("k", "v")


def test_flags_weather_cache_preflight_and_api_accept_a_url_with_credentials(protected_redis):
    settings = load_settings(redis_url=url(protected_redis, PASSWORD), flags_redis_key="t:flags")
    # The worker writes the initial flags; the CLI and the API read them back.
    write_initial_flags(settings)
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    state = FlagStore(client, "t:flags").read()
    assert isinstance(state, FlagState)
    assert state.ml_traffic_percentage == settings.ml_traffic_percentage
    client.close()
    # The weather cache (redis.asyncio).
    cache = RedisWeatherCache.from_url(settings.redis_url, timeout_s=2.0)
    key = weather_key(46.2, 6.14, datetime(2026, 12, 7, 9, tzinfo=UTC), 0.05)

    async def round_trip() -> list:
        await cache.set_many([(key, MILD_WEATHER)], ttl_s=60)
        found = await cache.get_many([key])
        await cache.aclose()
        return found

    assert asyncio.run(round_trip()) == [MILD_WEATHER]
    # The worker's preflight and the API's health check.
    checks = {c.name: c for c in redis_checks(settings)}
    assert checks["redis"].ok and checks["redis flags"].ok
    resources = Resources.from_settings(settings)
    try:
        assert check_redis(resources).status == "ok"
    finally:
        resources.close()


def test_a_wrong_password_fails_clearly_and_is_never_repeated(protected_redis, tmp_path: Path):
    settings = load_settings(redis_url=url(protected_redis, WRONG), flags_redis_key="t:flags")
    [check] = [c for c in redis_checks(settings) if c.name == "redis"]
    assert not check.ok and WRONG not in check.detail
    assert "AuthenticationError" in check.detail or "password" in check.detail.lower()
    resources = Resources.from_settings(settings)
    try:
        health = check_redis(resources)
    finally:
        resources.close()
    assert health.status == "down" and WRONG not in health.detail
    # The operator's CLI, as a user runs it.
    env = {**os.environ, "REDIS_URL": url(protected_redis, WRONG), "DELAYCAST_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "streams", "flags", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert WRONG not in done.stdout + done.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "streams", "flags", "status", "--json"],
        env={**env, "REDIS_URL": url(protected_redis, PASSWORD)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert PASSWORD not in ok.stdout + ok.stderr


def test_the_tracked_p90_sums_add_atomically_within_their_bound_and_survive_bad_fields(
    protected_redis,
):
    """The P90 tracking's two clients, on a Redis that wants a password: workers adding at
    once lose no update, the sum stays within its bound, a field garbled by hand costs only its
    own version's update, and the prediction path's reader never fails on it."""
    import threading

    from connectors.p90_tracking import TrackingStore, TrackingWatcher

    key = f"t:p90:{os.getpid()}"
    client = redis.Redis.from_url(url(protected_redis, PASSWORD))
    stores = [TrackingStore(client, key, limit=50.0) for _ in range(4)]

    def add_many(store: TrackingStore) -> None:
        for _ in range(100):
            store.add({"gb-a": 0.9, "heuristic-b": -0.1})

    threads = [threading.Thread(target=add_many, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 400 adds each: gb-a reaches its bound (360 > 50); heuristic-b is exactly -40.
    assert stores[0].read() == pytest.approx({"gb-a": 50.0, "heuristic-b": -40.0})
    assert stores[0].add({"gb-a": -100.0}) == pytest.approx({"gb-a": -50.0})
    # A field that is not a number: its version's update is lost, the others' are not.
    client.hset(key, "rf-bad", "not a number")
    client.hset(key, b"\xff\xfe", "1.5")  # a field that is not UTF-8
    assert stores[0].add({"rf-bad": 0.9, "heuristic-b": 0.9}) == pytest.approx(
        {"heuristic-b": -39.1}
    )

    async def read() -> dict[str, float]:
        reader = aioredis.Redis.from_url(url(protected_redis, PASSWORD))
        watcher = TrackingWatcher(reader, key, interval_s=1.0)
        await watcher.refresh()
        await reader.aclose()
        return watcher.sums

    sums = asyncio.run(read())
    assert sums["gb-a"] == pytest.approx(-50.0) and sums["heuristic-b"] == pytest.approx(-39.1)
    assert "rf-bad" not in sums and len(sums) == 3  # the non-UTF-8 field, read as replaced
    client.delete(key)
    client.close()

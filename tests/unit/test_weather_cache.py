"""WeatherService with fake providers, an in-memory shared cache and a hand-driven clock."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.weather import (
    MILD_WEATHER,
    BatchWeatherProvider,
    DefaultWeather,
    OpenWeatherClient,
    WeatherAuthError,
    WeatherError,
    WeatherKey,
    WeatherLookup,
    WeatherNotFound,
    WeatherService,
    WeatherStats,
    WeatherUnavailable,
    weather_key,
)
from schemas.weather import Weather, WeatherSource

AT = datetime(2024, 5, 1, 13, 20, tzinfo=UTC)
HOUR = datetime(2024, 5, 1, 13, tzinfo=UTC)
CELL = 0.05


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeProvider:
    """Answers a distinct temperature per call; can be held on a gate, slowed or made to fail."""

    name = "fake"

    def __init__(self, *, current_only: bool = False) -> None:
        self.current_only = current_only
        self.calls: list[tuple[float, float, datetime]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.error: Exception | None = None
        self.delay_s = 0.0
        self.most_at_once = 0
        self._at_once = 0
        self._lock = threading.Lock()

    def fetch(self, lat: float, lon: float, at: datetime) -> Weather:
        with self._lock:
            self.calls.append((lat, lon, at))
            number = len(self.calls)
            self._at_once += 1
            self.most_at_once = max(self.most_at_once, self._at_once)
        try:
            assert self.gate.wait(timeout=5), "test left the provider gate closed"
            time.sleep(self.delay_s)
        finally:
            with self._lock:
                self._at_once -= 1
        if self.error is not None:
            raise self.error
        return observation(number, at)


def observation(temperature: float, at: datetime) -> Weather:
    return Weather(
        temperature_c=temperature,
        precipitation_mm_h=0.5,
        wind_m_s=2.0,
        visibility_m=9000,
        humidity_pct=60,
        condition="clouds",
        observed_at=at,
        source=WeatherSource.OPENWEATHER,
    )


def weather_of(key: WeatherKey) -> Weather:
    """What FakeBatchProvider answers for a key: its own, so a mix-up of keys shows."""
    return observation(round((key.lat - 44.0) / CELL) + key.hour.hour / 100, key.hour)


class FakeBatchProvider:
    """Answers :func:`weather_of` each point in one call; can be held on a gate, fail a whole
    call (``error``) or single points (``point_errors``, by cell)."""

    name = "fake-batch"
    current_only = False

    def __init__(self) -> None:
        self.batches: list[list[WeatherKey]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.error: Exception | None = None
        self.point_errors: dict[tuple[float, float], WeatherError] = {}
        self.answer_count: int | None = None

    def fetch(self, lat: float, lon: float, at: datetime) -> Weather:
        raise AssertionError("the service must use fetch_each")

    def fetch_each(
        self, points: Sequence[tuple[float, float, datetime]]
    ) -> list[Weather | WeatherError]:
        self.batches.append([WeatherKey(lat, lon, at) for lat, lon, at in points])
        assert self.gate.wait(timeout=5), "test left the provider gate closed"
        if self.error is not None:
            raise self.error
        answers: list[Weather | WeatherError] = [
            self.point_errors.get((lat, lon)) or weather_of(WeatherKey(lat, lon, at))
            for lat, lon, at in points
        ]
        return answers[: self.answer_count]


class FakeShared:
    def __init__(self) -> None:
        self.values: dict[WeatherKey, Weather] = {}
        self.ttls: dict[WeatherKey, float] = {}
        self.reads: list[list[WeatherKey]] = []
        self.writes: list[list[WeatherKey]] = []

    async def get_many(self, keys: Sequence[WeatherKey]) -> list[Weather | None]:
        self.reads.append(list(keys))
        return [self.values.get(key) for key in keys]

    async def set_many(self, items: Sequence[tuple[WeatherKey, Weather]], ttl_s: float) -> None:
        self.writes.append([key for key, _ in items])
        for key, weather in items:
            self.values[key] = weather
            self.ttls[key] = ttl_s


class DownShared:
    def __init__(self) -> None:
        self.calls = 0

    async def get_many(self, keys: Sequence[WeatherKey]) -> list[Weather | None]:
        self.calls += 1
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6399. Connection refused.")

    async def set_many(self, items: Sequence[tuple[WeatherKey, Weather]], ttl_s: float) -> None:
        self.calls += 1
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6399. Connection refused.")


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=8)
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    yield fake
    fake.gate.set()


@pytest.fixture
def batch_provider() -> Iterator[FakeBatchProvider]:
    fake = FakeBatchProvider()
    yield fake
    fake.gate.set()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC))


def make_service(provider: Any, executor: Any, clock: FakeClock, **options: Any) -> WeatherService:
    settings: dict[str, Any] = {
        "shared": None,
        "cell_deg": CELL,
        "ttl_s": 1800.0,
        "failure_ttl_s": 60.0,
        "breaker_failures": 3,
        "breaker_reset_s": 30.0,
        "default": MILD_WEATHER,
    }
    settings.update(options)
    return WeatherService(provider, executor=executor, clock=clock, **settings)


def stats(**counters: Any) -> WeatherStats:
    return WeatherStats(**counters)


def cell(n: int) -> tuple[float, float]:
    """The centre of the n-th distinct cell."""
    return (44.0 + n * CELL, 11.0)


def spread(*, cells: int, hours: int, points: int) -> list[tuple[float, float, datetime]]:
    """``points`` bookings covering all ``cells`` × ``hours`` keys, scattered inside each cell
    and hour, in random order."""
    rng = random.Random(1)
    keys = [(*cell(n), HOUR + timedelta(hours=h)) for n in range(cells) for h in range(hours)]
    chosen = keys + [rng.choice(keys) for _ in range(points - len(keys))]
    rng.shuffle(chosen)
    return [
        (
            lat + rng.uniform(-0.02, 0.02),
            lon + rng.uniform(-0.02, 0.02),
            at + timedelta(minutes=rng.randrange(60)),
        )
        for lat, lon, at in chosen
    ]


def test_a_lookup_is_fetched_once_then_served_from_memory(provider, executor, clock):
    async def scenario() -> None:
        service = make_service(provider, executor, clock)
        [first] = await service.get_many([(44.346, 10.991, AT)], wait_s=1)
        [second] = await service.get_many([(44.36, 11.01, AT + timedelta(minutes=30))], wait_s=1)

        assert first.note is None and first.weather.temperature_c == 1
        assert second == first
        assert provider.calls == [(44.35, 11.0, HOUR)]  # the cell centre and the hour start
        assert service.stats() == stats(memory_hits=1, misses=1, api_calls=1)

    asyncio.run(scenario())


def test_memory_entries_expire_after_the_ttl(provider, executor, clock):
    async def scenario() -> None:
        service = make_service(provider, executor, clock, ttl_s=600)
        await service.get(44.35, 11.0, AT, wait_s=1)
        clock.advance(599)
        assert (await service.get(44.35, 11.0, AT, wait_s=1)).weather.temperature_c == 1
        clock.advance(1)
        assert (await service.get(44.35, 11.0, AT, wait_s=1)).weather.temperature_c == 2
        assert service.stats() == stats(memory_hits=1, misses=2, api_calls=2)

    asyncio.run(scenario())


def test_other_cells_and_hours_are_other_keys(provider, executor, clock):
    async def scenario() -> None:
        service = make_service(provider, executor, clock)
        points = [(44.35, 11.0, AT), (44.35, 11.0, AT + timedelta(hours=1)), (44.45, 11.0, AT)]
        lookups = await service.get_many(points, wait_s=1)
        assert sorted(lookup.weather.temperature_c for lookup in lookups) == [1, 2, 3]
        assert service.stats() == stats(misses=3, api_calls=3)

    asyncio.run(scenario())


def test_fifty_concurrent_askers_of_one_key_share_one_provider_call(provider, executor, clock):
    async def scenario() -> None:
        service = make_service(provider, executor, clock)
        provider.gate.clear()
        askers = [service.get(44.35 + i * 0.0004, 11.0, AT, wait_s=2) for i in range(50)]
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, provider.gate.set)
        lookups = await asyncio.gather(*askers)

        assert len(provider.calls) == 1
        assert {(lookup.weather.temperature_c, lookup.note) for lookup in lookups} == {(1, None)}
        assert service.stats() == stats(misses=50, coalesced=49, api_calls=1)

    asyncio.run(scenario())


def test_one_batch_with_fifty_points_of_one_key_makes_one_call(provider, executor, clock):
    async def scenario() -> None:
        service = make_service(provider, executor, clock)
        lookups = await service.get_many([(44.35, 11.0, AT)] * 50, wait_s=1)
        assert len(provider.calls) == 1
        assert all(lookup.weather.temperature_c == 1 for lookup in lookups)
        assert service.stats() == stats(misses=50, coalesced=49, api_calls=1)

    asyncio.run(scenario())


def test_a_failure_is_cached_for_the_failure_ttl(provider, executor, clock):
    async def scenario() -> None:
        service = make_service(provider, executor, clock, failure_ttl_s=60)
        provider.error = WeatherUnavailable("OpenWeather answered 500: Internal server error")
        first = await service.get(44.35, 11.0, AT, wait_s=1)
        clock.advance(59)
        second = await service.get(44.35, 11.0, AT, wait_s=1)

        assert first.note == second.note == "error:unavailable"
        assert first.weather.is_default and first.weather.observed_at == HOUR
        assert len(provider.calls) == 1
        clock.advance(1)
        provider.error = None
        third = await service.get(44.35, 11.0, AT, wait_s=1)
        assert third.note is None and third.weather.temperature_c == 2
        assert service.stats() == stats(
            failure_hits=1, misses=2, api_calls=2, api_errors=1, defaults_served=2
        )

    asyncio.run(scenario())


def test_the_breaker_opens_after_n_failures_then_half_opens_and_closes(provider, executor, clock):
    async def scenario() -> None:
        service = make_service(provider, executor, clock, breaker_failures=3, breaker_reset_s=30)
        provider.error = WeatherUnavailable("timed out")
        failed = [await service.get(*cell(n), AT, wait_s=1) for n in range(3)]
        assert [lookup.note for lookup in failed] == ["error:unavailable"] * 3
        assert service.stats().breaker_state == "open"

        provider.error = None
        refused = await service.get(*cell(3), AT, wait_s=1)
        clock.advance(29)
        still_refused = await service.get(*cell(4), AT, wait_s=1)
        assert refused.note == still_refused.note == "breaker_open"
        assert refused.weather.is_default
        assert len(provider.calls) == 3

        clock.advance(1)
        assert service.stats().breaker_state == "half_open"
        provider.gate.clear()
        asyncio.get_running_loop().call_later(0.05, provider.gate.set)
        trial, bystander = await service.get_many([(*cell(5), AT), (*cell(6), AT)], wait_s=1)
        assert trial.note is None and trial.weather.temperature_c == 4
        assert bystander.note == "breaker_open"  # only one trial while half-open
        assert service.stats().breaker_state == "closed"

        after = await service.get(*cell(7), AT, wait_s=1)
        assert after.note is None and len(provider.calls) == 5
        assert service.stats() == stats(
            misses=8, api_calls=5, api_errors=3, defaults_served=6, breaker_state="closed"
        )

    asyncio.run(scenario())


def test_a_failed_trial_opens_the_breaker_again(provider, executor, clock):
    async def scenario() -> None:
        service = make_service(provider, executor, clock, breaker_failures=1, breaker_reset_s=30)
        provider.error = WeatherUnavailable("down")
        await service.get(*cell(0), AT, wait_s=1)
        clock.advance(30)
        trial = await service.get(*cell(1), AT, wait_s=1)
        assert trial.note == "error:unavailable"
        assert service.stats().breaker_state == "open"
        clock.advance(29)
        assert (await service.get(*cell(2), AT, wait_s=1)).note == "breaker_open"
        assert len(provider.calls) == 2

    asyncio.run(scenario())


def test_a_refused_key_opens_the_breaker_at_once_and_is_logged_loudly_once(
    provider, executor, clock, caplog
):
    async def scenario() -> None:
        service = make_service(provider, executor, clock, breaker_failures=5, breaker_reset_s=30)
        provider.error = WeatherAuthError("OpenWeather refused the API key (401): Invalid API key")
        first = await service.get(*cell(0), AT, wait_s=1)
        assert first.note == "error:auth"
        assert service.stats().breaker_state == "open"
        assert (await service.get(*cell(1), AT, wait_s=1)).note == "breaker_open"
        clock.advance(30)
        assert (await service.get(*cell(2), AT, wait_s=1)).note == "error:auth"  # the trial
        assert len(provider.calls) == 2

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage().startswith("[Weather] fake refused the API key")


def test_not_found_is_cached_but_does_not_trip_the_breaker(provider, executor, clock):
    async def scenario() -> None:
        service = make_service(provider, executor, clock, breaker_failures=2)
        provider.error = WeatherNotFound("no recorded observation")
        lookups = [await service.get(*cell(n), AT, wait_s=1) for n in range(3)]
        assert [lookup.note for lookup in lookups] == ["error:not_found"] * 3
        assert service.stats() == stats(misses=3, api_calls=3, not_found=3, defaults_served=3)

    asyncio.run(scenario())


def test_an_unexpected_provider_exception_counts_as_an_internal_error(provider, executor, clock):
    async def scenario() -> None:
        service = make_service(provider, executor, clock)
        provider.error = KeyError("bug")
        assert (await service.get(44.35, 11.0, AT, wait_s=1)).note == "error:internal"
        assert service.stats() == stats(misses=1, api_calls=1, api_errors=1, defaults_served=1)

    asyncio.run(scenario())


def test_a_slow_provider_gets_defaults_now_and_fills_the_cache_in_the_background(
    provider, executor, clock
):
    async def scenario() -> None:
        service = make_service(provider, executor, clock)
        provider.gate.clear()
        loop = asyncio.get_running_loop()
        started = loop.time()
        [late] = await service.get_many([(44.35, 11.0, AT)], wait_s=0.05)
        assert loop.time() - started < 0.5
        assert late.note == "timeout" and late.weather.is_default
        assert late.weather.observed_at == HOUR

        [still_late] = await service.get_many([(44.35, 11.0, AT)], wait_s=0.05)
        assert still_late.note == "timeout"  # joined the call under way, did not start another

        provider.gate.set()
        await service.wait_idle()
        [cached] = await service.get_many([(44.35, 11.0, AT)], wait_s=0)
        assert cached.note is None and cached.weather.temperature_c == 1
        assert len(provider.calls) == 1
        assert service.stats() == stats(
            memory_hits=1, misses=2, coalesced=1, api_calls=1, defaults_served=2
        )

    asyncio.run(scenario())


def test_a_current_only_provider_is_keyed_by_the_clocks_hour(executor, clock):
    provider = FakeProvider(current_only=True)

    async def scenario() -> None:
        service = make_service(provider, executor, clock)
        last_year, next_week = AT - timedelta(days=365), AT + timedelta(days=7)
        lookups = await service.get_many([(44.35, 11.0, last_year), (44.35, 11.0, next_week)], 1)
        assert [lookup.weather.temperature_c for lookup in lookups] == [1, 1]
        assert provider.calls == [(44.35, 11.0, clock.now)]
        assert service.key_for(44.35, 11.0, last_year).hour == datetime(2024, 5, 1, 12, tzinfo=UTC)

        clock.advance(3600)
        [later] = await service.get_many([(44.35, 11.0, last_year)], 1)
        assert later.weather.temperature_c == 2
        assert service.stats() == stats(misses=3, coalesced=1, api_calls=2)

    asyncio.run(scenario())


def test_the_shared_cache_is_asked_before_the_provider_and_filled_after_it(
    provider, executor, clock
):
    async def scenario() -> None:
        shared = FakeShared()
        known = weather_key(44.35, 11.0, AT, CELL)
        shared.values[known] = MILD_WEATHER.model_copy(
            update={"temperature_c": 21.5, "is_default": False, "source": WeatherSource.RECORDED}
        )
        service = make_service(provider, executor, clock, shared=shared, ttl_s=900)
        from_shared, from_api = await service.get_many([(44.35, 11.0, AT), (*cell(3), AT)], 1)
        await service.wait_idle()

        assert from_shared.weather.temperature_c == 21.5
        assert from_api.weather.temperature_c == 1
        assert len(provider.calls) == 1
        fresh = weather_key(*cell(3), AT, CELL)
        assert shared.values[fresh] == from_api.weather
        assert shared.ttls[fresh] == 900
        assert service.stats() == stats(misses=2, shared_hits=1, api_calls=1)

    asyncio.run(scenario())


def test_an_open_breaker_still_serves_what_the_shared_cache_knows(provider, executor, clock):
    async def scenario() -> None:
        shared = FakeShared()
        service = make_service(provider, executor, clock, shared=shared, breaker_failures=1)
        provider.error = WeatherUnavailable("down")
        await service.get(*cell(0), AT, wait_s=1)
        shared.values[weather_key(*cell(1), AT, CELL)] = MILD_WEATHER.model_copy(
            update={"temperature_c": 9.0, "is_default": False}
        )
        served = await service.get(*cell(1), AT, wait_s=1)
        assert served.note is None and served.weather.temperature_c == 9.0
        assert (await service.get(*cell(2), AT, wait_s=1)).note == "breaker_open"
        assert len(provider.calls) == 1

    asyncio.run(scenario())


def test_an_unreachable_shared_cache_is_skipped_counted_and_warned_about_once(
    provider, executor, clock, caplog
):
    async def scenario() -> None:
        shared = DownShared()
        service = make_service(provider, executor, clock, shared=shared, shared_retry_s=5)
        first = await service.get(*cell(0), AT, wait_s=1)
        await service.wait_idle()
        assert first.note is None and first.weather.temperature_c == 1
        assert shared.calls == 1  # the failed get; the set was skipped as Redis is known down
        clock.advance(4)
        await service.get(*cell(1), AT, wait_s=1)
        await service.wait_idle()
        assert shared.calls == 1
        clock.advance(1)
        await service.get(*cell(2), AT, wait_s=1)
        await service.wait_idle()
        assert shared.calls == 2
        assert service.stats() == stats(misses=3, api_calls=3, shared_errors=2)

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("[Weather] shared weather cache unavailable (ConnectionError")


def test_a_naive_datetime_is_refused(provider, executor, clock):
    async def scenario() -> None:
        service = make_service(provider, executor, clock)
        with pytest.raises(ValueError, match="timezone-aware"):
            await service.get(44.35, 11.0, datetime(2024, 5, 1, 13), wait_s=1)

    asyncio.run(scenario())


def test_counters_add_up_over_a_mixed_batch(provider, executor, clock):
    async def scenario() -> None:
        shared = FakeShared()
        shared.values[weather_key(*cell(1), AT, CELL)] = MILD_WEATHER.model_copy(
            update={"is_default": False}
        )
        service = make_service(provider, executor, clock, shared=shared)
        await service.get(*cell(0), AT, wait_s=1)  # → memory
        provider.error = WeatherUnavailable("down")
        await service.get(*cell(2), AT, wait_s=1)  # → cached failure
        provider.error = None

        batch = [(*cell(0), AT)] * 3 + [(*cell(1), AT)] * 2 + [(*cell(2), AT)] + [(*cell(3), AT)]
        lookups = await service.get_many(batch, wait_s=1)
        notes = [lookup.note for lookup in lookups]
        assert notes == [None, None, None, None, None, "error:unavailable", None]
        assert service.stats() == stats(
            memory_hits=3,
            failure_hits=1,
            misses=2 + 3,
            coalesced=1,
            shared_hits=1,
            api_calls=3,
            api_errors=1,
            defaults_served=2,
        )

    asyncio.run(scenario())


def test_aclose_cancels_lookups_under_way(provider, executor, clock):
    async def scenario() -> None:
        service = make_service(provider, executor, clock)
        provider.gate.clear()
        await service.get_many([(44.35, 11.0, AT)], wait_s=0)
        await service.aclose()
        provider.gate.set()
        await service.wait_idle()  # returns: nothing left under way
        assert service.stats().breaker_state == "closed"

    asyncio.run(scenario())


def test_a_batch_of_500_points_over_300_keys_costs_one_shared_read_one_call_and_one_write(
    batch_provider, executor, clock
):
    async def scenario() -> None:
        points = spread(cells=30, hours=10, points=500)
        shared = FakeShared()
        service = make_service(batch_provider, executor, clock, shared=shared, ttl_s=900)
        keys = [service.key_for(*point) for point in points]
        known = sorted(set(keys), key=str)[:50]
        for key in known:
            shared.values[key] = MILD_WEATHER.model_copy(
                update={"temperature_c": 21.5, "is_default": False, "observed_at": key.hour}
            )
        lookups = await service.get_many(points, wait_s=1)
        await service.wait_idle()

        assert len(set(keys)) == 300
        assert [len(read) for read in shared.reads] == [300]
        assert [len(batch) for batch in batch_provider.batches] == [250]
        assert set(batch_provider.batches[0]) == set(keys) - set(known)
        assert [sorted(write, key=str) for write in shared.writes] == [
            sorted(batch_provider.batches[0], key=str)
        ]
        assert {shared.ttls[key] for key in batch_provider.batches[0]} == {900}
        for key, lookup in zip(keys, lookups, strict=True):
            expected = shared.values[key] if key in known else weather_of(key)
            assert lookup == WeatherLookup(expected)
        assert service.stats() == stats(misses=500, coalesced=200, shared_hits=50, api_calls=250)

        assert await service.get_many(points, wait_s=1) == lookups
        assert len(shared.reads) == len(batch_provider.batches) == 1
        assert service.stats() == stats(
            memory_hits=500, misses=500, coalesced=200, shared_hits=50, api_calls=250
        )

    asyncio.run(scenario())


def test_a_point_the_batch_provider_cannot_answer_fails_alone_and_is_remembered(
    batch_provider, executor, clock
):
    async def scenario() -> None:
        service = make_service(batch_provider, executor, clock, breaker_failures=1)
        points = [(*cell(n), AT) for n in range(6)]
        keys = [service.key_for(*point) for point in points]
        batch_provider.point_errors = {
            (keys[1].lat, keys[1].lon): WeatherNotFound("no station near"),
            (keys[4].lat, keys[4].lon): WeatherUnavailable("station offline"),
        }
        lookups = await service.get_many(points, wait_s=1)

        notes = [None, "error:not_found", None, None, "error:unavailable", None]
        assert [lookup.note for lookup in lookups] == notes
        for key, lookup in zip(keys, lookups, strict=True):
            if lookup.note is None:
                assert lookup.weather == weather_of(key)
            else:
                assert lookup.weather.is_default and lookup.weather.observed_at == HOUR
        assert service.stats() == stats(
            misses=6, api_calls=6, api_errors=1, not_found=1, defaults_served=2
        )  # one failed point of a call that answered: the breaker stays closed

        again = await service.get_many(points, wait_s=1)
        assert [lookup.note for lookup in again] == notes
        assert len(batch_provider.batches) == 1
        assert service.stats() == stats(
            memory_hits=4,
            failure_hits=2,
            misses=6,
            api_calls=6,
            api_errors=1,
            not_found=1,
            defaults_served=4,
        )

    asyncio.run(scenario())


def test_a_failed_batch_call_fails_each_key_and_is_one_failure_for_the_breaker(
    batch_provider, executor, clock
):
    async def scenario() -> None:
        service = make_service(
            batch_provider, executor, clock, breaker_failures=2, breaker_reset_s=30
        )
        batch_provider.error = WeatherUnavailable("history unreadable")
        first = await service.get_many([(*cell(n), AT) for n in range(5)], wait_s=1)
        assert [lookup.note for lookup in first] == ["error:unavailable"] * 5
        assert service.stats().breaker_state == "closed"

        await service.get_many([(*cell(n), AT) for n in range(5, 10)], wait_s=1)
        refused = await service.get_many([(*cell(n), AT) for n in range(10, 13)], wait_s=1)
        assert [lookup.note for lookup in refused] == ["breaker_open"] * 3
        assert len(batch_provider.batches) == 2
        assert service.stats() == stats(
            misses=13, api_calls=10, api_errors=10, defaults_served=13, breaker_state="open"
        )

        clock.advance(30)
        batch_provider.error = None
        trial = await service.get_many([(*cell(n), AT) for n in range(13, 16)], wait_s=1)
        assert [lookup.note for lookup in trial] == [None] * 3  # the whole call was the trial
        assert len(batch_provider.batches) == 3
        assert service.stats().breaker_state == "closed"

    asyncio.run(scenario())


def test_a_batch_answer_of_the_wrong_length_fails_its_keys_as_internal_errors(
    batch_provider, executor, clock
):
    async def scenario() -> None:
        service = make_service(batch_provider, executor, clock)
        batch_provider.answer_count = 2
        lookups = await service.get_many([(*cell(n), AT) for n in range(4)], wait_s=1)
        assert [lookup.note for lookup in lookups] == ["error:internal"] * 4
        assert service.stats() == stats(misses=4, api_calls=4, api_errors=4, defaults_served=4)

    asyncio.run(scenario())


def test_a_batch_joins_the_lookups_an_earlier_batch_has_under_way_instead_of_asking_again(
    batch_provider, executor, clock
):
    async def scenario() -> None:
        shared = FakeShared()
        service = make_service(batch_provider, executor, clock, shared=shared)
        first = [(*cell(n), AT) for n in range(10)]
        second = [(*cell(n), AT) for n in range(5, 15)]
        batch_provider.gate.clear()
        late = await service.get_many(first, wait_s=0.01)
        assert {lookup.note for lookup in late} == {"timeout"}

        asyncio.get_running_loop().call_later(0.05, batch_provider.gate.set)
        answered = await service.get_many(second, wait_s=2)
        await service.wait_idle()

        assert [lookup.weather for lookup in answered] == [
            weather_of(service.key_for(*point)) for point in second
        ]
        keys = [service.key_for(*cell(n), AT) for n in range(15)]
        assert batch_provider.batches == [keys[:10], keys[10:]]
        assert shared.reads == [keys[:10], keys[10:]]
        assert service.stats() == stats(misses=20, coalesced=5, api_calls=15, defaults_served=10)

    asyncio.run(scenario())


def test_a_provider_without_batches_gets_one_call_per_key_a_few_at_a_time(
    provider, executor, clock
):
    async def scenario() -> None:
        shared = FakeShared()
        service = make_service(provider, executor, clock, shared=shared, provider_concurrency=3)
        provider.delay_s = 0.02
        lookups = await service.get_many(spread(cells=4, hours=5, points=40), wait_s=2)
        await service.wait_idle()

        assert {lookup.note for lookup in lookups} == {None}
        assert len(provider.calls) == 20
        assert provider.most_at_once == 3
        assert [len(read) for read in shared.reads] == [20]
        assert [len(write) for write in shared.writes] == [20]
        assert service.stats() == stats(misses=40, coalesced=20, api_calls=20)

    asyncio.run(scenario())


def test_keys_queued_for_a_provider_slot_are_spared_once_the_breaker_opens(
    provider, executor, clock
):
    async def scenario() -> None:
        service = make_service(
            provider, executor, clock, provider_concurrency=1, breaker_failures=2
        )
        provider.error = WeatherUnavailable("down")
        lookups = await service.get_many([(*cell(n), AT) for n in range(5)], wait_s=2)
        notes = ["error:unavailable"] * 2 + ["breaker_open"] * 3
        assert [lookup.note for lookup in lookups] == notes
        assert len(provider.calls) == 2
        assert service.stats() == stats(
            misses=5, api_calls=2, api_errors=2, defaults_served=5, breaker_state="open"
        )

    asyncio.run(scenario())


def test_aclose_cancels_a_batch_call_under_way(batch_provider, executor, clock):
    async def scenario() -> None:
        service = make_service(batch_provider, executor, clock, breaker_failures=1)
        batch_provider.gate.clear()
        late = await service.get_many([(*cell(n), AT) for n in range(3)], wait_s=0.01)
        assert {lookup.note for lookup in late} == {"timeout"}
        await service.aclose()
        batch_provider.gate.set()
        await service.wait_idle()
        assert service.stats() == stats(misses=3, api_calls=3, defaults_served=3)

    asyncio.run(scenario())


def test_the_default_provider_takes_batches_and_openweather_does_not():
    assert isinstance(DefaultWeather(), BatchWeatherProvider)
    assert DefaultWeather().fetch_each([(44.35, 11.0, AT)]) == [
        MILD_WEATHER.model_copy(update={"observed_at": HOUR})
    ]
    assert not isinstance(OpenWeatherClient("not-a-key"), BatchWeatherProvider)

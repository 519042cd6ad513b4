"""Weather for a batch of bookings within a deadline: memory → shared cache → provider.

The service never lets the weather stall a prediction: whatever is not known when ``wait_s``
runs out is answered with the default weather, while the lookup carries on in the background
and fills the caches for the next batches. The keys a batch misses are looked up together: one
shared-cache read, one provider call when the provider takes batches, one shared-cache write.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from connectors.weather.base import (
    BatchWeatherProvider,
    Point,
    SharedCache,
    WeatherAuthError,
    WeatherError,
    WeatherNotFound,
    WeatherProvider,
)
from connectors.weather.breaker import BreakerState, CircuitBreaker
from connectors.weather.keys import WeatherKey, utc_hour, weather_key
from connectors.weather.memory import TTLCache
from schemas.weather import Weather

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# What a lookup ends with: the weather, or the note explaining why the default is served.
Outcome = Weather | str
Settle = Callable[[WeatherKey, Outcome], None]

TIMEOUT = "timeout"
BREAKER_OPEN = "breaker_open"
INTERNAL_ERROR = "error:internal"


@dataclass(frozen=True, slots=True)
class WeatherLookup:
    """The weather for one point; ``note`` is None for a real observation, else why the
    default was served: ``timeout``, ``breaker_open`` or ``error:<kind>`` (see
    :attr:`connectors.weather.base.WeatherError.kind`)."""

    weather: Weather
    note: str | None = None


@dataclass(frozen=True, slots=True)
class WeatherStats:
    """Counters since start. Per point: ``memory_hits + failure_hits + misses`` = points asked;
    ``misses`` = lookups started + ``coalesced`` (points that joined a lookup under way).
    Per lookup: ``shared_hits``, ``api_calls`` (lookups asked of the provider, many per call
    for a batch provider; = ``api_errors`` + ``not_found`` + successes, once finished).
    ``shared_errors`` counts failed shared-cache round trips."""

    memory_hits: int = 0
    failure_hits: int = 0
    misses: int = 0
    coalesced: int = 0
    shared_hits: int = 0
    shared_errors: int = 0
    api_calls: int = 0
    api_errors: int = 0
    not_found: int = 0
    defaults_served: int = 0
    breaker_state: str = BreakerState.CLOSED.value

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


@dataclass(slots=True)
class _Counters:
    memory_hits: int = 0
    failure_hits: int = 0
    misses: int = 0
    coalesced: int = 0
    shared_hits: int = 0
    shared_errors: int = 0
    api_calls: int = 0
    api_errors: int = 0
    not_found: int = 0
    defaults_served: int = 0


class WeatherService:
    """Weather lookups for the event loop, cached per grid cell and UTC hour.

    Keys are ``cell_deg`` cells and the UTC hour of ``at`` (of the clock when the provider is
    ``current_only``). Successes are kept ``ttl_s`` in memory and in ``shared``, failures
    ``failure_ttl_s`` in memory so a failing key is not asked again at once. At most one
    lookup per key is under way, across batches. The provider runs in ``executor``, never on
    the loop, behind a circuit breaker that opens after ``breaker_failures`` consecutive failed
    calls (at once on a refused API key) and tries again ``breaker_reset_s`` later. A
    :class:`~connectors.weather.base.BatchWeatherProvider` gets one call per batch of misses;
    another provider one call per key, at most ``provider_concurrency`` at a time. ``default``
    is served re-dated to the key's hour. A failing ``shared`` cache is skipped for
    ``shared_retry_s``.

    Use from one event loop. ``clock`` must return timezone-aware datetimes.
    """

    def __init__(
        self,
        provider: WeatherProvider,
        *,
        shared: SharedCache | None,
        executor: Executor,
        clock: Clock,
        cell_deg: float,
        ttl_s: float,
        failure_ttl_s: float,
        breaker_failures: int,
        breaker_reset_s: float,
        default: Weather,
        max_entries: int = 100_000,
        shared_retry_s: float = 5.0,
        warn_every_s: float = 60.0,
        provider_concurrency: int = 4,
    ) -> None:
        if cell_deg <= 0 or ttl_s <= 0 or failure_ttl_s <= 0:
            raise ValueError("cell_deg, ttl_s and failure_ttl_s must be positive")
        if provider_concurrency < 1:
            raise ValueError("provider_concurrency must be >= 1")
        self._provider = provider
        self._batch_provider = provider if isinstance(provider, BatchWeatherProvider) else None
        self._shared = shared
        self._executor = executor
        self._clock = clock
        self._cell_deg = cell_deg
        self._ttl_s = ttl_s
        self._failure_ttl_s = failure_ttl_s
        self._default = default
        self._shared_retry_s = shared_retry_s
        self._warn_every_s = warn_every_s
        self._breaker = CircuitBreaker(breaker_failures, breaker_reset_s)
        self._breaker_failures = breaker_failures
        self._breaker_reset_s = breaker_reset_s
        self._memory: TTLCache[WeatherKey, Outcome] = TTLCache(max_entries)
        # Keeps a thread pool shared with other blocking work from filling with weather calls.
        self._provider_slots = asyncio.Semaphore(provider_concurrency)
        # One future per key being looked up, which every asker of the key waits on.
        self._flights: dict[WeatherKey, asyncio.Future[Outcome]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._counters = _Counters()
        self._shared_skip_until = -math.inf
        self._shared_warned_at = -math.inf
        self._auth_reported = False

    def __repr__(self) -> str:
        return f"WeatherService(provider={self._provider.name!r}, cell_deg={self._cell_deg})"

    def key_for(self, lat: float, lon: float, at: datetime) -> WeatherKey:
        """The cache key a lookup of (lat, lon, at) uses now."""
        return self._key(lat, lon, at, self._clock())

    def _key(self, lat: float, lon: float, at: datetime, now: datetime) -> WeatherKey:
        utc_hour(at)  # refuses a naive ``at`` even when the clock decides the hour
        when = now if self._provider.current_only else at
        return weather_key(lat, lon, when, self._cell_deg)

    async def get(self, lat: float, lon: float, at: datetime, wait_s: float) -> WeatherLookup:
        return (await self.get_many([(lat, lon, at)], wait_s))[0]

    async def get_many(self, points: Sequence[Point], wait_s: float) -> list[WeatherLookup]:
        """One lookup per (lat, lon, at) point, in order, within about ``wait_s`` seconds."""
        now = self._clock()
        utc_hour(now)  # refuses a clock that returns naive datetimes
        now_s = now.timestamp()
        answers: list[WeatherLookup | None] = []
        waiting: dict[WeatherKey, list[int]] = {}
        for index, (lat, lon, at) in enumerate(points):
            key = self._key(lat, lon, at, now)  # one clock reading for the whole batch
            cached = self._memory.get(key, now_s)
            if isinstance(cached, Weather):
                self._counters.memory_hits += 1
                answers.append(WeatherLookup(cached))
            elif cached is not None:
                self._counters.failure_hits += 1
                answers.append(self._fallback(key, cached))
            else:
                self._counters.misses += 1
                answers.append(None)
                waiting.setdefault(key, []).append(index)

        flights: dict[WeatherKey, asyncio.Future[Outcome]] = {}
        fresh: dict[WeatherKey, asyncio.Future[Outcome]] = {}
        loop = asyncio.get_running_loop()
        for key, indices in waiting.items():
            flight = self._flights.get(key)
            if flight is None:
                flight = fresh[key] = self._flights[key] = loop.create_future()
                self._counters.coalesced += len(indices) - 1
            else:  # under way for an earlier batch: joined, not asked again
                self._counters.coalesced += len(indices)
            flights[key] = flight
        if fresh:
            task = loop.create_task(self._fly(fresh, now), name=f"weather of {len(fresh)} keys")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if flights and wait_s > 0:
            # Not wait_for: the flights must outlive this batch, not be cancelled by it.
            await asyncio.wait(set(flights.values()), timeout=wait_s)

        for key, indices in waiting.items():
            flight = flights[key]
            outcome = flight.result() if flight.done() and not flight.cancelled() else TIMEOUT
            lookup = WeatherLookup(outcome) if isinstance(outcome, Weather) else None
            for index in indices:
                answers[index] = lookup or self._fallback(key, str(outcome))

        done = [a for a in answers if a is not None]
        self._counters.defaults_served += sum(1 for a in done if a.note is not None)
        return done

    def stats(self) -> WeatherStats:
        state = self._breaker.state(self._clock().timestamp())
        return WeatherStats(**asdict(self._counters), breaker_state=state.value)

    async def wait_idle(self) -> None:
        """Returns once no lookup or cache write is under way (tests, orderly shutdown)."""
        while pending := [f for f in self._under_way() if not f.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancels what is under way. A provider call already in a thread still finishes there."""
        pending = self._under_way()
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # A task cancelled before it ever ran skipped its own clean-up.
        self._flights.clear()
        self._tasks.clear()

    def _under_way(self) -> list[asyncio.Future[Any]]:
        return [*self._flights.values(), *self._tasks]

    def _fallback(self, key: WeatherKey, note: str) -> WeatherLookup:
        return WeatherLookup(self._default.model_copy(update={"observed_at": key.hour}), note)

    def _at(self, key: WeatherKey, now: datetime) -> datetime:
        return now if self._provider.current_only else key.hour

    async def _fly(self, flights: dict[WeatherKey, asyncio.Future[Outcome]], now: datetime) -> None:
        """Looks up the keys of ``flights``, ending each flight as soon as its key is known
        and every one of them however this ends."""

        def settle(key: WeatherKey, outcome: Outcome) -> None:
            flight = flights[key]
            if not flight.done():
                flight.set_result(outcome)
            if self._flights.get(key) is flight:
                del self._flights[key]

        try:
            await self._resolve(list(flights), now, settle)
        except asyncio.CancelledError:
            for flight in flights.values():
                flight.cancel()
            raise
        except Exception as exc:  # a bug here must cost lookups, never a batch
            log.exception(
                "[Weather] lookup of %d key(s) failed unexpectedly: %s",
                len(flights),
                type(exc).__name__,
            )
        finally:
            for key in flights:
                settle(key, INTERNAL_ERROR)  # a no-op for every lookup that ended

    async def _resolve(self, keys: list[WeatherKey], now: datetime, settle: Settle) -> None:
        missing: list[WeatherKey] = []
        expires_at = self._now_s() + self._ttl_s
        for key, weather in zip(keys, await self._shared_get_many(keys), strict=True):
            if weather is None:
                missing.append(key)
                continue
            self._counters.shared_hits += 1
            self._memory.put(key, weather, expires_at)
            settle(key, weather)
        if not missing:
            return
        if self._batch_provider is not None:
            fetched = await self._fetch_batch(self._batch_provider, missing, now, settle)
        else:
            fetched = await self._fetch_keys(missing, now, settle)
        await self._shared_set_many(fetched)

    async def _fetch_batch(
        self,
        provider: BatchWeatherProvider,
        keys: list[WeatherKey],
        now: datetime,
        settle: Settle,
    ) -> list[tuple[WeatherKey, Weather]]:
        """One provider call for every key; a point's error fails that point alone."""
        if not self._breaker.allow(self._now_s()):
            for key in keys:
                settle(key, BREAKER_OPEN)
            return []
        self._counters.api_calls += len(keys)
        points: list[Point] = [(key.lat, key.lon, self._at(key, now)) for key in keys]
        loop = asyncio.get_running_loop()
        try:
            answers = await loop.run_in_executor(self._executor, provider.fetch_each, points)
            if len(answers) != len(points):
                raise ValueError(f"fetch_each answered {len(answers)} of {len(points)} points")
        except asyncio.CancelledError:
            self._breaker.abandon()
            raise
        except Exception as exc:
            self._on_failure(exc)
            for key in keys:
                settle(key, self._failed(key, exc))
            return []
        fetched: list[tuple[WeatherKey, Weather]] = []
        for key, answer in zip(keys, answers, strict=True):
            if isinstance(answer, Weather):
                fetched.append((key, answer))
                settle(key, self._fetched(key, answer))
            else:
                settle(key, self._failed(key, answer))
        errors = [answer for answer in answers if not isinstance(answer, Weather)]
        if len(errors) < len(answers):
            self._on_success()
        else:  # nothing but errors: judged by a not-found if any, as the provider did answer
            self._on_failure(next((e for e in errors if isinstance(e, WeatherNotFound)), errors[0]))
        return fetched

    async def _fetch_keys(
        self, keys: list[WeatherKey], now: datetime, settle: Settle
    ) -> list[tuple[WeatherKey, Weather]]:
        """One provider call per key, at most ``provider_concurrency`` under way."""

        async def fetch(key: WeatherKey) -> Outcome:
            async with self._provider_slots:
                outcome = await self._fetch_one(key, self._at(key, now))
            settle(key, outcome)
            return outcome

        outcomes = await asyncio.gather(*(fetch(key) for key in keys), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # a bug: _fly reports it and settles what is left
        return [
            (key, outcome)
            for key, outcome in zip(keys, outcomes, strict=True)
            if isinstance(outcome, Weather)
        ]

    async def _fetch_one(self, key: WeatherKey, at: datetime) -> Outcome:
        # Asked once a slot is free, so that a breaker opened meanwhile spares the queued keys.
        if not self._breaker.allow(self._now_s()):
            return BREAKER_OPEN
        self._counters.api_calls += 1
        loop = asyncio.get_running_loop()
        try:
            weather = await loop.run_in_executor(
                self._executor, self._provider.fetch, key.lat, key.lon, at
            )
        except asyncio.CancelledError:
            self._breaker.abandon()
            raise
        except Exception as exc:
            self._on_failure(exc)
            return self._failed(key, exc)
        self._on_success()
        return self._fetched(key, weather)

    def _fetched(self, key: WeatherKey, weather: Weather) -> Weather:
        self._memory.put(key, weather, self._now_s() + self._ttl_s)
        return weather

    def _failed(self, key: WeatherKey, exc: Exception) -> str:
        """Counts and remembers one lookup the provider failed; returns the note for its askers."""
        if isinstance(exc, WeatherNotFound):
            self._counters.not_found += 1
        else:
            self._counters.api_errors += 1
        note = f"error:{exc.kind if isinstance(exc, WeatherError) else 'internal'}"
        self._memory.put(key, note, self._now_s() + self._failure_ttl_s)
        return note

    def _on_success(self) -> None:
        if self._breaker.state(self._now_s()) is not BreakerState.CLOSED:
            log.info("[Weather] %s answers again; circuit breaker closed", self._provider.name)
        self._breaker.success()
        self._auth_reported = False

    def _on_failure(self, exc: Exception) -> None:
        """Tells the breaker, and the operator when it matters, about one failed provider call."""
        if isinstance(exc, WeatherNotFound):
            # The provider answered, it just has nothing there: healthy as far as the breaker goes.
            self._breaker.success()
            return
        now_s = self._now_s()
        if isinstance(exc, WeatherAuthError):
            self._breaker.trip(now_s)
            if not self._auth_reported:
                self._auth_reported = True
                log.error(
                    "[Weather] %s refused the API key: %s. Serving default weather; "
                    "retrying every %g s. Fix the key.",
                    self._provider.name,
                    exc,
                    self._breaker_reset_s,
                )
            return
        # Only our own errors' texts are known to be free of secrets.
        detail = str(exc) if isinstance(exc, WeatherError) else type(exc).__name__
        if self._breaker.failure(now_s):
            log.warning(
                "[Weather] circuit breaker open: %s failed %d times in a row (last: %s); "
                "serving default weather for %g s",
                self._provider.name,
                self._breaker_failures,
                detail,
                self._breaker_reset_s,
            )
        else:
            log.debug("[Weather] %s failed: %s", self._provider.name, detail)

    async def _shared_get_many(self, keys: list[WeatherKey]) -> list[Weather | None]:
        if self._shared is None or self._now_s() < self._shared_skip_until:
            return [None] * len(keys)
        try:
            return await self._shared.get_many(keys)
        except Exception as exc:
            self._on_shared_error(exc)
            return [None] * len(keys)

    async def _shared_set_many(self, items: list[tuple[WeatherKey, Weather]]) -> None:
        if not items or self._shared is None or self._now_s() < self._shared_skip_until:
            return
        try:
            await self._shared.set_many(items, self._ttl_s)
        except Exception as exc:
            self._on_shared_error(exc)

    def _on_shared_error(self, exc: Exception) -> None:
        self._counters.shared_errors += 1
        now_s = self._now_s()
        # Skipped for a while: a dead Redis must not add its timeout to every lookup.
        self._shared_skip_until = now_s + self._shared_retry_s
        if now_s - self._shared_warned_at >= self._warn_every_s:
            self._shared_warned_at = now_s
            log.warning(
                "[Weather] shared weather cache unavailable (%s: %s); using memory and the "
                "provider only, retrying in %g s (%d errors so far)",
                type(exc).__name__,
                str(exc)[:200],
                self._shared_retry_s,
                self._counters.shared_errors,
            )

    def _now_s(self) -> float:
        return self._clock().timestamp()

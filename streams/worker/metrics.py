"""Worker counters for ``/metrics``, carried across processes in one Redis hash.

Each worker counts, between flushes: bookings in, predictions per arm, fallbacks per reason,
dead letters, the latency of each prediction (booking produced → prediction, ``latency_ms``) in
histogram buckets, and weather cache hits and lookups. Every :data:`FLUSH_INTERVAL_S` the worker
adds what it counted to the hash (:func:`flush`, one MULTI/EXEC of HINCRBY / HINCRBYFLOAT), off
the hot path; when Redis fails, the counts are kept for the next flush and nothing is raised. The
API reads the hash at scrape time (:func:`parse_totals`), so ``/metrics`` shows the sum over every
worker that ever ran against this Redis.

Fields of the hash: ``bookings``, ``dead_letters``, ``dead_letters:<kind>``, ``predictions:<arm>``,
``fallbacks:<reason>``, ``latency:le:<bound in s>`` and ``latency:le:+Inf`` (observations in that
bucket only, not cumulative), ``latency:sum`` (seconds), ``weather:hits``
(points answered from the in-process or the Redis cache) and ``weather:lookups`` (points asked).
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from streams.settings import Settings

log = logging.getLogger("delaycast.worker")

FLUSH_INTERVAL_S = 2.0
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
INF = "+Inf"


def metrics_key(settings: Settings) -> str:
    """The hash shared by the workers of one consumer group (topic prefix included)."""
    return f"{settings.topic(settings.consumer_group)}:metrics"


def bucket_field(bound: float | str) -> str:
    return f"latency:le:{bound if isinstance(bound, str) else repr(float(bound))}"


_BUCKET_FIELDS = [bucket_field(b) for b in LATENCY_BUCKETS_S] + [bucket_field(INF)]
_BOUNDS = (*LATENCY_BUCKETS_S, float("inf"))


class PredictionLike(Protocol):
    @property
    def arm(self) -> Any: ...

    @property
    def latency_ms(self) -> float | None: ...


class WeatherStatsLike(Protocol):
    @property
    def memory_hits(self) -> int: ...

    @property
    def shared_hits(self) -> int: ...

    @property
    def failure_hits(self) -> int: ...

    @property
    def misses(self) -> int: ...


@dataclass
class Deltas:
    """Counts not yet in Redis: integers (HINCRBY) and floats (HINCRBYFLOAT)."""

    ints: Counter[str] = field(default_factory=Counter)
    floats: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def __bool__(self) -> bool:
        return any(self.ints.values()) or any(self.floats.values())


class WorkerMetrics:
    """What one worker counted since its last successful flush."""

    def __init__(self) -> None:
        self._pending = Deltas()
        self._weather_seen = (0, 0)  # (hits, lookups) of the service's running totals

    def record_batch(
        self,
        *,
        bookings: int,
        predictions: Iterable[PredictionLike],
        fallbacks: Mapping[str, int],
        dead_letters: Mapping[str, int],
    ) -> None:
        """Count a batch; ``dead_letters`` by kind (:class:`schemas.DeadLetterKind` values)."""
        ints, floats = self._pending.ints, self._pending.floats
        ints["bookings"] += bookings
        for kind, n in dead_letters.items():
            ints["dead_letters"] += n
            ints[f"dead_letters:{kind}"] += n
        for reason, n in fallbacks.items():
            ints[f"fallbacks:{reason}"] += n
        for p in predictions:
            ints[f"predictions:{getattr(p.arm, 'value', p.arm)}"] += 1
            if p.latency_ms is None:
                continue
            seconds = p.latency_ms / 1000.0
            ints[_BUCKET_FIELDS[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)]] += 1
            floats["latency:sum"] += seconds

    def record_weather(self, stats: WeatherStatsLike) -> None:
        """Count the weather service's lookups since the last call (it keeps running totals)."""
        hits = stats.memory_hits + stats.shared_hits
        lookups = stats.memory_hits + stats.failure_hits + stats.misses
        seen_hits, seen_lookups = self._weather_seen
        self._pending.ints["weather:hits"] += max(hits - seen_hits, 0)
        self._pending.ints["weather:lookups"] += max(lookups - seen_lookups, 0)
        self._weather_seen = (hits, lookups)

    def take(self) -> Deltas:
        """The pending counts, which are then cleared; :meth:`give_back` when they were not
        written."""
        taken, self._pending = self._pending, Deltas()
        return taken

    def give_back(self, deltas: Deltas) -> None:
        self._pending.ints.update(deltas.ints)
        for name, x in deltas.floats.items():
            self._pending.floats[name] += x


async def flush(client: Redis, key: str, metrics: WorkerMetrics) -> bool:
    """Add the pending counts to the hash ``key`` atomically. On a Redis error they stay pending
    (False is returned, nothing raised)."""
    deltas = metrics.take()
    if not deltas:
        return True
    try:
        async with client.pipeline(transaction=True) as pipe:
            for name, n in sorted(deltas.ints.items()):
                if n:
                    pipe.hincrby(key, name, n)
            for name, x in sorted(deltas.floats.items()):
                if x:
                    pipe.hincrbyfloat(key, name, x)
            await pipe.execute()
    except (RedisError, OSError, TimeoutError) as exc:
        metrics.give_back(deltas)
        log.debug("worker metrics not flushed yet (%s); kept for the next flush", exc)
        return False
    return True


@dataclass(frozen=True)
class WorkerTotals:
    """The hash's running totals over every worker; ``latency_buckets`` are cumulative
    ``(upper bound, count)`` pairs ending with ``(inf, latency_count)``."""

    bookings: int = 0
    dead_letters: int = 0
    dead_letter_kinds: dict[str, int] = field(default_factory=dict)
    predictions: dict[str, int] = field(default_factory=dict)
    fallbacks: dict[str, int] = field(default_factory=dict)
    latency_buckets: tuple[tuple[float, int], ...] = tuple((b, 0) for b in _BOUNDS)
    latency_sum: float = 0.0
    latency_count: int = 0
    weather_hits: int = 0
    weather_lookups: int = 0

    @property
    def weather_hit_ratio(self) -> float | None:
        return self.weather_hits / self.weather_lookups if self.weather_lookups else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_totals(raw: Mapping[Any, Any]) -> WorkerTotals:
    """The totals in an HGETALL reply; fields that are unknown or not numbers are ignored."""
    values: dict[str, float] = {}
    for k, v in raw.items():
        try:
            values[_text(k)] = float(_text(v))
        except ValueError:
            continue

    def count(name: str) -> int:
        return int(values.get(name, 0))

    def by_prefix(prefix: str) -> dict[str, int]:
        return {k[len(prefix) :]: int(v) for k, v in sorted(values.items()) if k.startswith(prefix)}

    running, buckets = 0, []
    for bound, name in zip(_BOUNDS, _BUCKET_FIELDS, strict=True):
        running += count(name)
        buckets.append((bound, running))
    return WorkerTotals(
        bookings=count("bookings"),
        dead_letters=count("dead_letters"),
        dead_letter_kinds=by_prefix("dead_letters:"),
        predictions=by_prefix("predictions:"),
        fallbacks=by_prefix("fallbacks:"),
        latency_buckets=tuple(buckets),
        latency_sum=values.get("latency:sum", 0.0),
        latency_count=running,
        weather_hits=count("weather:hits"),
        weather_lookups=count("weather:lookups"),
    )

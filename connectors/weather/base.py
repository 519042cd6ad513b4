"""What every weather provider and shared weather cache looks like, and how they fail.

A provider is blocking (it may do network I/O); callers on an event loop run it in a thread pool,
as :class:`connectors.weather.cache.WeatherService` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import ClassVar, Protocol, runtime_checkable

from connectors.weather.keys import WeatherKey
from schemas.weather import Weather

Point = tuple[float, float, datetime]


class WeatherError(Exception):
    """A provider could not answer. ``kind`` names the failure in notes and counters."""

    kind: ClassVar[str] = "error"


class WeatherAuthError(WeatherError):
    """The API key was refused. Retrying cannot help until an operator fixes the key."""

    kind = "auth"


class WeatherRateLimited(WeatherError):
    """The provider asked us to slow down; ``retry_after_s`` is its hint, when it gave one."""

    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class WeatherUnavailable(WeatherError):
    """The provider is sick or unreachable: 5xx, timeout, connection error, malformed body."""

    kind = "unavailable"


class WeatherNotFound(WeatherError):
    """The provider works but has no observation for that place and time.

    Not a sign of an unhealthy provider: it does not count towards the circuit breaker.
    """

    kind = "not_found"


class WeatherProvider(Protocol):
    """A source of weather observations.

    ``current_only`` is True for a provider that only knows the weather now (it ignores ``at``);
    caches then key its answers by the clock's hour instead of ``at``'s.
    """

    name: str
    current_only: bool

    def fetch(self, lat: float, lon: float, at: datetime) -> Weather:
        """The weather at (lat, lon) around an aware ``at``; raises :class:`WeatherError`."""
        ...


@runtime_checkable
class BatchWeatherProvider(WeatherProvider, Protocol):
    """A provider that answers many points in one call, cheaper than one call per point."""

    def fetch_each(self, points: Sequence[Point]) -> Sequence[Weather | WeatherError]:
        """One answer per (lat, lon, at) point, in order: its weather, or the error of that
        point alone. Raises when the whole call failed."""
        ...


class SharedCache(Protocol):
    """A cache shared by every worker (Redis in production), asked a batch of keys at a time
    so that a batch costs one round trip. May raise anything when down."""

    async def get_many(self, keys: Sequence[WeatherKey]) -> list[Weather | None]:
        """The cached weather of each key, in order; None where absent."""
        ...

    async def set_many(self, items: Sequence[tuple[WeatherKey, Weather]], ttl_s: float) -> None:
        """Stores every item, each expiring ``ttl_s`` later."""
        ...

"""What every weather provider and shared weather cache looks like, and how they fail.

A provider is blocking (it may do network I/O); callers on an event loop run it in a thread pool,
as :class:`connectors.weather.cache.WeatherService` does.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Protocol

from connectors.weather.keys import WeatherKey
from schemas.weather import Weather


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


class SharedCache(Protocol):
    """A cache shared by every worker (Redis in production). May raise anything when down."""

    async def get(self, key: WeatherKey) -> Weather | None: ...

    async def set(self, key: WeatherKey, weather: Weather, ttl_s: float) -> None: ...

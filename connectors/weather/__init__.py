"""Weather for bookings: providers (OpenWeather, recorded history, default) and the cache
service the agent uses (memory → Redis → provider, single-flight, circuit breaker)."""

from connectors.weather.base import (
    BatchWeatherProvider,
    SharedCache,
    WeatherAuthError,
    WeatherError,
    WeatherNotFound,
    WeatherProvider,
    WeatherRateLimited,
    WeatherUnavailable,
)
from connectors.weather.breaker import BreakerState, CircuitBreaker
from connectors.weather.cache import WeatherLookup, WeatherService, WeatherStats
from connectors.weather.default import MILD_WEATHER, DefaultWeather, mild_weather
from connectors.weather.keys import WeatherKey, utc_hour, weather_key
from connectors.weather.openweather import OpenWeatherClient, parse_current_weather
from connectors.weather.recorded import RecordedWeather, WeatherHistoryError
from connectors.weather.redis_cache import RedisWeatherCache

__all__ = [
    "MILD_WEATHER",
    "BatchWeatherProvider",
    "BreakerState",
    "CircuitBreaker",
    "DefaultWeather",
    "OpenWeatherClient",
    "RecordedWeather",
    "RedisWeatherCache",
    "SharedCache",
    "WeatherAuthError",
    "WeatherError",
    "WeatherHistoryError",
    "WeatherKey",
    "WeatherLookup",
    "WeatherNotFound",
    "WeatherProvider",
    "WeatherRateLimited",
    "WeatherService",
    "WeatherStats",
    "WeatherUnavailable",
    "mild_weather",
    "parse_current_weather",
    "utc_hour",
    "weather_key",
]

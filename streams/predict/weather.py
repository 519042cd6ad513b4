"""Building the weather service a worker uses, from settings."""

from __future__ import annotations

import logging
from concurrent.futures import Executor

from connectors.weather import (
    MILD_WEATHER,
    DefaultWeather,
    OpenWeatherClient,
    RecordedWeather,
    RedisWeatherCache,
    WeatherProvider,
    WeatherService,
)
from streams.clock import utc_now
from streams.settings import Settings
from streams.settings import WeatherProvider as ProviderName

log = logging.getLogger("delaycast.weather")


def build_provider(settings: Settings) -> WeatherProvider:
    if settings.weather_provider is ProviderName.RECORDED:
        assert settings.weather_history_csv is not None  # checked by Settings
        return RecordedWeather(settings.weather_history_csv)
    if settings.weather_provider is ProviderName.OPENWEATHER:
        key = settings.openweather_api_key
        if key is None or not key.get_secret_value():
            log.warning(
                "[Weather] OPENWEATHER_API_KEY is not set: serving default weather "
                "(set it, or WEATHER_PROVIDER=recorded with WEATHER_HISTORY_CSV)"
            )
            return DefaultWeather()
        return OpenWeatherClient(
            key,
            url=settings.openweather_url,
            timeout_s=settings.weather_timeout_s,
            retries=settings.weather_retries,
        )
    return DefaultWeather()


def build_weather_service(settings: Settings, *, executor: Executor) -> WeatherService:
    provider = build_provider(settings)
    log.info("[Weather] provider: %s", provider.name)
    return WeatherService(
        provider,
        shared=RedisWeatherCache.from_url(
            settings.redis_url, prefix=f"{settings.topic_prefix}delaycast:weather"
        ),
        executor=executor,
        clock=utc_now,
        cell_deg=settings.weather_cell_deg,
        ttl_s=settings.weather_cache_ttl_s,
        failure_ttl_s=settings.weather_failure_ttl_s,
        breaker_failures=settings.weather_breaker_failures,
        breaker_reset_s=settings.weather_breaker_reset_s,
        default=MILD_WEATHER,
        provider_concurrency=settings.worker_threads,
    )

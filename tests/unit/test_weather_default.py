from datetime import UTC, datetime, timedelta, timezone

import pytest

from connectors.weather import MILD_WEATHER, DefaultWeather, mild_weather
from schemas.weather import WeatherSource


def test_default_weather_is_the_documented_mild_record_for_the_hour_of_at():
    at = datetime(2024, 1, 15, 9, 47, tzinfo=timezone(timedelta(hours=1)))
    weather = DefaultWeather().fetch(48.1, 11.6, at)

    assert weather.is_default is True
    assert weather.source is WeatherSource.DEFAULT
    assert (weather.temperature_c, weather.precipitation_mm_h, weather.wind_m_s) == (15, 0, 3)
    assert (weather.visibility_m, weather.humidity_pct, weather.condition) == (10_000, 70, "clear")
    assert weather.observed_at == datetime(2024, 1, 15, 8, tzinfo=UTC)


def test_default_weather_does_not_depend_on_the_place():
    at = datetime(2024, 1, 15, 9, tzinfo=UTC)
    provider = DefaultWeather()
    assert provider.fetch(0, 0, at) == provider.fetch(-33.9, 151.2, at) == mild_weather(at)


def test_the_mild_constant_is_flagged_default_and_mild_weather_only_redates_it():
    at = datetime(2024, 1, 15, 9, tzinfo=UTC)
    assert MILD_WEATHER.is_default is True
    assert mild_weather(at).model_dump(exclude={"observed_at"}) == MILD_WEATHER.model_dump(
        exclude={"observed_at"}
    )


def test_default_weather_refuses_a_naive_datetime():
    with pytest.raises(ValueError, match="timezone-aware"):
        DefaultWeather().fetch(48.1, 11.6, datetime(2024, 1, 15, 9))


def test_default_weather_is_a_provider_that_knows_any_time():
    provider = DefaultWeather()
    assert (provider.name, provider.current_only) == ("default", False)

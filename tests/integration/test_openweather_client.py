"""The real OpenWeatherClient over HTTP against the local fake OpenWeather server.

No Kafka, Redis or PostgreSQL needed: only the in-process fake on 127.0.0.1 (OpenWeather itself
cannot be reached from test machines).
"""

from __future__ import annotations

import logging
import socket
import time
import traceback
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connectors.weather import (
    OpenWeatherClient,
    WeatherAuthError,
    WeatherError,
    WeatherNotFound,
    WeatherRateLimited,
    WeatherUnavailable,
)
from schemas.weather import WeatherSource
from tests.fakes.openweather_server import FakeOpenWeather, FakeReading

AT = datetime(2024, 5, 1, 13, 20, tzinfo=UTC)


@pytest.fixture
def api_key() -> str:
    return f"k3y-{uuid.uuid4().hex}"


@pytest.fixture
def fake(api_key: str) -> Iterator[FakeOpenWeather]:
    with FakeOpenWeather(api_key=api_key) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_client(
    fake: FakeOpenWeather, api_key: str, sleeps: list[float], **options: float
) -> OpenWeatherClient:
    settings = {"timeout_s": 2.0, "retries": 2, "backoff_s": 0.2, "max_backoff_s": 1.0}
    settings.update(options)
    return OpenWeatherClient(
        api_key,
        url=fake.url,
        timeout_s=settings["timeout_s"],
        retries=int(settings["retries"]),
        backoff_s=settings["backoff_s"],
        max_backoff_s=settings["max_backoff_s"],
        max_retry_after_s=settings.get("max_retry_after_s", 5.0),
        sleep=sleeps.append,
    )


def test_a_200_answer_is_parsed_into_metric_weather(fake, api_key, sleeps):
    observed = datetime(2024, 5, 1, 13, 5, 12, tzinfo=UTC)
    fake.reading = FakeReading(
        main="Rain", temp_c=18.4, humidity_pct=64, wind_m_s=4.6, visibility_m=8000,
        rain_1h=3.16, snow_1h=0.5, observed_at=observed,
    )  # fmt: skip
    with make_client(fake, api_key, sleeps) as client:
        weather = client.fetch(44.35, 11.0, AT)

    assert weather.source is WeatherSource.OPENWEATHER
    assert weather.is_default is False
    assert weather.condition == "rain"
    assert weather.temperature_c == 18.4
    assert weather.humidity_pct == 64
    assert weather.wind_m_s == 4.6
    assert weather.visibility_m == 8000
    assert weather.precipitation_mm_h == pytest.approx(3.66)
    assert weather.observed_at == observed
    assert fake.requests == 1
    assert fake.queries[0] == {"lat": "44.35", "lon": "11.0", "appid": api_key, "units": "metric"}
    assert sleeps == []


def test_missing_visibility_and_precipitation_take_their_documented_defaults(fake, api_key, sleeps):
    fake.reading = FakeReading(main="Clear", visibility_m=None, rain_1h=None, snow_1h=None)
    weather = make_client(fake, api_key, sleeps).fetch(44.35, 11.0, AT)
    assert weather.condition == "clear"
    assert weather.visibility_m == 10_000
    assert weather.precipitation_mm_h == 0


def test_a_refused_key_raises_auth_error_without_retrying(fake, api_key, sleeps):
    client = make_client(fake, "wrong-key", sleeps)
    with pytest.raises(WeatherAuthError, match="Invalid API key"):
        client.fetch(44.35, 11.0, AT)
    assert fake.requests == 1
    assert sleeps == []


def test_not_found_is_not_retried(fake, api_key, sleeps):
    fake.mode = "404"
    with pytest.raises(WeatherNotFound, match="city not found"):
        make_client(fake, api_key, sleeps).fetch(44.35, 11.0, AT)
    assert fake.requests == 1


def test_server_errors_are_retried_with_growing_jittered_backoff_then_unavailable(
    fake, api_key, sleeps
):
    fake.mode = "500"
    with pytest.raises(WeatherUnavailable, match="answered 500"):
        make_client(fake, api_key, sleeps, retries=3).fetch(44.35, 11.0, AT)
    assert fake.requests == 4
    assert len(sleeps) == 3
    # Ceilings 0.2, 0.4, 0.8 s; each wait lies in [ceiling / 2, ceiling].
    for wait, ceiling in zip(sleeps, (0.2, 0.4, 0.8), strict=True):
        assert ceiling / 2 <= wait <= ceiling


def test_a_retry_that_succeeds_returns_the_weather(fake, api_key, sleeps):
    fake.queue("500", "500")
    weather = make_client(fake, api_key, sleeps).fetch(44.35, 11.0, AT)
    assert weather.condition == "rain"
    assert fake.requests == 3
    assert len(sleeps) == 2


def test_rate_limit_honours_retry_after_then_raises_rate_limited(api_key, sleeps):
    with FakeOpenWeather(api_key=api_key, retry_after="1") as fake:
        fake.mode = "429"
        with pytest.raises(WeatherRateLimited) as caught:
            make_client(fake, api_key, sleeps).fetch(44.35, 11.0, AT)
        assert fake.requests == 3
    assert sleeps == [1.0, 1.0]
    assert caught.value.retry_after_s == 1.0


def test_a_retry_after_beyond_the_bound_ends_the_attempts_at_once(api_key, sleeps):
    with FakeOpenWeather(api_key=api_key, retry_after="120") as fake:
        fake.mode = "429"
        with pytest.raises(WeatherRateLimited) as caught:
            make_client(fake, api_key, sleeps, max_retry_after_s=5.0).fetch(44.35, 11.0, AT)
        assert fake.requests == 1
    assert sleeps == []
    assert caught.value.retry_after_s == 120.0


def test_a_hanging_server_times_out_within_the_bound(fake, api_key, sleeps):
    fake.mode = "hang"
    client = make_client(fake, api_key, sleeps, timeout_s=0.3, retries=1)
    started = time.monotonic()
    with pytest.raises(WeatherUnavailable, match=r"did not answer within 0\.3 s"):
        client.fetch(44.35, 11.0, AT)
    elapsed = time.monotonic() - started
    assert fake.requests == 2
    assert 0.55 <= elapsed < 1.5  # two attempts of 0.3 s each, backoff sleeps not real here


def test_a_malformed_body_is_unavailable_and_not_retried(fake, api_key, sleeps):
    fake.mode = "malformed"
    with pytest.raises(WeatherUnavailable, match="malformed body"):
        make_client(fake, api_key, sleeps).fetch(44.35, 11.0, AT)
    assert fake.requests == 1


def test_a_refused_connection_is_retried_then_unavailable(api_key, sleeps):
    url = f"http://127.0.0.1:{_closed_port()}/data/2.5/weather"
    client = OpenWeatherClient(api_key, url=url, retries=1, sleep=sleeps.append)
    with pytest.raises(WeatherUnavailable, match="cannot reach OpenWeather"):
        client.fetch(44.35, 11.0, AT)
    assert len(sleeps) == 1


@pytest.mark.parametrize("mode", ["ok", "401", "404", "429", "500", "hang", "malformed", "down"])
def test_the_api_key_never_appears_in_logs_exceptions_or_reprs(mode, api_key, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 logs every request URL at DEBUG
    with FakeOpenWeather(api_key=api_key, retry_after="0") as fake:
        url = f"http://127.0.0.1:{_closed_port()}/x" if mode == "down" else fake.url
        fake.mode = "ok" if mode == "down" else mode
        client = OpenWeatherClient(api_key, url=url, timeout_s=0.2, retries=1, sleep=_no_sleep)
        error: WeatherError | None = None
        try:
            client.fetch(44.35, 11.0, AT)
        except WeatherError as exc:
            error = exc
        if mode != "down":
            assert fake.seen_api_keys == [api_key] * fake.requests  # the key was in use
            if mode != "hang":  # urllib3 logs the request line once the answer arrives
                assert "appid=***" in caplog.text  # the line was logged, redacted

    assert (error is None) == (mode == "ok")
    texts = [caplog.text, repr(client)]
    if error is not None:
        texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
        assert error.__cause__ is None and error.__context__ is None
    for text in texts:
        assert api_key not in text


def _no_sleep(seconds: float) -> None:
    pass


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

"""One call to the configured weather provider, and a verdict an operator can act on.

``delaycast weather check`` and ``delaycast verify`` use it. The OpenWeather call goes through
the worker's own client (:class:`connectors.weather.OpenWeatherClient`), once, without retries,
over a session that remembers what happened on the wire, so a refused key, a rate limit, a
timeout, an unreachable server and a malformed body are told apart. The URL it reports has the
API key replaced by ``***``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import requests

from connectors.weather import (
    DefaultWeather,
    OpenWeatherClient,
    RecordedWeather,
    WeatherAuthError,
    WeatherError,
    WeatherHistoryError,
    WeatherNotFound,
    WeatherRateLimited,
)
from connectors.weather.openweather import redact
from schemas.weather import Weather
from streams.settings import Settings
from streams.settings import WeatherProvider as ProviderName

GENEVA = (46.2044, 6.1432)


class ProbeStatus(StrEnum):
    OK = "ok"
    DEFAULT = "default"  # WEATHER_PROVIDER=default: nothing to call, the default is served
    NO_KEY = "no_key"  # openweather without OPENWEATHER_API_KEY: workers serve the default
    BAD_KEY = "bad_key"  # 401/403
    RATE_LIMITED = "rate_limited"  # 429
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    MALFORMED = "malformed"  # 200 with a body that is not OpenWeather's
    HTTP_ERROR = "http_error"  # any other status
    NOT_FOUND = "not_found"  # the provider has no observation there (404, recorded gap)
    ERROR = "error"

    @property
    def passes(self) -> bool:
        return self in (ProbeStatus.OK, ProbeStatus.DEFAULT)


@dataclass(frozen=True)
class ProbeResult:
    provider: str
    status: ProbeStatus
    detail: str
    elapsed_ms: float = 0.0
    url: str | None = None  # with the API key redacted
    http_status: int | None = None
    weather: Weather | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "status": self.status.value,
            "ok": self.status.passes,
            "detail": self.detail,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "url": self.url,
            "http_status": self.http_status,
            "weather": None if self.weather is None else self.weather.model_dump(mode="json"),
        }


def describe_weather(w: Weather) -> str:
    return (
        f"{w.temperature_c:g} °C, {w.condition}, precipitation {w.precipitation_mm_h:g} mm/h, "
        f"wind {w.wind_m_s:g} m/s, visibility {w.visibility_m:g} m, "
        f"humidity {w.humidity_pct:g} %, observed {w.observed_at.isoformat()}"
    )


def classify(
    error: BaseException | None, *, http_status: int | None, transport: ProbeStatus | None
) -> ProbeStatus:
    """The verdict of one OpenWeather call from what the client raised (``error``), the HTTP
    status that came back, and what failed below HTTP (``transport``: timeout/unreachable).

    >>> classify(None, http_status=200, transport=None)
    <ProbeStatus.OK: 'ok'>
    >>> classify(WeatherError("x"), http_status=200, transport=None)
    <ProbeStatus.MALFORMED: 'malformed'>
    """
    if error is None:
        return ProbeStatus.OK
    if transport is not None:
        return transport
    if isinstance(error, WeatherAuthError):
        return ProbeStatus.BAD_KEY
    if isinstance(error, WeatherRateLimited):
        return ProbeStatus.RATE_LIMITED
    if isinstance(error, WeatherNotFound):
        return ProbeStatus.NOT_FOUND
    if http_status == 200:
        return ProbeStatus.MALFORMED
    if http_status is not None:
        return ProbeStatus.HTTP_ERROR
    return ProbeStatus.ERROR


class _WireRecorder(requests.Session):
    """A session that remembers the last request's URL, status and transport failure."""

    def __init__(self) -> None:
        super().__init__()
        self.url: str | None = None
        self.status: int | None = None
        self.transport: ProbeStatus | None = None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.url = request.url
        try:
            response = super().send(request, **kwargs)
        except requests.ConnectTimeout:  # before requests.Timeout: it is both
            self.transport = ProbeStatus.UNREACHABLE
            raise
        except requests.Timeout:
            self.transport = ProbeStatus.TIMEOUT
            raise
        except requests.ConnectionError:
            self.transport = ProbeStatus.UNREACHABLE
            raise
        self.status = response.status_code
        return response


def probe_weather(
    settings: Settings,
    *,
    lat: float = GENEVA[0],
    lon: float = GENEVA[1],
    at: datetime,
    timeout_s: float | None = None,
) -> ProbeResult:
    """Ask the configured provider once for the weather at (lat, lon) around ``at``."""
    provider = settings.weather_provider
    if provider is ProviderName.DEFAULT:
        weather = DefaultWeather().fetch(lat, lon, at)
        return ProbeResult(
            "default",
            ProbeStatus.DEFAULT,
            "WEATHER_PROVIDER=default: every booking gets the default weather, nothing to call",
            weather=weather,
        )
    if provider is ProviderName.RECORDED:
        return _probe_recorded(settings, lat, lon, at)
    return _probe_openweather(settings, lat, lon, at, timeout_s or settings.weather_timeout_s)


def _probe_recorded(settings: Settings, lat: float, lon: float, at: datetime) -> ProbeResult:
    path = settings.weather_history_csv
    started = time.perf_counter()
    try:
        weather = RecordedWeather(path or "").fetch(lat, lon, at)
    except WeatherHistoryError as exc:
        return ProbeResult("recorded", ProbeStatus.ERROR, str(exc))
    except WeatherNotFound as exc:
        return ProbeResult("recorded", ProbeStatus.NOT_FOUND, f"{path}: {exc}", _ms_since(started))
    return ProbeResult(
        "recorded", ProbeStatus.OK, f"observation from {path}", _ms_since(started), weather=weather
    )


def _probe_openweather(
    settings: Settings, lat: float, lon: float, at: datetime, timeout_s: float
) -> ProbeResult:
    key = settings.openweather_api_key
    if key is None or not key.get_secret_value():
        return ProbeResult(
            "openweather",
            ProbeStatus.NO_KEY,
            "OPENWEATHER_API_KEY is not set: workers serve the default weather "
            "(set it, or WEATHER_PROVIDER=recorded with WEATHER_HISTORY_CSV)",
        )
    secret = key.get_secret_value()
    wire = _WireRecorder()
    client = OpenWeatherClient(
        key, url=settings.openweather_url, timeout_s=timeout_s, retries=0, session=wire
    )
    started = time.perf_counter()
    error: WeatherError | None = None
    weather: Weather | None = None
    try:
        weather = client.fetch(lat, lon, at)  # OpenWeather answers the present whatever ``at``
    except WeatherError as exc:
        error = exc
    finally:
        wire.close()
    elapsed = _ms_since(started)
    status = classify(error, http_status=wire.status, transport=wire.transport)
    url = redact(wire.url or settings.openweather_url, secret)
    if status is ProbeStatus.OK:
        detail = f"the API key works (HTTP {wire.status} in {elapsed:.0f} ms)"
    else:
        detail = _EXPLANATIONS.get(status, "the call failed") + f": {redact(str(error), secret)}"
    return ProbeResult("openweather", status, detail, elapsed, url, wire.status, weather)


_EXPLANATIONS = {
    ProbeStatus.BAD_KEY: "the API key was refused; check OPENWEATHER_API_KEY",
    ProbeStatus.RATE_LIMITED: "rate limited; the key works but its quota is spent for now",
    ProbeStatus.TIMEOUT: "no answer in time (WEATHER_TIMEOUT_S)",
    ProbeStatus.UNREACHABLE: "cannot connect; check OPENWEATHER_URL and the network",
    ProbeStatus.MALFORMED: "the reply is not OpenWeather's current-weather JSON",
    ProbeStatus.HTTP_ERROR: "unexpected HTTP status",
    ProbeStatus.NOT_FOUND: "OpenWeather has no weather for that place",
}


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0

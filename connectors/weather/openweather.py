"""OpenWeather's current-weather API as a :class:`~connectors.weather.base.WeatherProvider`.

The API key travels in the query string (``appid``), so every URL is a secret: no URL, no
exception text from ``requests`` and no urllib3 debug line leaves this module unredacted.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import requests
from pydantic import SecretStr, ValidationError
from tenacity import RetryCallState

from connectors.failures import retrying
from connectors.weather.base import (
    WeatherAuthError,
    WeatherError,
    WeatherNotFound,
    WeatherRateLimited,
    WeatherUnavailable,
)
from schemas.weather import Weather, WeatherSource

log = logging.getLogger(__name__)

DEFAULT_URL = "https://api.openweathermap.org/data/2.5/weather"
DEFAULT_VISIBILITY_M = 10_000.0  # OpenWeather's own ceiling; it omits the field in clear air

_APPID = re.compile(r"(appid=)[^&\s'\"]*", re.IGNORECASE)
# Loggers that may print a request URL: urllib3 logs every request line at DEBUG.
_URL_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry", "requests")


def redact(text: str, secret: str) -> str:
    """``text`` with the secret and any ``appid=`` query value replaced by ``***``."""
    if secret:
        text = text.replace(secret, "***")
    return _APPID.sub(r"\1***", text)


class _RedactAppId(logging.Filter):
    """Masks ``appid=`` values in records of third-party loggers that print URLs."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the handler's problem, not ours
            return True
        masked = _APPID.sub(r"\1***", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def _install_log_redaction() -> None:
    # A logger's filters only see records logged on that very logger, hence one per module.
    for name in _URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactAppId) for f in logger.filters):
            logger.addFilter(_RedactAppId())


def parse_current_weather(body: object) -> Weather:
    """A :class:`Weather` from a current-weather response body requested with ``units=metric``.

    Raises :class:`WeatherUnavailable` when the body does not have OpenWeather's shape.
    """
    problem = "not a JSON object"
    if isinstance(body, Mapping):
        try:
            return Weather(
                temperature_c=body["main"]["temp"],
                humidity_pct=body["main"]["humidity"],
                wind_m_s=body["wind"]["speed"],
                visibility_m=body.get("visibility", DEFAULT_VISIBILITY_M),
                precipitation_mm_h=_last_hour(body, "rain") + _last_hour(body, "snow"),
                condition=str(body["weather"][0]["main"]).strip().lower(),
                observed_at=datetime.fromtimestamp(int(body["dt"]), UTC),
                source=WeatherSource.OPENWEATHER,
            )
        except KeyError as exc:
            problem = f"missing field {exc}"
        except ValidationError as exc:
            first = exc.errors()[0]
            problem = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        except (IndexError, TypeError, ValueError, OverflowError) as exc:
            problem = f"unexpected value ({type(exc).__name__})"
    raise WeatherUnavailable(f"OpenWeather sent a malformed body: {problem}")


def _last_hour(body: Mapping[str, Any], field: str) -> float:
    section = body.get(field) or {}
    return float(section.get("1h", 0.0)) if isinstance(section, Mapping) else 0.0


class _Transient(Exception):
    """A failure worth another attempt; ``error`` is raised if the attempts run out."""

    def __init__(self, error: WeatherError, retry_after_s: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after_s = retry_after_s


def _transient(state: RetryCallState) -> _Transient:
    """The failure of the attempt just made (only transient ones are retried)."""
    assert state.outcome is not None
    return cast(_Transient, state.outcome.exception())


class OpenWeatherClient:
    """Blocking client of the current-weather API; run it off the event loop.

    Retries 429, 5xx, timeouts and connection errors up to ``retries`` times with exponential
    backoff and jitter, honouring a 429's ``Retry-After`` when it is at most
    ``max_retry_after_s`` (a longer one ends the attempts at once: waiting that long would stall
    the caller). 401/403 raise :class:`WeatherAuthError` and 400/404 :class:`WeatherNotFound`
    at once. Worst case, ``fetch`` returns after about ``(retries + 1) * 2 * timeout_s`` plus the
    backoffs (``timeout_s`` bounds the connect and each read separately).

    ``session`` is the transport (tests may pass their own); one owned by the client is closed
    by :meth:`close`. ``sleep`` and ``rng`` exist so tests can run retries instantly.
    """

    name = "openweather"
    current_only = True

    def __init__(
        self,
        api_key: SecretStr | str,
        *,
        url: str = DEFAULT_URL,
        timeout_s: float = 2.0,
        retries: int = 2,
        backoff_s: float = 0.25,
        max_backoff_s: float = 4.0,
        max_retry_after_s: float = 5.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not key:
            raise ValueError("OpenWeatherClient needs a non-empty API key")
        if timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ValueError("timeout_s must be positive, retries and backoff_s not negative")
        self._key = SecretStr(key)
        self._url = url
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._max_retry_after_s = max_retry_after_s
        self._owns_session = session is None
        # Shared by the pool's threads: GETs without cookies only touch urllib3's pool, which
        # is thread-safe.
        self._session = session if session is not None else requests.Session()
        self._sleep = sleep
        self._rng = rng or random.Random()
        _install_log_redaction()

    def __repr__(self) -> str:
        return f"OpenWeatherClient(url={self._url!r}, api_key=SecretStr('**********'))"

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> OpenWeatherClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fetch(self, lat: float, lon: float, at: datetime) -> Weather:
        """The weather at (lat, lon) now; ``at`` is ignored (the API only knows the present)."""
        attempts = self._retries + 1

        def wait(state: RetryCallState) -> float:
            return self._delay(state.attempt_number - 1, _transient(state).retry_after_s) or 0.0

        def give_up(state: RetryCallState) -> bool:
            hint = _transient(state).retry_after_s
            return state.attempt_number >= attempts or (
                hint is not None and hint > self._max_retry_after_s
            )

        def note(state: RetryCallState) -> None:
            error = _transient(state).error
            log.info(
                "[Weather] OpenWeather attempt %d/%d failed (%s: %s); retrying in %.2f s",
                state.attempt_number,
                attempts,
                error.kind,
                error,
                state.upcoming_sleep,
            )

        tried = 0

        def once() -> Weather:
            nonlocal tried
            tried += 1
            return self._get_once(lat, lon)

        try:
            return retrying(
                retry_on=lambda exc: isinstance(exc, _Transient),
                wait=wait,
                stop=give_up,
                sleep=self._sleep,
                before_sleep=note,
            )(once)
        except _Transient as transient:
            failure = transient.error
        # Raised here, outside the except block, so nothing is chained to it.
        log.warning("[Weather] OpenWeather gave up after %d attempt(s): %s", tried, failure)
        raise failure

    def _get_once(self, lat: float, lon: float) -> Weather:
        params: dict[str, str | float] = {
            "lat": lat,
            "lon": lon,
            "appid": self._key.get_secret_value(),
            "units": "metric",
        }
        failure: WeatherError | None = None
        try:
            response = self._session.get(self._url, params=params, timeout=self._timeout_s)
        except requests.Timeout:
            failure = WeatherUnavailable(f"OpenWeather did not answer within {self._timeout_s} s")
        except requests.ConnectionError as exc:
            failure = WeatherUnavailable(f"cannot reach OpenWeather: {self._describe(exc)}")
        except requests.RequestException as exc:
            # Raised outside this block so the original exception, whose text holds the URL
            # and so the key, is not chained to ours.
            failure = WeatherError(f"OpenWeather request failed: {self._describe(exc)}")
        if failure is not None:
            if isinstance(failure, WeatherUnavailable):
                raise _Transient(failure)
            raise failure
        return self._interpret(response)

    def _interpret(self, response: requests.Response) -> Weather:
        status = response.status_code
        if status == 200:
            try:
                body = response.json()
            except ValueError:
                body = None
            return parse_current_weather(body)
        message = self._error_message(response)
        if status in (401, 403):
            raise WeatherAuthError(f"OpenWeather refused the API key ({status}): {message}")
        if status in (400, 404):
            raise WeatherNotFound(f"OpenWeather has no weather there ({status}): {message}")
        if status == 429:
            hint = _retry_after_s(response.headers.get("Retry-After"))
            limited = WeatherRateLimited(
                f"OpenWeather rate limit reached (429): {message}", retry_after_s=hint
            )
            raise _Transient(limited, retry_after_s=hint)
        unavailable = WeatherUnavailable(f"OpenWeather answered {status}: {message}")
        if status >= 500:
            raise _Transient(unavailable)
        raise unavailable

    def _delay(self, attempt: int, retry_after_s: float | None) -> float | None:
        """Seconds to wait before the next attempt, or None when it is not worth waiting."""
        if retry_after_s is not None:
            return retry_after_s if retry_after_s <= self._max_retry_after_s else None
        ceiling = min(self._max_backoff_s, self._backoff_s * 2**attempt)
        # Half fixed, half random: spreads the retries of many workers, keeps a floor.
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def _describe(self, exc: BaseException) -> str:
        text = redact(str(exc), self._key.get_secret_value())
        return f"{type(exc).__name__}: {text[:300]}"

    def _error_message(self, response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            body = None
        raw = str(body.get("message", "")) if isinstance(body, Mapping) else response.text
        return redact(raw.strip()[:300], self._key.get_secret_value()) or "(no message)"


def _retry_after_s(header: str | None) -> float | None:
    """The seconds form of ``Retry-After``; the HTTP-date form is treated as absent."""
    if header is None:
        return None
    try:
        value = float(header)
    except ValueError:
        return None
    return value if value >= 0 else None

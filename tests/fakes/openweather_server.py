"""A local stand-in for OpenWeather's current-weather API (``/data/2.5/weather``).

OpenWeather cannot be reached from the test machines, so this server answers on 127.0.0.1 with
the service's real JSON bodies, status codes and error messages::

    with FakeOpenWeather(api_key="k") as fake:
        client = OpenWeatherClient("k", url=fake.url)
        fake.mode = "500"          # every following request answers 500
        fake.queue("500", "ok")    # the next two requests, then `mode` again
        fake.requests              # how many requests arrived

Modes: ``ok``, ``401``, ``404``, ``429`` (with ``retry_after`` as Retry-After when set),
``500``, ``hang`` (answers nothing for ``hang_s``), ``malformed`` (200 with truncated JSON).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

PATH = "/data/2.5/weather"
MODES = ("ok", "401", "404", "429", "500", "hang", "malformed")

# Bodies as OpenWeather sends them (note the string "cod" of some errors: that is theirs).
ERROR_BODIES: dict[str, tuple[int, dict[str, Any]]] = {
    "401": (
        401,
        {
            "cod": 401,
            "message": "Invalid API key. Please see https://openweathermap.org/faq#error401 "
            "for more info.",
        },
    ),
    "404": (404, {"cod": "404", "message": "city not found"}),
    "429": (
        429,
        {
            "cod": 429,
            "message": "Your account is temporary blocked due to exceeding of requests "
            "limitation of your subscription type. Please choose the proper subscription "
            "https://openweathermap.org/price",
        },
    ),
    "500": (500, {"cod": "500", "message": "Internal server error"}),
}
MALFORMED_BODY = b'{"coord":{"lon":10.99,"lat":44.34},"weather":[{"id":501,"main":"Ra'


@dataclass
class FakeReading:
    """What the fake reports in ``ok`` mode (metric units, as with ``units=metric``)."""

    main: str = "Rain"
    description: str = "moderate rain"
    temp_c: float = 18.4
    humidity_pct: int = 64
    wind_m_s: float = 4.6
    visibility_m: int | None = 8000  # None: the field is omitted, as OpenWeather may do
    rain_1h: float | None = 3.16
    snow_1h: float | None = None
    observed_at: datetime | None = None  # None: the time of the request


class FakeOpenWeather:
    """The fake server; a context manager. Attributes may be changed while it runs.

    ``api_key``: when set, requests with another ``appid`` get OpenWeather's 401 in any mode.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        hang_s: float = 30.0,
        retry_after: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.hang_s = hang_s
        self.retry_after = retry_after
        self._mode = "ok"
        self._queued: list[str] = []
        self.reading = FakeReading()
        self.seen_api_keys: list[str] = []
        self.queries: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown FakeOpenWeather mode {mode!r}; one of {MODES}")
        self._mode = mode

    def queue(self, *modes: str) -> None:
        """Modes for the next requests, one each, before ``mode`` applies again."""
        unknown = [m for m in modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown FakeOpenWeather mode(s) {unknown}; one of {MODES}")
        with self._lock:
            self._queued.extend(modes)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeOpenWeather is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{PATH}"

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.queries)

    def reset(self) -> None:
        """Forgets the requests seen so far (mode and reading are kept)."""
        with self._lock:
            self.queries.clear()
            self.seen_api_keys.clear()

    def wait_for_requests(self, count: int, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.requests >= count:
                return True
            time.sleep(0.01)
        return self.requests >= count

    def start(self) -> FakeOpenWeather:
        self._release.clear()
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # how long stop() waits for the loop to notice
            name="fake-openweather",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # lets hanging handlers finish
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenWeather:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next_mode(self, query: dict[str, str]) -> str:
        with self._lock:
            self.queries.append(query)
            if "appid" in query:
                self.seen_api_keys.append(query["appid"])
            return self._queued.pop(0) if self._queued else self._mode

    def _ok_body(self, lat: float, lon: float) -> dict[str, Any]:
        r = self.reading
        observed = r.observed_at.timestamp() if r.observed_at else time.time()
        body: dict[str, Any] = {
            "coord": {"lon": round(lon, 4), "lat": round(lat, 4)},
            "weather": [{"id": 501, "main": r.main, "description": r.description, "icon": "10d"}],
            "base": "stations",
            "main": {
                "temp": r.temp_c,
                "feels_like": round(r.temp_c + 0.3, 2),
                "temp_min": round(r.temp_c - 0.9, 2),
                "temp_max": round(r.temp_c + 1.6, 2),
                "pressure": 1015,
                "humidity": r.humidity_pct,
                "sea_level": 1015,
                "grnd_level": 933,
            },
            "visibility": r.visibility_m,
            "wind": {"speed": r.wind_m_s, "deg": 349, "gust": round(r.wind_m_s * 1.9, 2)},
            "rain": {"1h": r.rain_1h},
            "snow": {"1h": r.snow_1h},
            "clouds": {"all": 100},
            "dt": int(observed),
            "sys": {"type": 2, "id": 2075663, "country": "IT", "sunrise": 1661834187},
            "timezone": 7200,
            "id": 3163858,
            "name": "Zocca",
            "cod": 200,
        }
        # OpenWeather leaves out what it has not measured rather than sending null.
        for field, value in (("visibility", r.visibility_m), ("rain", r.rain_1h)):
            if value is None:
                del body[field]
        if r.snow_1h is None:
            del body["snow"]
        return body


def _handler_for(fake: FakeOpenWeather) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "openresty"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            mode = fake._next_mode(query)
            if parts.path != PATH:
                self._json(404, {"cod": "404", "message": "Internal error"})
            elif "appid" not in query or (fake.api_key and query["appid"] != fake.api_key):
                self._json(*ERROR_BODIES["401"])
            elif mode == "hang":
                fake._release.wait(fake.hang_s)
                self._json(200, fake._ok_body(44.34, 10.99))
            elif mode == "malformed":
                self._send(200, MALFORMED_BODY)
            elif mode in ERROR_BODIES:
                self._json(*ERROR_BODIES[mode])
            else:
                try:
                    lat, lon = float(query["lat"]), float(query["lon"])
                except (KeyError, ValueError):
                    self._json(400, {"cod": "400", "message": "Nothing to geocode"})
                    return
                self._json(200, fake._ok_body(lat, lon))

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, json.dumps(body).encode())

        def _send(self, status: int, payload: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                if status == 429 and fake.retry_after is not None:
                    self.send_header("Retry-After", fake.retry_after)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing left to tell it

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines hold the API key; keep them out of test output

    return Handler

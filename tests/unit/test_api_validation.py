"""The API's answers that need no server: 400 messages for bad parameters and bodies, the token
check, 404s and the OpenAPI document. Requests go straight to the ASGI app; the servers named in
the settings are closed ports, never reached, since validation and auth come first."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.routing import APIRoute

from streams.operate.api import create_app
from streams.operate.api.errors import describe_error
from streams.settings import SettingsError, load_settings

SECRET = "s3cret-token-0123456789abcdef0123456789"
CLOSED = {
    "kafka_bootstrap_servers": "127.0.0.1:9",
    "redis_url": "redis://127.0.0.1:9/0",
    "database_url": "postgresql+psycopg2://u:pw-never-shown@127.0.0.1:9/db",
}


def call(app: Any, method: str, url: str, *args: Any, **kwargs: Any) -> tuple[int, Any]:
    """:func:`exchange`, with the body decoded as JSON."""
    status, content = exchange(app, method, url, *args, **kwargs)
    return status, json.loads(content) if content else None


def call_raw(app: Any, url: str) -> tuple[int, bytes]:
    """A GET through the ASGI interface; returns the status and the body as bytes."""
    return exchange(app, "GET", url)


def exchange(
    app: Any,
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    chunks: int = 1,
) -> tuple[int, bytes]:
    """One request through the ASGI interface; returns the status and the body. The Host is
    127.0.0.1:8000 unless ``headers`` name one; ``chunks`` > 1 streams the body in that many
    parts without a Content-Length."""
    parts = urlsplit(url)
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    sent: list[dict[str, Any]] = []
    size = -(-len(raw) // chunks) if raw else 0
    pieces = [raw[i : i + size] for i in range(0, len(raw), size)] if size else [b""]
    headers = {"Host": "127.0.0.1:8000", **(headers or {})}
    if chunks == 1 and raw:
        headers.setdefault("Content-Length", str(len(raw)))

    async def receive() -> dict[str, Any]:
        piece = pieces.pop(0) if pieces else b""
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, content


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(load_settings(**CLOSED, api_token=SECRET))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "/api/ml-monitoring/predictions?limit=0",
            "limit: a whole number of rows from 1 to 1000, got 0",
        ),
        (
            "/api/ml-monitoring/predictions?limit=abc",
            "limit: a whole number of rows from 1 to 1000, got abc",
        ),
        (
            "/api/ml-monitoring/predictions?limit=1001",
            "limit: a whole number of rows from 1 to 1000, got 1001",
        ),
        (
            "/api/ml-monitoring/metrics?hours=-1",
            "hours: a whole number of hours from 1 to 2160, got -1",
        ),
        (
            "/api/ml-monitoring/summary?hours=2.5",
            "hours: a whole number of hours from 1 to 2160, got 2.5",
        ),
        (
            "/api/ml-monitoring/daily?days=9999",
            "days: a whole number of days from 1 to 366, got 9999",
        ),
        (
            "/api/ml-monitoring/anomalies?threshold_mae=0",
            "threshold_mae: minutes above 0, at most 240, got 0",
        ),
        (
            "/api/ml-monitoring/anomalies?threshold_mae=nan",
            "threshold_mae: minutes above 0, at most 240, got nan",
        ),
        (
            "/api/ml-monitoring/anomalies?threshold_mae=241",
            "threshold_mae: minutes above 0, at most 240, got 241",
        ),
        ("/api/ab/report?hours=0", "hours: a whole number of hours from 1 to 2160, got 0"),
        (
            "/api/alerts?kind=bogus",
            "kind: one of error_drift, feature_drift, prediction_drift, mae_threshold, "
            "ml_error_rate, fallback_storm, interval_coverage, ab_verdict, label_coverage, "
            "ramp, got bogus",
        ),
    ],
)
def test_a_bad_query_parameter_answers_400_naming_it_and_what_was_expected(app, url, message):
    assert call(app, "GET", url) == (400, {"detail": message})


def test_several_bad_parameters_are_all_named(app):
    status, body = call(app, "GET", "/api/ml-monitoring/anomalies?limit=0&hours=x")
    assert status == 400
    assert body["detail"].startswith("hours: ") and "; limit: " in body["detail"]


def test_a_long_bad_value_is_shortened_in_the_message(app):
    status, body = call(app, "GET", "/api/ml-monitoring/predictions?limit=" + "9" * 500)
    assert status == 400 and len(body["detail"]) < 120 and body["detail"].endswith("…")


TOKEN = {"Authorization": f"Bearer {SECRET}"}


def documented_routes(app: Any) -> set[str]:
    """The paths of the app's API routes meant for the OpenAPI document, included routers'
    too (FastAPI keeps an included router as one route that holds its own)."""
    paths = set()
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is None:
            if isinstance(route, APIRoute) and route.include_in_schema:
                paths.add(route.path)
            continue
        for context in contexts():
            if isinstance(context.original_route, APIRoute) and context.include_in_schema:
                paths.add(context.path)
    return paths


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"percentage": 120}, "percentage: a share of bookings from 0 to 100, got 120"),
        ({"percentage": "ten"}, "percentage: a share of bookings from 0 to 100, got ten"),
        ({}, "percentage: a share of bookings from 0 to 100, got nothing"),
        (
            {"percentage": 5, "actor": "x" * 101},
            "actor: a name of 1 to 100 printable characters, or null, got " + "x" * 59 + "…",
        ),
        (
            {"percentage": 5, "actor": "bad\nname"},
            "actor: a name of 1 to 100 printable characters, or null, got bad\nname",
        ),
        (b"{not json", "body: a JSON object, got invalid JSON"),
    ],
)
def test_a_bad_body_answers_400_naming_the_field(app, body, message):
    status, answer = call(app, "POST", "/api/feature-flags/ml/enable", body, TOKEN)
    assert (status, answer) == (400, {"detail": message})


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic czNjcmV0LXRva2Vu"},
        {"Authorization": "Bearer s3cret-token-and-more"},
    ],
)
def test_changes_without_the_right_token_answer_401_before_the_body_is_read(app, headers):
    for path in ("/api/feature-flags/ml/enable", "/api/feature-flags/ml/disable"):
        status, body = call(app, "POST", path, {"percentage": 500}, headers)
        assert status == 401
        assert "Bearer" in body["detail"] and "s3cret" not in json.dumps(body)


def test_changes_are_disabled_with_503_when_no_token_is_configured():
    app = create_app(load_settings(**CLOSED))
    status, body = call(
        app, "POST", "/api/feature-flags/ml/enable", {"percentage": 5}, {"Authorization": "Bearer"}
    )
    assert (status, body) == (
        503,
        {"detail": "flag changes through the API are disabled: set API_TOKEN"},
    )


def test_unknown_paths_and_the_cdn_uis_answer_404_json(app):
    for path in ("/api/nothing", "/api/docs", "/docs", "/redoc"):
        assert call(app, "GET", path) == (404, {"detail": "Not Found"})


def test_the_openapi_document_lists_the_real_routes_with_400_not_422(app):
    status, document = call(app, "GET", "/api/openapi.json")
    assert status == 200
    routes = documented_routes(app)
    assert set(document["paths"]) == routes
    assert routes >= {
        "/api/health",
        "/api/ml-monitoring/summary",
        "/api/ml-monitoring/metrics",
        "/api/ml-monitoring/daily",
        "/api/ml-monitoring/anomalies",
        "/api/ml-monitoring/predictions",
        "/api/feature-flags/status",
        "/api/feature-flags/ml/enable",
        "/api/feature-flags/ml/disable",
        "/api/ab/report",
        "/api/alerts",
        "/metrics",
    }
    text = json.dumps(document)
    assert '"422"' not in text and "HTTPValidationError" not in text
    limit = document["paths"]["/api/ml-monitoring/predictions"]["get"]
    assert "400" in limit["responses"]
    assert limit["parameters"][0]["schema"]["maximum"] == 1000


def test_describe_error_falls_back_to_pydantic_s_words_for_undeclared_parameters():
    error = {"type": "int_parsing", "loc": ("query", "n"), "msg": "Input should be an integer"}
    assert describe_error(error | {"input": "x"}, {}) == "n: input should be an integer, got x"


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8000", True),
        ("localhost", True),
        ("LOCALHOST:8000", True),
        ("[::1]:8000", True),
        ("evil.example", False),
        ("evil.example:8000", False),
        ("127.0.0.1.evil.example", False),
        ("", False),
    ],
)
def test_the_api_answers_its_allowed_hosts_only(app, host, allowed):
    status, body = call(app, "GET", "/api/nothing", headers={"Host": host})
    if allowed:
        assert status == 404  # past the host check, to the router
    else:
        assert status == 400 and "API_ALLOWED_HOSTS" in body["detail"]


def test_api_host_and_a_wildcard_widen_the_allowed_hosts():
    named = create_app(load_settings(**CLOSED, api_host="10.1.2.3"))
    assert call(named, "GET", "/api/nothing", headers={"Host": "10.1.2.3:8000"})[0] == 404
    everyone = create_app(load_settings(**CLOSED, api_host="0.0.0.0", api_allowed_hosts="*"))
    assert call(everyone, "GET", "/api/nothing", headers={"Host": "anything.example"})[0] == 404
    bound_everywhere = create_app(load_settings(**CLOSED, api_host="0.0.0.0"))
    assert call(bound_everywhere, "GET", "/api/nothing", headers={"Host": "0.0.0.0"})[0] == 400


@pytest.mark.parametrize("chunks", [1, 7])
def test_a_body_over_the_cap_gets_413_before_the_endpoint_acts(chunks):
    app = create_app(load_settings(**CLOSED, api_token=SECRET, api_max_body_bytes=2048))
    big = {"percentage": 5, "reason": "x" * 4000}
    status, body = call(app, "POST", "/api/feature-flags/ml/enable", big, TOKEN, chunks=chunks)
    assert status == 413
    assert "API_MAX_BODY_BYTES" in body["detail"] and "2048" in body["detail"]
    # Under the cap, the same request reaches the endpoint: its percentage is checked.
    small = {"percentage": 500, "reason": "x" * 1000}
    status, body = call(app, "POST", "/api/feature-flags/ml/enable", small, TOKEN, chunks=chunks)
    assert status == 400 and "percentage" in json.dumps(body)


READ = "read-token-0123456789abcdef0123456789"


def test_with_a_read_token_every_read_but_health_and_the_page_needs_it():
    app = create_app(load_settings(**CLOSED, api_token=SECRET, api_read_token=READ))
    reads = ["/api/ml-monitoring/summary", "/api/ab/report", "/api/alerts", "/metrics"]
    reads.append("/api/feature-flags/status")
    for path in reads:
        status, body = call(app, "GET", path)
        assert status == 401 and "API_READ_TOKEN" in body["detail"], path
        assert call(app, "GET", path, headers={"Authorization": "Bearer wrong"})[0] == 401
        # Past the check with either token (the servers are closed ports: 503, or an answer
        # that says which store did not answer).
        for token in (READ, SECRET):
            status, _ = exchange(app, "GET", path, headers={"Authorization": f"Bearer {token}"})
            assert status in (200, 503), (path, status)
    assert call(app, "GET", "/api/health")[0] in (200, 503)
    page = call_raw(app, "/ml-monitoring")
    assert page[0] == 200 and READ.encode() not in page[1]


def test_without_a_read_token_reads_are_open_and_a_short_one_is_refused():
    app = create_app(load_settings(**CLOSED))
    assert call(app, "GET", "/api/ml-monitoring/summary")[0] == 503  # past auth, no PostgreSQL
    assert exchange(app, "GET", "/metrics")[0] == 200
    with pytest.raises(SettingsError, match="API_READ_TOKEN must be at least 32 characters"):
        load_settings(**CLOSED, api_read_token="short")

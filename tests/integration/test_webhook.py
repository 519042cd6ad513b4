"""The alert webhook against a local HTTP server: delivery, retries, and no token in logs."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from connectors.webhook import WebhookNotifier
from schemas import Alert, AlertKind, Severity

TOKEN = "hook-token-never-logged-42"
NOW = datetime(2026, 11, 23, 8, tzinfo=UTC)
ALERT = Alert(
    alert_id="a1",
    kind=AlertKind.MAE_THRESHOLD,
    severity=Severity.WARNING,
    subject="ml",
    message="MAE high",
    evidence={"mae": 4.2},
    event_time=NOW,
    raised_at=NOW,
)


@pytest.fixture
def hook():
    received: list[dict] = []
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"path": self.path, "body": json.loads(body)})
            status = statuses.pop(0) if statuses else 200
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/{TOKEN}", received, statuses
    server.shutdown()
    server.server_close()


def test_an_alert_is_posted_as_json(hook):
    url, received, _ = hook
    assert WebhookNotifier(SecretStr(url), sleep=lambda s: None).send(ALERT)
    assert [r["body"]["alert_id"] for r in received] == ["a1"]
    assert received[0]["body"]["evidence"] == {"mae": 4.2}


def test_server_errors_are_retried_then_given_up_without_leaking_the_url(hook, caplog):
    url, received, statuses = hook
    statuses.extend([500, 503])
    assert WebhookNotifier(SecretStr(url), retries=2, sleep=lambda s: None).send(ALERT)
    assert len(received) == 3
    statuses.extend([500, 500, 500])
    with caplog.at_level(logging.WARNING):
        assert not WebhookNotifier(SecretStr(url), retries=2, sleep=lambda s: None).send(ALERT)
    assert "not delivered" in caplog.text and TOKEN not in caplog.text


def test_rate_limits_and_odd_answers_are_retried_with_the_backoff_and_refusals_are_not(hook):
    url, received, statuses = hook
    statuses.extend([429, 302, 200])
    sleeps: list[float] = []
    assert WebhookNotifier(SecretStr(url), retries=3, sleep=sleeps.append).send(ALERT)
    assert len(received) == 3
    assert sleeps == [0.5, 1.0]  # 0.5 s, doubling: the policy's webhook schedule


def test_a_refused_request_is_not_retried(hook):
    url, received, statuses = hook
    statuses.append(400)
    assert not WebhookNotifier(SecretStr(url), retries=3, sleep=lambda s: None).send(ALERT)
    assert len(received) == 1


def test_an_unreachable_webhook_never_raises_nor_leaks(caplog):
    url = f"http://127.0.0.1:9/{TOKEN}"
    with caplog.at_level(logging.WARNING):
        assert not WebhookNotifier(
            SecretStr(url), retries=1, timeout_s=0.5, sleep=lambda s: None
        ).send(ALERT)
    assert TOKEN not in caplog.text

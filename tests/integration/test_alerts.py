"""Alerts on the real stack: raised by the worker, on `alerts`, in PostgreSQL and the log."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import sqlalchemy as sa

from schemas.tables import alerts as alerts_table
from tests.integration.test_prediction_path import booking_payloads, set_flags, start_worker
from tests.integration.test_webhook import TOKEN, hook  # noqa: F401
from tests.integration.workers import collect, produce


def test_a_fallback_storm_is_alerted_within_a_minute(
    stack, topic_prefix, tmp_path, migrated_database
):
    (tmp_path / "models").mkdir()  # no model at all: every ML booking falls back
    set_flags(stack, topic_prefix, enabled=True, percentage=100)
    with start_worker(stack, topic_prefix, tmp_path, ALERT_WINDOW="50") as worker:
        started = datetime.now(UTC)
        produce(stack, f"{topic_prefix}bookings", booking_payloads(120, "AL-"))
        [alert] = collect(stack, f"{topic_prefix}alerts", 1, timeout_s=60)
        delay_s = (datetime.fromisoformat(alert["raised_at"]) - started).total_seconds()
        engine = sa.create_engine(migrated_database)
        stored = None
        deadline = time.monotonic() + 30
        while stored is None and time.monotonic() < deadline:
            with engine.connect() as c:
                stored = c.execute(
                    sa.select(alerts_table).where(alerts_table.c.alert_id == alert["alert_id"])
                ).first()
            time.sleep(0.3)
        engine.dispose()
        worker.wait_for_log("ALERT CRITICAL fallback_storm", 10)
    assert alert["kind"] == "fallback_storm" and alert["severity"] == "critical"
    assert alert["evidence"]["share"] == 1.0
    assert "no_model" in alert["evidence"]["reason"]
    assert delay_s < 60
    assert stored is not None and stored.kind == "fallback_storm"
    print(f"alert raised {delay_s:.1f} s after the first booking was produced")


def test_the_worker_posts_its_alerts_to_the_webhook_without_logging_its_url(
    stack,
    topic_prefix,
    tmp_path,
    migrated_database,
    hook,  # noqa: F811
):
    url, received, _ = hook
    (tmp_path / "models").mkdir()
    set_flags(stack, topic_prefix, enabled=True, percentage=100)
    with start_worker(
        stack, topic_prefix, tmp_path, ALERT_WINDOW="50", ALERT_WEBHOOK_URL=url
    ) as worker:
        produce(stack, f"{topic_prefix}bookings", booking_payloads(120, "WH-"))
        [alert] = collect(stack, f"{topic_prefix}alerts", 1, timeout_s=60)
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            time.sleep(0.2)
        log = worker.log()
    assert [r["body"]["alert_id"] for r in received] == [alert["alert_id"]]
    assert received[0]["body"]["kind"] == "fallback_storm"
    assert TOKEN not in log

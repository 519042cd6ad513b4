"""The Faust app delaycast builds: its consumer's fetches wait FETCH_MAX_WAIT_MS, not Faust's
1,500 ms, it seeks with its flow stopped, and it logs offsets it passed over (built, never
connected: no servers)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from faust.types import TP

from streams.settings import load_settings
from streams.worker.faust_config import FETCH_MAX_WAIT_MS, make_app


def test_the_worker_consumer_waits_at_most_the_short_fetch_wait_and_reads_committed(
    tmp_path: Path,
) -> None:
    app = make_app(load_settings(), "fetch-wait-test", tmp_path)

    async def build() -> tuple[int, int, str]:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
        try:
            return (
                consumer._fetch_max_wait_ms,
                consumer._max_poll_interval_ms,
                consumer._isolation_level,
            )
        finally:
            await consumer.stop()

    wait_ms, poll_interval_ms, isolation = asyncio.run(build())
    assert wait_ms == FETCH_MAX_WAIT_MS < 1500  # Faust's own value
    assert isolation == "read_committed"  # Faust's is read_uncommitted: aborted bookings
    assert poll_interval_ms > 0  # the rest of Faust's configuration is still there


def test_the_consumer_seeks_to_committed_offsets_with_its_flow_stopped(tmp_path: Path) -> None:
    """No record reaches an agent while the seek waits for the broker (the flow stays stopped
    until Faust resumes it, after it cleared the agents' queues): records delivered then would be
    cleared unprocessed and counted as acknowledged."""
    app = make_app(load_settings(), "seek-test", tmp_path)
    consumer = app.consumer
    flow_during_seek: list[bool] = []

    async def seek_to_committed() -> dict[Any, int]:
        flow_during_seek.append(consumer.flow_active)
        await asyncio.sleep(0)  # the broker's answer: other coroutines run meanwhile
        flow_during_seek.append(consumer.flow_active)
        return {}

    consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    consumer.resume_flow()  # as after recovery read the changelog
    asyncio.run(consumer.perform_seek())
    assert flow_during_seek == [False, False]
    assert consumer.flow_active is False  # the caller resumes it
    assert not consumer.can_resume_flow.is_set()


def test_offsets_passed_over_without_delivery_are_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Faust counts them as processed; on delaycast's inputs that is a loss, and says so."""
    app = make_app(load_settings(), "gap-test", tmp_path)
    consumer = app.consumer
    tp = TP("t-bookings", 2)
    with caplog.at_level(logging.WARNING, logger="delaycast.kafka"):
        asyncio.run(consumer._add_gap(tp, 19, 102))  # read 18, then 102: 19..101 never came
    assert [r.getMessage() for r in caplog.records] == [
        "[Kafka] t-bookings[2]: offsets 19..101 were passed over without reaching an agent; "
        "Faust counts them as processed (a transaction's marker or aborted records are expected "
        "gaps; anything else is a loss: runbooks/offsets-passed-over.md)"
    ]
    assert consumer._gap[tp].overlaps(19, 102)  # Faust's own bookkeeping still runs


@pytest.mark.parametrize("session_s", [10.0, 80.0, 300.0])
def test_a_long_session_gets_a_request_timeout_at_least_as_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, session_s: float
) -> None:
    monkeypatch.setenv("CONSUMER_SESSION_TIMEOUT_S", str(session_s))
    app = make_app(load_settings(), "session-test", tmp_path)

    async def build() -> tuple[int, int]:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
        try:
            client = consumer._client
            return consumer._session_timeout_ms, client._request_timeout_ms
        finally:
            await consumer.stop()

    session_ms, request_ms = asyncio.run(build())
    assert session_ms == session_s * 1000
    assert request_ms >= session_ms and request_ms >= 90_000

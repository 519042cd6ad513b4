"""The Faust app delaycast builds: its consumer's fetches wait FETCH_MAX_WAIT_MS, not Faust's
1,500 ms (built, never connected: no servers)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from streams.faust_config import FETCH_MAX_WAIT_MS, make_app
from streams.settings import load_settings


def test_the_worker_consumer_waits_at_most_the_short_fetch_wait(tmp_path: Path) -> None:
    app = make_app(load_settings(), "fetch-wait-test", tmp_path)

    async def build() -> tuple[int, int]:
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
        try:
            return consumer._fetch_max_wait_ms, consumer._max_poll_interval_ms
        finally:
            await consumer.stop()

    wait_ms, poll_interval_ms = asyncio.run(build())
    assert wait_ms == FETCH_MAX_WAIT_MS < 1500  # Faust's own value
    assert poll_interval_ms > 0  # the rest of Faust's configuration is still there

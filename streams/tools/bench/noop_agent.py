"""Scenario (b), the framework's ceiling: a Faust agent that takes the bookings in batches, like
the real agents (``take_events(BATCH_MAX, within=BATCH_WITHIN_S)``), and does nothing else.

``python -m streams.tools.bench.noop_agent`` with TOPIC_PREFIX and BENCH_COUNT set: prints its
:mod:`~streams.tools.bench.meter` line when BENCH_COUNT events have been taken, then keeps running
until the runner stops it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable

from streams.settings import load_settings
from streams.tools.bench.faust_app import bench_app, bookings_topic, run_worker
from streams.tools.bench.meter import Meter

settings = load_settings()
app = bench_app(settings, "bench-noop")
meter = Meter(int(os.environ.get("BENCH_COUNT", "50000")))


@app.agent(bookings_topic(app, settings), name="noop")
async def noop(stream: AsyncIterable[bytes]) -> None:
    async for events in stream.take_events(  # type: ignore[attr-defined]
        settings.batch_max, within=settings.batch_within_s
    ):
        if meter.add(len(events)):
            meter.report()


if __name__ == "__main__":
    run_worker(app)

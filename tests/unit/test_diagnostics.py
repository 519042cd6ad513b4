"""The SIGUSR2 report: what the consumer's flow is doing and where each task waits (a Faust app
built, never connected: no servers)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from streams.settings import load_settings
from streams.worker import diagnostics
from streams.worker.faust_config import make_app


def test_the_report_names_a_stopped_flow_the_queued_records_and_where_a_task_waits(
    tmp_path: Path,
) -> None:
    app = make_app(load_settings(), "diagnostics-test", tmp_path)
    bookings = app.topic("diag-bookings")
    app.topics.add(bookings)
    reports: list[str] = []

    async def scenario() -> None:
        async def waits_for_the_broker() -> None:
            await asyncio.sleep(30)

        task = asyncio.get_running_loop().create_task(waits_for_the_broker(), name="fetcher")
        await asyncio.sleep(0)
        reports.append(diagnostics.describe_consumer(app))
        app.consumer.stop_flow()
        for n in range(3):
            bookings.queue.put_nowait(n)
        reports.append(diagnostics.describe_consumer(app))
        reports.append(diagnostics.describe_tasks([task]))
        diagnostics.install(app, emit=reports.append)
        os.kill(os.getpid(), diagnostics.REPORT_SIGNAL)
        for _ in range(100):  # the handler runs on the loop, once the signal is read
            if len(reports) == 4:
                break
            await asyncio.sleep(0.01)
        asyncio.get_running_loop().remove_signal_handler(diagnostics.REPORT_SIGNAL)
        task.cancel()

    asyncio.run(scenario())
    before, stopped, tasks = reports[:3]
    assert "consumer flow running" in before and "queued for diag-bookings: 0" in before
    assert "consumer flow STOPPED" in stopped and "queued for diag-bookings: 3" in stopped
    assert tasks.startswith("task fetcher (") and "waiting" in tasks.splitlines()[0]
    assert "in waits_for_the_broker" in tasks and "in sleep" in tasks  # down the awaits
    assert len(reports) == 4, "SIGUSR2 produced no report"
    assert "consumer flow STOPPED" in reports[3] and "task fetcher" in reports[3]

"""The engine process's lifecycle, without servers: a start that fails, and its backoff."""

from __future__ import annotations

import asyncio
import multiprocessing
import time

import pytest

from streams.predict.engine import EngineDied, ProcessEngine


def test_a_start_that_times_out_fails_the_start_and_the_next_waits_for_the_backoff():
    # Children of this test process from before (another test's engine in the same pytest
    # worker, still ending) are not this engine's: only those it started must be gone.
    before = set(multiprocessing.active_children())

    async def scenario() -> tuple[str, str, float, bool, list[str]]:
        engine = ProcessEngine("warning", start_timeout_s=0.001, restart_backoff_s=60)
        try:
            with pytest.raises(EngineDied) as first:
                await engine.start()
            started = time.perf_counter()
            with pytest.raises(EngineDied) as second:
                await engine.start()
            return (
                str(first.value),
                str(second.value),
                time.perf_counter() - started,
                engine.alive,
                [p.name for p in multiprocessing.active_children() if p not in before],
            )
        finally:
            engine.close()

    first, second, seconds, alive, running = asyncio.run(scenario())
    assert "did not start" in first
    assert "failed to start a moment ago" in second
    assert seconds < 0.5  # no second process was started
    assert not alive
    assert running == []  # the process of the failed start was ended at once


def test_run_without_an_engine_that_can_start_raises_engine_died():
    async def scenario() -> None:
        engine = ProcessEngine("warning", start_timeout_s=0.001, restart_backoff_s=60)
        try:
            await engine.run([])
        finally:
            engine.close()

    with pytest.raises(EngineDied):
        asyncio.run(scenario())

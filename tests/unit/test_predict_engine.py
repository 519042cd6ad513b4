"""The engine process's lifecycle, without servers: a start that fails, and its backoff."""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.predict.engine import EngineDied, ProcessEngine, _hand_over


def test_a_start_that_times_out_fails_the_start_and_the_next_waits_for_the_backoff():
    async def scenario() -> tuple[str, str, float, bool]:
        engine = ProcessEngine("warning", start_timeout_s=0.001, restart_backoff_s=60)
        try:
            with pytest.raises(EngineDied) as first:
                await engine.start()
            started = time.perf_counter()
            with pytest.raises(EngineDied) as second:
                await engine.start()
            return str(first.value), str(second.value), time.perf_counter() - started, engine.alive
        finally:
            engine.close()

    first, second, seconds, alive = asyncio.run(scenario())
    assert "did not start" in first
    assert "failed to start a moment ago" in second
    assert seconds < 0.5  # no second process was started
    assert not alive


def test_run_without_an_engine_that_can_start_raises_engine_died():
    async def scenario() -> None:
        engine = ProcessEngine("warning", start_timeout_s=0.001, restart_backoff_s=60)
        try:
            await engine.run([])
        finally:
            engine.close()

    with pytest.raises(EngineDied):
        asyncio.run(scenario())


def test_an_answer_read_after_the_loop_closed_is_dropped_quietly():
    """The reader thread may read the engine's last answer while the worker's loop shuts down:
    it stops instead of raising "Event loop is closed" in its thread."""
    loop = asyncio.new_event_loop()
    got: list[int] = []
    assert _hand_over(loop, got.append, 1) is True
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    assert _hand_over(loop, got.append, 2) is False
    assert got == [1]

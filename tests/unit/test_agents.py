"""The agents' batch logic, in process (Faust's ``test_context``), with a recording runtime in
place of the real one: batches handed over whole and in order, join batches acknowledged only
after they were handled, a failed join batch halting the worker before any acknowledgement."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from streams.decode import Inbound
from streams.settings import load_settings
from streams.worker.agents import expiry_timer, register
from streams.worker.faust_config import make_app


class Halted(Exception):
    """Raised by the recording runtime's halt, which in a worker never returns."""


class RecordingHandler:
    def __init__(self, fail_on: bytes | None = None) -> None:
        self.batches: list[list[Inbound]] = []
        self.fail_on = fail_on
        self.log: list[tuple[str, list[bytes]]] = []  # shared with the runtime: the order

    async def handle(self, records: list[Inbound]) -> None:
        if self.fail_on is not None and any(r.value == self.fail_on for r in records):
            raise RuntimeError("the producer refused the batch")
        self.batches.append(records)
        self.log.append(("handled", [r.value for r in records]))


class RecordingPredictions:
    def __init__(self) -> None:
        self.bookings: list[list[bytes]] = []

    async def submit(self, batch: list[Any], records: list[Inbound]) -> None:
        assert [r.value for r in records] == [e.value for e in batch]
        self.bookings.append([r.value for r in records])


class RecordingOutcomes:
    def __init__(self, handler: RecordingHandler) -> None:
        self.recording = handler
        self.swept = 0

    def handler(self, table: Any) -> RecordingHandler:
        return self.recording

    async def sweep(self) -> None:
        self.swept += 1


class RecordingRuntime:
    def __init__(self, handler: RecordingHandler | None = None) -> None:
        self.released: list[list[bytes]] = []
        self.halted: list[str] = []
        self.handler = handler or RecordingHandler()
        self.tables: list[Any] = []
        self.predictions: Any = RecordingPredictions()
        self.outcomes: Any = RecordingOutcomes(self.handler)

    @property
    def bookings(self) -> list[list[bytes]]:
        return self.predictions.bookings

    async def wait_until_ready(self) -> None:
        return None

    async def wait_for_changelog(self, table: Any) -> None:
        self.tables.append(table)

    def release(self, events: list[Any]) -> None:
        self.released.append([e.value for e in events])
        self.handler.log.append(("released", [e.value for e in events]))

    def halt(self, what: str, exc: BaseException) -> None:
        self.halted.append(f"{what}: {exc}")
        raise Halted(what)


def worker(tmp_path: Path, role: str, runtime: RecordingRuntime, batch_max: int = 3) -> Any:
    settings = load_settings(
        worker_role=role, batch_max=batch_max, batch_within_s=0.05, topic_prefix="t."
    )
    app = make_app(settings, settings.worker_group, tmp_path)
    register(app, settings, runtime)  # type: ignore[arg-type]
    return app


async def send(agent: Any, values: list[bytes]) -> None:
    async with agent.test_context() as context:
        for value in values:
            await context.put(value, key=value)
        await asyncio.sleep(0.3)  # the last, partial batch waits batch_within_s


@pytest.mark.parametrize(
    ("role", "agents", "tables", "timers"),
    [
        ("all", ["join", "predict"], 1, 1),
        ("predict", ["predict"], 0, 0),
        ("outcomes", ["join"], 1, 1),
    ],
)
def test_a_worker_runs_the_agents_of_its_role_only(tmp_path, role, agents, tables, timers):
    app = worker(tmp_path, role, RecordingRuntime())
    assert sorted(app.agents) == agents
    assert len(app.tables) == tables
    assert len(app._app_tasks) == timers  # the expiry timer (Faust keeps no public list)


def test_the_predict_agent_hands_over_every_booking_once_in_order_in_batches_of_at_most_max(
    tmp_path,
):
    runtime = RecordingRuntime()
    app = worker(tmp_path, "predict", runtime, batch_max=3)
    values = [f"B{i}".encode() for i in range(8)]
    asyncio.run(send(app.agents["predict"], values))
    assert [v for batch in runtime.bookings for v in batch] == values
    assert max(len(batch) for batch in runtime.bookings) <= 3


def test_the_join_agent_acknowledges_a_batch_only_after_it_was_handled(tmp_path):
    runtime = RecordingRuntime()
    app = worker(tmp_path, "outcomes", runtime, batch_max=4)
    values = [f"P{i}".encode() for i in range(10)]
    asyncio.run(send(app.agents["join"], values))
    handled = [[r.value for r in batch] for batch in runtime.handler.batches]
    assert handled == runtime.released  # each batch released whole
    # ... and only after its handling: handled, released, handled, released, ...
    assert runtime.handler.log == [
        (step, batch) for batch in handled for step in ("handled", "released")
    ]
    assert [v for batch in handled for v in batch] == values
    assert len(runtime.tables) == 1  # the changelog waited for before the first batch
    records = runtime.handler.batches[0]
    assert all(isinstance(r, Inbound) and r.key == r.value for r in records)
    assert [r.offset for r in records] == sorted(r.offset for r in records)


def test_a_failed_join_batch_halts_the_worker_and_is_never_acknowledged(tmp_path):
    runtime = RecordingRuntime(RecordingHandler(fail_on=b"P5"))
    app = worker(tmp_path, "outcomes", runtime, batch_max=4)
    values = [f"P{i}".encode() for i in range(8)]
    asyncio.run(send(app.agents["join"], values))
    assert runtime.halted == ["a join batch of 4 events failed: the producer refused the batch"]
    released = [v for batch in runtime.released for v in batch]
    assert released == values[:4]  # the first batch only: nothing from the failed one on


def test_the_expiry_timer_sweeps_only_when_the_worker_joins():
    runtime = RecordingRuntime()
    outcomes = runtime.outcomes
    runtime.outcomes = None
    asyncio.run(expiry_timer(runtime)())  # type: ignore[arg-type]
    assert outcomes.swept == 0
    runtime.outcomes = outcomes
    asyncio.run(expiry_timer(runtime)())  # type: ignore[arg-type]
    assert outcomes.swept == 1

"""Where a worker computes and sends its predictions: in a process of its own, or in its loop.

Decoding, weather, routing, the model and the JSON of a batch cost about as much CPU as Faust's
own consumption of it, and one Python process runs on one core. With ``PREDICT_ENGINE=process``
(the default) a predict worker hands each batch's raw records to an engine process next to it,
which holds the whole prediction path (:mod:`streams.predict.path`: flags, champion,
weather) and a Kafka producer of its own. It predicts the batch, produces the predictions and
dead letters, and answers with a small :class:`BatchSummary` once Kafka acknowledged them; only
then does the worker release the batch's offsets. The Faust consumer and the engine use a core
each, and several batches are in flight at once (see :mod:`streams.worker.runtime`).
``PREDICT_ENGINE=inline`` runs :func:`predict_and_send` in the worker's own loop.

The engine ends when its pipe closes, so it never outlives its worker, even one killed with
SIGKILL. When the engine dies, the batches it held fail with :class:`EngineDied`; the next batch
starts a new engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, cast

from connectors.kafka import BatchProducer, Record, Undeliverable
from connectors.weather import WeatherStats
from schemas import Arm, DeadLetter, DeadLetterKind
from streams.clock import utc_now
from streams.decode import Inbound, dead_letter
from streams.helper_process import end_helper, prepare_helper_process, spawn_helper
from streams.predict.batch import BatchPredictor, BatchResult
from streams.predict.model_holder import reload_forever
from streams.predict.path import build_prediction_path
from streams.settings import load_settings

log = logging.getLogger("delaycast.engine")

START_TIMEOUT_S = 120.0  # imports and the champion's load, on a busy machine
RESTART_BACKOFF_S = 30.0  # after a failed start

# One record as it crosses the pipe: (topic, partition, offset, key, value, timestamp_ms).
RawRecord = tuple[str, int, int, bytes | None, bytes | None, float | None]


@dataclass(frozen=True)
class Served:
    """What the worker's metrics need of one prediction."""

    arm: str
    latency_ms: float | None


@dataclass
class BatchSummary:
    """What became of a batch whose output Kafka has acknowledged: what the worker counts."""

    bookings: int
    served: list[Served] = field(default_factory=list)  # one per prediction
    fallbacks: Counter[str] = field(default_factory=Counter)
    ml_served: int = 0
    dead_letters: int = 0
    dead_letter_kinds: Counter[str] = field(default_factory=Counter)  # kind -> letters
    first_error: str | None = None  # of the dead letters, for the worker's log
    weather: WeatherStats | None = None  # the running weather counters of the engine

    @property
    def predictions(self) -> int:
        return len(self.served)


@dataclass(frozen=True)
class OutputTopics:
    predictions: str
    dead_letters: str


def failed_batch(records: list[Inbound], exc: Exception, now: datetime) -> BatchResult:
    """A batch that could not be predicted, as dead letters: a bug must neither stop the stream
    nor lose the batch, which can be requeued once fixed."""
    reason = f"processing failed: {type(exc).__name__}: {exc}"
    letters = [
        dead_letter(r, DeadLetterKind.PROCESSING, reason, agent="predict", now=now) for r in records
    ]
    return BatchResult([], letters)


async def predict_and_send(
    predictor: BatchPredictor,
    producer: BatchProducer,
    topics: OutputTopics,
    records: list[Inbound],
    weather: Callable[[], WeatherStats | None] = lambda: None,
) -> BatchSummary:
    """Predict ``records`` and return once Kafka acknowledged every output record."""
    try:
        result = await predictor.run(records)
    except Exception:
        log.exception(
            "[ML] batch of %d bookings failed; predicting it record by record", len(records)
        )
        result = await predict_one_by_one(predictor, records)
    return await send_result(producer, topics, records, result, weather())


async def predict_one_by_one(predictor: BatchPredictor, records: list[Inbound]) -> BatchResult:
    """A failed batch again, one record at a time: only the records that fail alone become dead
    letters; their neighbours are predicted."""
    merged = BatchResult([], [])
    for record in records:
        try:
            result = await predictor.run([record])
        except Exception as exc:
            result = failed_batch([record], exc, utc_now())
        merged.predictions += result.predictions
        merged.sources += result.sources
        merged.dead_letters += result.dead_letters
        merged.fallbacks.update(result.fallbacks)
        merged.weather_notes.update(result.weather_notes)
    return merged


async def send_result(
    producer: BatchProducer,
    topics: OutputTopics,
    records: list[Inbound],
    result: BatchResult,
    weather: WeatherStats | None = None,
) -> BatchSummary:
    """Produce a batch's predictions and dead letters; return once Kafka acknowledged them.

    A prediction Kafka refuses for good (too large for the topic, say) becomes a dead letter of
    its booking; a dead letter Kafka refuses raises, and the worker stops with the reason."""
    out = [
        Record(topics.predictions, p.booking_id.encode(), p.model_dump_json().encode())
        for p in result.predictions
    ]
    out.extend(
        Record(topics.dead_letters, d.source_key, d.model_dump_json().encode())
        for d in result.dead_letters
    )
    kinds = Counter(d.kind.value for d in result.dead_letters)
    served = result.predictions
    try:
        await producer.send_batch(out)
    except Undeliverable as exc:
        position = {id(record): i for i, record in enumerate(out[: len(result.predictions)])}
        refused = [(position.get(id(record)), why) for record, why in exc.refused]
        if any(i is None for i, _ in refused):
            raise RuntimeError(
                f"dead letters cannot be written to {topics.dead_letters}: {exc}; check that "
                "the topic exists (delaycast topics create) and that this worker may write to it"
            ) from exc
        now = utc_now()
        more = [
            dead_letter(
                result.sources[i],
                DeadLetterKind.UNDELIVERABLE,
                f"its prediction was refused by Kafka: {why}",
                agent="predict",
                now=now,
            )
            for i, why in refused
            if i is not None
        ]
        await send_letters(producer, topics, more)
        kinds[DeadLetterKind.UNDELIVERABLE.value] += len(more)
        gone = {i for i, _ in refused}
        served = [p for i, p in enumerate(result.predictions) if i not in gone]
    return BatchSummary(
        bookings=len(records),
        served=[Served(p.arm.value, p.latency_ms) for p in served],
        fallbacks=result.fallbacks,
        ml_served=sum(p.served_by is Arm.ML for p in served),
        dead_letters=sum(kinds.values()),
        dead_letter_kinds=kinds,
        first_error=result.dead_letters[0].error if result.dead_letters else None,
        weather=weather,
    )


async def send_letters(
    producer: BatchProducer, topics: OutputTopics, letters: list[DeadLetter]
) -> None:
    out = [Record(topics.dead_letters, d.source_key, d.model_dump_json().encode()) for d in letters]
    try:
        await producer.send_batch(out)
    except Undeliverable as exc:
        raise RuntimeError(
            f"dead letters cannot be written to {topics.dead_letters}: {exc}"
        ) from exc


def raw(record: Inbound) -> RawRecord:
    return (
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        record.timestamp_ms,
    )


class EngineDied(RuntimeError):
    """The engine process ended before it answered."""


class _Channel:
    """One engine process, its pipe, and the answers it owes."""

    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.closed = False

    def fail(self, reason: str) -> None:
        """Fail every answer still owed: the batches go back to the worker."""
        self.closed = True
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(EngineDied(reason))


class ProcessEngine:
    """The worker's side of an engine process: send a batch, await its summary.

    After a failed start, no new start is tried for ``restart_backoff_s``: :meth:`run` raises
    :class:`EngineDied` at once, and the worker predicts in its own process meanwhile.
    """

    def __init__(
        self,
        log_level: str,
        start_timeout_s: float = START_TIMEOUT_S,
        restart_backoff_s: float = RESTART_BACKOFF_S,
    ) -> None:
        self._log_level = log_level
        self._start_timeout_s = start_timeout_s
        self._restart_backoff_s = restart_backoff_s
        self._ids = itertools.count()
        self._channel: _Channel | None = None  # set only once the engine said it is ready
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="engine-send")
        self._starting = asyncio.Lock()
        self._no_start_before = 0.0
        self.description = "not started"
        self.starts = 0
        self.weather: WeatherStats | None = None  # the engine's latest weather counters

    @property
    def alive(self) -> bool:
        return self._channel is not None and not self._channel.closed

    @property
    def pid(self) -> int | None:
        return self._channel.process.pid if self._channel is not None else None

    async def start(self) -> str:
        """Start the engine and wait until it is ready; returns its description (flags,
        model). Raises :class:`EngineDied` when it ends or does not get ready in time."""
        async with self._starting:
            if self.alive:
                return self.description
            loop = asyncio.get_running_loop()
            if loop.time() < self._no_start_before:
                raise EngineDied("the prediction engine failed to start a moment ago")
            process, ours = await loop.run_in_executor(
                self._sender, spawn_helper, engine_main, self._log_level, "delaycast-engine"
            )
            channel = _Channel(process, ours)
            ready: asyncio.Future[Any] = loop.create_future()
            channel.pending[-1] = ready
            threading.Thread(
                target=self._receive, args=(channel, loop), name="engine-receive", daemon=True
            ).start()
            try:
                description = await asyncio.wait_for(ready, self._start_timeout_s)
            except Exception as exc:  # timed out, ended, or failed while starting
                channel.fail("start failed")
                await loop.run_in_executor(None, _end, channel, 0.0)  # killed at once
                self._no_start_before = loop.time() + self._restart_backoff_s
                raise EngineDied(f"the prediction engine did not start: {exc}") from None
            self._channel, self.description = channel, description
            self.starts += 1
            log.info("[ML] prediction engine ready in process %s", process.pid)
            return description

    async def run(self, records: list[Inbound]) -> BatchSummary:
        """Predict and send ``records``; returns once Kafka acknowledged their output. Starts
        the engine when it is not running."""
        if not self.alive:
            await self.start()
        channel = self._channel
        assert channel is not None
        loop = asyncio.get_running_loop()
        batch_id = next(self._ids)
        answer: asyncio.Future[Any] = loop.create_future()
        channel.pending[batch_id] = answer
        try:
            await loop.run_in_executor(
                self._sender, channel.conn.send, (batch_id, [raw(r) for r in records])
            )
        except Exception as exc:  # the pipe broke, or the batch cannot be pickled
            self._lost(channel, f"cannot send to the prediction engine: {exc}")
        return cast(BatchSummary, await answer)

    def _receive(self, channel: _Channel, loop: asyncio.AbstractEventLoop) -> None:
        """Runs in a thread: hands every answer to the loop; at the end, fails what is owed."""
        reason = "the prediction engine ended"
        while True:
            try:
                batch_id, status, payload = channel.conn.recv()
            except (EOFError, OSError):
                break
            except Exception as exc:  # an answer that cannot be read: the channel is unusable
                reason = f"unreadable answer from the prediction engine: {exc}"
                break
            if not _hand_over(loop, self._answer, channel, batch_id, status, payload):
                return
        _hand_over(loop, self._lost, channel, reason)

    def _answer(self, channel: _Channel, batch_id: int, status: str, payload: Any) -> None:
        future = channel.pending.pop(batch_id, None)
        if future is None or future.done():
            if status != "ok":
                log.error("[ML] prediction engine: %s", payload)
            return
        if status == "ok":
            if isinstance(payload, BatchSummary) and payload.weather is not None:
                self.weather = payload.weather
            future.set_result(payload)
        else:
            future.set_exception(RuntimeError(payload))

    def _lost(self, channel: _Channel, reason: str) -> None:
        if channel.closed:
            return
        code = channel.process.exitcode
        channel.fail(f"{reason} (exit code {code})")
        if channel is self._channel:
            self._channel = None
            log.error("[ML] %s (exit code %s); the next batch starts a new one", reason, code)

    def close(self) -> None:
        """Stop the engine (blocking): asks it to stop, kills it if it has not in 10 s."""
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.fail("the worker is stopping")
            with contextlib.suppress(Exception):
                channel.conn.send(None)  # the engine's signal to stop
            _end(channel)
        self._sender.shutdown(wait=False, cancel_futures=True)


def _end(channel: _Channel, timeout_s: float = 10.0) -> None:
    """Wait for the engine process to end, kill it if it does not, and close the pipe."""
    end_helper(channel.process, channel.conn, timeout_s)


# ---- the engine process ----


def engine_main(conn: Connection, log_level: str) -> None:
    """The engine process: serve batches from ``conn`` until it closes."""
    prepare_helper_process(log_level)
    try:
        asyncio.run(_serve(conn))
        log.info("[ML] prediction engine stopped")
    except Exception as exc:  # reported to the worker, which logs it and fails the batch
        log.exception("[ML] prediction engine failed")
        with contextlib.suppress(OSError, ValueError):
            conn.send((-1, "error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


async def _serve(conn: Connection) -> None:
    settings = load_settings()
    loop = asyncio.get_running_loop()
    path = await build_prediction_path(settings)
    producer = BatchProducer(settings.kafka_bootstrap_servers)
    topics = OutputTopics(settings.topic("predictions"), settings.topic("dead-letters"))
    sender = ThreadPoolExecutor(1, thread_name_prefix="engine-send")
    inbox: asyncio.Queue[tuple[int, list[RawRecord]] | None] = asyncio.Queue()

    def send(message: tuple[int, str, Any]) -> asyncio.Future[None]:
        return loop.run_in_executor(sender, conn.send, message)

    def receive() -> None:
        while True:
            try:
                message = conn.recv()
            except Exception:  # the end of the pipe (EOFError, OSError), or garbage
                message = None
            if not _hand_over(loop, inbox.put_nowait, message):
                return
            if message is None:  # the worker asked to stop, or is gone
                return

    async def handle(batch_id: int, records: list[Inbound]) -> None:
        # Batches overlap: one waits for Kafka's acknowledgement while the next is predicted.
        try:
            summary = await predict_and_send(
                path.predictor, producer, topics, records, path.weather.stats
            )
            answer: tuple[int, str, Any] = (batch_id, "ok", summary)
        except Exception as exc:  # the worker dead-letters the batch itself
            log.exception("[ML] batch of %d bookings failed in the engine", len(records))
            answer = (batch_id, "error", f"{type(exc).__name__}: {exc}")
        try:
            await send(answer)
        except (OSError, ValueError):
            pass  # the worker is gone
        except Exception as exc:  # the answer cannot be pickled: say so instead
            with contextlib.suppress(Exception):
                await send((batch_id, "error", f"unsendable answer: {type(exc).__name__}: {exc}"))

    background = {
        asyncio.create_task(path.flags.run()),
        asyncio.create_task(path.tracking.run()),
        asyncio.create_task(reload_forever(path.models, path.executor)),
    }
    threading.Thread(target=receive, name="engine-receive", daemon=True).start()
    model = path.models.model
    await send(
        (
            -1,
            "ok",
            f"{path.flags.state.describe()} (flags from {path.flags.source}), model "
            + (model.version if model is not None else f"none ({path.models.detail})"),
        )
    )
    handling: set[asyncio.Task[None]] = set()
    try:
        while (message := await inbox.get()) is not None:
            batch_id, records = message
            task = asyncio.create_task(handle(batch_id, [Inbound(*r) for r in records]))
            handling.add(task)
            task.add_done_callback(handling.discard)
    finally:
        for task in background | handling:
            task.cancel()
        await path.aclose()
        await loop.run_in_executor(None, producer.close)
        sender.shutdown(wait=False)


def _hand_over(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> bool:
    """Schedule ``callback`` on ``loop`` from a reader thread; False once the loop has closed
    (the process is stopping, and nobody is left to take the message)."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # "Event loop is closed"
        return False
    return True

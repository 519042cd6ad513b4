"""Where a worker computes and sends its predictions: in a process of its own, or in its loop.

Decoding, weather, routing, the model and the JSON of a batch cost about as much CPU as Faust's
own consumption of it, and one Python process runs on one core. With ``PREDICT_ENGINE=process``
(the default) a predict worker hands each batch's raw records to an engine process: a
:class:`~concurrent.futures.ProcessPoolExecutor` of one process, whose initializer builds the whole
prediction path (:mod:`streams.predict.path`: flags, champion, weather) and a Kafka producer of
its own. Its task predicts a batch, produces the predictions and dead letters, and returns a
small :class:`BatchSummary` once Kafka acknowledged them; only then does the worker release the
batch's offsets. The Faust consumer and the engine use a core each, and the worker keeps several
batches queued for the engine (see :mod:`streams.worker.runtime`).
``PREDICT_ENGINE=inline`` runs :func:`predict_and_send` in the worker's own loop.

The engine watches its worker and ends when it is gone, even one killed with SIGKILL. When the
engine dies, the batches it held fail with :class:`EngineDied`; the next batch starts a new one.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.util
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.process import BaseProcess
from typing import cast

from connectors.kafka import BatchProducer, Record, Undeliverable
from connectors.weather import WeatherStats
from schemas import Arm, DeadLetter, DeadLetterKind
from streams.clock import utc_now
from streams.decode import Inbound, dead_letter
from streams.helper_process import prepare_helper_process
from streams.predict.batch import BatchPredictor, BatchResult
from streams.predict.model_holder import reload_forever
from streams.predict.path import PredictionPath, build_prediction_path
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
    """The engine process ended, or never got ready: a new one may be started."""


class EngineClosed(RuntimeError):
    """The engine was closed (the worker stops): its batches are neither retried nor predicted
    elsewhere, and stay unacknowledged."""


class ProcessEngine:
    """The worker's side of the engine: a process pool of one process, whose initializer builds
    the prediction path and whose task predicts and sends one batch.

    A batch's exception in the engine is raised here as it was raised there. A dead engine fails
    its batches with :class:`EngineDied` and the next :meth:`run` starts a new one; after a failed
    start, no start is tried for ``restart_backoff_s``: :meth:`run` raises :class:`EngineDied` at
    once, and the worker predicts in its own process meanwhile.
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
        self._pool: ProcessPoolExecutor | None = None  # set only once the engine is ready
        self._processes: list[BaseProcess] = []  # the pool's, to end them whatever happens
        self._closed = False
        self._starting = asyncio.Lock()
        self._no_start_before = 0.0
        self.description = "not started"
        self.pid: int | None = None
        self.starts = 0
        self.weather: WeatherStats | None = None  # the engine's latest weather counters

    @property
    def alive(self) -> bool:
        return self._pool is not None

    async def start(self) -> str:
        """Start the engine and wait until it is ready; returns its description (flags,
        model). Raises :class:`EngineDied` when it ends or does not get ready in time."""
        async with self._starting:
            if self._closed:
                raise EngineClosed("the prediction engine was closed: the worker stops")
            if self._pool is not None:
                return self.description
            loop = asyncio.get_running_loop()
            if loop.time() < self._no_start_before:
                raise EngineDied("the prediction engine failed to start a moment ago")
            pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),  # never fork a threaded process
                initializer=engine_init,
                initargs=(self._log_level, os.getpid()),
            )
            try:
                # The first task starts the process (blocking): out of the loop.
                ready = await loop.run_in_executor(None, pool.submit, engine_describe)
                self._processes = _processes_of(pool)
                description, pid = await asyncio.wait_for(
                    asyncio.wrap_future(ready), self._start_timeout_s
                )
            except Exception as exc:  # timed out, ended, or failed while starting
                processes = _processes_of(pool) or self._processes
                self._processes = []
                await loop.run_in_executor(None, _end, pool, processes, 0.0)  # killed at once
                self._no_start_before = loop.time() + self._restart_backoff_s
                reason = str(exc) or type(exc).__name__
                raise EngineDied(f"the prediction engine did not start: {reason}") from None
            self._pool, self.description, self.pid = pool, description, pid
            self.starts += 1
            log.info("[ML] prediction engine ready in process %s", pid)
            return description

    async def run(self, records: list[Inbound]) -> BatchSummary:
        """Predict and send ``records``; returns once Kafka acknowledged their output. Starts
        the engine when it is not running."""
        if self._pool is None:
            await self.start()
        pool = self._pool
        assert pool is not None
        try:
            task = pool.submit(engine_run, [raw(r) for r in records])
        except BrokenExecutor as exc:  # it died while idle: no batch of it noticed yet
            self._lost(pool)
            raise EngineDied(f"the prediction engine ended: {exc}") from None
        except RuntimeError:  # "cannot schedule new futures after shutdown": closed meanwhile
            raise EngineClosed("the prediction engine was closed: the worker stops") from None
        try:
            summary = await asyncio.wrap_future(task)
        except BrokenExecutor as exc:  # the process died: every batch it held fails
            self._lost(pool)
            raise EngineDied(f"the prediction engine ended: {exc}") from None
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this task was cancelled, not the engine's task
            raise EngineClosed("the prediction engine was closed: the worker stops") from None
        if summary.weather is not None:
            self.weather = summary.weather
        return cast(BatchSummary, summary)

    def _lost(self, pool: ProcessPoolExecutor) -> None:
        if self._pool is not pool:
            return  # already noted by another of its batches
        self._pool = None
        processes, self._processes = self._processes, []  # this pool's, not the next one's
        codes = [process.exitcode for process in processes]
        log.error(
            "[ML] the prediction engine ended (exit code %s); the next batch starts a new one",
            codes[0] if codes else None,
        )
        asyncio.get_running_loop().run_in_executor(None, _end, pool, processes, 0.0)

    def close(self) -> None:
        """Stop the engine for good (blocking): it ends after its current batch, or is killed in
        10 s; batches still queued fail with :class:`EngineClosed`."""
        self._closed = True
        pool, self._pool = self._pool, None
        processes, self._processes = self._processes, []
        if pool is not None:
            _end(pool, processes, 10.0)


def _end(pool: ProcessPoolExecutor, processes: list[BaseProcess], timeout_s: float) -> None:
    """Shut ``pool`` down and end its ``processes``: wait up to ``timeout_s``, then kill."""
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout_s)
        if process.is_alive():
            process.kill()
            process.join(5)


def _processes_of(pool: ProcessPoolExecutor) -> list[BaseProcess]:
    """The pool's processes. Python 3.11's pool has no public way to end a process that hangs
    (3.14 adds ``kill_workers``), so the engine keeps them to end them itself."""
    return list((pool._processes or {}).values())


# ---- the engine process ----


@dataclass
class _Engine:
    """What the engine process holds: the prediction path and its producer, driven by an event
    loop in a thread of their own, beside the pool's task thread."""

    loop: asyncio.AbstractEventLoop
    path: PredictionPath
    producer: BatchProducer
    topics: OutputTopics
    background: list[asyncio.Task[None]]


_engine: _Engine | None = None
PARENT_POLL_S = 0.5


def engine_init(log_level: str, parent_pid: int) -> None:
    """The pool's initializer: build the prediction path and start its refresh tasks."""
    global _engine
    prepare_helper_process(log_level)
    threading.Thread(
        target=_watch_parent, args=(parent_pid,), name="engine-parent", daemon=True
    ).start()
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, name="engine-loop", daemon=True).start()
    _engine = asyncio.run_coroutine_threadsafe(_open(loop), loop).result()
    multiprocessing.util.Finalize(None, _close, exitpriority=10)  # when the pool ends it


def _watch_parent(parent_pid: int) -> None:
    """End the engine when its worker is gone, even one killed with SIGKILL: the pool itself
    would wait for its next task forever."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


async def _open(loop: asyncio.AbstractEventLoop) -> _Engine:
    settings = load_settings()
    path = await build_prediction_path(settings)
    producer = BatchProducer(settings.kafka_bootstrap_servers)
    topics = OutputTopics(settings.topic("predictions"), settings.topic("dead-letters"))
    background = [
        asyncio.create_task(path.flags.run()),
        asyncio.create_task(path.tracking.run()),
        asyncio.create_task(reload_forever(path.models, path.executor)),
    ]
    return _Engine(loop, path, producer, topics, background)


def engine_describe() -> tuple[str, int]:
    """The engine's flags and model, in a sentence, and its process id."""
    assert _engine is not None
    path = _engine.path
    model = path.models.model
    return (
        f"{path.flags.state.describe()} (flags from {path.flags.source}), model "
        + (model.version if model is not None else f"none ({path.models.detail})"),
        os.getpid(),
    )


def engine_run(records: list[RawRecord]) -> BatchSummary:
    """Predict and send one batch (the pool's task); returns once Kafka acknowledged it."""
    engine = _engine
    assert engine is not None
    work = predict_and_send(
        engine.path.predictor,
        engine.producer,
        engine.topics,
        [Inbound(*r) for r in records],
        engine.path.weather.stats,
    )
    return asyncio.run_coroutine_threadsafe(work, engine.loop).result()


def _close() -> None:
    engine = _engine
    if engine is None:
        return

    async def close() -> None:
        for task in engine.background:
            task.cancel()
        await engine.path.aclose()
        await asyncio.get_running_loop().run_in_executor(None, engine.producer.close)

    try:
        asyncio.run_coroutine_threadsafe(close(), engine.loop).result(10)
        log.info("[ML] prediction engine stopped")
    except Exception:
        log.exception("[ML] prediction engine did not stop in order")

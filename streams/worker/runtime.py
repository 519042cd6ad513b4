"""Everything a worker holds while it runs, wired from settings, started and stopped with the app.

This is where settings meet connectors for the worker: the Kafka producer, the history recorder
(in a process of its own, :mod:`streams.outcomes.recorder_process`), and the prediction path (flags,
weather, model holder and batch predictor, built by :mod:`streams.predict.path`, which
replays share), in the worker's loop or in its engine process (:mod:`streams.predict.engine`).

Bookings go through a pipeline: the agent hands over a batch and takes the next while earlier
ones are predicted, then produced, then acknowledged. A batch's source offsets are released for
commit only once Kafka acknowledged its output, so a worker that dies loses nothing; its
unacknowledged batches are consumed again (at least once). At most ``PIPELINE_DEPTH`` batches
are in flight, so the pipeline bounds memory and the agent feels its back-pressure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import MutableMapping
from typing import Any, NoReturn, cast

import faust
from aiokafka.errors import KafkaError
from faust.types import EventT, TableT
from mode import Service
from sqlalchemy.exc import SQLAlchemyError
from tenacity import AsyncRetrying, retry_if_exception_type

from connectors.failures import CHANGELOG_WAIT, note_wait
from connectors.kafka import BatchProducer
from connectors.postgres import history, make_engine
from streams.clock import utc_now
from streams.decode import Inbound
from streams.outcomes.join_handler import JoinHandler
from streams.outcomes.recorder_process import RecorderProcess
from streams.predict.engine import (
    BatchSummary,
    EngineDied,
    OutputTopics,
    ProcessEngine,
    failed_batch,
    predict_and_send,
    send_result,
)
from streams.predict.model_holder import reload_forever
from streams.predict.path import build_prediction_path, initial_flags
from streams.settings import PredictEngine, Settings
from streams.worker import diagnostics
from streams.worker.metrics import FLUSH_INTERVAL_S, WorkerMetrics, flush, metrics_key

__all__ = ["Runtime", "inbound", "initial_flags"]

log = logging.getLogger("delaycast.worker")

STATS_INTERVAL_S = 10.0
EXIT_HALTED = 70  # EX_SOFTWARE: a batch failed in a way that must not be committed
PIPELINE_DEPTH = 8  # batches in flight: predicted, sent or awaiting their acknowledgement


def inbound(event: EventT) -> Inbound:
    message = event.message
    return Inbound(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        # Kafka's -1 (no timestamp) must not read as 1970.
        timestamp_ms=message.timestamp * 1000.0
        if message.timestamp and message.timestamp > 0
        else None,
    )


class Runtime(Service):
    """Started and stopped with ``app``, as its dependency
    (:func:`streams.worker.app.create_app`)."""

    def __init__(self, app: faust.App, settings: Settings, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.app = app
        self.settings = settings
        self._ready = asyncio.Event()
        self.totals: Counter[str] = Counter()
        self.metrics = WorkerMetrics()  # flushed to Redis for the API's /metrics
        self.joiner: JoinHandler | None = None
        self.prediction_engine: ProcessEngine | None = None
        self._inline_fallback = False  # predicting here while the engine cannot start
        # The bookings in flight, oldest first: each batch's events and its prediction.
        self._in_flight: asyncio.Queue[tuple[list[EventT], asyncio.Future[BatchSummary]]] = (
            asyncio.Queue(maxsize=PIPELINE_DEPTH)
        )

    async def on_start(self) -> None:
        # `kill -USR2 <pid>`: what each task waits on, in the log (from now on; mode's own
        # SIGUSR2 handler would open a debugger on a worker stuck in its start).
        diagnostics.install(self.app)
        s = self.settings
        engine_process = s.predict_engine is PredictEngine.PROCESS and s.runs_predict
        # The engine process holds the model; this one needs the forest only when it predicts.
        path = await build_prediction_path(s, load_model=s.runs_predict and not engine_process)
        self.executor, self.model_executor = path.executor, path.model_executor
        self.redis, self.flags, self.models = path.redis, path.flags, path.models
        self.tracking = path.tracking
        self.weather, self.predictor = path.weather, path.predictor
        self.producer = BatchProducer(s.kafka_bootstrap_servers)
        # Faust pauses every stream of the worker while its producer holds more than
        # ``max_messages`` (100) unsent messages. Only the join's table writes go through that
        # producer, and the join drains them itself after each batch and sweep chunk; a bound
        # above the largest batch keeps a join batch from pausing the predict agent's input.
        self.app.producer.buffer.max_messages = max(2_000, 4 * s.batch_max)
        self.engine = make_engine(s.database_url.get_secret_value())
        if s.runs_outcomes:  # history, alerts and drift belong to the outcome path
            self.recorder = RecorderProcess(s.log_level)
            await asyncio.get_running_loop().run_in_executor(None, self.recorder.start)
        self.predictions_topic = s.topic("predictions")
        self.dead_letters_topic = s.topic("dead-letters")
        description = None
        if engine_process:
            self.prediction_engine = ProcessEngine(
                s.log_level, start_timeout_s=s.predict_engine_start_timeout_s
            )
            try:
                description = await self.prediction_engine.start()
            except EngineDied as exc:
                log.error("[ML] %s; predicting in this process until it starts", exc)
                self._inline_fallback = True
                await asyncio.get_running_loop().run_in_executor(
                    self.executor, self.models.reload_if_changed
                )
        if description is None:
            description = f"{self.flags.state.describe()} (flags from {self.flags.source}), " + (
                "model not loaded (this role does not predict)"
                if not s.runs_predict
                else f"model {self.models.model.version}"
                if self.models.model
                else f"model none ({self.models.detail})"
            )
        self._ready.set()
        log.info(
            "[ML] worker ready (role %s, group %s, predicting %s): %s",
            s.worker_role.value,
            s.worker_group,
            "in an engine process"
            if engine_process and not self._inline_fallback
            else "in this process"
            if s.runs_predict
            else "nothing",
            description,
        )

    async def wait_until_ready(self) -> None:
        await self._ready.wait()

    async def wait_for_changelog(self, table: TableT[bytes, Any]) -> None:
        """Wait until Faust's producer knows the table's changelog partitions.

        A table write picks its changelog partition from the producer's metadata, synchronously:
        a topic created a moment ago and not yet in that metadata makes the write raise.
        """
        topic = table.changelog_topic.get_topic_name()
        # aiokafka's producer, which Faust's table writes go through (no public accessor)
        producer = cast(Any, self.app.producer)._ensure_producer()
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(KafkaError),
            wait=CHANGELOG_WAIT,
            sleep=self.sleep,
            before_sleep=note_wait(log, f"[Kafka] waiting for the changelog {topic}"),
        ):
            with attempt:
                await producer.partitions_for(topic)  # refreshes the metadata until it has them

    def join_handler(self, table: MutableMapping[bytes, Any]) -> JoinHandler:
        s = self.settings
        self.joiner = JoinHandler(
            table=table,
            producer=self.producer,
            predictions_topic=s.topic("predictions"),
            outcomes_topic=s.topic("outcomes"),
            dead_letters_topic=s.topic("dead-letters"),
            routed_topic=s.topic("actual-delays-routed"),
            partitions=s.topic_partitions,
            horizon_s=s.join_horizon_days * 86400.0,
            done_retention_s=s.join_done_retention_minutes * 60.0,
            # Expiry in chunks of half the producer's bound: each chunk goes out without pausing
            # the streams, and few drains (one round trip to Kafka each) keep expiry ahead of
            # the joins (chunks of 200 expired about 1,200 markers/s, no more than they came).
            chunk=self.app.producer.buffer.max_messages // 2,
            contract=s.contract,
            clock=utc_now,
            ebb=self.drain_changelog,
        )
        return self.joiner

    async def drain_changelog(self) -> None:
        """Wait until Kafka has acknowledged the table writes buffered so far.

        The join's input offsets may be committed once the join takes its next batch, so its
        changelog must be durable first: a worker killed after the commit would otherwise lose
        pending entries (and their outcomes) for good. Faust's own flush gives up after 0.1 s
        without progress, busy loop or not, so it is repeated until the buffer is empty; then the
        producer's flush waits for Kafka's acknowledgements.
        """
        buffer = self.app.producer.buffer
        while buffer.size:
            await buffer.flush()
        await self.app.producer.flush()

    @Service.task
    async def _watch_flags(self) -> None:
        await self._ready.wait()
        # The flags, and the tracked P90 sums the outcome path writes beside them.
        await asyncio.gather(self.flags.run(), self.tracking.run())

    @Service.task
    async def _reload_models(self) -> None:
        await self._ready.wait()
        if self.settings.runs_predict and self.prediction_engine is None:  # else the engine reloads
            await reload_forever(self.models, self.executor)

    @Service.task
    async def _log_stats(self) -> None:
        await self._ready.wait()
        while not self.should_stop:
            await self.sleep(STATS_INTERVAL_S)
            t = self.totals
            log.info(
                "[ML] totals: %d bookings, %d predictions (%d ML), %d fallbacks, "
                "%d dead letters; weather %s",
                t["bookings"],
                t["predictions"],
                t["ml_served"],
                t["fallbacks"],
                t["dead_letters"],
                self._weather_stats(),
            )

    @Service.task
    async def _flush_metrics(self) -> None:
        await self._ready.wait()
        while not self.should_stop:
            await self.sleep(FLUSH_INTERVAL_S)
            await self._flush_metrics_once()

    def _weather_stats(self) -> Any:
        """The running weather counters of whichever process looks weather up."""
        if self.prediction_engine is not None:
            return self.prediction_engine.weather or self.weather.stats()
        return self.weather.stats()

    async def _flush_metrics_once(self) -> None:
        self.metrics.record_weather(self._weather_stats())
        await flush(self.redis, metrics_key(self.settings), self.metrics)

    async def submit_bookings(self, events: list[EventT]) -> None:
        """Hand a batch to the pipeline; returns as soon as it is queued (waits while
        ``PIPELINE_DEPTH`` batches are in flight). Its offsets stay uncommitted until Kafka
        acknowledged its output."""
        for event in events:
            event.message.incref()  # released in _acknowledge
        records = [inbound(event) for event in events]
        await self._in_flight.put((events, asyncio.ensure_future(self._predict(records))))

    async def _predict(self, records: list[Inbound]) -> BatchSummary:
        """Predict and send a batch. A prediction that fails becomes dead letters; an engine
        that died is replaced, and while none can start the batch is predicted in this process.
        Only a failure to send to Kafka raises (and stops the worker: nothing is committed)."""
        topics = OutputTopics(self.predictions_topic, self.dead_letters_topic)
        engine = self.prediction_engine
        if engine is not None:
            try:
                try:
                    summary = await engine.run(records)
                except EngineDied:  # killed (out of memory, a signal): once more on a new one
                    summary = await engine.run(records)
            except EngineDied as exc:
                if not self._inline_fallback:
                    log.error("[ML] %s; predicting in this process until it is back", exc)
                self._inline_fallback = True
            except Exception as exc:  # the engine's own error for this batch
                log.error("[ML] batch of %d bookings failed in the engine: %s", len(records), exc)
                failed = failed_batch(records, exc, utc_now())
                return await send_result(self.producer, topics, records, failed)
            else:
                if self._inline_fallback:
                    log.info("[ML] the prediction engine is back")
                    self._inline_fallback = False
                return summary
            # The same path in this process; the model is loaded here only when needed.
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.executor, self.models.reload_if_changed)
        return await predict_and_send(self.predictor, self.producer, topics, records)

    @Service.task
    async def _acknowledge(self) -> None:
        """In order, once Kafka acknowledged a batch's output: release its source offsets for
        commit, and count it."""
        await self._ready.wait()
        while not self.should_stop:
            events, prediction = await self._in_flight.get()
            summary = await prediction
            self.release(events)
            self._count(summary)

    @staticmethod
    def halt(what: str, exc: BaseException) -> NoReturn:
        """End the worker at once, committing nothing more.

        An orderly stop would commit every offset acked so far, and Faust acks the events it
        still buffers, or a restarted agent's later batches, past a failed one. Exiting here
        leaves the committed offsets where they are: the failed batch and all after it are
        consumed again by the next worker. The helper processes end with their pipes.
        """
        log.critical(
            "[ML] %s: %r; the worker exits now, so that none of it is committed", what, exc
        )
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        os._exit(EXIT_HALTED)

    def release(self, events: list[EventT]) -> None:
        """Ack events held with ``incref``: their offsets may be committed now."""
        on_message_out = self.app.sensors.on_message_out
        for event in events:
            if event.ack():
                message = event.message
                on_message_out(message.tp, message.offset, message)

    def _count(self, summary: BatchSummary) -> None:
        if summary.dead_letters:
            log.warning(
                "[ML] %d events sent to %s: %s",
                summary.dead_letters,
                self.dead_letters_topic,
                (summary.first_error or "")[:200],
            )
        t = self.totals
        t["bookings"] += summary.bookings
        t["predictions"] += summary.predictions
        t["ml_served"] += summary.ml_served
        t["fallbacks"] += sum(summary.fallbacks.values())
        t["dead_letters"] += summary.dead_letters
        self.metrics.record_batch(
            bookings=summary.bookings,
            predictions=summary.served,
            fallbacks=summary.fallbacks,
            dead_letters=summary.dead_letter_kinds,
        )

    async def flush_join_counters(self) -> None:
        """Add the join's counters (outcomes, duplicates, expired) since the last flush to
        PostgreSQL's pipeline_counters; kept for the next flush while PostgreSQL is down."""
        if self.joiner is None:
            return
        snapshot = Counter({k: v for k, v in self.joiner.counters.items() if v})
        deltas = {f"join.{k}": v for k, v in snapshot.items()}
        if not deltas:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                self.executor, lambda: history.add_counters(self.engine, deltas=deltas)
            )
        except SQLAlchemyError as exc:
            log.warning("[ML] join counters not recorded yet (%s); will retry", type(exc).__name__)
            return
        # Only what was written: the join may have counted more while this waited.
        self.joiner.counters.subtract(snapshot)

    async def on_stop(self) -> None:
        if self.prediction_engine is not None:  # first: nothing below may keep it running
            await asyncio.get_running_loop().run_in_executor(None, self.prediction_engine.close)
        if hasattr(self, "recorder"):
            await asyncio.get_running_loop().run_in_executor(None, self.recorder.stop)
        if hasattr(self, "producer"):
            left = await asyncio.get_running_loop().run_in_executor(None, self.producer.close)
            if left:
                log.error("[Kafka] %d records left undelivered at shutdown", left)
        if hasattr(self, "redis") and hasattr(self, "weather"):
            await self._flush_metrics_once()  # never raises; bounded by the client's timeouts
        if hasattr(self, "weather"):
            await self.weather.aclose()
        if hasattr(self, "redis"):
            await self.redis.aclose()
        for name in ("executor", "model_executor"):
            if hasattr(self, name):
                getattr(self, name).shutdown(wait=False, cancel_futures=True)

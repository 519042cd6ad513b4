"""What a worker holds while it runs, wired from settings, started and stopped with the app.

The :class:`Runtime` holds what both paths share: the prediction path's flags, weather and model
holder (:mod:`streams.predict.path`), the Kafka producer, and the worker's metrics. It runs the
services of the worker's role as its children, each owning and closing what it opens:

- :class:`~streams.predict.pipeline.PredictionPipeline`: bookings in, predictions out, in the
  engine process (:mod:`streams.predict.engine`) or in this one;
- :class:`~streams.outcomes.pipeline.JoinPipeline`: predictions and actuals in, outcomes out,
  with the history recorder process.

Children stop after the runtime's ``on_stop`` and before its ``on_shutdown``, so what they use
(the producer, Redis) is closed in ``on_shutdown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from typing import Any, NoReturn, cast

import faust
from aiokafka.errors import KafkaError
from faust.types import EventT, TableT
from mode import Service
from tenacity import AsyncRetrying, retry_if_exception_type

from connectors.failures import CHANGELOG_WAIT, note_wait
from connectors.kafka import BatchProducer
from streams.decode import Inbound
from streams.outcomes.pipeline import JoinPipeline
from streams.predict.engine import BatchSummary
from streams.predict.path import build_prediction_path, initial_flags
from streams.predict.pipeline import PredictionPipeline
from streams.settings import Settings
from streams.worker import diagnostics
from streams.worker.metrics import FLUSH_INTERVAL_S, WorkerMetrics, flush, metrics_key

__all__ = ["Runtime", "inbound", "initial_flags"]

log = logging.getLogger("delaycast.worker")

STATS_INTERVAL_S = 10.0
EXIT_HALTED = 70  # EX_SOFTWARE: a batch failed in a way that must not be committed


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
        self.predictions: PredictionPipeline | None = None  # when the role predicts
        self.outcomes: JoinPipeline | None = None  # when the role joins

    async def on_start(self) -> None:
        # `kill -USR2 <pid>`: what each task waits on, in the log (from now on; mode's own
        # SIGUSR2 handler would open a debugger on a worker stuck in its start).
        diagnostics.install(self.app)
        s = self.settings
        # The engine process holds the model; this one loads it only when it predicts itself.
        path = await build_prediction_path(s, load_model=False)
        self.executor, self.model_executor = path.executor, path.model_executor
        self.redis, self.flags, self.models = path.redis, path.flags, path.models
        self.tracking, self.weather = path.tracking, path.weather
        self.producer = BatchProducer(s.kafka_bootstrap_servers)
        # Faust pauses every stream of the worker while its producer holds more than
        # ``max_messages`` (100) unsent messages. Only the join's table writes go through that
        # producer, and the join drains them itself after each batch and sweep chunk; a bound
        # above the largest batch keeps a join batch from pausing the predict agent's input.
        self.app.producer.buffer.max_messages = max(2_000, 4 * s.batch_max)
        self.dead_letters_topic = s.topic("dead-letters")
        description = f"{self.flags.state.describe()} (flags from {self.flags.source}), " + (
            "model not loaded (this role does not predict)"
        )
        if s.runs_outcomes:
            self.outcomes = JoinPipeline(
                s,
                self.producer,
                # Expiry in chunks of half the producer's bound: each chunk goes out without
                # pausing the streams, and few drains (one round trip to Kafka each) keep
                # expiry ahead of the joins (chunks of 200 expired about 1,200 markers/s).
                chunk=self.app.producer.buffer.max_messages // 2,
                ebb=self.drain_changelog,
            )
            await self.add_runtime_dependency(self.outcomes)
        if s.runs_predict:
            self.predictions = PredictionPipeline(s, path, self.producer, self._batch_done)
            await self.add_runtime_dependency(self.predictions)
            description = self.predictions.description
        self._ready.set()
        log.info(
            "[ML] worker ready (role %s, group %s, predicting %s): %s",
            s.worker_role.value,
            s.worker_group,
            self.predictions.where if self.predictions else "nothing",
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
        if self.predictions is not None:
            return self.predictions.weather_stats()
        return self.weather.stats()

    async def _flush_metrics_once(self) -> None:
        self.metrics.record_weather(self._weather_stats())
        await flush(self.redis, metrics_key(self.settings), self.metrics)

    def _batch_done(self, events: list[EventT], summary: BatchSummary) -> None:
        """A batch of bookings whose output Kafka acknowledged: release it for commit, count it."""
        self.release(events)
        self._count(summary)

    @staticmethod
    def halt(what: str, exc: BaseException) -> NoReturn:
        """End the worker at once, committing nothing more.

        An orderly stop would commit every offset acked so far, and Faust acks the events it
        still buffers, or a restarted agent's later batches, past a failed one. Exiting here
        leaves the committed offsets where they are: the failed batch and all after it are
        consumed again by the next worker. The helper processes end once their worker is gone.
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

    async def on_shutdown(self) -> None:
        """After the pipelines stopped: close what they shared."""
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

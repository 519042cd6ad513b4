"""Everything a worker holds while it runs, wired from settings, started and stopped with the app.

This is where settings meet connectors for the worker: the Kafka producer, the recorder, and the
prediction path (flags, weather, model holder and batch predictor, built by
:mod:`streams.prediction_wiring`, which replays share).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import MutableMapping
from typing import Any

from mode import Service
from sqlalchemy.exc import SQLAlchemyError

from connectors.kafka import BatchProducer, Record
from connectors.postgres import history, make_engine
from schemas import DeadLetterKind
from streams.app import app, settings
from streams.clock import utc_now
from streams.decode import Inbound, dead_letter
from streams.join_handler import JoinHandler
from streams.predict_batch import BatchResult
from streams.prediction_wiring import build_prediction_path, initial_flags
from streams.recorder_wiring import RecorderThread, build_recorder
from streams.settings import Settings
from streams.worker_metrics import FLUSH_INTERVAL_S, WorkerMetrics, flush, metrics_key

__all__ = ["Runtime", "initial_flags", "runtime"]

log = logging.getLogger("delaycast.worker")

MODEL_RELOAD_INTERVAL_S = 5.0
STATS_INTERVAL_S = 10.0


class Runtime(Service):
    def __init__(self, settings: Settings, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self._ready = asyncio.Event()
        self.totals: Counter[str] = Counter()
        self.metrics = WorkerMetrics()  # flushed to Redis for the API's /metrics
        self.joiner: JoinHandler | None = None

    async def on_start(self) -> None:
        s = self.settings
        path = await build_prediction_path(s, load_model=s.runs_predict)
        self.executor, self.model_executor = path.executor, path.model_executor
        self.redis, self.flags, self.models = path.redis, path.flags, path.models
        self.weather, self.predictor = path.weather, path.predictor
        self.producer = BatchProducer(s.kafka_bootstrap_servers)
        # Faust pauses every stream of the worker while its producer holds more than
        # ``max_messages`` (100) unsent messages. Only the join's table writes go through that
        # producer, and the join drains them itself after each batch and sweep chunk; a bound
        # above the largest batch keeps a join batch from pausing the predict agent's input.
        app.producer.buffer.max_messages = max(2_000, 4 * s.batch_max)
        self.engine = make_engine(s.database_url.get_secret_value())
        if s.runs_outcomes:  # history, alerts and drift belong to the outcome path
            self.recorder = RecorderThread(build_recorder(s, self.engine), self.engine)
            self.recorder.start()
        self.predictions_topic = s.topic("predictions")
        self.dead_letters_topic = s.topic("dead-letters")
        self._ready.set()
        log.info(
            "[ML] worker ready (role %s, group %s): %s (flags from %s), model %s",
            s.worker_role.value,
            s.worker_group,
            self.flags.state.describe(),
            self.flags.source,
            (
                "not loaded (this role does not predict)"
                if not s.runs_predict
                else self.models.model.version
                if self.models.model
                else f"none ({self.models.detail})"
            ),
        )

    async def wait_until_ready(self) -> None:
        await self._ready.wait()

    def join_handler(self, table: MutableMapping[bytes, Any]) -> JoinHandler:
        s = self.settings
        self.joiner = JoinHandler(
            table=table,
            producer=self.producer,
            predictions_topic=s.topic("predictions"),
            outcomes_topic=s.topic("outcomes"),
            dead_letters_topic=s.topic("dead-letters"),
            horizon_s=s.join_horizon_days * 86400.0,
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
        buffer = app.producer.buffer
        while buffer.size:
            await buffer.flush()
        await app.producer.flush()

    @Service.task
    async def _watch_flags(self) -> None:
        await self._ready.wait()
        await self.flags.run()

    @Service.task
    async def _reload_models(self) -> None:
        await self._ready.wait()
        if not self.settings.runs_predict:
            return
        loop = asyncio.get_running_loop()
        while not self.should_stop:
            await self.sleep(MODEL_RELOAD_INTERVAL_S)
            await loop.run_in_executor(self.executor, self.models.reload_if_changed)

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
                self.weather.stats(),
            )

    @Service.task
    async def _flush_metrics(self) -> None:
        await self._ready.wait()
        while not self.should_stop:
            await self.sleep(FLUSH_INTERVAL_S)
            await self._flush_metrics_once()

    async def _flush_metrics_once(self) -> None:
        self.metrics.record_weather(self.weather.stats())
        await flush(self.redis, metrics_key(self.settings), self.metrics)

    async def handle_bookings(self, records: list[Inbound]) -> None:
        """Predict a batch and wait until Kafka acknowledged every output record."""
        try:
            result = await self.predictor.run(records)
        except Exception as exc:
            # A bug must not stop the stream nor lose the batch: dead-letter it, to requeue later.
            log.exception(
                "[ML] batch of %d bookings failed; sending it to dead-letters", len(records)
            )
            now = utc_now()
            reason = f"processing failed: {type(exc).__name__}: {exc}"
            letters = [
                dead_letter(r, DeadLetterKind.PROCESSING, reason, agent="predict", now=now)
                for r in records
            ]
            result = BatchResult([], letters)
        out = [
            Record(self.predictions_topic, p.booking_id.encode(), p.model_dump_json().encode())
            for p in result.predictions
        ]
        out.extend(
            Record(self.dead_letters_topic, d.source_key, d.model_dump_json().encode())
            for d in result.dead_letters
        )
        started = time.perf_counter()
        await self.producer.send_batch(out)
        send_ms = (time.perf_counter() - started) * 1000
        if result.dead_letters:
            log.warning(
                "[ML] %d events sent to %s: %s",
                len(result.dead_letters),
                self.dead_letters_topic,
                result.dead_letters[0].error[:200],
            )
        t = self.totals
        t["bookings"] += len(records)
        t["predictions"] += len(result.predictions)
        t["ml_served"] += result.ml_served
        t["fallbacks"] += sum(result.fallbacks.values())
        t["dead_letters"] += len(result.dead_letters)
        self.metrics.record_batch(
            bookings=len(records),
            predictions=result.predictions,
            fallbacks=result.fallbacks,
            dead_letters=len(result.dead_letters),
        )
        log.debug("batch of %d handled, output acknowledged in %.1f ms", len(records), send_ms)

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


runtime = Runtime(settings)
app.add_dependency(runtime)

"""Everything a worker holds while it runs, wired from settings, started and stopped with the app.

This is the one place where settings meet connectors: the Kafka producer, the Redis clients for
flags and the weather cache, the weather provider, the model holder and the batch predictor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
import redis.asyncio as aioredis
from mode import Service
from sqlalchemy.exc import SQLAlchemyError

from connectors.flags import FlagState, FlagStore, FlagWatcher
from connectors.kafka import BatchProducer, Record
from connectors.postgres import history, make_engine
from schemas import DeadLetterKind
from streams.app import app, settings
from streams.clock import utc_now
from streams.decode import Inbound, dead_letter
from streams.join_handler import JoinHandler
from streams.model_holder import ModelHolder
from streams.predict_batch import BatchPredictor, BatchResult, RiskThresholds
from streams.recorder_wiring import RecorderThread, build_recorder
from streams.settings import Settings
from streams.weather_wiring import build_weather_service

log = logging.getLogger("delaycast.worker")

MODEL_RELOAD_INTERVAL_S = 5.0
STATS_INTERVAL_S = 10.0


def initial_flags(settings: Settings) -> FlagState:
    return FlagState(
        ml_enabled=settings.ml_enabled,
        ml_traffic_percentage=settings.ml_traffic_percentage,
        salt=settings.ml_hash_salt,
    )


class Runtime(Service):
    def __init__(self, settings: Settings, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self._ready = asyncio.Event()
        self.totals: Counter[str] = Counter()
        self.joiner: JoinHandler | None = None

    async def on_start(self) -> None:
        s = self.settings
        self.executor = ThreadPoolExecutor(s.worker_threads, thread_name_prefix="delaycast-io")
        # The model gets its own thread: blocked I/O (a hanging weather API) must never delay it.
        self.model_executor = ThreadPoolExecutor(1, thread_name_prefix="delaycast-model")
        loop = asyncio.get_running_loop()
        redis_url = s.redis_url.get_secret_value()
        self.redis = aioredis.Redis.from_url(
            redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        await loop.run_in_executor(self.executor, self._initialize_flags, redis_url)
        self.flags = FlagWatcher(
            self.redis,
            s.flags_redis_key,
            initial_flags(s),
            interval_s=s.flags_poll_interval_s,
        )
        await self.flags.refresh()
        self.models = ModelHolder(s.model_dir)
        await loop.run_in_executor(self.executor, self.models.reload_if_changed)
        self.weather = build_weather_service(s, executor=self.executor)
        self.producer = BatchProducer(s.kafka_bootstrap_servers)
        self.predictor = BatchPredictor(
            weather=self.weather,
            flags=self.flags,
            models=self.models,
            risk=RiskThresholds(s.risk_medium_minutes, s.risk_high_minutes),
            clock=utc_now,
            model_executor=self.model_executor,
            weather_wait_s=s.weather_wait_ms / 1000.0,
        )
        # Faust pauses every stream of the worker while its producer holds more than
        # ``max_messages`` (100) unsent messages. Only the join's table writes go through that
        # producer, and the join drains them itself after each batch and sweep chunk; a bound
        # above the largest batch keeps a join batch from pausing the predict agent's input.
        app.producer.buffer.max_messages = max(2_000, 4 * s.batch_max)
        self.engine = make_engine(s.database_url.get_secret_value())
        self.recorder = RecorderThread(build_recorder(s, self.engine), self.engine)
        self.recorder.start()
        self.predictions_topic = s.topic("predictions")
        self.dead_letters_topic = s.topic("dead-letters")
        self._ready.set()
        log.info(
            "[ML] worker ready: %s (flags from %s), model %s",
            self.flags.state.describe(),
            self.flags.source,
            self.models.model.version if self.models.model else f"none ({self.models.detail})",
        )

    def _initialize_flags(self, redis_url: str) -> None:
        """Write the settings' initial flags when Redis has none yet."""
        client = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
        try:
            FlagStore(client, self.settings.flags_redis_key).initialize(
                initial_flags(self.settings)
            )
        except (redis.RedisError, OSError) as exc:
            log.warning("[FeatureFlag] cannot initialize flags in Redis: %s", exc)
        finally:
            client.close()

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
        """Wait until Faust's producer has sent the table writes buffered so far."""
        await app.producer.buffer.flush()

    @Service.task
    async def _watch_flags(self) -> None:
        await self._ready.wait()
        await self.flags.run()

    @Service.task
    async def _reload_models(self) -> None:
        await self._ready.wait()
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
        if hasattr(self, "weather"):
            await self.weather.aclose()
        if hasattr(self, "redis"):
            await self.redis.aclose()
        for name in ("executor", "model_executor"):
            if hasattr(self, name):
                getattr(self, name).shutdown(wait=False, cancel_futures=True)


runtime = Runtime(settings)
app.add_dependency(runtime)

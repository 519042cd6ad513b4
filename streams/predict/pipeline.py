"""The prediction path as a service: bookings in, predictions in Kafka, offsets released in order.

A batch handed to :meth:`PredictionPipeline.submit` is predicted in the engine process
(:mod:`streams.predict.engine`), or in this process (``PREDICT_ENGINE=inline``, or while no engine
can start), and its predictions and dead letters are sent; the submitter takes its next batch
meanwhile. In the order of submission, once Kafka acknowledged a batch's output,
``on_done(batch, summary)`` is called: that is when its source offsets may be committed, so a
worker that dies loses nothing (its unacknowledged batches are consumed again: at least once). At
most ``PIPELINE_DEPTH`` batches are in flight, so memory is bounded and the submitter feels the
back-pressure.

The pipeline owns what it opens, the engine process, and closes it when it stops. The prediction
path (flags, model holder, weather) and the producer it is given belong to its caller, which the
replay shares.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from mode import Service

from connectors.kafka import BatchProducer
from connectors.weather import WeatherStats
from streams.clock import utc_now
from streams.decode import Inbound
from streams.predict.engine import (
    BatchSummary,
    EngineClosed,
    EngineDied,
    OutputTopics,
    ProcessEngine,
    failed_batch,
    predict_and_send,
    send_result,
)
from streams.predict.model_holder import reload_forever
from streams.predict.path import PredictionPath
from streams.settings import PredictEngine, Settings

log = logging.getLogger("delaycast.worker")

PIPELINE_DEPTH = 8  # batches in flight: predicted, sent or awaiting their acknowledgement


class PredictionPipeline(Service):
    def __init__(
        self,
        settings: Settings,
        path: PredictionPath,
        producer: BatchProducer,
        on_done: Callable[[Any, BatchSummary], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.path = path
        self.producer = producer
        self.on_done = on_done
        self.topics = OutputTopics(settings.topic("predictions"), settings.topic("dead-letters"))
        self.engine: ProcessEngine | None = None
        self.inline_fallback = False  # predicting here while the engine cannot start
        self.description = ""  # flags and model, once started
        self._started_event = asyncio.Event()
        # The batches in flight, oldest first: each one's token and its prediction.
        self._in_flight: asyncio.Queue[tuple[Any, asyncio.Future[BatchSummary]]] = asyncio.Queue(
            maxsize=PIPELINE_DEPTH
        )

    @property
    def where(self) -> str:
        """Where predictions are made, for the worker's ready line."""
        return (
            "in an engine process"
            if self.engine and not self.inline_fallback
            else ("in this process")
        )

    async def on_start(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        if s.predict_engine is PredictEngine.PROCESS:
            self.engine = ProcessEngine(
                s.log_level, start_timeout_s=s.predict_engine_start_timeout_s
            )
            try:
                self.description = await self.engine.start()
            except EngineDied as exc:
                log.error("[ML] %s; predicting in this process until it starts", exc)
                self.inline_fallback = True
        if self.engine is None or self.inline_fallback:
            path = self.path
            await loop.run_in_executor(path.executor, path.models.reload_if_changed)
            model = path.models.model
            self.description = (
                f"{path.flags.state.describe()} (flags from {path.flags.source}), "
                + (f"model {model.version}" if model else f"model none ({path.models.detail})")
            )
        self._started_event.set()

    async def submit(self, batch: Any, records: list[Inbound]) -> None:
        """Hand a batch over; returns once it is queued (waits while ``PIPELINE_DEPTH`` batches
        are in flight). ``batch`` is the caller's token, given back to ``on_done``."""
        await self._in_flight.put((batch, asyncio.ensure_future(self._predict(records))))

    def weather_stats(self) -> WeatherStats:
        """The running weather counters of whichever process looks weather up."""
        if self.engine is not None and self.engine.weather is not None:
            return self.engine.weather
        return self.path.weather.stats()

    async def _predict(self, records: list[Inbound]) -> BatchSummary:
        """Predict and send a batch. A prediction that fails becomes dead letters; an engine
        that died is replaced, and while none can start the batch is predicted in this process.
        Only a failure to send to Kafka raises (and stops the worker: nothing is committed)."""
        engine = self.engine
        if engine is not None:
            try:
                try:
                    summary = await engine.run(records)
                except EngineDied:  # killed (out of memory, a signal): once more on a new one
                    summary = await engine.run(records)
            except EngineClosed:
                raise  # the worker stops: the batch stays unacknowledged, read again later
            except EngineDied as exc:
                if not self.inline_fallback:
                    log.error("[ML] %s; predicting in this process until it is back", exc)
                self.inline_fallback = True
            except Exception as exc:  # the engine's own error for this batch
                log.error(
                    "[ML] batch of %d bookings failed in the engine: %s",
                    len(records),
                    exc,
                    exc_info=exc,  # with the engine's traceback
                )
                failed = failed_batch(records, exc, utc_now())
                return await send_result(self.producer, self.topics, records, failed)
            else:
                if self.inline_fallback:
                    log.info("[ML] the prediction engine is back")
                    self.inline_fallback = False
                return summary
            # The same path in this process; the model is loaded here only when needed.
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.path.executor, self.path.models.reload_if_changed)
        return await predict_and_send(self.path.predictor, self.producer, self.topics, records)

    @Service.task
    async def _acknowledge(self) -> None:
        """In order, once Kafka acknowledged a batch's output, hand it to ``on_done``."""
        await self._started_event.wait()
        while not self.should_stop:
            batch, prediction = await self._in_flight.get()
            try:
                summary = await prediction
            except EngineClosed:
                return  # stopping: this batch and those after it stay unacknowledged
            self.on_done(batch, summary)

    @Service.task
    async def _reload_models(self) -> None:
        await self._started_event.wait()
        if self.engine is None:  # else the engine reloads its own
            await reload_forever(self.path.models, self.path.executor)

    async def on_stop(self) -> None:
        if self.engine is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.engine.close)

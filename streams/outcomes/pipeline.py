"""The outcome path as a service: predictions and actual delays in, outcomes and history out.

:class:`JoinPipeline` owns what the outcome path opens in a worker and closes it when it stops:
the history recorder process (:mod:`streams.outcomes.recorder_process`), which writes the
outcomes to PostgreSQL, and the database engine the join's counters go through. The join agent
gets its batch step from :meth:`JoinPipeline.handler` (:mod:`streams.outcomes.join_handler`),
and the expiry timer calls :meth:`JoinPipeline.sweep`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mode import Service
from sqlalchemy.exc import SQLAlchemyError

from connectors.kafka import BatchProducer
from connectors.postgres import history, make_engine
from streams.clock import utc_now
from streams.outcomes.join_handler import JoinHandler
from streams.outcomes.recorder_process import RecorderProcess
from streams.settings import Settings

log = logging.getLogger("delaycast.worker")


class JoinPipeline(Service):
    def __init__(
        self,
        settings: Settings,
        producer: BatchProducer,
        *,
        chunk: int,
        ebb: Callable[[], Awaitable[None]],
        **kwargs: Any,
    ) -> None:
        """``producer`` sends outcomes, routed actuals and dead letters; ``ebb`` waits until the
        join table's buffered writes are in Kafka; the sweep expires in chunks of ``chunk``."""
        super().__init__(**kwargs)
        self.settings = settings
        self.producer = producer
        self.chunk = chunk
        self.ebb = ebb
        self.joiner: JoinHandler | None = None
        self.recorder = RecorderProcess(settings.log_level)
        self.database = make_engine(settings.database_url.get_secret_value())

    async def on_start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.recorder.start)

    def handler(self, table: MutableMapping[bytes, Any]) -> JoinHandler:
        """The join's batch step over ``table``, the join state."""
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
            chunk=self.chunk,
            contract=s.contract,
            clock=utc_now,
            ebb=self.ebb,
        )
        return self.joiner

    async def sweep(self) -> None:
        """Forget what found no match within the horizon, and the done markers past their
        retention; then record the join's counters."""
        if self.joiner is None:  # the join agent has not started yet
            return
        await self.joiner.sweep()
        await self.flush_counters()

    async def flush_counters(self) -> None:
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
                None, lambda: history.add_counters(self.database, deltas=deltas)
            )
        except SQLAlchemyError as exc:
            log.warning("[ML] join counters not recorded yet (%s); will retry", type(exc).__name__)
            return
        # Only what was written: the join may have counted more while this waited.
        self.joiner.counters.subtract(snapshot)

    async def on_stop(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.recorder.stop)
        await loop.run_in_executor(None, self.database.dispose)

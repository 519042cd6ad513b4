"""Re-predicting past bookings: a range of the bookings topic through the live prediction path.

The predictor is built like the worker's (:mod:`streams.predict.path`): the flags now in
Redis, the current champion, the configured weather service. Its predictions carry
``replay=True``: the join skips them (a replay never adds an outcome to the live metrics) and the
recorder stores them apart. Bookings that fail validation were dead-lettered by the live worker
already; a replay counts them and sends nothing for them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.flags import SOURCE_REDIS
from connectors.kafka import BatchProducer, OffsetRange, RangeReader, Record
from streams.decode import Inbound
from streams.predict.batch import BatchResult
from streams.predict.path import PredictionPath, build_prediction_path
from streams.settings import Settings


@dataclass
class ReplayTotals:
    read: int = 0
    predicted: int = 0
    ml_served: int = 0
    dead_letters: int = 0
    fallbacks: Counter[str] = field(default_factory=Counter)
    first_dead_letter: str | None = None

    def add(self, read: int, result: BatchResult) -> None:
        self.read += read
        self.predicted += len(result.predictions)
        self.ml_served += result.ml_served
        self.dead_letters += len(result.dead_letters)
        self.fallbacks.update(result.fallbacks)
        if result.dead_letters and self.first_dead_letter is None:
            self.first_dead_letter = result.dead_letters[0].error[:200]

    @property
    def ml_share(self) -> float:
        return self.ml_served / self.predicted if self.predicted else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "predicted": self.predicted,
            "ml_served": self.ml_served,
            "ml_share": round(self.ml_share, 4),
            "fallbacks": dict(self.fallbacks),
            "dead_letters": self.dead_letters,
        }


def inbound(message: Any) -> Inbound:
    return Inbound(
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        key=message.key(),
        value=message.value(),
        # No latency from a past booking's timestamp: it would say how old the booking is.
        timestamp_ms=None,
    )


def describe_path(path: PredictionPath) -> str:
    model = path.models.model
    served = model.version if model is not None else f"no model ({path.models.detail})"
    source = path.flags.source
    flags = f"flags {path.flags.state.describe()} (from {source})"
    if source != SOURCE_REDIS:
        flags += " [Redis unreachable: NOT the flags the workers use]"
    return f"model {served}, {flags}, weather {path.weather!r}"


async def replay_bookings(
    settings: Settings,
    ranges: Sequence[OffsetRange],
    *,
    on_start: Callable[[str], None] = lambda _: None,
    on_batch: Callable[[int], None] = lambda _: None,
) -> ReplayTotals:
    """Predict the bookings in ``ranges`` and publish the predictions, marked as replays.

    Returns once Kafka acknowledged every prediction.
    """
    topic = settings.topic("bookings")
    predictions_topic = settings.topic("predictions")
    path = await build_prediction_path(
        settings, initialize_flags=False, replay=True, agent="replay"
    )
    producer = BatchProducer(settings.kafka_bootstrap_servers)
    reader = RangeReader(settings.kafka_bootstrap_servers)
    totals = ReplayTotals()
    batches = reader.read(topic, ranges, max_batch=settings.batch_max)
    try:
        on_start(describe_path(path))
        while True:
            # The consumer blocks; the weather service's lookups keep running on the loop.
            batch = await asyncio.to_thread(next, batches, None)
            if batch is None:
                break
            await path.flags.refresh()
            result = await path.predictor.run([inbound(m) for m in batch])
            await producer.send_batch(
                [
                    Record(predictions_topic, p.booking_id.encode(), p.model_dump_json().encode())
                    for p in result.predictions
                ]
            )
            totals.add(len(batch), result)
            on_batch(len(batch))
    finally:
        batches.close()
        await asyncio.to_thread(reader.close)
        await asyncio.to_thread(producer.close)
        await path.aclose()
    return totals

"""Faust agents: thin loops that hand each batch to the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterable

from faust.types import EventT

from streams.app import app, settings
from streams.decode import Inbound
from streams.runtime import runtime

bookings_topic = app.topic(
    settings.topic("bookings"),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)

join_topic = app.topic(
    settings.topic("predictions"),
    settings.topic("actual-delays"),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)

# booking_id -> pending prediction, pending actual, or done. Written through the producer's
# partitioner (murmur2 of the booking_id bytes, like every producer of the joined topics), so a
# key's changelog partition is its source partition, from a batch loop or a timer alike.
join_table = app.Table(
    "join-pending",
    key_type=bytes,
    partitions=settings.topic_partitions,
    use_partitioner=True,
)


def inbound(event: EventT) -> Inbound:
    message = event.message
    return Inbound(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp_ms=message.timestamp * 1000.0 if message.timestamp else None,
    )


@app.agent(bookings_topic, name="predict")
async def predict(stream: AsyncIterable[bytes]) -> None:
    """Predict every booking; a batch is acknowledged only after Kafka acked its output."""
    await runtime.wait_until_ready()
    async for events in stream.take_events(  # type: ignore[attr-defined]
        settings.batch_max, within=settings.batch_within_s
    ):
        await runtime.handle_bookings([inbound(event) for event in events])


@app.agent(join_topic, name="join")
async def join(stream: AsyncIterable[bytes]) -> None:
    """Match predictions with actual delays; each match becomes an outcome."""
    await runtime.wait_until_ready()
    handler = runtime.join_handler(join_table)
    async for events in stream.take_events(  # type: ignore[attr-defined]
        settings.batch_max, within=settings.batch_within_s
    ):
        await handler.handle([inbound(event) for event in events])


@app.timer(settings.join_sweep_interval_s)
async def expire_unmatched() -> None:
    """Forget predictions and actuals that found no match within the horizon."""
    if runtime.joiner is not None:
        await runtime.joiner.sweep()
        await runtime.flush_join_counters()

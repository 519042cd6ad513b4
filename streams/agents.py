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

"""Faust agents: thin loops that hand each batch to a pipeline of the runtime
(:mod:`streams.predict.pipeline`, :mod:`streams.outcomes.pipeline`).

:func:`register` adds those of the worker's role (WORKER_ROLE) to an app: the ``predict`` agent
for the prediction path; the ``join`` agent, its table and the expiry timer for the outcome path.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

import faust
from faust.types import TableT

from streams.settings import Settings
from streams.worker.faust_config import raw_topic
from streams.worker.runtime import Runtime, inbound


def join_state(app: faust.App, settings: Settings) -> TableT[bytes, Any]:
    """booking_id -> pending prediction, pending actual, or done.

    Written through the producer's partitioner (murmur2 of the booking_id bytes, like every
    producer of the joined topics), so a key's changelog partition is its source partition, from
    a batch loop or a timer alike. Only a worker that joins has it: another would recover its
    changelog for nothing.
    """
    return app.Table(
        "join-pending",
        key_type=bytes,
        partitions=settings.topic_partitions,
        use_partitioner=True,
    )


def register(app: faust.App, settings: Settings, runtime: Runtime) -> None:
    """Add the agents of ``settings.worker_role`` to ``app``, each handing its batches to
    ``runtime``."""
    if settings.runs_predict:
        app.agent(raw_topic(app, settings.topic("bookings")), name="predict")(
            predict_agent(settings, runtime)
        )
    if settings.runs_outcomes:
        table = join_state(app, settings)
        # The join also reads the actual delays it routed home from another partition
        # (join_handler).
        sources = raw_topic(
            app,
            settings.topic("predictions"),
            settings.topic("actual-delays"),
            settings.topic("actual-delays-routed"),
        )
        app.agent(sources, name="join")(join_agent(settings, runtime, table))
        app.timer(settings.join_sweep_interval_s, name="expire_unmatched")(expiry_timer(runtime))


def predict_agent(settings: Settings, runtime: Runtime) -> Any:
    async def predict(stream: AsyncIterable[bytes]) -> None:
        """Predict every booking; a batch's offsets are committed only after Kafka acked its
        output (the runtime's pipeline releases them)."""
        await runtime.wait_until_ready()
        pipeline = runtime.predictions
        assert pipeline is not None  # the runtime makes it for a role that predicts
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.batch_max, within=settings.batch_within_s
        ):
            for event in events:
                event.message.incref()  # released once Kafka acknowledged the batch's output
            await pipeline.submit(events, [inbound(event) for event in events])

    return predict


def join_agent(settings: Settings, runtime: Runtime, table: TableT[bytes, Any]) -> Any:
    async def join(stream: AsyncIterable[bytes]) -> None:
        """Match predictions with actual delays; each match becomes an outcome. A batch's
        offsets are committed only once its outcomes and its table changes are in Kafka."""
        await runtime.wait_until_ready()
        await runtime.wait_for_changelog(table)
        assert runtime.outcomes is not None  # the runtime makes it for a role that joins
        handler = runtime.outcomes.handler(table)
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.batch_max, within=settings.batch_within_s
        ):
            for event in events:
                event.message.incref()  # Faust's own ack after this batch leaves them pending
            try:
                await handler.handle([inbound(event) for event in events])
            except Exception as exc:
                # Outcomes out but state not written, or neither: either way the batch must be
                # joined again, and no offset after it may be committed. The worker ends at
                # once; the one that follows (docker compose restarts it) joins the batch again.
                runtime.halt(f"a join batch of {len(events)} events failed", exc)
            runtime.release(events)

    return join


def expiry_timer(runtime: Runtime) -> Any:
    async def expire_unmatched() -> None:
        """Forget predictions and actuals that found no match within the horizon."""
        if runtime.outcomes is not None:
            await runtime.outcomes.sweep()

    return expire_unmatched

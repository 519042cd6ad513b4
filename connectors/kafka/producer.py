"""A confluent-kafka producer for asyncio code: send a batch, await its acknowledgements.

librdkafka does the batching and retrying in its own threads; a daemon thread serves the
delivery callbacks and hands the results to the event loop, so the loop never blocks.
:meth:`BatchProducer.send_batch` returns only when Kafka has acknowledged every record; records
that fail for good are sent again until they succeed, so a caller that commits its source offsets
afterwards never loses one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

log = logging.getLogger("delaycast.kafka")

DEFAULT_CONFIG: dict[str, Any] = {
    "acks": "all",
    # Java-compatible key hashing: every producer of a joined topic (ours, aiokafka inside Faust,
    # a Java driver app) must put a booking_id on the same partition number.
    "partitioner": "murmur2_random",
    "enable.idempotence": True,
    "linger.ms": 5,
    "batch.num.messages": 10_000,
    "message.timeout.ms": 30_000,
}


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes


class _PendingBatch:
    """Counts the acknowledgements of one batch; lives in the poll thread until complete."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self._loop = loop
        self._remaining = size
        self.failed: list[tuple[int, KafkaError]] = []
        self.done = loop.create_future()

    def callback(self, index: int) -> Any:
        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                self.failed.append((index, err))
            self._remaining -= 1
            if self._remaining == 0:
                self._loop.call_soon_threadsafe(_resolve, self.done)

        return on_delivery


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class BatchProducer:
    def __init__(self, bootstrap_servers: str, **config: Any) -> None:
        self._producer = Producer(
            {**DEFAULT_CONFIG, "bootstrap.servers": bootstrap_servers, **config}
        )
        self._running = True
        self._thread = threading.Thread(target=self._serve, name="kafka-delivery", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self._running:
            self._producer.poll(0.05)

    async def send_batch(self, records: Sequence[Record], retry_backoff_s: float = 0.5) -> None:
        """Send ``records`` and wait until Kafka has acknowledged all of them."""
        pending = list(records)
        attempt = 0
        while pending:
            batch = _PendingBatch(asyncio.get_running_loop(), len(pending))
            for index, record in enumerate(pending):
                await self._produce(record, batch.callback(index))
            await batch.done
            if not batch.failed:
                return
            attempt += 1
            first_error = batch.failed[0][1]
            log.error(
                "[Kafka] %d of %d records not acknowledged (%s); sending them again (attempt %d)",
                len(batch.failed),
                len(pending),
                first_error,
                attempt,
            )
            pending = [pending[index] for index, _ in sorted(batch.failed, key=lambda f: f[0])]
            await asyncio.sleep(min(retry_backoff_s * attempt, 5.0))

    async def _produce(self, record: Record, on_delivery: Any) -> None:
        while True:
            try:
                self._producer.produce(
                    record.topic, value=record.value, key=record.key, on_delivery=on_delivery
                )
                return
            except BufferError:
                # librdkafka's local queue is full: let the poll thread drain it.
                await asyncio.sleep(0.005)

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is queued and stop; returns how many records were left undelivered."""
        self._running = False
        self._thread.join(timeout=1.0)
        return int(self._producer.flush(timeout_s))

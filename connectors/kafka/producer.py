"""A confluent-kafka producer for asyncio code: send a batch, await its acknowledgements.

librdkafka does the batching and retrying in its own threads; a daemon thread serves the
delivery callbacks and hands the results to the event loop, so the loop never blocks.
:meth:`BatchProducer.send_batch` returns only when Kafka has acknowledged every record, so a
caller that commits its source offsets afterwards never loses one. A record that failed for a
reason that passes (a broker away, a timeout) is sent again, with a log line at each attempt; a
record Kafka will never take (too large, unknown topic, not authorized) is not: once every other
record is acknowledged, :class:`Undeliverable` names them, and the caller dead-letters them or
stops.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from connectors.failures import KAFKA_SEND_WAIT, delay

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


# Errors that sending again cannot cure.
PERMANENT_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError._INVALID_ARG,
    }
)


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes


class Undeliverable(Exception):
    """Records Kafka refused for good; every other record of the batch was acknowledged."""

    def __init__(self, refused: list[tuple[Record, str]]) -> None:
        self.refused = refused
        first = refused[0]
        super().__init__(
            f"{len(refused)} record(s) refused for good, the first to {first[0].topic}: {first[1]}"
        )


def is_permanent(error: KafkaError) -> bool:
    return error.code() in PERMANENT_ERRORS or error.fatal()


class _PendingBatch:
    """Counts the acknowledgements of one batch; lives in the poll thread until complete."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self._loop = loop
        self._remaining = size
        self.failed: list[tuple[int, KafkaError]] = []
        self.done = loop.create_future()
        self._lock = threading.Lock()  # the poll thread and the loop may both report

    def callback(self, index: int) -> Any:
        def on_delivery(err: KafkaError | None, _msg: Message | None) -> None:
            with self._lock:
                if err is not None:
                    self.failed.append((index, err))
                self._remaining -= 1
                last = self._remaining == 0
            if last:
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

    async def send_batch(self, records: Sequence[Record]) -> None:
        """Send ``records`` and wait until Kafka has acknowledged all of them; raises
        :class:`Undeliverable` for those it refused for good, after the others are acknowledged."""
        pending = list(records)
        refused: list[tuple[Record, str]] = []
        attempt = 0
        while pending:
            batch = _PendingBatch(asyncio.get_running_loop(), len(pending))
            for index, record in enumerate(pending):
                error = await self._produce(record, batch.callback(index))
                if error is not None:  # refused before it left this process
                    batch.callback(index)(error, None)
            await batch.done
            failed = sorted(batch.failed, key=lambda f: f[0])
            refused += [(pending[i], str(err)) for i, err in failed if is_permanent(err)]
            retry = [i for i, err in failed if not is_permanent(err)]
            if retry:
                attempt += 1
                log.error(
                    "[Kafka] %d of %d records not acknowledged (%s); sending them again "
                    "(attempt %d)",
                    len(retry),
                    len(pending),
                    batch.failed[0][1],
                    attempt,
                )
                await asyncio.sleep(delay(KAFKA_SEND_WAIT, attempt))
            pending = [pending[i] for i in retry]
        if refused:
            raise Undeliverable(refused)

    async def _produce(self, record: Record, on_delivery: Any) -> KafkaError | None:
        while True:
            try:
                self._producer.produce(
                    record.topic, value=record.value, key=record.key, on_delivery=on_delivery
                )
                return None
            except BufferError:
                # librdkafka's local queue is full: let the poll thread drain it.
                await asyncio.sleep(0.005)
            except KafkaException as exc:  # e.g. larger than message.max.bytes
                error: KafkaError = exc.args[0]
                return error

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is queued and stop; returns how many records were left undelivered."""
        self._running = False
        self._thread.join(timeout=1.0)
        return int(self._producer.flush(timeout_s))

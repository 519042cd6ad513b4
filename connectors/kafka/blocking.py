"""Blocking Kafka helpers for command-line tools and tests: produce a stream, read a topic."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    Producer,
    TopicPartition,
)

from connectors.kafka.producer import DEFAULT_CONFIG, is_permanent

log = logging.getLogger("delaycast.kafka")


class DeliveryFailed(RuntimeError):
    pass


class BlockingProducer:
    """Produce records, counting deliveries; :meth:`flush` raises when any failed for good.

    A record that fails for a reason that passes (the broker away, its message timeout spent)
    is produced again, so a command-line producer waits out a broker outage instead of dropping
    what it holds; it says so every ``report_every_s`` while it waits. A record Kafka refuses
    for good (too large, unknown topic, not authorized) fails at once.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        report: Callable[[str], None] = lambda line: log.warning("%s", line),
        report_every_s: float = 10.0,
        **config: Any,
    ) -> None:
        self._producer = Producer(
            {**DEFAULT_CONFIG, "bootstrap.servers": bootstrap_servers, **config}
        )
        self.delivered = 0
        self.failed: list[str] = []
        self.resent = 0
        self._again: list[tuple[str, bytes | None, bytes, int | None]] = []
        self._report = report
        self._report_every_s = report_every_s
        self._last_report = 0.0

    def _on_delivery(self, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            self.delivered += 1
        elif is_permanent(err):
            self.failed.append(str(err))
        else:
            _, stamp = msg.timestamp()  # -1 when not available: the broker then stamps it
            self._again.append((msg.topic(), msg.key(), msg.value(), stamp if stamp > 0 else None))
            now = time.monotonic()
            if now - self._last_report >= self._report_every_s:
                self._last_report = now
                self._report(
                    f"[Kafka] not delivered yet ({err}); holding the records and sending "
                    "them again until the broker is back"
                )

    def send(
        self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int | None = None
    ) -> None:
        self._produce(topic, key, value, timestamp_ms)
        self._send_again()

    def _produce(
        self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int | None
    ) -> None:
        kwargs: dict[str, Any] = (
            {"timestamp": timestamp_ms} if timestamp_ms and timestamp_ms > 0 else {}
        )
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key, on_delivery=self._on_delivery, **kwargs
                )
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def _send_again(self) -> None:
        again, self._again = self._again, []
        for topic, key, value, stamp in again:
            self.resent += 1
            self._produce(topic, key, value, stamp)

    def flush(self, timeout_s: float = 30.0, outage_s: float = 600.0) -> None:
        """Wait until every record is delivered or failed for good, up to ``outage_s`` in all.

        Records still queued are waited for in rounds of ``timeout_s``, and those that come
        back (their message timeout spent while the broker was away) are sent again. A round
        that ends with records still queued and none back yet is no reason to stop: those
        records are still in flight and will be either delivered or handed back.
        """
        deadline = time.monotonic() + outage_s
        while True:
            self._send_again()
            left = self._producer.flush(min(timeout_s, max(0.0, deadline - time.monotonic())))
            if (not left and not self._again) or time.monotonic() >= deadline:
                break
        left += len(self._again)
        if left or self.failed:
            raise DeliveryFailed(
                f"{left} records still queued, {len(self.failed)} failed"
                + (f" (first error: {self.failed[0]})" if self.failed else "")
            )


# Behind schedule by more than this (the process was stopped, the broker away), the pace
# starts again from now instead of catching up in one burst.
MAX_BEHIND_S = 1.0


def paced(
    items: Iterable[Any],
    rate: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> Iterator[Any]:
    """Yield ``items`` at ``rate`` per second (no pacing when rate <= 0). After a gap longer
    than :data:`MAX_BEHIND_S` the schedule is anchored anew: the rate holds, no burst follows.

    >>> now = [0.0]
    >>> def wait(s):
    ...     now[0] += s
    >>> times = []
    >>> for i in paced(range(6), 2.0, clock=lambda: now[0], sleep=wait):
    ...     times.append(now[0])
    ...     if i == 2:
    ...         now[0] += 10.0  # stopped for 10 s
    >>> times
    [0.0, 0.5, 1.0, 11.0, 11.5, 12.0]
    """
    if rate <= 0:
        yield from items
        return
    start, offset = clock(), 0
    for index, item in enumerate(items):
        due = start + (index - offset) / rate
        delay = due - clock()
        if delay > 0:
            sleep(delay)
        elif -delay > MAX_BEHIND_S:
            start, offset = clock(), index
        yield item


def read_topic(
    bootstrap_servers: str,
    topic: str,
    *,
    from_beginning: bool,
    count: int | None,
    timeout_s: float | None,
    idle_timeout_s: float | None = None,
) -> Iterator[Any]:
    """Yield the messages of every partition of ``topic``, without joining a consumer group.

    Stops after ``count`` messages, after ``timeout_s`` in all, or after ``idle_timeout_s``
    without a message, whichever comes first.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": "delaycast-reader",  # required by the client; never committed
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        topic_meta = metadata.topics.get(topic)
        if topic_meta is None or topic_meta.error is not None:
            raise RuntimeError(f"topic {topic!r} does not exist")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in topic_meta.partitions])
        seen = 0
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        last = time.monotonic()
        while count is None or seen < count:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            if idle_timeout_s is not None and now - last >= idle_timeout_s:
                return
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                raise RuntimeError(f"consumer error: {message.error()}")
            last = time.monotonic()
            seen += 1
            yield message
    finally:
        consumer.close()

"""The benchmark's Kafka chores: topics of a run, filling them, waiting for output, reading it
back, and removing everything a run left on the broker."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from connectors.kafka import BlockingProducer, read_topic
from connectors.kafka_admin import delete_topics, ensure_topics, list_topics
from schemas import TOPICS

RUN_TOPICS = tuple(t.name for t in TOPICS)


@dataclass(frozen=True)
class Output:
    """What a scenario's output topic held: each message's key and Kafka timestamp (ms)."""

    keys: list[bytes]
    timestamps_ms: list[int]
    values: list[bytes]


def create_run_topics(bootstrap: str, prefix: str) -> None:
    """delaycast's topics under ``prefix``, one partition each."""
    ensure_topics(bootstrap, [f"{prefix}{name}" for name in RUN_TOPICS], partitions=1)


def produce_all(bootstrap: str, topic: str, items: Iterable[tuple[bytes, bytes]]) -> int:
    producer = BlockingProducer(bootstrap)
    n = 0
    for key, value in items:
        producer.send(topic, key, value)
        n += 1
    producer.flush(timeout_s=120)
    return n


class Watermarks:
    """Cheap checks of how many messages a topic's single partition holds."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "delaycast-bench-watermarks"}
        )

    def count(self, topic: str) -> int:
        try:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, 0), timeout=5, cached=False
            )
        except KafkaException:
            return 0
        return max(0, int(high) - max(0, int(low)))

    def close(self) -> None:
        self._consumer.close()


def wait_for_count(
    watermarks: Watermarks,
    topic: str,
    count: int,
    *,
    timeout_s: float,
    alive: Callable[[], str | None],
    every_s: float = 0.25,
) -> None:
    """Return when ``topic`` holds ``count`` messages. Raises TimeoutError after ``timeout_s``
    without progress, RuntimeError when ``alive`` reports a problem (a message)."""
    last_change, seen = time.monotonic(), -1
    while True:
        held = watermarks.count(topic)
        if held >= count:
            return
        problem = alive()
        if problem is not None:
            raise RuntimeError(problem)
        if held != seen:
            last_change, seen = time.monotonic(), held
        elif time.monotonic() - last_change > timeout_s:
            raise TimeoutError(f"{topic} stuck at {held} of {count} messages for {timeout_s:g} s")
        time.sleep(every_s)


def read_output(bootstrap: str, topic: str, count: int, *, keep_values: bool = False) -> Output:
    keys: list[bytes] = []
    stamps: list[int] = []
    values: list[bytes] = []
    for message in read_topic(
        bootstrap, topic, from_beginning=True, count=count, timeout_s=120, idle_timeout_s=20
    ):
        keys.append(message.key() or b"")
        stamps.append(int(message.timestamp()[1]))
        if keep_values:
            values.append(message.value() or b"")
    return Output(keys, stamps, values)


def remove_run(bootstrap: str, prefix: str) -> None:
    """Delete the topics and consumer groups whose names start with ``prefix``."""
    topics = [name for name in list_topics(bootstrap) if name.startswith(prefix)]
    if topics:
        delete_topics(bootstrap, topics)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups(request_timeout=10).result()
    groups = [g.group_id for g in listed.valid if g.group_id.startswith(prefix)]
    if groups:
        for future in admin.delete_consumer_groups(groups, request_timeout=10).values():
            # A group still shutting down stays; it expires with its offsets.
            with contextlib.suppress(KafkaException):
                future.result()

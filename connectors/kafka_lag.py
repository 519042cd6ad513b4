"""Consumer lag of a consumer group on one topic (confluent-kafka).

Lag is, summed over the topic's partitions, the high watermark minus the group's committed
offset; a partition the group never committed counts from its low watermark, as the workers
start from the earliest offset. Each request is bounded by ``timeout_s``; a cluster that does
not answer in time raises :class:`KafkaLagError`.

The committed offsets are read through a Consumer carrying the group's id that never subscribes
(so it never joins the group nor moves its offsets), not through
``AdminClient.list_consumer_group_offsets``: librdkafka's admin path dereferences a null group
handle when the coordinator answers NOT_COORDINATOR, which crashes the process on a fresh cluster
(confluent-kafka-python issue #1982, librdkafka issue #5040).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

_log = logging.getLogger(__name__)


class KafkaLagError(RuntimeError):
    """The cluster did not answer in time, or does not know the topic."""


class KafkaUnreachable(KafkaLagError):
    """The cluster did not answer in time: asking about another topic would wait as long."""


class NotConsumed(KafkaLagError):
    """The group has committed nothing on the topic: it does not read it (yet)."""


class LagReader:
    """Reads consumer groups' lag; keeps one Consumer per group, used under a lock."""

    def __init__(self, bootstrap: str, *, timeout_s: float = 1.0) -> None:
        self._bootstrap = bootstrap
        self._timeout_s = timeout_s
        self._consumers: dict[str, Consumer] = {}
        self._lock = threading.Lock()

    def _consumer(self, group: str) -> Consumer:
        if group not in self._consumers:
            config: dict[str, Any] = {
                "bootstrap.servers": self._bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "socket.timeout.ms": max(1000, int(self._timeout_s * 1000)),
                "logger": _log,
            }
            self._consumers[group] = Consumer(config)
        return self._consumers[group]

    def lag(self, *, group: str, topic: str, require_commit: bool = False) -> int:
        """The group's total lag on ``topic``, in messages. With ``require_commit``, a group
        that committed nothing on the topic raises :class:`NotConsumed` instead of counting
        the whole topic: it may be a group no worker runs (another role split)."""
        timeout = self._timeout_s
        with self._lock:
            consumer = self._consumer(group)
            try:
                metadata = consumer.list_topics(topic=topic, timeout=timeout)
                described = metadata.topics.get(topic)
                if described is None or described.error is not None or not described.partitions:
                    raise KafkaLagError(f"topic {topic} is unknown to Kafka")
                partitions = [TopicPartition(topic, p) for p in sorted(described.partitions)]
                committed = consumer.committed(partitions, timeout=timeout)
                marks = [
                    consumer.get_watermark_offsets(p, timeout=timeout, cached=False)
                    for p in partitions
                ]
            except KafkaException as exc:
                raise KafkaUnreachable(f"Kafka did not answer: {exc}") from exc
        if any(m is None for m in marks):
            raise KafkaUnreachable(f"Kafka did not give the offsets of {topic} in {timeout:g} s")
        if any(c.error is not None for c in committed):
            raise KafkaLagError(f"Kafka did not give {group}'s offsets on {topic}")
        if require_commit and all(c.offset < 0 for c in committed):
            raise NotConsumed(f"{group} has committed nothing on {topic}")
        total = 0
        for done, (low, high) in zip(committed, marks, strict=True):
            start = done.offset if done.offset >= 0 else low
            total += max(high - start, 0)
        return total

    def close(self) -> None:
        with self._lock:
            for consumer in self._consumers.values():
                consumer.close()
            self._consumers.clear()

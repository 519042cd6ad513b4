"""Reading given offset ranges of a topic with a consumer assigned by hand (no group membership).

Replays and dead-letter listings read a fixed range and stop; a requeue also starts from, and
commits to, a consumer group of its own, without joining it (no rebalance to wait for).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from connectors.kafka.ranges import OffsetRange

READER_GROUP = "delaycast-reader"  # the client needs a group.id; this reader never commits to it


class KafkaReadError(RuntimeError):
    """The topic does not exist, Kafka did not answer, or the range could not be read."""


class RangeReader:
    """One consumer for one command's reads; close it (or use it as a context manager)."""

    def __init__(
        self, bootstrap_servers: str, *, group_id: str = READER_GROUP, timeout_s: float = 10.0
    ) -> None:
        self._timeout_s = timeout_s
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": False,
                "auto.offset.reset": "earliest",
            }
        )

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close()

    def partitions(self, topic: str) -> list[int]:
        try:
            metadata = self._consumer.list_topics(topic, timeout=self._timeout_s)
        except KafkaException as exc:
            raise KafkaReadError(f"Kafka did not answer: {exc}") from None
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise KafkaReadError(f"topic {topic!r} does not exist")
        return sorted(found.partitions)

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        """partition -> (first offset held, next offset to be written)."""
        marks = {}
        for partition in self.partitions(topic):
            try:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=self._timeout_s, cached=False
                )
            except KafkaException as exc:
                where = f"{topic}[{partition}]"
                raise KafkaReadError(f"cannot read the offsets of {where}: {exc}") from None
            marks[partition] = (int(low), int(high))
        return marks

    def offsets_for_time(self, topic: str, partitions: Sequence[int], at_ms: int) -> dict[int, int]:
        """Per partition, the first offset whose timestamp is at or after ``at_ms`` (epoch
        milliseconds), or -1 when no message is that late."""
        asked = [TopicPartition(topic, p, at_ms) for p in partitions]
        try:
            found = self._consumer.offsets_for_times(asked, timeout=self._timeout_s)
        except KafkaException as exc:
            raise KafkaReadError(f"cannot look up offsets by time in {topic}: {exc}") from None
        return {tp.partition: int(tp.offset) for tp in found}

    def committed(self, topic: str, partitions: Sequence[int]) -> dict[int, int | None]:
        """The group's committed offset per partition; None where it has none."""
        asked = [TopicPartition(topic, p) for p in partitions]
        try:
            found = self._consumer.committed(asked, timeout=self._timeout_s)
        except KafkaException as exc:
            raise KafkaReadError(f"cannot read committed offsets of {topic}: {exc}") from None
        return {tp.partition: (int(tp.offset) if tp.offset >= 0 else None) for tp in found}

    def commit(self, topic: str, offsets: Mapping[int, int]) -> None:
        """Commit ``offsets`` (partition -> next offset to read) for the group, synchronously."""
        if not offsets:
            return
        wanted = [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())]
        try:
            done = self._consumer.commit(offsets=wanted, asynchronous=False) or []
        except KafkaException as exc:
            raise KafkaReadError(f"cannot commit offsets of {topic}: {exc}") from None
        failed = [tp for tp in done if tp.error is not None]
        if failed:
            raise KafkaReadError(
                f"cannot commit offsets of {topic}[{failed[0].partition}]: {failed[0].error}"
            )

    def read(
        self,
        topic: str,
        ranges: Sequence[OffsetRange],
        *,
        max_batch: int = 500,
        poll_timeout_s: float = 0.5,
        idle_timeout_s: float = 30.0,
    ) -> Generator[list[Message], None, None]:
        """The messages of ``ranges``, in batches of at most ``max_batch``, then stop.

        Raises :class:`KafkaReadError` when a range's end is not reached and nothing arrives
        for ``idle_timeout_s`` (the messages were deleted, or Kafka is unreachable).
        """
        ends = {r.partition: r.end for r in ranges if r.count > 0}
        if not ends:
            return
        assigned = [TopicPartition(topic, r.partition, r.start) for r in ranges if r.count > 0]
        self._consumer.assign(assigned)
        try:
            last_message = time.monotonic()
            while ends:
                messages = self._consumer.consume(max_batch, timeout=poll_timeout_s)
                batch = []
                for message in messages:
                    error = message.error()
                    if error is not None:
                        raise KafkaReadError(f"cannot read {topic}: {error}")
                    partition, offset = message.partition(), message.offset()
                    if partition is None or offset is None:
                        continue
                    end = ends.get(partition)
                    if end is None or offset >= end:
                        continue
                    batch.append(message)
                    if offset >= end - 1:
                        del ends[partition]
                if batch:
                    last_message = time.monotonic()
                    yield batch
                elif messages:
                    continue
                else:
                    self._drop_reached(topic, ends)
                    if ends and time.monotonic() - last_message >= idle_timeout_s:
                        missing = ", ".join(f"{topic}[{p}] up to {e - 1}" for p, e in ends.items())
                        raise KafkaReadError(f"no message for {idle_timeout_s:g} s; {missing}")
        finally:
            self._consumer.unassign()

    def _drop_reached(self, topic: str, ends: dict[int, int]) -> None:
        """Forget partitions whose position passed their end without a message at the end
        offset itself (a transaction marker or a compacted record occupies it)."""
        if not ends:
            return
        positions: list[Any] = self._consumer.position([TopicPartition(topic, p) for p in ends])
        for tp in positions:
            if tp.offset >= 0 and tp.offset >= ends.get(tp.partition, tp.offset + 1):
                del ends[tp.partition]

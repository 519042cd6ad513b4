"""Consumer groups (confluent-kafka AdminClient): who is in one, where it is, moving it.

Every function opens a short-lived client for one ``bootstrap`` string (kept referenced until
its futures are done: a destroyed client never completes them) and raises :class:`GroupError`
when Kafka refuses or does not answer within ``timeout_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

from connectors.kafka_admin import admin_client

_log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]  # (topic, partition)


class GroupError(RuntimeError):
    """Kafka refused a consumer-group operation or did not answer; the message says which."""


@dataclass(frozen=True)
class GroupInfo:
    group_id: str
    state: str  # "empty", "stable", "dead" (no such group), ...
    members: tuple[str, ...]  # "client_id@host" of each active member

    @property
    def active(self) -> bool:
        return bool(self.members)


def _result(futures: Mapping[Any, Any], what: str, timeout_s: float) -> Any:
    (future,) = futures.values()
    try:
        return future.result(timeout=timeout_s + 5)
    except KafkaException as exc:
        raise GroupError(f"cannot {what}: {exc.args[0] if exc.args else exc}") from None
    except TimeoutError:
        raise GroupError(f"cannot {what}: Kafka did not answer within {timeout_s:g} s") from None


def describe_group(bootstrap: str, group_id: str, *, timeout_s: float = 10.0) -> GroupInfo:
    client = admin_client(bootstrap, timeout_s)
    futures = client.describe_consumer_groups([group_id], request_timeout=timeout_s)
    found = _result(futures, f"describe consumer group {group_id!r}", timeout_s)
    members = tuple(f"{m.client_id}@{m.host}" for m in found.members)
    state = getattr(found.state, "name", str(found.state)).lower()
    return GroupInfo(group_id, state, members)


def committed_offsets(
    bootstrap: str, group_id: str, *, timeout_s: float = 10.0
) -> dict[TopicPartitionKey, int]:
    """Every (topic, partition) the group has committed an offset for, with that offset."""
    client = admin_client(bootstrap, timeout_s)
    futures = client.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group_id)], request_timeout=timeout_s
    )
    found = _result(futures, f"read the offsets of consumer group {group_id!r}", timeout_s)
    return {
        (tp.topic, tp.partition): int(tp.offset)
        for tp in found.topic_partitions or []
        if tp.offset >= 0
    }


def alter_offsets(
    bootstrap: str,
    group_id: str,
    offsets: Mapping[TopicPartitionKey, int],
    *,
    timeout_s: float = 10.0,
) -> None:
    """Set the group's committed offsets; Kafka refuses while the group has active members."""
    if not offsets:
        return
    wanted = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
    client = admin_client(bootstrap, timeout_s)
    futures = client.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group_id, wanted)], request_timeout=timeout_s
    )
    done = _result(futures, f"move consumer group {group_id!r}", timeout_s)
    failed = [tp for tp in done.topic_partitions or [] if tp.error is not None]
    if failed:
        tp = failed[0]
        raise GroupError(f"cannot move {group_id!r} on {tp.topic}[{tp.partition}]: {tp.error}")

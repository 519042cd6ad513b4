"""Kafka topic administration (confluent-kafka AdminClient) with explicit arguments.

Every function opens a short-lived client for one ``bootstrap`` string ("host:port[,host:port]")
and raises ``KafkaAdminError`` when the cluster does not answer within ``timeout_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from tenacity import stop_after_delay

from connectors.failures import TOPIC_METADATA_WAIT, retrying

# librdkafka's own log lines go to Python logging instead of straight to stderr.
_log = logging.getLogger(__name__)


class KafkaAdminError(RuntimeError):
    """The cluster did not answer, or refused an operation for a reason other than idempotence."""


@dataclass
class EnsureResult:
    """What ``ensure_topics`` found: topics it created, topics already there, and existing topics
    whose partition count differs from the one asked for (name -> (actual, wanted))."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    mismatched: dict[str, tuple[int, int]] = field(default_factory=dict)


def admin_client(bootstrap: str, timeout_s: float) -> AdminClient:
    """An AdminClient whose requests time out after ``timeout_s`` and log through ours."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": max(1000, int(timeout_s * 1000)),
        "logger": _log,
    }
    return AdminClient(config)


def _kafka_error(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def list_topics(bootstrap: str, *, timeout_s: float = 10.0) -> dict[str, int]:
    """Every topic of the cluster, internal ones included, with its partition count."""
    try:
        metadata = admin_client(bootstrap, timeout_s).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaAdminError(f"Kafka at {bootstrap} did not answer: {exc}") from exc
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def broker_count(
    bootstrap: str, *, timeout_s: float = 5.0, client: AdminClient | None = None
) -> int:
    """How many brokers the cluster reports; 0 when it does not answer within ``timeout_s``.
    ``client``, when given, is used instead of a client of its own (one kept for many calls)."""
    try:
        admin = client if client is not None else admin_client(bootstrap, timeout_s)
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return 0
    return len(metadata.brokers)


def ensure_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int,
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> EnsureResult:
    """Create the topics in ``names`` that do not exist yet; existing ones are left as they are.

    Safe to call concurrently and repeatedly. A topic that exists with another partition count is
    reported in ``mismatched`` rather than changed: repartitioning breaks keyed ordering, so that
    decision belongs to an operator.
    """
    wanted = list(dict.fromkeys(names))
    current = list_topics(bootstrap, timeout_s=timeout_s)
    result = EnsureResult()
    missing = [n for n in wanted if n not in current]
    result.existing.extend(n for n in wanted if n in current)
    if missing:
        new = [
            NewTopic(n, num_partitions=partitions, replication_factor=replication_factor)
            for n in missing
        ]
        # The client must outlive its futures: destroying it fails them.
        client = admin_client(bootstrap, timeout_s)
        futures = client.create_topics(new, operation_timeout=timeout_s, request_timeout=timeout_s)
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s + 5)
                result.created.append(name)
            except KafkaException as exc:
                error = _kafka_error(exc)
                # Someone else created it between our listing and our request.
                if error is not None and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    result.existing.append(name)
                else:
                    raise KafkaAdminError(f"could not create topic {name}: {exc}") from exc
    # The controller answers before the broker's metadata shows the topic; a producer started
    # right after would not find it. Wait until every topic is served with its leaders.
    current = _wait_for(
        bootstrap,
        timeout_s,
        lambda topics: all(n in topics for n in wanted),
        what=f"topics {', '.join(wanted)} to be served with a leader for every partition",
    )
    for name in result.existing:
        actual = current.get(name, partitions)
        if actual != partitions:
            result.mismatched[name] = (actual, partitions)
    return result


def _served_topics(bootstrap: str, timeout_s: float) -> dict[str, int]:
    """Topics whose partitions all have a leader, with their partition count."""
    try:
        metadata = admin_client(bootstrap, timeout_s).list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise KafkaAdminError(f"Kafka at {bootstrap} did not answer: {exc}") from exc
    return {
        name: len(topic.partitions)
        for name, topic in metadata.topics.items()
        if topic.error is None and all(p.leader >= 0 for p in topic.partitions.values())
    }


def _wait_for(
    bootstrap: str,
    timeout_s: float,
    done: Callable[[dict[str, int]], bool],
    *,
    what: str,
    listing: Callable[[str, float], dict[str, int]] = _served_topics,
) -> dict[str, int]:

    def served() -> dict[str, int]:
        topics = listing(bootstrap, timeout_s)
        if not done(topics):
            raise _NotYet
        return topics

    try:
        return retrying(
            retry_on=lambda exc: isinstance(exc, _NotYet),
            wait=TOPIC_METADATA_WAIT,
            stop=stop_after_delay(timeout_s),
        )(served)
    except _NotYet:
        raise KafkaAdminError(f"Kafka at {bootstrap}: waited {timeout_s} s for {what}") from None


class _NotYet(Exception):
    """The topics waited for are not served yet."""


def delete_topics(bootstrap: str, names: Iterable[str], *, timeout_s: float = 30.0) -> list[str]:
    """Delete the topics in ``names``; missing ones are skipped. Returns the names deleted."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    client = admin_client(bootstrap, timeout_s)
    futures = client.delete_topics(wanted, operation_timeout=timeout_s, request_timeout=timeout_s)
    deleted: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s + 5)
            deleted.append(name)
        except KafkaException as exc:
            error = _kafka_error(exc)
            if error is None or error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise KafkaAdminError(f"could not delete topic {name}: {exc}") from exc
    # So that creating the same name right after does not meet the old topic.
    _wait_for(
        bootstrap,
        timeout_s,
        lambda topics: not any(n in topics for n in deleted),
        what=f"topics {', '.join(deleted)} to disappear",
        listing=lambda b, t: list_topics(b, timeout_s=t),
    )
    return deleted

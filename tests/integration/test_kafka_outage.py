"""A producer across a Kafka outage: the command-line producer holds what it has and sends it
once the broker is back; nothing is dropped."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.kafka import BlockingProducer, read_topic
from connectors.kafka_admin import ensure_topics
from streams.stack import Endpoints, External, Ports, StackManager
from streams.stack.ports import pick_port

OUTAGE_S = 20.0


@pytest.fixture
def own_kafka(stack: Endpoints, session_dir: Path) -> Iterator[tuple[StackManager, str]]:
    home = session_dir / f"kafka-outage-{uuid.uuid4().hex[:8]}"
    port = pick_port(38000 + uuid.uuid4().int % 20000)
    manager = StackManager(
        home,
        ports=Ports(kafka=port, kafka_controller=pick_port(port + 1, avoid={port})),
        external=External(redis_url=stack.redis_url, database_url=stack.database_url),
    )
    try:
        result = manager.up()
        assert result.started == ("kafka",)
        yield manager, result.endpoints.kafka_bootstrap_servers
    finally:
        manager.down()


def test_a_producer_waits_out_a_broker_outage_and_drops_nothing(own_kafka):
    manager, bootstrap = own_kafka
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, [topic], partitions=4)
    lines: list[str] = []
    producer = BlockingProducer(
        bootstrap, report=lines.append, report_every_s=1.0, **{"message.timeout.ms": 5000}
    )
    n, sent = 3000, threading.Event()
    failure: list[BaseException] = []

    def publish() -> None:
        try:
            for i in range(n):
                producer.send(topic, f"K-{i}".encode(), f'{{"i": {i}}}'.encode())
                time.sleep(0.01)
            producer.flush(timeout_s=5.0, outage_s=120.0)
        except BaseException as error:
            failure.append(error)
        finally:
            sent.set()

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    time.sleep(5.0)
    assert manager.down(only=["kafka"]) == ["kafka"]
    time.sleep(OUTAGE_S)
    assert manager.up().started == ("kafka",)
    assert sent.wait(150), "the producer never finished"
    assert failure == []
    assert lines, "the producer never said it was holding records"
    values = {
        m.value()
        for m in read_topic(
            bootstrap, topic, from_beginning=True, count=None, timeout_s=60, idle_timeout_s=5
        )
    }
    assert values == {f'{{"i": {i}}}'.encode() for i in range(n)}
    assert producer.resent > 0

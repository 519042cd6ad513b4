"""Kafka outages: the command-line producer holds what it has and sends it once the broker is
back, and a worker running both paths rides the outage out; nothing is dropped or counted
twice."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.kafka import BlockingProducer, read_topic
from connectors.kafka_admin import ensure_topics
from schemas.tables import predictions as predictions_table
from schemas.topics import TOPICS
from streams.tools.stack import Endpoints, External, Ports, StackManager
from streams.tools.stack.ports import pick_stable_port
from tests.integration.conftest import TEST_PARTITIONS
from tests.integration.test_hostile_traffic import valid_events
from tests.integration.test_outcome_path import assert_buckets_equal_offline, wait_for_stored
from tests.integration.test_prediction_path import set_flags, start_worker

OUTAGE_S = 20.0


@pytest.fixture
def own_kafka(stack: Endpoints, session_dir: Path) -> Iterator[tuple[StackManager, str]]:
    home = session_dir / f"kafka-outage-{uuid.uuid4().hex[:8]}"
    # Below the ephemeral range: while the broker is down, no connection elsewhere on the
    # machine can be handed its port, which would move the restarted broker to another one.
    port = pick_stable_port(uuid.uuid4().int)
    manager = StackManager(
        home,
        ports=Ports(kafka=port, kafka_controller=pick_stable_port(port + 1, avoid={port})),
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
    back = manager.up()
    assert back.started == ("kafka",) and back.endpoints.kafka_bootstrap_servers == bootstrap
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


@pytest.fixture
def home(tmp_path: Path, trained_model_dir: Path, migrated_database: str) -> Path:
    shutil.copytree(trained_model_dir, tmp_path / "models")
    return tmp_path


def test_a_broker_outage_under_both_paths_loses_nothing_and_counts_once(
    own_kafka, stack, topic_prefix, home, migrated_database
):
    manager, bootstrap = own_kafka
    ensure_topics(
        bootstrap, [f"{topic_prefix}{spec.name}" for spec in TOPICS], partitions=TEST_PARTITIONS
    )
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    now = datetime.now(UTC)
    bookings, actuals = valid_events(1200, now, prefix="KO-")
    keyed = [(json.loads(v)["booking_id"].encode(), v) for v in bookings]
    keyed_actuals = [(json.loads(v)["booking_id"].encode(), v) for v in actuals]
    lines: list[str] = []
    failure: list[BaseException] = []
    started = time.monotonic()

    def noted(line: str) -> None:
        lines.append(f"[{time.monotonic() - started:6.1f}s] {line}")

    def publish(items: list[tuple[str, bytes, bytes]]) -> None:
        try:
            producer = BlockingProducer(
                bootstrap, report=noted, report_every_s=1.0, **{"message.timeout.ms": 5000}
            )
            for topic, key, value in items:
                producer.send(topic, key, value)
                time.sleep(0.02)
            noted(f"flushing; {producer.delivered} delivered, {producer.resent} sent again")
            producer.flush(timeout_s=5.0, outage_s=120.0)
        except BaseException as error:
            noted(f"gave up: {error}")
            failure.append(error)

    first = [(f"{topic_prefix}bookings", k, v) for k, v in keyed[:600]]
    first += [(f"{topic_prefix}actual-delays", k, v) for k, v in keyed_actuals[:600]]
    second = [(f"{topic_prefix}bookings", k, v) for k, v in keyed[600:]]
    second += [(f"{topic_prefix}actual-delays", k, v) for k, v in keyed_actuals[600:]]
    env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "JOIN_SWEEP_INTERVAL_S": "1"}
    with start_worker(stack, topic_prefix, home, **env) as worker:
        publish(first)
        assert failure == []
        assert wait_for_stored(migrated_database, "KO-", 600, timeout_s=120) == 600
        thread = threading.Thread(target=publish, args=(second,), daemon=True)
        thread.start()
        time.sleep(3.0)
        assert manager.down(only=["kafka"]) == ["kafka"]
        noted("broker stopped")
        time.sleep(OUTAGE_S + 10)
        back = manager.up()
        assert back.started == ("kafka",)
        assert back.endpoints.kafka_bootstrap_servers == bootstrap  # the address clients know
        noted("broker started")
        thread.join(180)
        assert not thread.is_alive() and failure == [], "\n".join(lines[-12:])
        assert wait_for_stored(migrated_database, "KO-", 1200, timeout_s=180) == 1200
        time.sleep(3)  # time to count anything twice
        assert worker.process is not None and worker.process.poll() is None, worker.log()[-3000:]
        log = worker.log()
    assert lines, "the producer never said it was holding records"
    assert wait_for_stored(migrated_database, "KO-", 1200) == 1200
    assert "history recorder process ended" not in log
    engine = sa.create_engine(migrated_database)
    with engine.connect() as c:
        live = c.execute(
            sa.select(sa.func.count()).where(
                predictions_table.c.booking_id.like("KO-%"), predictions_table.c.replay.is_(False)
            )
        ).scalar_one()
    engine.dispose()
    assert live == 1200
    assert_buckets_equal_offline(migrated_database)

"""Hostile input on the real stack: mixed into valid traffic, from foreign producers, with the
outcome path shared by two workers. Nothing valid is lost, nothing hostile gets through, no
worker stops."""

from __future__ import annotations

import json
import random
import re
import shutil
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from confluent_kafka import Producer

from connectors.kafka import home_partition
from schemas.tables import predictions as predictions_table
from tests.hostile.corpus import Case, actual, booking, hostile_cases
from tests.integration.conftest import TEST_PARTITIONS
from tests.integration.test_outcome_path import assert_buckets_equal_offline, wait_for_stored
from tests.integration.test_prediction_path import set_flags, start_worker
from tests.integration.workers import collect_until_quiet


@pytest.fixture
def home(tmp_path: Path, trained_model_dir: Path, migrated_database: str) -> Path:
    shutil.copytree(trained_model_dir, tmp_path / "models")
    return tmp_path


def valid_events(n: int, now: datetime, prefix: str = "V-") -> tuple[list[bytes], list[bytes]]:
    """n bookings picked up within the last hours, and their actual delays, observed by now."""
    rng = random.Random(11)
    bookings, actuals = [], []
    for i in range(n):
        pickup = now - timedelta(minutes=rng.uniform(60, 300))
        delay = rng.uniform(-5, 40)
        b = booking(
            f"{prefix}{i:04d}",
            now,
            created_at=(pickup - timedelta(minutes=rng.uniform(20, 600))).isoformat(),
            scheduled_pickup_at=pickup.isoformat(),
            pickup_lat=46.2 + rng.uniform(-0.05, 0.05),
            pickup_lon=6.14 + rng.uniform(-0.05, 0.05),
        )
        a = actual(
            f"{prefix}{i:04d}",
            now,
            actual_delay_minutes=round(delay, 2),
            observed_at=(pickup + timedelta(minutes=delay)).isoformat(),
        )
        bookings.append(json.dumps(b).encode())
        actuals.append(json.dumps(a).encode())
    return bookings, actuals


def publish(
    bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]], partitioner: str
) -> list[tuple[int, int]]:
    """Publish with a client configured like a foreign producer; (partition, offset) of each."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": partitioner, "linger.ms": 5}
    )
    where: list[tuple[int, int] | None] = [None] * len(items)

    def delivered(index: int):
        def on_delivery(err, msg) -> None:
            assert err is None, err
            where[index] = (msg.partition(), msg.offset())

        return on_delivery

    for i, (key, value) in enumerate(items):
        producer.produce(topic, value=value, key=key, on_delivery=delivered(i))
        producer.poll(0)
    assert producer.flush(30) == 0
    assert all(w is not None for w in where)
    return [w for w in where if w is not None]


def test_hostile_records_among_valid_traffic_from_foreign_producers_lose_nothing(
    stack, topic_prefix, home, migrated_database
):
    n = 240
    now = datetime.now(UTC)
    cases = hostile_cases(now, prefix="H-")
    valid_bookings, valid_actuals = valid_events(n, now)
    rng = random.Random(3)
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    env = {"JOIN_SWEEP_INTERVAL_S": "1"}
    with (
        start_worker(stack, topic_prefix, home, WORKER_ROLE="predict", **env) as predictor,
        start_worker(stack, topic_prefix, home, WORKER_ROLE="outcomes", **env) as joiner_a,
        start_worker(stack, topic_prefix, home, WORKER_ROLE="outcomes", **env) as joiner_b,
    ):
        expected: dict[tuple[str, int, int], Case] = {}
        misplaced: set[str] = set()  # valid actuals off their booking_id's partition
        for base, valid, partitioner in (
            ("bookings", valid_bookings, "murmur2_random"),
            # librdkafka's default partitioner (CRC32), and some actuals with no key at all
            ("actual-delays", valid_actuals, "consistent_random"),
            ("predictions", [], "murmur2_random"),
        ):
            hostile = [c for c in cases if c.topic == base]
            items: list[tuple[bytes | None, bytes, Case | None]] = [
                (None if i % 5 == 0 else json.loads(v)["booking_id"].encode(), v, None)
                for i, v in enumerate(valid)
            ]
            items += [(c.key, c.value, c) for c in hostile]
            rng.shuffle(items)
            topic = f"{topic_prefix}{base}"
            placed = publish(
                stack.kafka_bootstrap_servers, topic, [(k, v) for k, v, _ in items], partitioner
            )
            for (_, value, case), (partition, offset) in zip(items, placed, strict=True):
                if case is not None:
                    expected[topic, partition, offset] = case
                elif base == "actual-delays":
                    booking_id = json.loads(value)["booking_id"]
                    if home_partition(booking_id.encode(), TEST_PARTITIONS) != partition:
                        misplaced.add(booking_id)

        assert wait_for_stored(migrated_database, "V-", n, timeout_s=120) == n
        outcomes = [
            o
            for o in collect_until_quiet(stack, f"{topic_prefix}outcomes", quiet_s=3)
            if o["booking_id"].startswith("V-")
        ]
        predictions = collect_until_quiet(stack, f"{topic_prefix}predictions", quiet_s=2)
        letters = collect_until_quiet(stack, f"{topic_prefix}dead-letters", quiet_s=2)
        routed = collect_until_quiet(stack, f"{topic_prefix}actual-delays-routed", quiet_s=1)
        for worker in (predictor, joiner_a, joiner_b):
            assert worker.process is not None and worker.process.poll() is None, worker.log()[
                -3000:
            ]

    predicted = {p["booking_id"] for p in predictions if p["booking_id"].startswith("V-")}
    assert predicted == {f"V-{i:04d}" for i in range(n)}
    assert len(outcomes) == n and len({o["booking_id"] for o in outcomes}) == n
    assert len(misplaced) > n // 2  # CRC32 and no key put most actuals on foreign partitions
    assert {r["booking_id"] for r in routed} == misplaced
    got = {(d["source_topic"], d["source_partition"], d["source_offset"]): d for d in letters}
    missing = [c.name for k, c in expected.items() if k not in got]
    assert missing == []
    wrong = {
        c.name: (got[k]["kind"], got[k]["error"][:120])
        for k, c in expected.items()
        if got[k]["kind"] != c.kind
    }
    assert wrong == {}
    assert set(got) == set(expected), "a valid record was dead-lettered"
    assert Counter(c.kind for c in expected.values())["time_bounds"] >= 6


def test_workers_joining_killed_and_leaving_mid_stream_lose_nothing_and_count_once(
    stack, topic_prefix, home, migrated_database
):
    """2 predict and 2 outcome workers on 4 partitions; a third predict worker joins mid-stream,
    one predict worker is killed with SIGKILL, one outcome worker leaves with SIGTERM."""
    n, chunks = 2000, 4
    now = datetime.now(UTC)
    bookings, actuals = valid_events(n, now, prefix="MW-")
    set_flags(stack, topic_prefix, enabled=True, percentage=50)
    env = {"JOIN_SWEEP_INTERVAL_S": "1", "CONSUMER_SESSION_TIMEOUT_S": "6"}
    size = n // chunks

    def send(i: int) -> None:
        part = slice(i * size, (i + 1) * size)
        publish(
            stack.kafka_bootstrap_servers,
            f"{topic_prefix}bookings",
            [(json.loads(v)["booking_id"].encode(), v) for v in bookings[part]],
            "murmur2_random",
        )
        publish(
            stack.kafka_bootstrap_servers,
            f"{topic_prefix}actual-delays",
            [(json.loads(v)["booking_id"].encode(), v) for v in actuals[part]],
            "murmur2_random",
        )

    workers = [
        start_worker(stack, topic_prefix, home, WORKER_ROLE=role, **env)
        for role in ("predict", "predict", "outcomes", "outcomes")
    ]
    try:
        send(0)
        workers.append(start_worker(stack, topic_prefix, home, WORKER_ROLE="predict", **env))
        send(1)
        workers[0].kill()  # SIGKILL: its uncommitted bookings go to the others
        send(2)
        workers[3].stop()  # SIGTERM: an orderly leave
        send(3)
        assert wait_for_stored(migrated_database, "MW-", n, timeout_s=180) == n
        time.sleep(3)  # time for anything to be counted twice
        for w in (workers[1], workers[2], workers[4]):
            assert w.process is not None and w.process.poll() is None, w.log()[-3000:]
        predictions = collect_until_quiet(stack, f"{topic_prefix}predictions", quiet_s=3)
        outcomes = collect_until_quiet(stack, f"{topic_prefix}outcomes", quiet_s=3)
    finally:
        for w in workers:
            w.stop()
    predicted = [p["booking_id"] for p in predictions if p["booking_id"].startswith("MW-")]
    assert set(predicted) == {f"MW-{i:04d}" for i in range(n)}
    mine = [o["booking_id"] for o in outcomes if o["booking_id"].startswith("MW-")]
    assert len(set(mine)) == n and len(mine) - n < n // 10  # redelivered ones are re-emitted
    assert wait_for_stored(migrated_database, "MW-", n) == n
    engine = sa.create_engine(migrated_database)
    with engine.connect() as c:
        live_rows = c.execute(
            sa.select(sa.func.count()).where(
                predictions_table.c.booking_id.like("MW-%"), predictions_table.c.replay.is_(False)
            )
        ).scalar_one()
    engine.dispose()
    assert live_rows == n  # each booking's assignment counted once, however often predicted
    assert_buckets_equal_offline(migrated_database)


def publish_in_transactions(
    bootstrap: str, topic: str, transactions: list[tuple[list[tuple[bytes, bytes]], bool]]
) -> dict[bytes, tuple[int, int]]:
    """Publish as a producer that writes in transactions (a Java service with exactly-once,
    say): each (records, commit) is one transaction, committed or aborted. Returns where each
    key's record went: (partition, offset)."""
    placed: dict[bytes, tuple[int, int]] = {}

    def on_delivery(err, msg) -> None:
        assert err is None, err
        placed[msg.key()] = (msg.partition(), msg.offset())

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"{topic}-writer",
            "partitioner": "murmur2_random",
        }
    )
    producer.init_transactions(30)
    for records, commit in transactions:
        producer.begin_transaction()
        for key, value in records:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        producer.flush(30)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    return placed


PASSED_OVER = re.compile(r"\[Kafka\] (\S+)\[(\d+)\]: offsets (\d+)\.\.(\d+) were passed over")


def test_bookings_of_an_aborted_transaction_are_never_predicted(
    stack, topic_prefix, home, migrated_database
):
    """A producer that writes in transactions (a Java service with exactly-once, say): what it
    committed is predicted, what it aborted is not, and the offsets in between (its markers, the
    aborted records) are logged as passed over, exactly, for the runbook to read."""
    now = datetime.now(UTC)
    committed_before, _ = valid_events(40, now, prefix="TC-")
    aborted, _ = valid_events(12, now, prefix="TA-")
    committed_after, _ = valid_events(40, now, prefix="TD-")
    topic = f"{topic_prefix}bookings"
    set_flags(stack, topic_prefix, enabled=True, percentage=50)

    def keyed(values: list[bytes]) -> list[tuple[bytes, bytes]]:
        return [(json.loads(v)["booking_id"].encode(), v) for v in values]

    with start_worker(stack, topic_prefix, home, WORKER_ROLE="predict") as worker:
        placed = {
            key.decode(): where
            for key, where in publish_in_transactions(
                stack.kafka_bootstrap_servers,
                topic,
                [
                    (keyed(committed_before), True),
                    (keyed(aborted), False),
                    (keyed(committed_after), True),
                ],
            ).items()
        }
        expected_ids = {json.loads(v)["booking_id"] for v in committed_before + committed_after}
        deadline = time.monotonic() + 60
        predicted: set[str] = set()
        while time.monotonic() < deadline and not expected_ids <= predicted:
            predicted = {
                p["booking_id"]
                for p in collect_until_quiet(stack, f"{topic_prefix}predictions", quiet_s=1)
            }
        time.sleep(2)  # an aborted booking would be predicted by now
        predictions = collect_until_quiet(stack, f"{topic_prefix}predictions", quiet_s=2)
        letters = collect_until_quiet(stack, f"{topic_prefix}dead-letters", quiet_s=1)
        log = worker.log()
        assert worker.process is not None and worker.process.poll() is None

    assert sorted(p["booking_id"] for p in predictions) == sorted(expected_ids)  # once each
    assert letters == []
    # Per partition, from the first committed booking's transaction to the last one's: its
    # commit marker, the aborted bookings and the abort marker lie in between.
    expected_gaps = set()
    for partition in range(TEST_PARTITIONS):
        before = [o for k, (p, o) in placed.items() if p == partition and k.startswith("TC-")]
        after = [o for k, (p, o) in placed.items() if p == partition and k.startswith("TD-")]
        assert len(before) >= 2 and after  # else Faust sees no gap (it skips one after offset 0)
        expected_gaps.add((topic, partition, max(before) + 1, min(after) - 1))
    logged = {(t, int(p), int(a), int(b)) for t, p, a, b in PASSED_OVER.findall(log) if t == topic}
    assert logged == expected_gaps
    aborted_offsets = {placed[json.loads(v)["booking_id"]] for v in aborted}
    assert all(any(a <= o <= b for _, p2, a, b in logged if p2 == p) for p, o in aborted_offsets)

"""The join's batch step against hostile input: no record moves the clock, misplaced actuals go
home, a record whose join fails is dead-lettered alone, the sweep spares rewritten entries."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from connectors.kafka import Record, home_partition
from schemas import DeadLetter
from streams.decode import Inbound
from streams.outcomes.join import DONE, PREDICTION, side_of
from streams.outcomes.join_handler import JoinHandler
from tests.unit.test_join import actual, prediction

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PARTITIONS = 4


class CapturingProducer:
    def __init__(self) -> None:
        self.sent: list[Record] = []

    async def send_batch(self, records: list[Record]) -> None:
        self.sent.extend(records)


def handler(table, producer, horizon_s=7 * 86400.0, ebb=None):
    async def drained() -> None:
        return None

    return JoinHandler(
        table=table,
        producer=producer,  # type: ignore[arg-type]
        predictions_topic="predictions",
        outcomes_topic="outcomes",
        dead_letters_topic="dead-letters",
        routed_topic="actual-delays-routed",
        partitions=PARTITIONS,
        horizon_s=horizon_s,
        clock=lambda: NOW,
        ebb=ebb or drained,
    )


def record(event, topic, partition=None, key="booking_id", offset=0):
    home = home_partition(event.booking_id.encode(), PARTITIONS)
    return Inbound(
        topic=topic,
        partition=home if partition is None else partition,
        offset=offset,
        key=event.booking_id.encode() if key == "booking_id" else key,
        value=event.model_dump_json().encode(),
        timestamp_ms=NOW.timestamp() * 1000,
    )


def sent_to(producer, topic):
    return [r for r in producer.sent if r.topic == topic]


def letters(producer):
    return [DeadLetter.model_validate_json(r.value) for r in sent_to(producer, "dead-letters")]


def test_an_actual_observed_in_2099_is_dead_lettered_and_expires_nothing():
    table: dict = {}
    producer = CapturingProducer()
    h = handler(table, producer)
    at = NOW - timedelta(hours=2)
    pending = [prediction(f"P-{i}", at=at) for i in range(20)]
    asyncio.run(h.handle([record(p, "predictions", offset=i) for i, p in enumerate(pending)]))
    forged = actual("P-0", at=datetime(2099, 1, 1, tzinfo=UTC))
    honest = actual("P-1", at=at + timedelta(hours=1, minutes=3))
    asyncio.run(h.handle([record(forged, "actual-delays"), record(honest, "actual-delays")]))

    [letter] = letters(producer)
    assert letter.kind == "time_bounds" and "2099" in letter.error
    assert len(sent_to(producer, "outcomes")) == 1
    # Counted by kind too, for /metrics and the dashboard's dead letters per reason.
    assert (h.counters["dead_letters"], h.counters["dead_letters:time_bounds"]) == (1, 1)
    assert h.stream_time <= (NOW + timedelta(minutes=5)).timestamp()
    assert asyncio.run(h.sweep()) == {}
    assert sum(1 for e in table.values() if side_of(e) == PREDICTION) == 19


def test_an_actual_on_a_foreign_partition_is_routed_home_and_joins_there():
    table: dict = {}
    producer = CapturingProducer()
    h = handler(table, producer)
    p = prediction("ROUTE-1", at=NOW - timedelta(hours=2))
    a = actual("ROUTE-1", at=NOW - timedelta(minutes=50))
    home = home_partition(b"ROUTE-1", PARTITIONS)
    asyncio.run(h.handle([record(p, "predictions")]))
    asyncio.run(h.handle([record(a, "actual-delays", partition=(home + 1) % PARTITIONS, key=None)]))

    [routed] = sent_to(producer, "actual-delays-routed")
    assert routed.key == b"ROUTE-1" and json.loads(routed.value)["booking_id"] == "ROUTE-1"
    assert sent_to(producer, "outcomes") == [] and side_of(table[b"ROUTE-1"]) == PREDICTION
    asyncio.run(h.handle([record(a, "actual-delays-routed")]))
    assert len(sent_to(producer, "outcomes")) == 1 and side_of(table[b"ROUTE-1"]) == DONE
    assert h.counters["routed_actuals"] == 1 and h.counters["outcomes"] == 1


def test_the_outcome_on_kafka_carries_the_p90_of_its_prediction():
    producer = CapturingProducer()
    h = handler({}, producer)
    at = NOW - timedelta(hours=2)
    with_p90, without = prediction("Q-1", at=at, p90=11.75), prediction("Q-2", at=at)
    observed = NOW - timedelta(minutes=50)
    asyncio.run(h.handle([record(with_p90, "predictions"), record(without, "predictions")]))
    asyncio.run(
        h.handle(
            [
                record(actual("Q-1", delay=12.0, at=observed), "actual-delays"),
                record(actual("Q-2", delay=3.0, at=observed), "actual-delays"),
            ]
        )
    )
    sent = {r.key: json.loads(r.value) for r in sent_to(producer, "outcomes")}
    assert sent[b"Q-1"]["predicted_p90_minutes"] == 11.75
    assert sent[b"Q-2"]["predicted_p90_minutes"] is None


def test_a_routed_actual_still_off_its_partition_is_dead_lettered_not_routed_again():
    producer = CapturingProducer()
    h = handler({}, producer)
    a = actual("LOOP-1", at=NOW - timedelta(minutes=50))
    home = home_partition(b"LOOP-1", PARTITIONS)
    wrong = (home + 2) % PARTITIONS
    asyncio.run(h.handle([record(a, "actual-delays-routed", partition=wrong)]))
    assert sent_to(producer, "actual-delays-routed") == []
    [letter] = letters(producer)
    assert letter.kind == "processing" and f"belongs on {home}" in letter.error


def test_a_key_that_is_not_the_booking_id_is_dead_lettered():
    producer = CapturingProducer()
    h = handler({}, producer)
    a = actual("KEY-1", at=NOW - timedelta(minutes=50))
    asyncio.run(h.handle([record(a, "actual-delays", key=b"someone-else")]))
    [letter] = letters(producer)
    assert letter.kind == "key_mismatch" and "someone-else" in letter.error


def test_a_record_whose_join_fails_is_dead_lettered_alone():
    # State written by an older version, missing fields the join reads.
    table: dict = {b"OLD-1": {"side": PREDICTION, "t": NOW.timestamp()}}
    producer = CapturingProducer()
    h = handler(table, producer)
    at = NOW - timedelta(minutes=50)
    p = prediction("NEW-1", at=NOW - timedelta(hours=2))
    asyncio.run(h.handle([record(p, "predictions")]))
    asyncio.run(
        h.handle(
            [
                record(actual("OLD-1", at=at), "actual-delays"),
                record(actual("NEW-1", at=at), "actual-delays"),
            ]
        )
    )
    [letter] = letters(producer)
    assert letter.kind == "processing" and "KeyError" in letter.error
    [outcome] = sent_to(producer, "outcomes")
    assert outcome.key == b"NEW-1"


def test_the_sweep_spares_an_entry_a_batch_rewrote_while_it_waited():
    horizon_s = 3600.0
    old = NOW.timestamp() - 2 * horizon_s
    table = {f"K-{i}".encode(): {"side": DONE, "t": old} for i in range(5)}
    drains = 0

    async def ebb() -> None:
        nonlocal drains
        drains += 1
        if drains == 1:  # a batch runs while the first chunk drains, rewriting K-4
            table[b"K-4"] = {"side": PREDICTION, "t": NOW.timestamp()}

    h = handler(table, CapturingProducer(), horizon_s=horizon_s, ebb=ebb)
    h._chunk = 2
    h.stream_time = NOW.timestamp()
    counts = asyncio.run(h.sweep())
    assert counts["expired_dones"] == 4 and counts["expiry_skipped_rewritten"] == 1
    assert list(table) == [b"K-4"]


def test_a_done_marker_carries_the_wall_clock_of_its_join_and_the_sweep_expires_it_by_that():
    table: dict = {}
    producer = CapturingProducer()
    h = handler(table, producer)
    p = prediction("DONE-1", at=NOW - timedelta(hours=2))
    a = actual("DONE-1", at=NOW - timedelta(minutes=50))
    asyncio.run(h.handle([record(p, "predictions"), record(a, "actual-delays")]))
    assert table[b"DONE-1"] == NOW.timestamp()
    h._clock = lambda: NOW + timedelta(minutes=4)  # within the 5 minutes: kept
    assert asyncio.run(h.sweep()) == {}
    h._clock = lambda: NOW + timedelta(minutes=6)
    assert asyncio.run(h.sweep()) == {"expired_dones": 1} and table == {}
    # A duplicate of it now waits as a pending entry, and makes no second outcome.
    asyncio.run(h.handle([record(a, "actual-delays")]))
    assert len(sent_to(producer, "outcomes")) == 1 and side_of(table[b"DONE-1"]) == "actual"

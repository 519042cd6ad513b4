"""faust-streaming 0.15.3's two at-least-once bugs, shown on Faust's own consumer, and the
guards of delaycast's consumer (streams/worker/faust_config.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import Message

from streams.settings import load_settings
from streams.worker.faust_config import make_app, stuck_reason

TOPIC = TP("bookings", 0)


def consumer(tmp_path: Path, guarded: bool):
    app = make_app(load_settings(), "t-commits", tmp_path)
    if not guarded:  # Faust's own consumer, as it ships
        app.transport.Consumer = faust_aiokafka.Consumer  # type: ignore[attr-defined]
    return app.consumer


def message(offset: int) -> Message:
    return Message(TOPIC.topic, TOPIC.partition, offset, 0.0, 0, {}, b"k", b"v", None)


def acknowledge(c, m: Message) -> None:
    """What Faust's ``Consumer.ack`` records for a message of an acknowledged topic."""
    m.acked = True
    c._unacked_messages.discard(m)
    c._acked_index[m.tp].add(m.offset)
    c._acked[m.tp].append(m.offset)


def in_flight_at_head(c) -> list[Message]:
    """Offset 10 is due (committed), still in an agent; 11-13 are acknowledged."""
    c._committed_offset[TOPIC] = 10
    held = [message(o) for o in range(10, 14)]
    for m in held:
        c.track_message(m)
    for m in held[1:]:
        acknowledge(c, m)
    return held  # keeps the weakly tracked messages alive


@pytest.mark.parametrize(("guarded", "expected"), [(False, {TOPIC: 14}), (True, {})])
def test_a_commit_never_passes_a_record_still_in_an_agent_606(tmp_path, guarded, expected):
    async def run():
        c = consumer(tmp_path, guarded)
        held = in_flight_at_head(c)
        committable = c._filter_committable_offsets([TOPIC])
        return committable, held

    committable, _ = asyncio.run(run())
    # Faust 0.15.3 commits 14: offset 10, still being processed, would never be read again.
    assert committable == expected


def test_once_the_head_is_acknowledged_the_whole_run_is_committed(tmp_path):
    async def run():
        c = consumer(tmp_path, guarded=True)
        held = in_flight_at_head(c)
        assert c._filter_committable_offsets([TOPIC]) == {}
        acknowledge(c, held[0])
        return c._filter_committable_offsets([TOPIC])

    assert asyncio.run(run()) == {TOPIC: 14}


@pytest.mark.parametrize(("guarded", "recorded"), [(False, 14), (True, 10)])
def test_a_failed_commit_leaves_the_committed_offset_as_kafka_has_it_316(
    tmp_path, guarded, recorded
):
    async def run():
        c = consumer(tmp_path, guarded)
        c._committed_offset[TOPIC] = 10

        async def refused(offsets):  # Kafka refused the commit (a rebalance, say)
            return False

        c._commit = refused
        c.assignment = lambda: {TOPIC}  # this worker holds the partition
        c.app.producer.flush = _no_flush
        assert await c._commit_offsets({TOPIC: 14}) is False
        return c._committed_offset[TOPIC]

    assert asyncio.run(run()) == recorded


async def _no_flush() -> None:
    return None


def test_after_a_refused_commit_the_next_one_offers_the_same_run_again(tmp_path):
    """Faust takes 10-13 out of its acknowledgements to commit them; Kafka refuses. The next
    commit must offer 14 again (and 16 once 14-15 are acknowledged), not stop at the hole."""

    async def run():
        c = consumer(tmp_path, guarded=True)
        c._committed_offset[TOPIC] = 10
        answers = iter([False, True])
        offered: list[dict] = []

        async def commit(offsets):
            offered.append(dict(offsets))
            return next(answers)

        c._commit = commit
        c.assignment = lambda: {TOPIC}
        c.app.producer.flush = _no_flush
        for offset in range(10, 14):
            acknowledge(c, message(offset))
        first = await c.force_commit()
        for offset in (14, 15):
            acknowledge(c, message(offset))
        second = await c.force_commit()
        return first, second, offered, c._committed_offset[TOPIC]

    first, second, offered, committed = asyncio.run(run())
    assert (first, second) == (False, True)
    assert [o[TOPIC] for o in offered] == [14, 16]
    assert committed == 16


@pytest.mark.parametrize("change", ["a rebalance during the commit", "the partition revoked"])
def test_a_commit_refused_in_a_rebalance_restores_nothing(tmp_path, change):
    """The partition's books belong to the next assignment then: its seek reads the committed
    offsets from Kafka, and a revoked partition must not come back into them."""

    async def run():
        c = consumer(tmp_path, guarded=True)
        c._committed_offset[TOPIC] = 10
        c.assignment = lambda: {TOPIC}
        c.app.producer.flush = _no_flush

        async def refused(offsets):
            if change == "a rebalance during the commit":
                c.app.consumer_generation_id += 1
            else:
                c.assignment = lambda: set()
            return False

        c._commit = refused
        for offset in range(10, 14):
            acknowledge(c, message(offset))
        assert await c.force_commit() is False
        return c._committed_offset[TOPIC], list(c._acked[TOPIC])

    assert asyncio.run(run()) == (14, [])  # as Faust left them; not put back


class FakeThread:
    """The consumer thread's client for TOPIC: fetch position and end of the partition, read
    as the watchdog reads them (no waiting), and the seeks asked of it."""

    def __init__(self, position: int, end: int) -> None:
        self.at, self.end = position, end
        self.sought: list[dict[TP, int]] = []
        state = SimpleNamespace(has_valid_position=True, position=position)
        assignment = SimpleNamespace(state_value=lambda tp: state if tp == TOPIC else None)
        self._subscription = SimpleNamespace(subscription=SimpleNamespace(assignment=assignment))

    def _ensure_consumer(self):
        return self

    def last_stable_offset(self, tp):
        return self.end

    def highwater(self, tp):
        return self.end

    async def seek_wait(self, partitions):
        self.sought.append(dict(partitions))


def consumer_at(tmp_path: Path, *, committed, read, position: int, end: int):
    """A consumer assigned TOPIC only, with Faust's bookkeeping as given."""
    c = consumer(tmp_path, guarded=True)
    c._thread = FakeThread(position, end)
    c.assignment = lambda: {TOPIC}
    c.app.topics.acks_enabled_for = lambda topic: topic == TOPIC.topic
    c._committed_offset[TOPIC] = committed
    c._read_offset[TOPIC] = read
    return c


def test_records_fetched_past_and_never_delivered_are_found_stuck(tmp_path):
    """Faust dropped 10..15 (its read offset set to 15 past a seek to 10); 16-18 came after
    and were acknowledged: commits stop at 10 for good."""

    async def run():
        c = consumer_at(tmp_path, committed=10, read=18, position=19, end=19)
        for offset in (16, 17, 18):
            acknowledge(c, message(offset))
        return c._partition_views()

    [view] = asyncio.run(run()).values()
    assert (view.in_flight, view.commit_due) == (False, False)
    assert (
        stuck_reason(view)
        == "offsets 10..18 were fetched, and are neither in an agent nor acknowledged"
    )


def test_a_partition_left_out_of_the_fetch_with_records_waiting_is_found_stuck(tmp_path):
    async def run():
        c = consumer_at(tmp_path, committed=None, read=None, position=0, end=473)
        return c._partition_views()

    [view] = asyncio.run(run()).values()
    assert stuck_reason(view) == "offsets 0..472 wait and none is fetched"


@pytest.mark.parametrize(
    "case",
    [
        "in an agent",
        "acknowledged, commit due",
        "idle after a seek",
        "a marker after the last record",
        "a marker, then acknowledged records",
    ],
)
def test_partitions_in_flight_committing_or_read_to_their_end_are_not_stuck(tmp_path, case):
    async def run():
        committed, read, position, end = {
            "idle after a seek": (10, 10, 10, 10),
            # a transaction's commit marker at 10, skipped by the fetcher; nothing after it
            "a marker after the last record": (10, 9, 11, 11),
        }.get(case, (10, 15, 16, 16))
        c = consumer_at(tmp_path, committed=committed, read=read, position=position, end=end)
        held = [message(o) for o in range(10, 16)]
        if case == "in an agent":
            for m in held:
                c.track_message(m)
        elif case == "acknowledged, commit due":
            for m in held:
                acknowledge(c, m)
        elif case == "a marker, then acknowledged records":
            for m in held[1:]:
                acknowledge(c, m)
        return c._partition_views(), held

    views, _ = asyncio.run(run())
    assert [stuck_reason(v) for v in views.values()] == [None]


def test_a_changelog_partition_is_never_looked_at(tmp_path):
    async def run():
        c = consumer_at(tmp_path, committed=None, read=None, position=0, end=473)
        c.app.topics.acks_enabled_for = lambda topic: False
        return c._partition_views()

    assert asyncio.run(run()) == {}


def test_a_stuck_partition_is_fetched_again_from_its_committed_offset(
    tmp_path, caplog: pytest.LogCaptureFixture
):
    async def run():
        c = consumer_at(tmp_path, committed=10, read=18, position=19, end=19)
        c._get_active_partitions().discard(TOPIC)  # left out of the fetch
        [view] = c._partition_views().values()
        with caplog.at_level(logging.WARNING, logger="delaycast.kafka"):
            await c._read_again(TOPIC, view, 12.0)
        return TOPIC in c._get_active_partitions(), c._thread.sought

    assert asyncio.run(run()) == (True, [{TOPIC: 10}])
    [record] = caplog.records
    assert "bookings[0]: offsets 10..18 were fetched, and are neither in an agent nor " in (
        record.getMessage()
    )
    assert "acknowledged for 12 s (committed 10, read 18" in record.getMessage()
    assert "left out of the fetch); resuming it from offset 10" in record.getMessage()


@pytest.mark.parametrize("where", ["in an agent's queue", "held back for a full queue"])
def test_records_waiting_for_a_slow_agent_are_not_a_stuck_partition(tmp_path, where):
    """Faust counts a record as in flight only once the agent takes it from its queue: a slow
    agent leaves the partition read to its end with nothing in flight. That is no reason to
    read it again."""

    async def run():
        c = consumer_at(tmp_path, committed=10, read=18, position=19, end=19)
        if where == "in an agent's queue":
            channel = c.app.topic(TOPIC.topic)
            c.app.topics.add(channel)
            channel.queue.put_nowait(object())
        else:
            c._buffered_partitions.add(TOPIC)
        return c._partition_views()

    assert asyncio.run(run()) == {}


def test_a_position_being_reset_is_not_looked_at(tmp_path):
    async def run():
        c = consumer_at(tmp_path, committed=None, read=None, position=0, end=473)
        c._thread._subscription.subscription.assignment.state_value(
            TOPIC
        ).has_valid_position = False
        return c._partition_views()

    assert asyncio.run(run()) == {}


def test_an_input_partition_never_committed_is_sought_to_its_oldest_record(tmp_path):
    """aiokafka leaves a partition without a committed offset where its fetch stood, past the
    records Faust dropped at the rebalance: those go back to the start, the others (and every
    changelog) stay where their committed offset puts them."""
    changelog = TP("join-changelog", 0)
    committed = {TOPIC: None, TP("bookings", 1): 0, TP("bookings", 2): 57, changelog: None}
    to_beginning: list[TP] = []

    class Thread:
        async def seek_to_committed(self):
            return committed

        async def seek_to_beginning(self, *tps):
            to_beginning.extend(tps)

    async def run():
        c = consumer(tmp_path, guarded=True)
        c._thread = Thread()
        c.app.topics.acks_enabled_for = lambda topic: topic == "bookings"
        return await c.seek_to_committed()

    assert asyncio.run(run()) == committed
    assert sorted(to_beginning) == [TOPIC, TP("bookings", 1)]

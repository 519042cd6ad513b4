"""faust-streaming 0.15.3's two at-least-once bugs, shown on Faust's own consumer, and the
guards of delaycast's consumer (streams/faust_config.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import Message

from streams.faust_config import make_app
from streams.settings import load_settings

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

"""BlockingProducer.flush against a broker that does not answer: it waits out the whole outage
window, handing records back and sending them again, and only then says what it still holds."""

from __future__ import annotations

import socket
import time

import pytest

from connectors.kafka import BlockingProducer
from connectors.kafka.blocking import DeliveryFailed


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_flush_keeps_waiting_while_records_are_in_flight_and_resends_those_handed_back():
    lines: list[str] = []
    producer = BlockingProducer(
        f"127.0.0.1:{_closed_port()}",
        report=lines.append,
        report_every_s=0.0,
        **{"message.timeout.ms": 600, "log_level": 0},
    )
    for i in range(5):
        producer.send("nowhere", f"K-{i}".encode(), b"{}")
    started = time.monotonic()
    # Each round (0.1 s) ends with the records still in flight and none handed back yet;
    # stopping there would give up long before the outage window (2.5 s) is spent.
    with pytest.raises(DeliveryFailed, match=r"^5 records still queued, 0 failed$"):
        producer.flush(timeout_s=0.1, outage_s=2.5)
    assert time.monotonic() - started >= 2.4
    assert producer.resent >= 5  # every record came back at least once and was sent again
    assert producer.delivered == 0
    assert lines and "holding the records" in lines[0]

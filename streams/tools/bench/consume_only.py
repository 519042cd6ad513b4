"""Scenario (a), the client's ceiling: confluent-kafka consuming the bookings topic, nothing else.

``python -m streams.tools.bench.consume_only`` with TOPIC_PREFIX and BENCH_COUNT set: consumes
BENCH_COUNT messages in batches of BATCH_MAX as a member of a consumer group of its own,
prints its :mod:`~streams.tools.bench.meter` line and exits.
"""

from __future__ import annotations

import os
import sys
import time

from confluent_kafka import Consumer

from streams.settings import load_settings
from streams.tools.bench.meter import Meter

IDLE_LIMIT_S = 120.0


def main() -> None:
    settings = load_settings()
    meter = Meter(int(os.environ["BENCH_COUNT"]))
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": settings.topic("bench-consume-only"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([settings.topic("bookings")])
    last_seen = time.monotonic()
    try:
        while not meter.done:
            messages = consumer.consume(settings.batch_max, timeout=1.0)
            got = sum(1 for m in messages if m.error() is None and m.value() is not None)
            if got:
                last_seen = time.monotonic()
                meter.add(got)
            elif time.monotonic() - last_seen > IDLE_LIMIT_S:
                sys.exit(f"no message for {IDLE_LIMIT_S:.0f} s after {meter.events} of them")
        meter.report()
    finally:
        consumer.close()


if __name__ == "__main__":
    main()

"""Which partition a key belongs on, the way the Java client and delaycast's producers choose it.

Every producer delaycast runs (confluent-kafka with ``murmur2_random``, aiokafka inside Faust)
puts a booking_id on ``murmur2(key) mod partitions``, like Kafka's Java client. A producer in
another language may hash differently (librdkafka's default is CRC32) or send no key at all; the
join uses this to find such records and route them home.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def home_partition(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions``, as Kafka's Java client computes it.

    >>> [home_partition(f"B-{i}".encode(), 4) for i in range(6)]
    [0, 2, 1, 2, 0, 3]
    """
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    return (murmur2(key) & 0x7FFFFFFF) % partitions

"""Kafka adapters (confluent-kafka): the async batch producer, blocking helpers, offset-range
reads and consumer-group administration."""

from connectors.kafka.blocking import BlockingProducer, DeliveryFailed, paced, read_topic
from connectors.kafka.groups import (
    GroupError,
    GroupInfo,
    alter_offsets,
    committed_offsets,
    describe_group,
)
from connectors.kafka.partitions import home_partition
from connectors.kafka.producer import BatchProducer, Record, Undeliverable
from connectors.kafka.ranges import (
    OffsetRange,
    describe_ranges,
    range_of_offsets,
    ranges_between_times,
)
from connectors.kafka.reader import KafkaReadError, RangeReader

__all__ = [
    "BatchProducer",
    "BlockingProducer",
    "DeliveryFailed",
    "GroupError",
    "GroupInfo",
    "KafkaReadError",
    "OffsetRange",
    "RangeReader",
    "Record",
    "Undeliverable",
    "alter_offsets",
    "committed_offsets",
    "describe_group",
    "describe_ranges",
    "home_partition",
    "paced",
    "range_of_offsets",
    "ranges_between_times",
    "read_topic",
]

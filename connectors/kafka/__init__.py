"""Kafka adapters (confluent-kafka): the async batch producer and blocking helpers."""

from connectors.kafka.blocking import BlockingProducer, DeliveryFailed, paced, read_topic
from connectors.kafka.producer import BatchProducer, Record

__all__ = ["BatchProducer", "BlockingProducer", "DeliveryFailed", "Record", "paced", "read_topic"]

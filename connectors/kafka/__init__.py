"""Kafka adapters (confluent-kafka): the batch producer, admin helpers and simple consumers."""

from connectors.kafka.producer import BatchProducer, Record

__all__ = ["BatchProducer", "Record"]

"""Kafka: consumer lag, lag in seconds and status, rates, topics and brokers, over the Kafka protocol."""

from collectors.kafka import hints  # noqa: F401  (registers the source's error hints with the core)

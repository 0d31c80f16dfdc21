"""Kafka: consumer lag, lag in seconds and status, rates, topics and brokers, over the Kafka protocol."""

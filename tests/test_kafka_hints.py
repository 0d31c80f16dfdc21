"""Kafka's own error hints (collectors/kafka/hints.py): protocol error codes as aiokafka reports them, and a
port that accepts TCP but does not speak Kafka, registered with the core's hint_for for the kafka components."""

from __future__ import annotations

import pytest
from aiokafka.errors import for_code

import collectors.kafka  # noqa: F401  (registers the hints)
from monitoring.errors import hint_for
from monitoring.health import categorize, describe


@pytest.mark.parametrize("code, category, start", [
    (3, "kafka_protocol", "UNKNOWN_TOPIC_OR_PARTITION: the broker does not host a partition pipewatch asked about "
                          "(orders[2])"),
    (15, "kafka_protocol", "COORDINATOR_NOT_AVAILABLE: no broker can coordinate group billing right now"),
    (16, "kafka_protocol", "NOT_COORDINATOR: the coordinator of group billing moved"),
    (14, "kafka_protocol", "COORDINATOR_LOAD_IN_PROGRESS: the coordinator of group billing"),
    (30, "auth", "GROUP_AUTHORIZATION_FAILED: the principal pipewatch connects as may not read group billing's "
                 "offsets: grant it DESCRIBE on the group (kafka-acls --add --operation Describe --group billing)."),
    (29, "auth", "TOPIC_AUTHORIZATION_FAILED"),
    (58, "auth", "SASL_AUTHENTICATION_FAILED"),
])
def test_kafka_protocol_error_codes_as_aiokafka_reports_them(code, category, start):
    error = for_code(code)("OffsetFetch for group 'billing', orders[2]")
    assert categorize(error) == category
    assert hint_for(category, describe(error), component="kafka").startswith(start)


def test_a_port_that_does_not_speak_kafka():
    message = ("ConnectionError: no bootstrap server reachable (127.0.0.1:8081: accepts TCP but does not answer the "
               "Kafka protocol)")
    assert hint_for("connection", message, "127.0.0.1:8081", "kafka:local").startswith(
        "Something listens at 127.0.0.1:8081 but does not answer Kafka's protocol: check the port, and "
        "security_protocol")
    assert hint_for("connection", message, "127.0.0.1:8081", "flink") == ""

"""Kafka's own error hints: its protocol error codes (as aiokafka reports them, or by their names) and a broker
port that accepts TCP but does not speak Kafka. Registered for the kafka components when the package is imported."""

from __future__ import annotations

import re

from monitoring.errors import ADDRESS, HintContext, quoted, register_hints


# Kafka protocol error codes (Kafka's protocol guide), as aiokafka reports them: "[Error 30] GroupAuthorization...".
def _kafka_code(code: int, ctx: HintContext) -> str:
    group, topic = quoted(ctx.message, "group"), quoted(ctx.message, "topic")
    the_group = f"group {group}" if group else "the group"
    if code == 3:
        partition = re.search(r"[,:] (\S+\[\d+\])", ctx.message)
        where = f" ({partition.group(1)})" if partition else ""
        return (f"UNKNOWN_TOPIC_OR_PARTITION: the broker does not host a partition pipewatch asked about{where}: the "
                "topic was deleted or is being created, or the broker's metadata is behind; it clears once the "
                "metadata catches up, else check that the topic exists on this cluster.")
    if code in (5, 6):
        return ("The partition has no leader on the broker asked (a leader election is under way, or metadata is "
                "stale): check for offline partitions and brokers that left the cluster.")
    if code == 7:
        return ("A broker accepted the request but did not finish it in time: look at the broker's request latency "
                "and load.")
    if code == 14:
        return (f"COORDINATOR_LOAD_IN_PROGRESS: the coordinator of {the_group} is still loading its offsets after a "
                "restart or a leadership change; this clears by itself once loading finishes.")
    if code == 15:
        return (f"COORDINATOR_NOT_AVAILABLE: no broker can coordinate {the_group} right now; the __consumer_offsets "
                "partition that holds it has no leader: check the brokers hosting __consumer_offsets.")
    if code == 16:
        return (f"NOT_COORDINATOR: the coordinator of {the_group} moved to another broker; pipewatch looks it up "
                "again next cycle. If it persists, partition leadership of __consumer_offsets keeps moving.")
    if code == 29:
        subject = f"topic {topic}" if topic else "the topic"
        return (f"TOPIC_AUTHORIZATION_FAILED: the principal pipewatch connects as may not describe {subject}: "
                "grant it DESCRIBE on the topic (kafka-acls --add --operation Describe --topic ...).")
    if code == 30:
        return (f"GROUP_AUTHORIZATION_FAILED: the principal pipewatch connects as may not read {the_group}'s offsets: "
                f"grant it DESCRIBE on the group (kafka-acls --add --operation Describe --group {group or '...'}).")
    if code == 31:
        return ("CLUSTER_AUTHORIZATION_FAILED: the principal pipewatch connects as may not describe the cluster: "
                "grant it DESCRIBE on the cluster resource (ListGroups needs it).")
    if code == 35:
        return "The broker does not support the request version pipewatch sent: the broker is older than Kafka 0.10.2."
    if code == 58:
        return ("SASL_AUTHENTICATION_FAILED: the broker rejected the login: check sasl.username and sasl.password and "
                "that the mechanism is one this listener enables.")
    if code == 69:
        return f"GROUP_ID_NOT_FOUND: {the_group} was deleted between listing and reading it; it drops off next cycle."
    return ""


_KAFKA_NAMES = {  # aiokafka's class names and Kafka's own (Java exceptions, constant names)
    3: ("UnknownTopicOrPartition", "UNKNOWN_TOPIC_OR_PARTITION"), 5: ("LeaderNotAvailable", "LEADER_NOT_AVAILABLE"),
    6: ("NotLeaderForPartition", "NotLeaderOrFollower", "NOT_LEADER_OR_FOLLOWER"),
    14: ("GroupLoadInProgress", "CoordinatorLoadInProgress", "COORDINATOR_LOAD_IN_PROGRESS"),
    15: ("GroupCoordinatorNotAvailable", "CoordinatorNotAvailable", "COORDINATOR_NOT_AVAILABLE"),
    16: ("NotCoordinatorForGroup", "NotCoordinator", "NOT_COORDINATOR"),
    29: ("TopicAuthorizationFailed", "TOPIC_AUTHORIZATION_FAILED"),
    30: ("GroupAuthorizationFailed", "GROUP_AUTHORIZATION_FAILED"),
    31: ("ClusterAuthorizationFailed", "CLUSTER_AUTHORIZATION_FAILED"),
    58: ("SaslAuthenticationFailed", "SASL_AUTHENTICATION_FAILED"), 69: ("GroupIdNotFound", "GROUP_ID_NOT_FOUND"),
}


def _kafka(ctx: HintContext) -> str:
    match = re.search(r"\[Error (\d+)\]", ctx.message)
    if match:
        return _kafka_code(int(match.group(1)), ctx)
    for code, names in _KAFKA_NAMES.items():
        if any(name in ctx.message for name in names):
            return _kafka_code(code, ctx)
    return ""



def _not_kafka(ctx: HintContext) -> str:
    if "accepts TCP but does not answer the Kafka protocol" not in ctx.message:
        return ""
    address = re.search(ADDRESS + r": accepts TCP", ctx.message)
    return (f"Something listens at {address.group(1) if address else ctx.target} but does not answer Kafka's "
            "protocol: check the port, and security_protocol (a TLS or SASL listener addressed as PLAINTEXT).")


register_hints("kafka", _kafka)
register_hints("kafka", _not_kafka, {"connection", "unreachable", "os_error"})

"""The series a Kafka cycle writes: one snapshot into one store cycle (`CycleWriter`).

Names follow kafka_exporter's where the meaning is the same (docs/metrics.md lists every series).
Whether a value is written or left out (None) is decided here, not by the snapshot.
"""

from __future__ import annotations

from monitoring.models.kafka import GroupInfo, KafkaSnapshot, TopicInfo
from monitoring.store import CycleWriter


def write_snapshot(cycle: CycleWriter, pipeline: str, snapshot: KafkaSnapshot) -> None:
    """Every series of the snapshot; a group that could not be read keeps its last known series."""
    cluster = snapshot.cluster
    cycle.set("kafka_brokers", (cluster,), len(snapshot.brokers))
    for broker in snapshot.brokers:
        cycle.set("kafka_broker_reachable", (cluster, str(broker.node_id)), int(broker.reachable))
    _write_topic_offsets(cycle, cluster, snapshot.topics)
    for group in snapshot.groups:
        if group.error is not None:
            # Keep the group's last known series (marked by their age) rather than blank them.
            prefix = (pipeline, cluster, group.group_id)
            cycle.retain(lambda key, prefix=prefix: key[1][:3] == prefix)
            continue
        labels = (cluster, group.group_id)
        cycle.set("kafka_consumergroup_status", labels, int(group.status))
        if group.member_count is not None:
            cycle.set("kafka_consumergroup_members", labels, group.member_count)
        if group.lag_sum is not None:
            cycle.set("kafka_consumergroup_group_sum_lag", labels, group.lag_sum)
            cycle.set("kafka_consumergroup_group_max_lag", labels, group.max_lag)
        cycle.set("kafka_consumergroup_group_max_lag_seconds", labels, group.max_lag_seconds)
    _write_group_partitions(cycle, cluster, [group for group in snapshot.groups if group.error is None])
    for (group_id, topic), progress in snapshot.group_topics.items():
        labels = (cluster, group_id, topic)
        if progress.lag is not None:
            cycle.set("kafka_consumergroup_group_topic_sum_lag", labels, progress.lag)
        cycle.set("kafka_consumergroup_group_topic_max_lag_seconds", labels, progress.max_lag_seconds)
        if progress.consume_rate is not None:
            cycle.set("kafka_consumergroup_consume_rate", labels, progress.consume_rate)
        cycle.set("kafka_consumergroup_catch_up_seconds", labels, progress.catch_up_seconds)
        if progress.retention_margin is not None:
            cycle.set("kafka_consumergroup_retention_margin_messages", labels, progress.retention_margin)
        cycle.set("kafka_consumergroup_retention_risk_seconds", labels, progress.retention_risk_seconds)
    _write_topic_layout(cycle, cluster, snapshot.topics)
    if snapshot.dead_letters is not None:  # only when the pipeline declares dead-letter topics
        cycle.set("kafka_dead_letter_rate", (cluster,), snapshot.dead_letters.rate)
        cycle.set("kafka_dead_letter_input_rate", (cluster,), snapshot.dead_letters.input_rate)


def _write_topic_offsets(cycle: CycleWriter, cluster: str, topics: dict[str, TopicInfo]) -> None:
    """Per partition, its latest and earliest offset; per topic, its produce rate."""
    # High watermarks and log starts are only read for partitions the metadata lists.
    for metric, rows in (
        ("kafka_topic_partition_current_offset", [((cluster, name, str(partition)), offset)
                                                  for name, topic in topics.items()
                                                  for partition, offset in topic.high_watermarks.items()]),
        ("kafka_topic_partition_oldest_offset", [((cluster, name, str(partition)), offset)
                                                 for name, topic in topics.items()
                                                 for partition, offset in topic.log_start_offsets.items()]),
    ):
        cycle.set_many(metric, rows)
    for name, topic in topics.items():
        if topic.produce_rate is not None:
            cycle.set("kafka_topic_produce_rate", (cluster, name), topic.produce_rate)


def _write_topic_layout(cycle: CycleWriter, cluster: str, topics: dict[str, TopicInfo]) -> None:
    """Partitions per topic; leader, replicas, in-sync replicas and under-replication per partition.
    The layout changes rarely: its series get a point only when their value changes."""
    cycle.set_column("kafka_topic_partitions", [(cluster, name) for name in topics],
                     [len(topic.partitions) for topic in topics.values()], only_changes=True)
    metas = [((cluster, name, str(partition)), meta)
             for name, topic in topics.items() for partition, meta in topic.partitions.items()]
    labels = [row for row, _ in metas]
    for metric, values in (
        ("kafka_topic_partition_leader", [meta.leader for _, meta in metas]),
        ("kafka_topic_partition_replicas", [len(meta.replicas) for _, meta in metas]),
        ("kafka_topic_partition_in_sync_replica", [len(meta.isr) for _, meta in metas]),
        ("kafka_topic_partition_under_replicated_partition", [int(meta.under_replicated) for _, meta in metas]),
    ):
        cycle.set_column(metric, labels, values, only_changes=True)


def _write_group_partitions(cycle: CycleWriter, cluster: str, groups: list[GroupInfo]) -> None:
    """Per committed group-partition: offset, status, lag and lag in seconds, a column per metric
    (tens of thousands of rows a cycle)."""
    committed = [(group.group_id, p) for group in groups for p in group.partitions if p.committed is not None]
    labels = [(cluster, group_id, p.topic, str(p.partition)) for group_id, p in committed]
    cycle.set_column("kafka_consumergroup_current_offset", labels, [p.committed for _, p in committed])
    cycle.set_column("kafka_consumergroup_partition_status", labels, [int(p.status) for _, p in committed])
    lagged = [(row, p.lag) for row, (_, p) in zip(labels, committed, strict=True) if p.lag is not None]
    cycle.set_column("kafka_consumergroup_lag", [row for row, _ in lagged], [lag for _, lag in lagged])
    cycle.set_column("kafka_consumergroup_lag_seconds", labels, [p.lag_seconds for _, p in committed])

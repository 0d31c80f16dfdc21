"""Kafka in depth on a real broker: lag in seconds, status, cluster layout, group members."""

from __future__ import annotations

import math
import time

import pytest
from aiokafka import AIOKafkaConsumer

from collectors.kafka.collector import KafkaCollector
from collectors.kafka.derive import group_topic
from collectors.kafka.requests import members
from collectors.kafka.status import Status
from monitoring.config import KafkaSource
from monitoring.models.kafka import PartitionLag
from monitoring.store import Store
from tests.kafka_util import commit, create_topic, delete_group, produce, record_timestamp
from tests.services import async_wait_until


def _collector(bootstrap: str, **overrides) -> KafkaCollector:
    return KafkaCollector("orders", KafkaSource(bootstrap_servers=[bootstrap], cluster="local", interval_seconds=0.2,
                                                timeout_seconds=5, **overrides))


def _snapshot(store: Store):
    return store.snapshot(("orders", "kafka"))[1]


async def _bursts(broker, collector: KafkaCollector, store: Store) -> list[float]:
    """Three bursts of 4 records, each bracketed by watermark samples; commit at offset 6."""
    await produce(broker.bootstrap, "clicks", {0: 1})
    await commit(broker.bootstrap, "reader", "clicks", {0: 1})
    sample_times = [time.time()]
    await collector.collect(store)  # watermark 1, caught up
    for _ in range(3):
        await produce(broker.bootstrap, "clicks", {0: 4})
        sample_times.append(time.time())
        await collector.collect(store)
    # Committed offset 6: the oldest unconsumed record was produced in the second burst.
    await commit(broker.bootstrap, "reader", "clicks", {0: 6})
    await collector.collect(store)
    return sample_times


async def test_lag_seconds_interpolated_within_the_sample_spacing_of_the_true_age(broker):
    await create_topic(broker.bootstrap, "clicks", 1)
    store, collector = Store(), _collector(broker.bootstrap, record_timestamp_lookups=0)
    try:
        sample_times = await _bursts(broker, collector, store)
    finally:
        await collector.close()
    snapshot = _snapshot(store)
    (partition,) = snapshot.groups[0].partitions
    assert partition.lag == 13 - 6
    assert partition.lag_seconds_method == "interpolated"
    true_age = snapshot.collected_at - await record_timestamp(broker.bootstrap, "clicks", 0, 6)
    # The estimate lies between the watermark samples around that record: the stated tolerance is
    # the time between those two samples.
    tolerance = sample_times[2] - sample_times[1] + 0.05
    assert abs(partition.lag_seconds - true_age) <= tolerance, (partition.lag_seconds, true_age, tolerance)


async def test_lag_seconds_exact_from_the_record_timestamp(broker):
    await create_topic(broker.bootstrap, "clicks", 1)
    store, collector = Store(), _collector(broker.bootstrap)
    try:
        await _bursts(broker, collector, store)
    finally:
        await collector.close()
    snapshot = _snapshot(store)
    (partition,) = snapshot.groups[0].partitions
    assert partition.lag_seconds_method == "record_timestamp"
    true_age = snapshot.collected_at - await record_timestamp(broker.bootstrap, "clicks", 0, 6)
    assert partition.lag_seconds == pytest.approx(true_age, abs=1e-3)
    exported = store.latest("kafka_consumergroup_lag_seconds", ("orders", "local", "reader", "clicks", "0"))[1]
    assert exported == partition.lag_seconds
    assert store.latest("kafka_consumergroup_group_max_lag_seconds", ("orders", "local", "reader"))[1] == exported
    assert store.latest("kafka_consumergroup_group_topic_max_lag_seconds",
                        ("orders", "local", "reader", "clicks"))[1] == exported


async def test_caught_up_group_has_zero_lag_seconds_and_uncommitted_partition_is_unknown(broker):
    await create_topic(broker.bootstrap, "t", 2)
    await produce(broker.bootstrap, "t", {0: 3, 1: 3})
    await commit(broker.bootstrap, "g", "t", {0: 3})
    store, collector = Store(), _collector(broker.bootstrap)
    try:
        await collector.collect(store)
        await collector.collect(store)
    finally:
        await collector.close()
    by_partition = {p.partition: p for p in _snapshot(store).groups[0].partitions}
    assert by_partition[0].lag_seconds == 0 and by_partition[0].lag_seconds_method == "caught_up"
    assert math.isnan(by_partition[1].lag_seconds) and by_partition[1].lag_seconds_method == "unknown"
    assert store.latest("kafka_consumergroup_lag_seconds", ("orders", "local", "g", "t", "1")) is None


async def test_cluster_layout_and_live_group_members(broker):
    await create_topic(broker.bootstrap, "layout", 3)
    await produce(broker.bootstrap, "layout", {0: 2, 1: 2, 2: 2})
    consumer = AIOKafkaConsumer("layout", bootstrap_servers=broker.bootstrap, group_id="live", client_id="live-1",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    store, collector = Store(), _collector(broker.bootstrap)
    try:
        await async_wait_until(lambda: consumer.assignment(), 20, what="partition assignment")
        await consumer.getmany(timeout_ms=2000)
        await consumer.commit()
        await collector.collect(store)
    finally:
        await collector.close()
        await consumer.stop()
    snapshot = _snapshot(store)
    assert [b.port for b in snapshot.brokers] == [broker.port]
    topic = snapshot.topics["layout"]
    broker_id = snapshot.brokers[0].node_id
    assert sorted(topic.partitions) == [0, 1, 2]
    assert all(meta.leader == broker_id and meta.replicas == (broker_id,) and meta.isr == (broker_id,)
               for meta in topic.partitions.values())
    assert topic.under_replicated == 0 and topic.offline == 0
    (group,) = snapshot.groups
    assert group.state == "Stable" and group.member_count == 1
    assert store.latest("kafka_topic_partition_in_sync_replica", ("orders", "local", "layout", "0"))[1] == 1
    assert store.latest("kafka_topic_partition_under_replicated_partition", ("orders", "local", "layout", "0"))[1] == 0
    assert store.latest("kafka_brokers", ("orders", "local"))[1] == 1
    assert store.latest("kafka_consumergroup_members", ("orders", "local", "live"))[1] == 1


def test_member_assignment_is_decoded_from_the_protocol_bytes():
    # This broker answers DescribeGroups with empty client id, host and assignment, so the decoding
    # is checked on the bytes a real Kafka coordinator sends (consumer protocol v0 assignment).
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    raw = ConsumerProtocolMemberAssignment(0, [("orders", [2, 0]), ("audit", [1])], b"").encode()
    (member,) = members({"members": [{"member_id": "m-1", "client_id": "billing-1", "client_host": "/10.0.0.7",
                                      "member_assignment": raw}]})
    assert member.assignment == (("audit", 1), ("orders", 0), ("orders", 2))
    assert member.label == "billing-1@10.0.0.7"
    (other,) = members({"members": [{"member_id": "m-2", "client_id": "", "client_host": "",
                                     "member_assignment": b"\x00\x01garbage"}]})
    assert other.assignment == () and other.label == "m-2"


def _lag(partition: int, committed: int, hw: int, log_start: int) -> PartitionLag:
    return PartitionLag("t", partition, committed, hw, hw - committed, log_start)


def test_catch_up_time_and_retention_risk_from_rates():
    partitions = [_lag(0, 100, 400, 50), _lag(1, 300, 400, 200)]  # lag 400, margins 50 and 100
    progress = group_topic("g", "t", partitions, consume_rate=30.0, produce_rate=10.0, log_start_rate=20.0)
    assert progress.lag == 400
    assert progress.catch_up_seconds == 400 / (30.0 - 10.0)
    assert progress.retention_margin == 50
    assert math.isinf(progress.retention_risk_seconds)  # the group consumes faster than retention deletes

    slow = group_topic("g", "t", partitions, consume_rate=8.0, produce_rate=10.0, log_start_rate=40.0)
    assert math.isinf(slow.catch_up_seconds) and slow.catch_up_seconds > 0  # not catching up
    # The log start gains (40 - 8) / 2 partitions = 16 messages/s per partition on a margin of 50.
    assert slow.retention_risk_seconds == 50 / 16.0

    lost = group_topic("g", "t", [_lag(0, 10, 400, 60)], consume_rate=8.0, produce_rate=10.0, log_start_rate=40.0)
    assert lost.retention_margin == -50 and lost.retention_risk_seconds == 0.0

    unknown = group_topic("g", "t", partitions, consume_rate=None, produce_rate=10.0, log_start_rate=None)
    assert math.isnan(unknown.catch_up_seconds) and math.isnan(unknown.retention_risk_seconds)

    caught_up = group_topic("g", "t", [_lag(0, 400, 400, 0)], consume_rate=None, produce_rate=None,
                            log_start_rate=None)
    assert caught_up.catch_up_seconds == 0.0


async def test_status_is_exported_with_its_code_and_name(broker):
    await create_topic(broker.bootstrap, "s", 1)
    await produce(broker.bootstrap, "s", {0: 2})
    await commit(broker.bootstrap, "ok-group", "s", {0: 2})
    store, collector = Store(), _collector(broker.bootstrap)
    try:
        for _ in range(3):
            await collector.collect(store)
    finally:
        await collector.close()
    (group,) = _snapshot(store).groups
    assert group.status is Status.OK
    assert store.latest("kafka_consumergroup_status", ("orders", "local", "ok-group"))[1] == int(Status.OK)


async def _status_after_cycles(store: Store, collector: KafkaCollector, group_id: str, wanted: Status,
                               timeout: float = 20.0) -> str:
    """Run collection cycles until the group's first partition reaches `wanted`; return its reason."""
    async def reached() -> bool:
        await collector.collect(store)
        group = next(g for g in _snapshot(store).groups if g.group_id == group_id)
        return group.partitions[0].status is wanted

    await async_wait_until(reached, timeout, interval=0.1, what=f"{group_id} to become {wanted.name}")
    group = next(g for g in _snapshot(store).groups if g.group_id == group_id)
    return group.partitions[0].status_reason


async def test_status_transitions_with_real_consumers(broker):
    await create_topic(broker.bootstrap, "work", 1)
    await produce(broker.bootstrap, "work", {0: 4})
    for group in ("stopped", "stalled", "healthy", "rewound"):
        await commit(broker.bootstrap, group, "work", {0: 4})
    # "stalled" has a live member that never consumes; the others have no members.
    member = AIOKafkaConsumer("work", bootstrap_servers=broker.bootstrap, group_id="stalled", enable_auto_commit=False,
                              auto_offset_reset="latest")
    await member.start()
    store, collector = Store(), _collector(broker.bootstrap, stall_after_seconds=1.0)
    try:
        await async_wait_until(lambda: member.assignment(), 20, what="the stalled member's assignment")
        for _ in range(2):
            await collector.collect(store)
        await produce(broker.bootstrap, "work", {0: 3})  # new data arrives for everyone
        await commit(broker.bootstrap, "healthy", "work", {0: 7})  # a consumer that keeps up
        await commit(broker.bootstrap, "rewound", "work", {0: 1})  # offset reset backwards

        assert "no member is consuming" in await _status_after_cycles(store, collector, "stopped", Status.STOP)
        assert "members present" in await _status_after_cycles(store, collector, "stalled", Status.STALL)
        await _status_after_cycles(store, collector, "rewound", Status.REWIND)
        groups = {g.group_id: g for g in _snapshot(store).groups}
        assert groups["healthy"].partitions[0].status is Status.OK
        assert groups["healthy"].status is Status.OK
        assert groups["stopped"].status is Status.ERR and "STOP" in groups["stopped"].status_reason
        assert store.latest("kafka_consumergroup_partition_status", ("orders", "local", "stopped", "work", "0"))[1] == 4
        assert store.latest("kafka_consumergroup_status", ("orders", "local", "stalled"))[1] == int(Status.ERR)
    finally:
        await collector.close()
        await member.stop()


async def test_deleted_group_disappears_within_one_cycle_and_stays_gone(broker):
    await create_topic(broker.bootstrap, "t", 1)
    await produce(broker.bootstrap, "t", {0: 5})
    await commit(broker.bootstrap, "doomed", "t", {0: 2})
    await commit(broker.bootstrap, "kept", "t", {0: 3})
    store, collector = Store(), _collector(broker.bootstrap)
    try:
        await collector.collect(store)
        assert {k[1][2] for k in store.keys("kafka_consumergroup_lag")} == {"doomed", "kept"}
        await delete_group(broker.bootstrap, "doomed")
        for _ in range(3):  # gone in the next cycle, and not resurrected by later ones
            await collector.collect(store)
            assert [g.group_id for g in _snapshot(store).groups] == ["kept"]
            assert {k[1][2] for k in store.keys() if k[0].startswith("kafka_consumergroup")} == {"kept"}
    finally:
        await collector.close()


async def test_one_pipeline_watching_two_clusters(broker, tmp_path):
    from collectors import build_collectors
    from monitoring.config import load_config
    from monitoring.runtime import Supervisor
    from pipewatch.local.broker import LocalBroker

    second = LocalBroker(tmp_path)
    second.start()
    try:
        for bootstrap, lag in ((broker.bootstrap, 2), (second.bootstrap, 5)):
            await create_topic(bootstrap, "t", 1)
            await produce(bootstrap, "t", {0: 6})
            await commit(bootstrap, "g", "t", {0: 6 - lag})
        path = tmp_path / "two.yml"
        path.write_text("pipelines:\n  - name: orders\n    kafka:\n"
                        f"      - {{bootstrap_servers: ['{broker.bootstrap}'], cluster: east}}\n"
                        f"      - {{bootstrap_servers: ['{second.bootstrap}'], cluster: west}}\n")
        store = Store()
        supervisor = Supervisor(store, build_collectors(load_config(path)))
        try:
            for collector in supervisor.collectors:
                await supervisor.run_once(collector)
        finally:
            await supervisor.stop()
        assert sorted(store.health()) == [("orders", "kafka:east"), ("orders", "kafka:west")]
        assert store.latest("kafka_consumergroup_lag", ("orders", "east", "g", "t", "0"))[1] == 2
        assert store.latest("kafka_consumergroup_lag", ("orders", "west", "g", "t", "0"))[1] == 5
        assert store.snapshot(("orders", "kafka:west"))[1].cluster == "west"
    finally:
        second.stop()


def test_group_with_members_but_no_commits_stays_visible_as_unknown():
    # The local broker leaves groups without commits out of ListGroups (Kafka lists them), so this
    # runs the collector's cycle logic on crafted answers: one live member, no committed offset.
    from collectors.kafka.requests import Metadata
    from monitoring.models.kafka import Broker, PartitionMeta

    collector = _collector("127.0.0.1:9")
    metadata = Metadata(None, (Broker(1, "k", 9092),), {("fresh", 0): 1}, {"fresh": [0]},
                         {"fresh": {0: PartitionMeta(1, (1,), (1,), ())}})
    description = {"group": "newcomer", "state": "Stable", "members": [
        {"member_id": "m-1", "client_id": "app", "client_host": "/10.0.0.9", "member_assignment": b""}]}
    snapshot = collector._snapshots.build(metadata, {"newcomer": "consumer"}, {"newcomer": description}, {}, {},
                                          {("fresh", 0): 3}, {("fresh", 0): 0}, t=100.0, timestamps=None,
                                          retention={}, coordinators={}, requests=0)
    store = Store()
    with store.cycle(collector.source, 100.0) as cycle:
        collector._write(cycle, snapshot)
    (group,) = snapshot.groups
    assert group.group_id == "newcomer" and group.member_count == 1 and group.partitions == ()
    assert group.status is Status.NOTFOUND and group.status_reason == "no committed offsets"
    assert group.lag_sum is None and math.isnan(group.max_lag_seconds)
    assert store.latest("kafka_consumergroup_members", ("orders", "local", "newcomer"))[1] == 1
    assert store.latest("kafka_consumergroup_status", ("orders", "local", "newcomer"))[1] == 0
    assert store.latest("kafka_consumergroup_group_sum_lag", ("orders", "local", "newcomer")) is None


def test_retention_risk_from_the_topics_retention_time():
    # Lag seconds 600 on a topic that keeps 3,600 s: 3,000 s left before the oldest unconsumed record
    # is deleted, if its age keeps growing at full speed (a stopped group).
    behind = [PartitionLag("t", 0, 100, 400, 300, 0, 600.0, "interpolated")]
    stopped = group_topic("g", "t", behind, consume_rate=0.0, produce_rate=10.0, log_start_rate=None,
                          retention_seconds=3600.0)
    assert stopped.retention_risk_seconds == 3000.0
    slow = group_topic("g", "t", behind, consume_rate=5.0, produce_rate=10.0, log_start_rate=None,
                       retention_seconds=3600.0)
    assert slow.retention_risk_seconds == 3000.0 / 0.5  # its age grows half as fast
    keeping_up = group_topic("g", "t", behind, consume_rate=12.0, produce_rate=10.0, log_start_rate=None,
                             retention_seconds=3600.0)
    assert math.isinf(keeping_up.retention_risk_seconds)
    past = group_topic("g", "t", [PartitionLag("t", 0, 100, 400, 300, 0, 4000.0, "interpolated")],
                       consume_rate=12.0, produce_rate=10.0, log_start_rate=None, retention_seconds=3600.0)
    assert past.retention_risk_seconds == 0.0


async def test_retention_unknown_when_the_broker_cannot_describe_topic_configs(broker):
    await create_topic(broker.bootstrap, "t", 1)
    await produce(broker.bootstrap, "t", {0: 4})
    await commit(broker.bootstrap, "g", "t", {0: 1})
    store, collector = Store(), _collector(broker.bootstrap)
    try:
        first = await collector.collect(store)
        second = await collector.collect(store)
    finally:
        await collector.close()
    # This broker drops the connection on DescribeConfigs: asked once, then not again, and the
    # cycle's other answers are unaffected; retention stays unknown, never made up.
    # Second cycle: Metadata, ListGroups, DescribeGroups, OffsetFetch, 2 x ListOffsets, Fetch (a
    # record timestamp); no DescribeConfigs.
    assert second == 7 and first > second
    assert collector._describe_configs is False
    assert collector._retention == {"t": None}
    assert _snapshot(store).groups[0].partitions[0].lag == 3


async def test_an_unreachable_broker_is_reported_and_the_others_still_collected(broker):
    # A broker listed in the metadata but not answering (a second node that is down): this single-node
    # broker cannot produce that, so the metadata the collector reads gets a node it cannot reach.
    from monitoring.models.kafka import Broker

    await create_topic(broker.bootstrap, "t", 1)
    await produce(broker.bootstrap, "t", {0: 3})
    await commit(broker.bootstrap, "g", "t", {0: 1})
    store, collector = Store(), _collector(broker.bootstrap)
    real_metadata = collector._metadata

    async def with_a_dead_node(client):
        metadata = await real_metadata(client)
        metadata.brokers = (*metadata.brokers, Broker(999, "127.0.0.1", 9))
        return metadata

    collector._metadata = with_a_dead_node
    try:
        await collector.collect(store)
    finally:
        await collector.close()
    snapshot = _snapshot(store)
    live, dead = snapshot.brokers
    assert live.reachable and not dead.reachable and dead.error
    assert snapshot.groups[0].partitions[0].lag == 2
    assert store.latest("kafka_broker_reachable", ("orders", "local", "999"))[1] == 0
    assert store.latest("kafka_broker_reachable", ("orders", "local", str(live.node_id)))[1] == 1

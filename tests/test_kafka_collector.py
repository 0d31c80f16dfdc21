"""The Kafka lag collector against a real Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import pytest
from aiokafka.protocol.commit import OffsetFetchRequest

from collectors.kafka.collector import KafkaCollector
from monitoring.config import KafkaSource
from monitoring.health import State
from monitoring.models.kafka import KafkaSnapshot
from monitoring.runtime import Supervisor
from monitoring.store import Store
from tests.kafka_util import commit, create_topic, delete_topic, produce
from tests.services import async_wait_until


def _collector(bootstrap: str, **overrides) -> KafkaCollector:
    source = KafkaSource(bootstrap_servers=[bootstrap], cluster="local", interval_seconds=0.2, timeout_seconds=5,
                         **overrides)
    return KafkaCollector("orders", source)


def _snapshot(store: Store) -> KafkaSnapshot:
    return store.snapshot(("orders", "kafka"))[1]


def _lag(store: Store, group: str, topic: str, partition: int) -> float | None:
    point = store.latest("kafka_consumergroup_lag", ("orders", "local", group, topic, str(partition)))
    return None if point is None else point[1]


async def test_exact_lag_offsets_and_rollups(broker):
    await create_topic(broker.bootstrap, "payments", 3)
    await produce(broker.bootstrap, "payments", {0: 10, 1: 7, 2: 5})
    await commit(broker.bootstrap, "billing", "payments", {0: 4, 1: 7, 2: 1})
    store, collector = Store(), _collector(broker.bootstrap)
    try:
        requests = await collector.collect(store)
    finally:
        await collector.close()

    assert [_lag(store, "billing", "payments", p) for p in range(3)] == [6, 0, 4]
    current = [store.latest("kafka_consumergroup_current_offset", ("orders", "local", "billing", "payments", str(p)))[1]
               for p in range(3)]
    assert current == [4, 7, 1]
    watermarks = [store.latest("kafka_topic_partition_current_offset", ("orders", "local", "payments", str(p)))[1]
                  for p in range(3)]
    assert watermarks == [10, 7, 5]
    assert store.latest("kafka_consumergroup_group_topic_sum_lag", ("orders", "local", "billing", "payments"))[1] == 10
    assert store.latest("kafka_consumergroup_group_sum_lag", ("orders", "local", "billing"))[1] == 10
    assert store.latest("kafka_consumergroup_group_max_lag", ("orders", "local", "billing"))[1] == 6

    _, snapshot = store.snapshot(("orders", "kafka"))
    assert isinstance(snapshot, KafkaSnapshot)
    (group,) = snapshot.groups
    assert group.group_id == "billing" and group.member_count == 0 and group.state == "Empty"
    # Requests per cycle do not grow with partitions: metadata, ListGroups, FindCoordinator,
    # DescribeGroups, OffsetFetch (a retry with explicit partitions on this broker), 2x ListOffsets,
    # DescribeConfigs (first cycle only), Fetch (timestamps of the records at the committed offsets).
    assert requests == 10


async def test_partitions_without_commit_are_unknown_not_zero(broker):
    await create_topic(broker.bootstrap, "clicks", 2)
    await produce(broker.bootstrap, "clicks", {0: 3, 1: 3})
    await commit(broker.bootstrap, "half", "clicks", {0: 1})
    store, collector = Store(), _collector(broker.bootstrap)
    try:
        await collector.collect(store)
    finally:
        await collector.close()
    assert _lag(store, "half", "clicks", 0) == 2
    assert _lag(store, "half", "clicks", 1) is None  # no series rather than a made-up 0 or -1
    _, snapshot = store.snapshot(("orders", "kafka"))
    unknown = [p for p in snapshot.groups[0].partitions if p.partition == 1][0]
    assert unknown.committed is None and unknown.lag is None and unknown.high_watermark == 3


async def test_group_patterns_filter_and_unmatched_patterns_are_reported(broker):
    await create_topic(broker.bootstrap, "t", 1)
    await produce(broker.bootstrap, "t", {0: 2})
    for group in ("app-a", "app-b", "other"):
        await commit(broker.bootstrap, group, "t", {0: 1})
    store, collector = Store(), _collector(broker.bootstrap, consumer_groups=["app-.*", "missing-group"])
    try:
        await collector.collect(store)
    finally:
        await collector.close()
    _, snapshot = store.snapshot(("orders", "kafka"))
    assert [g.group_id for g in snapshot.groups] == ["app-a", "app-b"]
    assert snapshot.unmatched_patterns == ("missing-group",)
    assert {k[1][2] for k in store.keys("kafka_consumergroup_lag")} == {"app-a", "app-b"}


async def test_rates_come_from_offset_deltas(broker):
    await create_topic(broker.bootstrap, "rates", 1)
    await produce(broker.bootstrap, "rates", {0: 5})
    await commit(broker.bootstrap, "g", "rates", {0: 5})
    store, collector = Store(), _collector(broker.bootstrap)
    try:
        await collector.collect(store)
        assert store.latest("kafka_topic_produce_rate", ("orders", "local", "rates")) is None  # one sample: unknown
        await produce(broker.bootstrap, "rates", {0: 20})
        await commit(broker.bootstrap, "g", "rates", {0: 15})
        await collector.collect(store)
    finally:
        await collector.close()
    _, snapshot = store.snapshot(("orders", "kafka"))
    t_hw = [store.since(("kafka_topic_partition_current_offset", ("orders", "local", "rates", "0")))]
    times = t_hw[0].times
    dt = times[-1] - times[-2]
    assert store.latest("kafka_topic_produce_rate", ("orders", "local", "rates"))[1] == pytest.approx(20 / dt)
    consume_rate = store.latest("kafka_consumergroup_consume_rate", ("orders", "local", "g", "rates"))[1]
    assert consume_rate == pytest.approx(10 / dt)


async def test_deleted_topic_disappears_within_one_cycle(broker):
    await create_topic(broker.bootstrap, "keep", 1)
    await create_topic(broker.bootstrap, "gone", 2)
    await produce(broker.bootstrap, "gone", {0: 1, 1: 1})
    await produce(broker.bootstrap, "keep", {0: 1})
    store, collector = Store(), _collector(broker.bootstrap)
    try:
        await collector.collect(store)
        assert len(store.keys("kafka_topic_partition_current_offset")) == 3
        await delete_topic(broker.bootstrap, "gone")
        await collector.collect(store)
    finally:
        await collector.close()
    assert [k[1][2] for k in store.keys("kafka_topic_partition_current_offset")] == ["keep"]


async def test_unchanged_metadata_is_reused_and_a_topic_change_shows_in_the_next_cycle(broker):
    await create_topic(broker.bootstrap, "first", 2)
    store, collector = Store(), _collector(broker.bootstrap)
    try:
        await collector.collect(store)
        before = _snapshot(store).topics["first"].partitions
        await collector.collect(store)
        # The same answer bytes: the layout read from the last answer, not decoded again.
        assert _snapshot(store).topics["first"].partitions is before
        await create_topic(broker.bootstrap, "second", 3)
        await collector.collect(store)
        partitions = {name: len(topic.partitions) for name, topic in _snapshot(store).topics.items()}
        assert partitions == {"first": 2, "second": 3}
        assert store.latest("kafka_topic_partitions", ("orders", "local", "second"))[1] == 3
        await delete_topic(broker.bootstrap, "first")
        await collector.collect(store)
    finally:
        await collector.close()
    assert list(_snapshot(store).topics) == ["second"]
    assert sorted(k[1][2:] for k in store.keys("kafka_topic_partition_leader")) == [("second", "0"), ("second", "1"),
                                                                                      ("second", "2")]


async def test_unreachable_broker_marks_only_that_collector_down_with_reason(broker):
    await create_topic(broker.bootstrap, "t", 1)
    store = Store()
    good = _collector(broker.bootstrap)
    bad = KafkaCollector("other", KafkaSource(bootstrap_servers=["127.0.0.1:1"], interval_seconds=0.2,
                                              timeout_seconds=2))
    supervisor = Supervisor(store, [good, bad], max_backoff=0.5)
    supervisor.start()
    try:
        await async_wait_until(lambda: store.health()[("orders", "kafka")].runs >= 3
                               and store.health()[("other", "kafka")].runs >= 1, 20, what="both collectors to run")
    finally:
        await supervisor.stop()
    good_health, bad_health = store.health()[("orders", "kafka")], store.health()[("other", "kafka")]
    assert good_health.state is State.UP
    assert bad_health.state is State.DOWN
    assert bad_health.error_category in ("connection", "connection_refused")
    assert "127.0.0.1:1" in bad_health.last_error
    assert any("other" == e.pipeline and e.severity == "error" for e in store.events_since(0))


async def test_broker_stopped_mid_run_then_restarted_recovers_by_itself(broker):
    await create_topic(broker.bootstrap, "t", 1)
    await produce(broker.bootstrap, "t", {0: 3})
    await commit(broker.bootstrap, "g", "t", {0: 1})
    store = Store()
    collector = _collector(broker.bootstrap)
    supervisor = Supervisor(store, [collector], max_backoff=0.5)
    supervisor.start()
    health = lambda: store.health()[("orders", "kafka")]  # noqa: E731
    try:
        await async_wait_until(lambda: health().state is State.UP, 20, what="first success")
        assert _lag(store, "g", "t", 0) == 2
        broker.stop()
        await async_wait_until(lambda: health().state is State.DOWN, 30, what="collector down after broker stop")
        assert health().last_error
        broker.start()  # same port, empty memory storage
        await create_topic(broker.bootstrap, "t", 1)
        await produce(broker.bootstrap, "t", {0: 4})
        await commit(broker.bootstrap, "g", "t", {0: 3})
        await async_wait_until(lambda: health().state is State.UP and _lag(store, "g", "t", 0) == 1, 60,
                               what="recovery with the new broker's lag")
    finally:
        await supervisor.stop()
    messages = [e.message for e in store.events_since(0)]
    assert any("down" in m for m in messages) and any("recovered" in m for m in messages)


async def test_commit_on_a_topic_new_to_the_group_is_found_within_the_rediscovery_bound(broker):
    # This broker cannot return all of a group's commits at once, so after its first full listing
    # a group is asked for the topics it has commits on plus a rolling share of the others:
    # 2 partitions per cycle here, over 3 other topics of 2 partitions, so ceil(6 / 2) = 3 cycles.
    for topic in ("main", "a1", "a2", "a3"):
        await create_topic(broker.bootstrap, topic, 2)
    await produce(broker.bootstrap, "a3", {0: 3, 1: 3})
    await commit(broker.bootstrap, "reader", "main", {0: 0, 1: 0})
    store, collector = Store(), _collector(broker.bootstrap, committed_rediscovery_partitions=2)
    asked: list[int] = []
    send = collector._send

    async def counting_send(client, node_id, request):
        if isinstance(request, OffsetFetchRequest) and request._partitions is not None:
            asked[-1] += sum(len(ids) for _, ids in request._partitions)
        return await send(client, node_id, request)

    collector._send = counting_send
    try:
        asked.append(0)
        await collector.collect(store)
        assert asked == [8]  # the first listing names every partition
        await commit(broker.bootstrap, "reader", "a3", {0: 1, 1: 2})
        for _ in range(3):
            asked.append(0)
            await collector.collect(store)
            if _lag(store, "reader", "a3", 0) is not None:
                break
    finally:
        await collector.close()
    assert (_lag(store, "reader", "a3", 0), _lag(store, "reader", "a3", 1)) == (2, 1)
    assert _lag(store, "reader", "main", 0) == 0
    # Each later cycle names main's 2 partitions and one other topic's 2, never all 8.
    assert asked[1:] == [4] * (len(asked) - 1) and len(asked) - 1 <= 3


async def test_assigned_topics_are_asked_every_cycle(broker):
    # Tansu answers DescribeGroups with empty member assignments, so the assignment is taken from
    # a crafted description here: the group's assigned topic is named in every cycle's OffsetFetch.
    for topic in ("main", "other"):
        await create_topic(broker.bootstrap, topic, 1)
    await commit(broker.bootstrap, "reader", "main", {0: 0})
    collector = _collector(broker.bootstrap, committed_rediscovery_partitions=1)
    collector._committed_topics["reader"] = {"main"}
    try:
        client = await collector._connect()
        metadata = await collector._metadata(client)
    finally:
        await collector.close()
    asks = [collector._topics_to_ask(["reader"], metadata, {"reader": {"assigned"}}) for _ in range(2)]
    # "assigned" does not exist on the cluster: only existing topics are asked.
    assert asks == [{"reader": ["main", "other"]}, {"reader": ["main", "other"]}]

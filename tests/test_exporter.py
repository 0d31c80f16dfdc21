"""The Prometheus exporter over real HTTP, fed by a real Kafka collector run against a real broker."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collectors.kafka.collector import KafkaCollector
from exporters.server import start_exporter
from monitoring.config import KafkaSource
from monitoring.health import State
from monitoring.runtime import Collector, Supervisor
from monitoring.store import Store
from tests.kafka_util import commit, create_topic, produce

PROMTOOL = "/usr/bin/promtool"


class CountingKafkaCollector(KafkaCollector):
    """The real Kafka collector, counting its collect() calls and able to fail the next runs on demand."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.collect_calls = 0
        self.fail_with: BaseException | None = None

    async def collect(self, store: Store) -> int:
        self.collect_calls += 1
        if self.fail_with is not None:
            raise self.fail_with
        return await super().collect(store)


def _kafka(pipeline: str, bootstrap: str, **overrides) -> CountingKafkaCollector:
    settings = {"cluster": "local", "interval_seconds": 60, "timeout_seconds": 5, **overrides}
    source = KafkaSource(bootstrap_servers=[bootstrap], **settings)
    return CountingKafkaCollector(pipeline, source)


def _scrape(url: str) -> str:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, label set) -> value, from the exposition text."""
    out: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in out, f"duplicate sample {key}"
            out[key] = sample.value
    return out


def _of(samples: dict, name: str) -> dict[frozenset, float]:
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


def _labels(**labels: str) -> frozenset:
    return frozenset(labels.items())


def _promtool(text: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)


async def _orders_on_broker(bootstrap: str) -> None:
    """Topic T: high watermarks 10 and 3; group G committed 4 and 3 (lag 6 and 0)."""
    await create_topic(bootstrap, "T", 2)
    await produce(bootstrap, "T", {0: 10, 1: 3})
    await commit(bootstrap, "G", "T", {0: 4, 1: 3})


async def test_scrape_shows_exact_kafka_values_and_collector_health(broker):
    await _orders_on_broker(broker.bootstrap)
    store = Store()
    collector = _kafka("orders", broker.bootstrap)
    supervisor = Supervisor(store, [collector])
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        await supervisor.run_once(collector)
        health = store.health()[("orders", "kafka")]
        assert health.state is State.UP, health.last_error
        text = _scrape(exporter.url)
    finally:
        exporter.stop()
        await supervisor.stop()

    assert exporter.port != 0 and exporter.url == f"http://127.0.0.1:{exporter.port}/metrics"
    (lag_line,) = [line for line in text.splitlines()
                   if line.startswith("kafka_consumergroup_lag{") and 'partition="0"' in line]
    for label in ('pipeline="orders"', 'cluster="local"', 'consumergroup="G"', 'topic="T"'):
        assert label in lag_line
    assert lag_line.endswith("} 6.0")
    samples = _samples(text)
    group = {"pipeline": "orders", "cluster": "local", "consumergroup": "G", "topic": "T"}
    assert _of(samples, "kafka_consumergroup_lag") == {
        _labels(**group, partition="0"): 6.0,
        _labels(**group, partition="1"): 0.0,
    }
    assert _of(samples, "kafka_consumergroup_current_offset") == {
        _labels(**group, partition="0"): 4.0,
        _labels(**group, partition="1"): 3.0,
    }
    assert _of(samples, "kafka_topic_partition_current_offset") == {
        _labels(pipeline="orders", cluster="local", topic="T", partition="0"): 10.0,
        _labels(pipeline="orders", cluster="local", topic="T", partition="1"): 3.0,
    }
    assert _of(samples, "kafka_topic_partition_oldest_offset") == {
        _labels(pipeline="orders", cluster="local", topic="T", partition="0"): 0.0,
        _labels(pipeline="orders", cluster="local", topic="T", partition="1"): 0.0,
    }
    assert _of(samples, "kafka_consumergroup_group_topic_sum_lag") == {_labels(**group): 6.0}
    assert _of(samples, "kafka_consumergroup_group_sum_lag") == {
        _labels(pipeline="orders", cluster="local", consumergroup="G"): 6.0}
    assert _of(samples, "kafka_consumergroup_group_max_lag") == {
        _labels(pipeline="orders", cluster="local", consumergroup="G"): 6.0}
    assert _of(samples, "kafka_consumergroup_members") == {
        _labels(pipeline="orders", cluster="local", consumergroup="G"): 0.0}
    # One sample so far: rates are unknown, and unknown is absent rather than NaN or 0.
    assert _of(samples, "kafka_topic_produce_rate") == {}
    assert _of(samples, "kafka_consumergroup_consume_rate") == {}
    assert not any(math.isnan(v) for v in samples.values())

    me = _labels(pipeline="orders", collector="kafka")
    assert _of(samples, "pipewatch_collector_up") == {me: 1.0}
    assert _of(samples, "pipewatch_collector_runs_total") == {me: 1.0}
    assert _of(samples, "pipewatch_collector_requests") == {me: float(health.requests)}
    assert _of(samples, "pipewatch_collector_last_success_timestamp_seconds") == {me: health.last_success}
    assert _of(samples, "pipewatch_collector_run_duration_seconds") == {me: health.last_duration}
    assert _of(samples, "pipewatch_collector_errors_total") == {}


async def test_layout_series_written_on_change_only_are_still_served_each_scrape(broker):
    await _orders_on_broker(broker.bootstrap)
    store = Store()
    collector = _kafka("orders", broker.bootstrap)
    supervisor = Supervisor(store, [collector])
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        for _ in range(3):
            await supervisor.run_once(collector)
        text = _scrape(exporter.url)
        _, snapshot = store.snapshot(("orders", "kafka"))
    finally:
        exporter.stop()
        await supervisor.stop()
    leader = float(snapshot.brokers[0].node_id)
    partition = {"pipeline": "orders", "cluster": "local", "topic": "T"}
    samples = _samples(text)
    assert _of(samples, "kafka_topic_partition_leader") == {
        _labels(**partition, partition="0"): leader, _labels(**partition, partition="1"): leader}
    assert _of(samples, "kafka_topic_partition_replicas") == {
        _labels(**partition, partition="0"): 1.0, _labels(**partition, partition="1"): 1.0}
    assert _of(samples, "kafka_topic_partitions") == {_labels(**partition): 2.0}
    # Three cycles, one point: the layout did not change. The offsets got a point each cycle.
    assert store.since(("kafka_topic_partition_leader", ("orders", "local", "T", "0"))).count == 1
    assert store.since(("kafka_topic_partition_current_offset", ("orders", "local", "T", "0"))).count == 3


async def test_series_of_a_down_collector_are_absent_while_up_is_zero(broker):
    await _orders_on_broker(broker.bootstrap)
    store = Store()
    orders = _kafka("orders", broker.bootstrap)
    billing = _kafka("billing", broker.bootstrap)
    supervisor = Supervisor(store, [orders, billing])
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        await supervisor.run_once(orders)
        await supervisor.run_once(billing)
        before = _samples(_scrape(exporter.url))
        assert {dict(labels)["pipeline"] for labels in _of(before, "kafka_consumergroup_lag")} == {"orders", "billing"}

        orders.fail_with = ConnectionRefusedError(111, "Connection refused")
        await supervisor.run_once(orders)
        assert store.health()[("orders", "kafka")].state is State.DOWN
        # The store still holds the failed collector's last values; only the exporter hides them.
        assert store.latest("kafka_consumergroup_lag", ("orders", "local", "G", "T", "0"))[1] == 6.0
        text = _scrape(exporter.url)
    finally:
        exporter.stop()
        await supervisor.stop()

    samples = _samples(text)
    kafka_pipelines = {
        dict(labels)["pipeline"] for (name, labels) in samples if name.startswith("kafka_")
    }
    assert kafka_pipelines == {"billing"}
    assert _of(samples, "kafka_consumergroup_lag") == {
        _labels(pipeline="billing", cluster="local", consumergroup="G", topic="T", partition="0"): 6.0,
        _labels(pipeline="billing", cluster="local", consumergroup="G", topic="T", partition="1"): 0.0,
    }
    assert _of(samples, "pipewatch_collector_up") == {
        _labels(pipeline="orders", collector="kafka"): 0.0,
        _labels(pipeline="billing", collector="kafka"): 1.0,
    }
    assert _of(samples, "pipewatch_collector_errors_total") == {
        _labels(pipeline="orders", collector="kafka", category="connection_refused"): 1.0,
    }
    assert _of(samples, "pipewatch_collector_runs_total") == {
        _labels(pipeline="orders", collector="kafka"): 2.0,
        _labels(pipeline="billing", collector="kafka"): 1.0,
    }


async def test_promtool_finds_no_problems_in_the_exposition(broker):
    await _orders_on_broker(broker.bootstrap)
    await produce(broker.bootstrap, "T", {0: 2})
    await commit(broker.bootstrap, "G", "T", {0: 5})
    store = Store()
    orders = _kafka("orders", broker.bootstrap)
    billing = _kafka("billing", broker.bootstrap)
    supervisor = Supervisor(store, [orders, billing])
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        await supervisor.run_once(orders)
        await supervisor.run_once(orders)  # a second sample, so the rate gauges are present too
        billing.fail_with = TimeoutError("metadata request timed out")
        await supervisor.run_once(billing)
        text = _scrape(exporter.url)
    finally:
        exporter.stop()
        await supervisor.stop()
    names = {name for name, _ in _samples(text)}
    # Every family the Kafka collector and the runtime write, plus the errors counter.
    assert {"kafka_consumergroup_lag", "kafka_consumergroup_current_offset", "kafka_consumergroup_group_topic_sum_lag",
            "kafka_consumergroup_group_sum_lag", "kafka_consumergroup_group_max_lag", "kafka_consumergroup_members",
            "kafka_consumergroup_consume_rate", "kafka_topic_partition_current_offset",
            "kafka_topic_partition_oldest_offset", "kafka_topic_produce_rate", "pipewatch_collector_up",
            "pipewatch_collector_errors_total", "pipewatch_collector_runs_total"} <= names

    result = _promtool(text)
    # (Currently fails: promtool's lint rejects the gauge kafka_consumergroup_group_topic_sum_lag, 'non-histogram and
    # non-summary metrics should not have "_sum" suffix'; see the report.)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), result.stdout + result.stderr


async def test_broker_going_away_hides_its_series(broker):
    await _orders_on_broker(broker.bootstrap)
    store = Store()
    collector = _kafka("orders", broker.bootstrap, timeout_seconds=3)
    supervisor = Supervisor(store, [collector])
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        await supervisor.run_once(collector)
        assert len(_of(_samples(_scrape(exporter.url)), "kafka_consumergroup_lag")) == 2
        broker.stop()
        await supervisor.run_once(collector)
        health = store.health()[("orders", "kafka")]
        assert health.state is State.DOWN
        text = _scrape(exporter.url)
    finally:
        exporter.stop()
        await supervisor.stop()
    samples = _samples(text)
    assert [name for name, _ in samples if name.startswith("kafka_")] == []
    assert _of(samples, "pipewatch_collector_up") == {_labels(pipeline="orders", collector="kafka"): 0.0}
    assert _of(samples, "pipewatch_collector_errors_total") == {
        _labels(pipeline="orders", collector="kafka", category=health.error_category): 1.0}


async def test_scrape_reads_memory_and_never_collects(broker):
    await _orders_on_broker(broker.bootstrap)
    store = Store()
    collector = _kafka("orders", broker.bootstrap)
    supervisor = Supervisor(store, [collector])
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        await supervisor.run_once(collector)
        assert collector.collect_calls == 1
        await produce(broker.bootstrap, "T", {0: 5})  # the broker moves on; a scrape must not notice
        texts = [_scrape(exporter.url) for _ in range(3)]
        assert collector.collect_calls == 1
        assert store.health()[("orders", "kafka")].runs == 1
        assert store.since(("kafka_consumergroup_lag", ("orders", "local", "G", "T", "0"))).count == 1
    finally:
        exporter.stop()
        await supervisor.stop()
    lag = _labels(pipeline="orders", cluster="local", consumergroup="G", topic="T", partition="0")
    assert [_of(_samples(text), "kafka_consumergroup_lag")[lag] for text in texts] == [6.0, 6.0, 6.0]


def test_starting_and_stale_collectors_are_hidden_too():
    store = Store()

    class Quiet(Collector):
        name = "kafka"

        async def collect(self, store: Store) -> int:
            return 0

    starting = Quiet("starting", "k:1", interval=5, timeout=5)
    stale = Quiet("stale", "k:2", interval=5, timeout=5)
    fresh = Quiet("fresh", "k:3", interval=5, timeout=5)
    Supervisor(store, [starting, stale, fresh])
    now = time.time()
    for collector in (starting, stale, fresh):
        with store.cycle(collector.source, t=now) as cycle:
            cycle.set("kafka_topic_partition_current_offset", ("local", "T", "0"), 10)
    health = store.health()
    store.set_health(dataclasses.replace(health[stale.source], state=State.UP, last_success=now - 60, runs=1))
    store.set_health(dataclasses.replace(health[fresh.source], state=State.UP, last_success=now, runs=1))
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        samples = _samples(_scrape(exporter.url))
    finally:
        exporter.stop()
    assert _of(samples, "kafka_topic_partition_current_offset") == {
        _labels(pipeline="fresh", cluster="local", topic="T", partition="0"): 10.0}
    assert _of(samples, "pipewatch_collector_up") == {
        _labels(pipeline="starting", collector="kafka"): 0.0,
        _labels(pipeline="stale", collector="kafka"): 0.0,
        _labels(pipeline="fresh", collector="kafka"): 1.0,
    }


def test_exporter_stops_and_frees_its_port():
    exporter = start_exporter(Store(), "127.0.0.1", 0)
    assert _of(_samples(_scrape(exporter.url)), "pipewatch_collector_up") == {}
    exporter.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(exporter.url, timeout=2)
    again = start_exporter(Store(), "127.0.0.1", exporter.port)
    try:
        assert again.port == exporter.port
        result = _promtool(_scrape(again.url))
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    finally:
        again.stop()


def test_exporter_on_a_busy_port_raises_a_clear_oserror():
    first = start_exporter(Store(), "127.0.0.1", 0)
    try:
        with pytest.raises(OSError, match=f"exporter cannot listen on 127.0.0.1:{first.port}"):
            start_exporter(Store(), "127.0.0.1", first.port)
    finally:
        first.stop()

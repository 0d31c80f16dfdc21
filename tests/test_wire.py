"""monitoring/wire.py: every snapshot the collectors publish, taken from real sources (the broker, the registry
stand-in, PostgreSQL, recorded Flink answers, a real JSON API), survives encode -> JSON -> decode unchanged; and
decoding builds nothing outside the allowlist."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from collectors.aggregate.prometheus_query import summarize
from collectors.aggregate.remote_agents import RemoteAgentCollector
from collectors.kafka.status import Status
from exporters.api import Api
from monitoring.config import RemoteAgent
from monitoring.errors import ErrorEntry
from monitoring.evaluation import LATENCY_SOURCE, SUMMARY_SOURCE, Evaluator, Latency
from monitoring.health import CollectorHealth, State
from monitoring.models.aggregate import AggregateSnapshot, RemoteAgentSnapshot
from monitoring.models.flink import FlinkSnapshot
from monitoring.models.kafka import KafkaSnapshot
from monitoring.runtime import Supervisor
from monitoring.store import Event, FeedRow, Store
from monitoring.summary import PipelineSummary
from monitoring.wire import WireError, allowed, decode, encode
from tests.kafka_util import commit, create_topic, produce


def _equal(a, b) -> bool:
    """Equality that holds NaN equal to NaN and checks types all the way down (a tuple stays a tuple)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, Mapping) and isinstance(b, Mapping):  # (a Counter comes back as a dict: equal as a mapping)
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    if dataclasses.is_dataclass(a):
        return all(_equal(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _round_trip(value):
    """Through JSON text as the API sends it: NaN or Infinity would make json.dumps fail."""
    text = json.dumps(encode(value), allow_nan=False)
    back = decode(json.loads(text))
    assert _equal(back, value), f"{type(value).__name__} changed in the round trip"
    return back


async def test_kafka_snapshot_health_summaries_and_latencies_from_a_real_broker(broker):
    from collectors.kafka.collector import KafkaCollector
    from monitoring.config import KafkaSource

    await create_topic(broker.bootstrap, "payments", 3)
    await produce(broker.bootstrap, "payments", {0: 10, 1: 7, 2: 5})
    await commit(broker.bootstrap, "billing", "payments", {0: 4, 1: 7})
    store = Store()
    collector = KafkaCollector("orders", KafkaSource(bootstrap_servers=[broker.bootstrap], cluster="local",
                                                     interval_seconds=0.2, timeout_seconds=5))
    supervisor = Supervisor(store, [collector])
    try:
        await supervisor.run_once(collector)
        await supervisor.run_once(collector)
    finally:
        await collector.close()
    Evaluator(store, ["orders"]).evaluate()

    _, snapshot = store.snapshot(("orders", "kafka"))
    back = _round_trip(snapshot)
    assert isinstance(back, KafkaSnapshot)
    (group,) = back.groups
    assert [(p.partition, p.lag) for p in group.partitions] == [(0, 6), (1, 0), (2, None)]
    assert isinstance(group.status, Status) and group.status is snapshot.groups[0].status
    assert isinstance(back.topics["payments"].partitions, dict) and 0 in back.topics["payments"].partitions  # int keys
    assert ("billing", "payments") in back.group_topics  # tuple keys
    assert math.isnan(group.partitions[2].lag_seconds)

    health = _round_trip(store.health()[("orders", "kafka")])
    assert isinstance(health, CollectorHealth) and health.state is State.UP and health.runs == 2
    (summary,) = _round_trip(store.snapshot(SUMMARY_SOURCE)[1])
    assert isinstance(summary, PipelineSummary) and summary.lag_messages == 6 and math.isnan(summary.flink_jobs)
    latencies = _round_trip(store.snapshot(LATENCY_SOURCE)[1])
    assert all(isinstance(latency, Latency) for latency in latencies["orders"])


async def test_flink_snapshot_from_recorded_answers():
    from tests.test_flink import RECORDED, _replayed

    snapshot, _ = await _replayed(RECORDED["responses"])
    back = _round_trip(snapshot)
    assert isinstance(back, FlinkSnapshot) and back.jobs and back.jobs[0].vertices
    assert any(job.checkpoints is not None and job.checkpoints.history for job in back.jobs)


async def test_registry_snapshot_from_the_stand_in(registry):
    from tests.test_schema_registry import _collector, _seed, _snapshot

    _seed(registry)
    store, collector = Store(), _collector(registry)
    try:
        await collector.collect(store)
        await collector.collect(store)
    finally:
        await collector.close()
    back = _round_trip(_snapshot(store))
    assert [s.name for s in back.subjects] == ["audit-value", "inventory-value", "orders-value"]
    assert back.subjects[2].versions == (1, 2)
    events = [_round_trip(event) for event in store.events_since(0)]
    assert all(isinstance(event, Event) for event in events)


async def test_profiling_snapshot_from_postgres(postgres, pg_schema):
    from tests.profiling_util import ProfilerTables
    from tests.test_profiling import _collector, _seed, _snapshot

    connection = await asyncpg.connect(postgres.dsn)
    try:
        tables = await ProfilerTables(connection, pg_schema).create()
        await _seed(tables)
    finally:
        await connection.close()
    store, collector = Store(), _collector(postgres.dsn, pg_schema)
    try:
        await collector.collect(store)
    finally:
        await collector.close()
    snapshot = _snapshot(store)
    assert snapshot.runs and snapshot.metrics_by_run and snapshot.kpis and snapshot.runs_per_day
    back = _round_trip(snapshot)
    assert back.metrics_by_run.keys() == snapshot.metrics_by_run.keys()  # (run id, dataset) keys


def test_prometheus_read_back_snapshot():
    def sample(value: float, **labels) -> dict:
        return {"metric": {"job": "pipewatch", "instance": "eu:9108", "pipeline": "orders", **labels},
                "value": [1_800_000_000.0, str(value)]}

    from collectors.aggregate.prometheus_query import _QUERIES

    results = {key: [] for key in _QUERIES}
    results["known"] = [sample(1, collector="kafka")]
    results["collector_up"] = [sample(1, collector="kafka")]
    results["agent_up"] = [{"metric": {"job": "pipewatch", "instance": "eu:9108"}, "value": [0, "1"]}]
    snapshot = summarize(results, "http://prometheus:9090", 1_800_000_000.0)
    back = _round_trip(snapshot)
    assert isinstance(back, AggregateSnapshot) and back.rows[0].pipeline == "orders" and back.agents[0].up is True


async def test_remote_agent_snapshot_read_from_a_real_api():
    from tests.flow_fixtures import NOW, pipeline_store, write_series

    store = pipeline_store()
    write_series(store, NOW)
    Evaluator(store, ["orders"]).evaluate(NOW)
    api = Api(store, NOW - 100)

    def handle(request: httpx.Request) -> httpx.Response:
        status, body = api.handle(request.url.path, request.url.query.decode())
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})

    collector = RemoteAgentCollector(RemoteAgent(url="http://eu:9108"))
    collector._client = httpx.AsyncClient(base_url="http://eu:9108", transport=httpx.MockTransport(handle))
    remote = Store()
    try:
        await collector.collect(remote)
    finally:
        await collector.close()
    snapshot = remote.snapshot(collector.source)[1]
    assert snapshot.up and snapshot.rows[0].pipeline == "orders" and snapshot.history["orders"].values == (1244.0,)
    back = _round_trip(snapshot)
    assert isinstance(back, RemoteAgentSnapshot) and isinstance(back.history["orders"].times, tuple)


def test_errors_feed_rows_floats_dates_and_plain_values():
    store = Store()
    entry = store.record_error("orders", "kafka", "connection_refused", "[Errno 111] Connection refused", t=5.0)
    assert isinstance(_round_trip(entry), ErrorEntry)
    row = FeedRow(3, "Order", "update", "o-1", {"status": "paid", "total": 12.5, "tags": ["a"], "note": None},
                  1.5, 2.0)
    assert _round_trip(row) == row
    for value in (math.nan, math.inf, -math.inf, 0.1, 10**20, "", None, True, (), [], {}, {1: "a"}, {(1, "x"): [2]},
                  frozenset({1, 2}), {3}, datetime(2026, 11, 26, 8, tzinfo=UTC), ((1, 2), [3, (4,)])):
        _round_trip(value)
    import numpy as np

    assert encode(np.float64(2.5)) == 2.5 and encode(np.int64(7)) == 7 and encode(np.bool_(True)) is True
    assert encode(np.float64("nan")) == {"$f": "nan"}


@pytest.mark.parametrize("payload", [
    {"$": "os.system", "command": "true"},
    {"$": "subprocess.Popen", "args": ["true"]},
    {"$": "monitoring.store.Store"},  # pipewatch's own, but not a model class
    {"$": "monitoring.store.CycleWriter", "store": None, "source": None, "t": 0},
    {"$": "builtins.object"},
    {"$": ["monitoring.models.kafka.Broker"]},
    {"$e": "os.environ", "v": "x"},
    {"$e": "monitoring.store.Event", "v": 1},  # a class of the list, but not an enum
    {"$e": "monitoring.health.State", "v": "exploded"},
    {"$": "collectors.kafka_model.Broker", "node_id": 1, "host": "h", "port": 1, "__class__": "x"},
    {"$": "collectors.kafka_model.Broker", "node_id": 1},  # missing fields
    {"$p": [[[1], 2]]},  # an unhashable key
    {"$f": "NaN!"},
    {"$x": 1},
    {"a": 1, "b": 2},
    {"$dt": "yesterday"},
])
def test_decoding_builds_only_allowlisted_classes(payload):
    with pytest.raises(WireError):
        decode(payload)


def test_the_allowlist_is_made_of_model_classes_and_encoding_refuses_anything_else():
    modules = {cls.__module__ for cls in allowed().values()}
    assert modules == {"monitoring.models.kafka", "monitoring.models.flink", "monitoring.models.schema_registry",
                       "monitoring.models.profiling", "monitoring.models.aggregate", "monitoring.errors",
                       "monitoring.evaluation", "monitoring.health", "monitoring.store", "monitoring.summary"}
    assert {name for name, cls in allowed().items() if cls.__module__ == "monitoring.store"} == {
        "monitoring.store.Event", "monitoring.store.FeedRow"}

    @dataclasses.dataclass
    class Elsewhere:
        x: int

    for value in (Elsewhere(1), object(), b"bytes", Store()):
        with pytest.raises(WireError):
            encode(value)


def _hostile(value, change) -> dict:
    """`value` encoded as an agent would send it, then changed by `change` (what a bad agent could send)."""
    data = json.loads(json.dumps(encode(value), allow_nan=False))
    change(data)
    return data


def _partition(data: dict) -> dict:
    return data["groups"]["$t"][0]["partitions"]["$t"][0]


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: _partition(d).update(lag="10"),
     "KafkaSnapshot.groups: GroupInfo.partitions: PartitionLag.lag: expected int | None, got str"),
    (lambda d: _partition(d).update(partition=True),  # bool is no number on the wire
     "KafkaSnapshot.groups: GroupInfo.partitions: PartitionLag.partition: expected int, got bool"),
    (lambda d: _partition(d).update(committed=90.0),
     "KafkaSnapshot.groups: GroupInfo.partitions: PartitionLag.committed: expected int | None, got float"),
    (lambda d: _partition(d)["status"].update(v=42),
     "KafkaSnapshot.groups: GroupInfo.partitions: PartitionLag.status: unknown Status value 42"),
    (lambda d: _partition(d)["status"].update(v=True),  # an IntEnum would take True for 1
     "KafkaSnapshot.groups: GroupInfo.partitions: PartitionLag.status: unknown Status value True"),
    (lambda d: _partition(d).update(status={"$e": "monitoring.health.State", "v": "up"}),
     "KafkaSnapshot.groups: GroupInfo.partitions: PartitionLag.status: expected Status, got State"),
    (lambda d: d["groups"].update({"$t": [1]}),
     "KafkaSnapshot.groups: expected tuple[GroupInfo, ...], got an item 0 of type int"),
    (lambda d: d.update(groups=[]), "KafkaSnapshot.groups: expected tuple[GroupInfo, ...], got list"),
    (lambda d: d.update(topics={"$d": {"orders": 1}}),
     "KafkaSnapshot.topics: expected dict[str, TopicInfo], got a value of type int"),
    (lambda d: d.update(group_topics={"$p": [[1, d["group_topics"]["$p"][0][1]]]}),
     "KafkaSnapshot.group_topics: expected dict[tuple[str, str], GroupTopic], got a key of type int"),
    (lambda d: d.update(collected_at="x" * 10_000), "KafkaSnapshot.collected_at: expected float, got str"),
    (lambda d: d.update(collected_at=None), "KafkaSnapshot.collected_at: expected float, got None"),
    (lambda d: d.update(cluster=["local"]), "KafkaSnapshot.cluster: expected str, got list"),
])
def test_decoding_checks_every_field_against_its_annotation(change, message):
    from tests.flow_fixtures import kafka_snapshot

    with pytest.raises(WireError) as failure:
        decode(_hostile(kafka_snapshot(), change))
    assert str(failure.value) == message


def test_field_checks_of_other_shapes_and_what_they_accept():
    from tests.flow_fixtures import flink_snapshot

    def ratios(d):
        d["jobs"]["$t"][0]["vertices"]["$t"][0]["backpressure"]["subtask_ratios"] = {"$t": [0.5, "x"]}

    with pytest.raises(WireError) as failure:
        decode(_hostile(flink_snapshot(), ratios))
    assert str(failure.value) == ("FlinkSnapshot.jobs: Job.vertices: Vertex.backpressure: Backpressure.subtask_ratios: "
                                  "expected tuple[float | None, ...], got an item 1 of type str")
    with pytest.raises(WireError) as failure:  # a fixed-length tuple: (topic, partition)
        decode({"$": "collectors.kafka_model.Member", "member_id": "m", "client_id": "c", "client_host": "h",
                "assignment": {"$t": [{"$t": ["orders", "0"]}]}})
    assert str(failure.value) == ("Member.assignment: expected tuple[tuple[str, int], ...], "
                                  "got an item 0 of type tuple")
    with pytest.raises(WireError) as failure:  # an unknown enum value is cut short in the message
        decode({"$e": "monitoring.health.State", "v": "exploded" * 100})
    assert str(failure.value) == "unknown State value " + repr("exploded" * 100)[:57] + "..."
    # What the fields allow still comes through: an int where a float goes (1.0 written as 1), None in an
    # optional field, NaN, any JSON value in a feed row's payload, a nested dict[str, object].
    health = CollectorHealth("orders", "kafka", "k:9092", 5, State.UP, last_success=3, last_error=None)
    assert decode(_hostile(health, lambda d: None)).last_success == 3
    row = FeedRow(1, "Order", "insert", None, {"a": [1, {"b": None}], "c": "x"}, math.nan, 2)
    assert _equal(decode(_hostile(row, lambda d: None)), row)
    snapshot = RemoteAgentSnapshot("http://eu:9108", True, "ok", {"version": "1", "extra": [1, 2]}, (), {}, None)
    assert decode(_hostile(snapshot, lambda d: None)) == snapshot


def test_every_allowed_class_has_a_check_for_every_field():
    from monitoring.wire import _dataclass_table

    table = _dataclass_table()
    assert {name for name, cls in allowed().items() if dataclasses.is_dataclass(cls)} == table.keys()
    for name, entry in table.items():
        assert entry.checks.keys() == entry.names, name
        assert all(check is not None for check in entry.checks.values()), name  # no field takes anything
    # Values of any JSON shape are taken only where the model says so.
    assert sorted(f"{entry.cls.__qualname__}.{field}" for entry in table.values() for field, hint in entry.hints.items()
                  if "Any" in repr(hint) or "object" in repr(hint)) == ["FeedRow.payload", "RemoteAgentSnapshot.agent"]


RECORDED_STATE = Path(__file__).parent / "recorded" / "state-before-models-moved.json"
"""GET /api/v1/state of an agent of the layout before the model classes moved to monitoring/models/ (a broker, the
recorded Flink answers, the registry stand-in and PostgreSQL profiling tables, evaluated)."""


ADDED_SINCE = {"collectors.kafka_model.DeadLetters"}
"""Classes added since the recording (earlier agents never send them)."""


def test_type_tags_are_those_agents_of_the_earlier_layout_send():
    recorded = json.loads((Path(__file__).parent / "recorded" / "wire-tags-before-models-moved.json").read_text())
    assert ADDED_SINCE <= set(allowed())
    assert sorted(set(allowed()) - ADDED_SINCE) == recorded


def test_fields_added_later_are_left_out_at_their_default_so_earlier_readers_decode_the_rest():
    from monitoring.models.kafka import DeadLetters, KafkaSnapshot
    from monitoring.summary import PipelineSummary

    snapshot = KafkaSnapshot("local", None, (), {}, (), {}, (), 3, 1.0)
    assert "dead_letters" not in encode(snapshot)
    assert decode(encode(snapshot)) == snapshot
    counted = dataclasses.replace(snapshot, dead_letters=DeadLetters(("x.dlq",), ("x",), 2.0, 1, 8))
    assert encode(counted)["dead_letters"]["records"] == 1 and decode(encode(counted)) == counted
    summary = PipelineSummary("local", "h", "orders", "ok", "", ("kafka",), (), None, *[math.nan] * 12)
    assert not {"dead_letter_rate", "invalid_ratio"} & encode(summary).keys()
    assert encode(dataclasses.replace(summary, invalid_ratio=0.5))["invalid_ratio"] == 0.5


def test_a_state_recorded_from_an_agent_of_the_earlier_layout_decodes_and_encodes_the_same():
    state = json.loads(RECORDED_STATE.read_text())
    assert {s["collector"] for s in state["snapshots"]} == {"kafka", "flink", "schema_registry", "profiling",
                                                            "latency", "evaluation"}
    for entry in state["snapshots"]:
        value = decode(entry["value"])
        # What this layout sends for it is what the earlier one sent: a mirror of either layout reads it.
        assert json.loads(json.dumps(encode(value), allow_nan=False)) == entry["value"], entry["collector"]
    kafka = decode(next(s["value"] for s in state["snapshots"] if s["collector"] == "kafka"))
    assert isinstance(kafka, KafkaSnapshot) and type(kafka).__module__ == "monitoring.models.kafka"
    (group,) = kafka.groups
    assert [(p.partition, p.lag) for p in group.partitions] == [(0, 6), (1, 0), (2, None)]
    assert group.status is Status.ERR or isinstance(group.status, Status)
    assert all(isinstance(decode(h), CollectorHealth) for h in state["health"])

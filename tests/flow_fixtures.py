"""A store holding a known pipeline: Kafka (two topics, two groups), one Flink job, a registry, flow hints.
Shared by the topology, flow view and report tests."""

from __future__ import annotations

import math

from collectors.kafka.status import Status
from monitoring.config import FlowHints
from monitoring.health import CollectorHealth, State
from monitoring.models.flink import (
    Backpressure,
    CheckpointRecord,
    Checkpoints,
    FlinkException,
    FlinkSnapshot,
    Job,
    Vertex,
)
from monitoring.models.kafka import GroupInfo, GroupTopic, KafkaSnapshot, Member, PartitionLag, PartitionMeta, TopicInfo
from monitoring.models.profiling import Freshness, ProfilingSnapshot
from monitoring.models.schema_registry import RegistrySnapshot
from monitoring.store import Store

NOW = 1_800_000_000.0
HINTS = FlowHints.model_validate({"edges": [
    {"from": "producer:checkout", "to": "topic:orders"},
    {"from": "job:enrich", "to": "sink:warehouse.orders"},
]})


def _meta(n: int, offline: int = 0) -> dict[int, PartitionMeta]:
    return {p: PartitionMeta(-1 if p < offline else 1, (1,), (1,), ()) for p in range(n)}


def kafka_snapshot(t: float = NOW) -> KafkaSnapshot:
    topics = {
        "orders": TopicInfo("orders", _meta(3), {0: 100, 1: 100, 2: 100}, {0: 0, 1: 0, 2: 0}, 50.0),
        "orders-enriched": TopicInfo("orders-enriched", _meta(2), {0: 10, 1: 10}, {0: 0, 1: 0}, 49.0),
        "idle": TopicInfo("idle", _meta(1), {0: 0}, {0: 0}, 0.0),
    }
    billing = GroupInfo("billing", "Stable", "consumer", (Member("m-1", "billing-1", "/10.0.0.7", (("orders", 0),)),),
                        1, (PartitionLag("orders", 0, 90, 100, 10, 0, 2.5, "interpolated", Status.OK, "ok"),),
                        Status.OK, "1 of 1 partitions OK")
    audit = GroupInfo("audit", "Empty", "consumer", (), 1,
                      (PartitionLag("orders-enriched", 0, 1, 10, 1234, 0, 45.0, "interpolated", Status.STOP,
                                    "no member is consuming"),),
                      Status.ERR, "orders-enriched[0] STOP: no member is consuming")
    return KafkaSnapshot("local", None, (), topics, (billing, audit), {
        ("billing", "orders"): GroupTopic("billing", "orders", 10, 2.5, 48.0, 5.0, 90, math.inf),
        ("audit", "orders-enriched"): GroupTopic("audit", "orders-enriched", 1234, 45.0, 0.0, math.inf, 1, math.inf),
    }, (), 7, t)


def flink_snapshot(t: float = NOW, state: str = "RUNNING") -> FlinkSnapshot:
    vertices = (
        Vertex("v1", "Source: orders", 1, "RUNNING", None, 50.0, 100.0, 900.0, 0.0, None,
               Backpressure("OK", 0.0, (0.0,), t)),
        Vertex("v2", "enrich -> Sink: orders-enriched", 2, "RUNNING", 49.0, 0.0, 500.0, 500.0, 0.0, t - 3,
               Backpressure("OK", 0.0, (0.0, 0.0), t), inputs=("v1",)),
    )
    history = (
        CheckpointRecord(12, "COMPLETED", t - 5, t - 4.8, 210.0, 4096.0, 8192.0, None),
        CheckpointRecord(11, "FAILED", t - 15, t - 5.0, None, None, None, "Checkpoint expired before completing."),
    )
    checkpoints = Checkpoints(11, 1, 0, t - 4.8, 210.0, 4096.0, 8192.0, t - 5.0,
                              "Checkpoint expired before completing.", 10.0, 600.0, {"p50": 210.0}, {"p50": 4096.0},
                              history)
    job = Job("a" * 32, "enrich", state, t - 3600, None, 3600.0, {"running": 2}, {"RUNNING": t - 3600},
              3_600_000.0, 0.0, 0.0, 2.0, vertices, checkpoints, 4.8, True)
    old = Job("b" * 32, "nightly backfill", "FINISHED", t - 90_000, t - 86_000, 4000.0, {"finished": 1})
    exception = FlinkException("a" * 32, "java.lang.ArithmeticException", "/ by zero", "enrich", None, t - 60,
                               "java.lang.ArithmeticException: / by zero", "user code: arithmetic", None)
    return FlinkSnapshot("local", "http://flink:8081", "2.3.0", 1, 4, 2, {"RUNNING": 1, "FINISHED": 1}, (),
                         (job, old), (exception,), t)


def registry_snapshot(t: float = NOW) -> RegistrySnapshot:
    return RegistrySnapshot("main", "http://registry:8081", {"/": 0.01}, "BACKWARD", "READWRITE", 3, (), (), None,
                            (), t)


def up(pipeline: str, collector: str, target: str, t: float = NOW) -> CollectorHealth:
    return CollectorHealth(pipeline, collector, target, 5.0, state=State.UP, last_success=t, runs=3)


def down(pipeline: str, collector: str, target: str, t: float = NOW) -> CollectorHealth:
    return CollectorHealth(pipeline, collector, target, 5.0, state=State.DOWN, last_success=t - 60, last_attempt=t,
                           last_error="ConnectionRefusedError: [Errno 111] Connection refused",
                           error_category="connection_refused", consecutive_failures=4, runs=9)


def pipeline_store(kafka_down: bool = False) -> Store:
    store = Store()
    store.set_health((down if kafka_down else up)("orders", "kafka", "127.0.0.1:9092"))
    store.set_health(up("orders", "flink", "http://flink:8081"))
    store.set_health(up("orders", "schema_registry", "http://registry:8081"))
    store.publish_snapshot(("orders", "kafka"), kafka_snapshot(), NOW - (60 if kafka_down else 0))
    store.publish_snapshot(("orders", "flink"), flink_snapshot(), NOW)
    store.publish_snapshot(("orders", "schema_registry"), registry_snapshot(), NOW)
    return store


def write_series(store: Store, t: float, scale: float = 1.0) -> None:
    """The Kafka and Flink series the collectors would write for the snapshots above (rates x scale)."""
    from monitoring.metrics import JOB_STATES

    with store.cycle(("orders", "kafka"), t) as cycle:
        cycle.set("kafka_topic_produce_rate", ("local", "orders"), 50.0 * scale)
        cycle.set("kafka_topic_produce_rate", ("local", "orders-enriched"), 49.0 * scale)
        cycle.set("kafka_consumergroup_consume_rate", ("local", "billing", "orders"), 48.0 * scale)
        cycle.set("kafka_consumergroup_consume_rate", ("local", "audit", "orders-enriched"), 0.0)
        cycle.set("kafka_consumergroup_group_sum_lag", ("local", "billing"), 10)
        cycle.set("kafka_consumergroup_group_sum_lag", ("local", "audit"), 1234)
        cycle.set("kafka_consumergroup_group_max_lag_seconds", ("local", "billing"), 2.5)
        cycle.set("kafka_consumergroup_group_max_lag_seconds", ("local", "audit"), 45.0)
        cycle.set("kafka_consumergroup_status", ("local", "billing"), 1)
        cycle.set("kafka_consumergroup_status", ("local", "audit"), 3)
        cycle.set("kafka_consumergroup_lag_seconds", ("local", "billing", "orders", "0"), 2.5)
        cycle.set("kafka_consumergroup_lag_seconds", ("local", "audit", "orders-enriched", "0"), 45.0)
    with store.cycle(("orders", "flink"), t) as cycle:
        cycle.set("flink_jobmanager_job_state", ("local", "enrich", "a" * 32), JOB_STATES.index("RUNNING"))
        cycle.set("flink_jobmanager_job_checkpoint_age_seconds", ("local", "enrich", "a" * 32), 4.8)
    with store.cycle(("orders", "schema_registry"), t) as cycle:
        cycle.set("schema_registry_up", ("main",), 1.0)


# -- a wide pipeline: the medallion layers over many topics, jobs and groups -------------------------------------

STREAMS = ("orders", "payments", "clicks", "users")
LAYER_HINTS = FlowHints.model_validate({
    "edges": [{"from": "producer:web", "to": "topic:raw.orders"}, {"from": "producer:web", "to": "topic:raw.clicks"},
              {"from": "producer:mobile", "to": "topic:raw.payments"},
              {"from": "producer:mobile", "to": "topic:raw.users"},
              {"from": "job:agg_revenue", "to": "sink:warehouse.agg_revenue"},
              {"from": "job:agg_sessions", "to": "sink:warehouse.agg_sessions"},
              {"from": "topic:clean.users", "to": "sink:crm.users"}],
    "layers": {"bronze": ["raw\\..*"], "silver": ["clean\\..*", "clean-.*"], "gold": ["agg_.*", "warehouse\\.agg_.*"]},
})
"""Layers as in issue #20 (`bronze: [raw.*]`...), written as strict regular expressions."""


def _vertex(vertex_id: str, name: str, rate: float, inputs: tuple[str, ...] = ()) -> Vertex:
    return Vertex(vertex_id, name, 1, "RUNNING", rate, rate, 100.0, 900.0, 0.0, None, Backpressure("OK", 0.0, (0.0,),
                                                                                               NOW), inputs=inputs)


def _job(index: int, name: str, sources: tuple[str, ...], sink: str, rate: float, state: str = "RUNNING") -> Job:
    vertices = tuple(_vertex(f"s{index}{i}", f"Source: {s}", rate) for i, s in enumerate(sources))
    vertices += (_vertex(f"k{index}", f"{name} -> Sink: {sink}", rate, tuple(v.vertex_id for v in vertices)),)
    return Job(f"{index:032x}", name, state, NOW - 3600, None, 3600.0, {"running": len(vertices)},
               {state: NOW - 3600}, 3_600_000.0, 0.0, 0.0, 0.0, vertices, None, None, True)


def wide_pipeline_store() -> Store:
    """Ten topics (raw., clean., agg_), six Flink jobs linked by their plans, nine consumer groups, hinted
    producers and sinks, profiling of two tables (freshness of the silver and gold layers; bronze's is not measured):
    31 nodes, most of them in the medallion layers."""
    names = [f"raw.{s}" for s in STREAMS] + [f"clean.{s}" for s in STREAMS] + ["agg_revenue", "agg_sessions"]
    topics = {n: TopicInfo(n, _meta(2, offline=2 if n == "clean.clicks" else 0), {0: 100, 1: 100}, {0: 0, 1: 0},
                           20.0 + i) for i, n in enumerate(names)}
    readers = {"fraud": ["raw.payments"], "audit": ["raw.orders", "clean.orders"], "search": ["clean.clicks"],
               "crm-sync": ["clean.users"], "ml-features": ["clean.clicks", "clean.users"],
               "billing": ["agg_revenue"], "reporting": ["agg_revenue", "agg_sessions"], "alerts": ["clean.payments"],
               "archive": ["raw.clicks"]}
    groups, progress = [], {}
    for group, read in readers.items():
        status = Status.ERR if group == "alerts" else Status.OK
        partitions = tuple(PartitionLag(t, 0, 90, 100, 10, 0, 2.5, "interpolated", status, "ok") for t in read)
        groups.append(GroupInfo(group, "Stable", "consumer", (), 1, partitions, status,
                                "1 of 1 partitions OK" if status is Status.OK else "stopped"))
        for t in read:
            progress[(group, t)] = GroupTopic(group, t, 10, 2.5, 15.0, 5.0, 90, math.inf)
    kafka = KafkaSnapshot("local", None, (), topics, tuple(groups), progress, (), 7, NOW)
    jobs = tuple(_job(i, f"clean-{s}", (f"raw.{s}",), f"clean.{s}", 20.0 + i) for i, s in enumerate(STREAMS))
    jobs += (_job(4, "agg_revenue", ("clean.orders", "clean.payments"), "agg_revenue", 9.0),
             _job(5, "agg_sessions", ("clean.clicks",), "agg_sessions", 4.0, state="RESTARTING"))
    flink = FlinkSnapshot("local", "http://flink:8081", "2.3.0", 1, 4, 2, {"RUNNING": 5, "RESTARTING": 1}, (), jobs,
                          (), NOW)
    store = Store()
    store.set_health(up("orders", "kafka", "127.0.0.1:9092"))
    store.set_health(up("orders", "flink", "http://flink:8081"))
    store.publish_snapshot(("orders", "kafka"), kafka, NOW)
    store.publish_snapshot(("orders", "flink"), flink, NOW)
    store.set_health(up("orders", "profiling", "postgresql://warehouse"))
    freshness = (Freshness("clean", "orders", NOW - 95, True), Freshness("warehouse", "agg_revenue", NOW - 7300, False))
    store.publish_snapshot(("orders", "profiling"), ProfilingSnapshot((), {}, (), None, freshness, {}, {}, (), (), (),
                                                                      86_400.0, 0, 0, NOW), NOW)
    return store

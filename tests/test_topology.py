"""The flow model: nodes, edges, health and rates from known snapshots, hints, and a source that is down."""

from __future__ import annotations

import dataclasses

from monitoring.config import FlowHints
from monitoring.health import CollectorHealth
from monitoring.store import Store
from monitoring.topology import COLUMNS, FlowInputs, TopologyCache, build_topology
from tests.flow_fixtures import HINTS, NOW, flink_snapshot, kafka_snapshot, pipeline_store, up


def _topology(store: Store, hints=HINTS, now: float = NOW):
    return build_topology(FlowInputs.gather(store, "orders", hints, now=now))


def test_discovered_and_hinted_flow_with_rates_and_health():
    topology = _topology(pipeline_store())
    nodes = {n.id: n for n in topology.nodes}
    edges = {(e.source, e.target): e for e in topology.edges}

    orders = nodes["topic:local/orders"]
    assert (orders.state, orders.rate, orders.column) == ("ok", "50 msg/s in", COLUMNS["topic"])
    # The job's sink vertex is named after the topic: the topic is its output, in the sinks' column.
    enriched = nodes["topic:local/orders-enriched"]
    assert enriched.column == COLUMNS["sink"] and enriched.rate == "49 msg/s in"
    assert "topic:local/idle" not in nodes  # no traffic, no reader: not part of the flow

    job = nodes["job:local/enrich"]
    assert (job.state, job.rate) == ("ok", "in 50 / out 49 records/s")
    assert edges[("topic:local/orders", "job:local/enrich")].basis == "plan"
    assert edges[("job:local/enrich", "topic:local/orders-enriched")].basis == "plan"
    assert "job:local/nightly backfill" not in nodes  # finished jobs are history

    billing = nodes["group:local/billing"]
    assert (billing.state, billing.rate) == ("ok", "48 msg/s")
    assert "lag 10 messages" in billing.detail
    audit = nodes["group:local/audit"]
    assert audit.state == "error" and audit.reason == "ERR: orders-enriched[0] STOP: no member is consuming"
    assert "lag 1,234 messages, oldest unconsumed 45 s" in audit.detail
    assert edges[("topic:local/orders", "group:local/billing")].rate == "48 msg/s"
    assert edges[("topic:local/orders-enriched", "group:local/audit")].basis == "measured"

    # Hints: a named producer that alone writes `orders` gets its measured rate; a sink is drawn, unmeasured.
    checkout = nodes["producer:checkout"]
    assert (checkout.label, checkout.rate) == ("checkout", "50 msg/s")
    assert edges[("producer:checkout", "topic:local/orders")].basis == "hint"
    sink = nodes["sink:warehouse.orders"]
    assert (sink.state, sink.rate, sink.column) == ("unknown", "unknown", COLUMNS["sink"])
    assert edges[("job:local/enrich", "sink:warehouse.orders")].basis == "hint"
    # Every written topic has a known writer: no anonymous producers node.
    assert "producer:*" not in nodes
    registry = nodes["registry:schema_registry"]
    assert (registry.state, registry.rate) == ("ok", "3 subjects")


def test_without_hints_measured_producers_appear_and_nothing_is_linked_by_guess():
    store = pipeline_store()
    snapshot = flink_snapshot()
    job = snapshot.jobs[0]
    # "Source: orders source" is not named exactly after the topic: no link is guessed.
    vertices = (dataclasses.replace(job.vertices[0], name="Source: orders source"),
                dataclasses.replace(job.vertices[1], name="enrich -> Sink: discard"))
    store.publish_snapshot(("orders", "flink"), dataclasses.replace(
        snapshot, jobs=(dataclasses.replace(job, vertices=vertices),)), NOW)
    topology = _topology(store, hints=None)
    edges = {(e.source, e.target): e for e in topology.edges}
    assert not [e for e in edges if "job:local/enrich" in e]
    producers = topology.node("producer:*")
    assert (producers.label, producers.rate) == ("producers", "99 msg/s")  # 50 + 49, both measured
    assert edges[("producer:*", "topic:local/orders")].rate == "50 msg/s"
    assert topology.node("topic:local/orders-enriched").column == COLUMNS["topic"]


def test_a_source_that_is_down_makes_its_nodes_down_with_the_reason_and_rates_unknown():
    topology = _topology(pipeline_store(kafka_down=True))
    for node in topology.nodes:
        if node.kind in ("topic", "group"):
            assert node.state == "down", node
            assert node.rate == "unknown"
            assert node.reason.startswith("kafka down: connection_refused: ConnectionRefusedError"), node.reason
    assert topology.node("job:local/enrich").state == "ok"  # Flink still answers


def test_hinted_names_nobody_found_and_sources_not_configured():
    store = pipeline_store()
    hints = FlowHints.model_validate({"edges": [{"from": "topic:payments", "to": "job:missing"},
                                                {"from": "topic:orders", "to": "database:shop"}]})
    topology = _topology(store, hints)
    assert topology.node("topic:?/payments").state == "warning"
    assert "not found by kafka" in topology.node("topic:?/payments").reason
    assert topology.node("job:?/missing").state == "warning"
    database = topology.node("database:shop")
    assert (database.state, database.rate) == ("unknown", "unknown")

    only_kafka = Store()
    only_kafka.set_health(up("orders", "kafka", "k:9092"))
    only_kafka.publish_snapshot(("orders", "kafka"), kafka_snapshot(), NOW)
    topology = _topology(only_kafka, FlowHints.model_validate({"edges": [{"from": "topic:orders", "to": "job:x"}]}))
    assert topology.node("job:?/x").state == "unknown"
    assert "no Flink cluster is monitored" in topology.node("job:?/x").reason


def test_a_restarting_job_is_an_error_with_its_exception_and_a_source_without_data_is_shown():
    store = pipeline_store()
    store.publish_snapshot(("orders", "flink"), flink_snapshot(state="RESTARTING"), NOW)
    store.set_health(up("orders", "change_feed", "shop"))
    job = _topology(store).node("job:local/enrich")
    assert job.state == "error"
    assert job.reason == "RESTARTING, 2 restarts; last exception: java.lang.ArithmeticException: / by zero"

    fresh = Store()
    fresh.set_health(CollectorHealth("orders", "kafka", "k:9092", 5.0))  # starting: no run finished yet
    (node,) = _topology(fresh, hints=None).nodes
    assert (node.label, node.state, node.rate) == ("Kafka k:9092", "unknown", "unknown")


def test_the_cache_recomputes_only_when_inputs_change():
    store = pipeline_store()
    cache = TopologyCache()
    first = cache.get(store, "orders", HINTS, now=NOW)
    assert cache.get(store, "orders", HINTS, now=NOW + 1)[1] is first[1]
    store.publish_snapshot(("orders", "kafka"), kafka_snapshot(NOW + 5), NOW + 5)
    second = cache.get(store, "orders", HINTS, now=NOW + 5)
    assert second[1] is not first[1] and second[0] != first[0]


def test_medallion_layers_group_nodes_by_name_with_their_worst_health_and_measured_freshness():
    from tests.flow_fixtures import LAYER_HINTS, wide_pipeline_store

    topology = _topology(wide_pipeline_store(), LAYER_HINTS)
    layer = {n.id: n.layer for n in topology.nodes}
    assert layer["topic:local/raw.orders"] == "bronze"
    assert layer["job:local/clean-orders"] == "silver" and layer["topic:local/clean.clicks"] == "silver"
    assert layer["job:local/agg_revenue"] == "gold" and layer["sink:warehouse.agg_revenue"] == "gold"
    assert layer["group:local/billing"] == layer["producer:web"] == layer["sink:crm.users"] == ""
    assert layer["profiling"] == ""  # a whole source is in no layer
    bronze, silver, gold = topology.layers
    assert (bronze.name, bronze.state, bronze.members, bronze.measured) == ("bronze", "ok", 4, 4)
    assert bronze.reason == "4 of 4 measured, all ok"
    # Freshness only where it is measured: no profiled or change-feed table matches raw.*
    assert bronze.freshness == "unknown" and bronze.freshness_detail.startswith("not measured")
    assert (silver.state, silver.members) == ("error", 8)
    assert silver.reason == "clean.clicks: 2 of 2 partitions offline (no leader)"
    assert silver.freshness == "1 min 35 s ago" and silver.freshness_detail == "stalest: clean.orders, last " \
                                                                               "profiled 1 min 35 s ago"
    assert (gold.state, gold.members, gold.measured) == ("error", 6, 4)  # the two hinted sinks are not measured
    assert gold.reason.startswith("agg_sessions: RESTARTING")
    assert gold.freshness == "2 h 2 min ago"


def test_a_layer_without_measured_members_is_unknown_and_a_late_table_makes_it_a_warning():
    from monitoring.config import FlowHints
    from tests.flow_fixtures import wide_pipeline_store

    hints = FlowHints.model_validate({"edges": [{"from": "topic:raw.orders", "to": "sink:lake.raw_orders"}],
                                      "layers": {"landing": ["lake\\..*"], "nothing": ["zzz"],
                                                 "gold": ["agg_revenue"]}})
    landing, nothing, gold = _topology(wide_pipeline_store(), hints).layers
    assert (landing.state, landing.reason, landing.members) == ("unknown", "nothing in it is measured", 1)
    assert (nothing.state, nothing.reason, nothing.members) == ("unknown", "no node matches its patterns", 0)
    # agg_revenue (job and topic) is ok; its table was not profiled in time: the layer is a warning, and why.
    assert (gold.state, gold.reason) == ("warning", "warehouse.agg_revenue not profiled recently")
    assert gold.freshness == "2 h 2 min ago"


def test_the_change_feed_gives_a_layer_its_freshness_and_a_profiling_source_down_gives_none():
    from monitoring.config import ChangeFeedSource, FlowHints
    from tests.flow_fixtures import down

    store = pipeline_store()
    store.set_health(up("orders", "change_feed", "shop"))
    feed = ChangeFeedSource.model_validate({"dsn": "postgresql://pipewatch@127.0.0.1:5432/shop", "entities": [
        {"name": "orders", "table": "orders", "key": "id"}, {"name": "refunds", "table": "refunds", "key": "id"}]})
    store.feed_append(("orders", "change_feed"), [("orders", "insert", "1", {"id": 1}, NOW - 40),
                                                  ("orders", "update", "1", {"id": 1}, NOW - 12)], 10, 100, NOW - 11)
    hints = FlowHints.model_validate({"layers": {"silver": ["orders.*"], "gold": ["refunds"]}})
    silver, gold = build_topology(FlowInputs.gather(store, "orders", hints, feed, now=NOW)).layers
    assert silver.freshness == "12 s ago" and silver.freshness_detail == "stalest: public.orders, last changed 12 s ago"
    assert gold.freshness == "unknown"  # refunds has no change yet: its age is not known
    store.set_health(down("orders", "change_feed", "shop"))
    silver, _ = build_topology(FlowInputs.gather(store, "orders", hints, feed, now=NOW)).layers
    assert silver.freshness == "unknown"  # a feed that is down measures nothing


def test_layers_are_part_of_the_fingerprint_and_their_age_moves_the_drawing_on():
    from tests.flow_fixtures import LAYER_HINTS, wide_pipeline_store

    store = wide_pipeline_store()
    cache = TopologyCache()
    first = cache.get(store, "orders", LAYER_HINTS, now=NOW)
    assert cache.get(store, "orders", LAYER_HINTS, now=NOW + 1)[1] is first[1]
    later = cache.get(store, "orders", LAYER_HINTS, now=NOW + 6)[1]  # (the sources still up)
    assert later is not first[1] and later.layers[1].freshness == "1 min 41 s ago"
    assert cache.get(store, "orders", HINTS, now=NOW)[1].layers == ()

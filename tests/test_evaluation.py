"""The evaluator: per-pipeline summaries and latency percentiles from what the store holds."""

from __future__ import annotations

import math
import time

from apps.overview_view import tiles_html
from monitoring.evaluation import (
    LATENCY_SOURCE,
    SUMMARY_SOURCE,
    Evaluator,
    nearest_rank,
    percentiles,
    pipeline_latencies,
)
from monitoring.health import CollectorHealth, State
from monitoring.metrics import JOB_STATES
from monitoring.store import Store
from monitoring.summary import PipelineSummary, local_summaries

NOW = 1_800_000_000.0


def _up(store: Store, pipeline: str, collector: str, target: str = "t") -> None:
    store.set_health(CollectorHealth(pipeline, collector, target, 1.0, State.UP, last_success=NOW - 1,
                                     last_attempt=NOW - 1))


def _down(store: Store, pipeline: str, collector: str, error: str) -> None:
    store.set_health(CollectorHealth(pipeline, collector, "broker:9092", 1.0, State.DOWN, last_success=NOW - 50,
                                     last_error=error, error_category="connection_refused"))


def _kafka(store: Store, pipeline: str = "orders") -> None:
    with store.cycle((pipeline, "kafka"), NOW) as cycle:
        cycle.set("kafka_consumergroup_group_sum_lag", ("c", "g1"), 120)
        cycle.set("kafka_consumergroup_group_sum_lag", ("c", "g2"), 30)
        cycle.set("kafka_consumergroup_group_max_lag", ("c", "g1"), 100)
        cycle.set("kafka_consumergroup_group_max_lag", ("c", "g2"), 20)
        cycle.set("kafka_consumergroup_group_max_lag_seconds", ("c", "g1"), 4.5)
        cycle.set("kafka_consumergroup_group_max_lag_seconds", ("c", "g2"), 9.0)
        cycle.set("kafka_consumergroup_status", ("c", "g1"), 1)
        cycle.set("kafka_consumergroup_status", ("c", "g2"), 2)
        cycle.set("kafka_topic_produce_rate", ("c", "t1"), 40)
        cycle.set("kafka_topic_produce_rate", ("c", "t2"), 10)
        cycle.set("kafka_consumergroup_consume_rate", ("c", "g1", "t1"), 35)
        for partition, seconds in enumerate([0.5, 1, 2, 3, 4, 5, 6, 7, 8, 100]):
            cycle.set("kafka_consumergroup_lag_seconds", ("c", "g1", "t1", str(partition)), seconds)


def test_summary_holds_the_measured_values_of_a_healthy_pipeline():
    store = Store()
    _up(store, "orders", "kafka")
    _up(store, "orders", "flink")
    _kafka(store)
    with store.cycle(("orders", "flink"), NOW) as cycle:
        cycle.set("flink_jobmanager_job_state", ("f", "a", "id-a"), JOB_STATES.index("RUNNING"))
        cycle.set("flink_jobmanager_job_state", ("f", "b", "id-b"), JOB_STATES.index("FAILED"))
        cycle.set("flink_jobmanager_job_checkpoint_age_seconds", ("f", "a", "id-a"), 12.0)
    (summary,) = local_summaries(store, ["orders"], "host", NOW)
    assert (summary.health, summary.reason, summary.collectors) == ("ok", "every source up", ("flink", "kafka"))
    assert (summary.lag_messages, summary.max_lag_messages, summary.lag_seconds, summary.worst_status) == (
        150, 100, 9.0, 2)
    assert (summary.produce_rate, summary.consume_rate) == (50, 35)
    assert (summary.flink_jobs, summary.flink_running, summary.checkpoint_age) == (2, 1, 12.0)
    assert math.isnan(summary.registry_up) and math.isnan(summary.change_rate)
    assert summary.last_success == NOW - 1


def test_a_down_source_makes_the_pipeline_degraded_with_its_reason_and_its_values_unknown():
    store = Store()
    _kafka(store)  # values measured while it was up must not be shown as current
    _down(store, "orders", "kafka", "ConnectionRefusedError: [Errno 111] Connect call failed")
    _up(store, "orders", "flink")
    (summary,) = local_summaries(store, ["orders"], "host", NOW)
    assert summary.health == "degraded"
    assert summary.collectors_down == ("kafka",)
    assert summary.reason == "kafka down: connection_refused: ConnectionRefusedError: [Errno 111] Connect call failed"
    assert math.isnan(summary.lag_messages) and math.isnan(summary.produce_rate) and math.isnan(summary.lag_seconds)
    _down(store, "orders", "flink", "timeout")
    assert local_summaries(store, ["orders"], "host", NOW)[0].health == "down"


def test_a_partial_sum_is_unknown_not_a_smaller_number():
    store = Store()
    _up(store, "orders", "kafka")
    with store.cycle(("orders", "kafka"), NOW) as cycle:
        cycle.set("kafka_topic_produce_rate", ("c", "t1"), 40)
        cycle.set("kafka_topic_produce_rate", ("c", "t2"), None)
    assert math.isnan(local_summaries(store, ["orders"], "host", NOW)[0].produce_rate)


def test_summary_json_has_null_for_unknown_and_survives_a_round_trip():
    store = Store()
    _up(store, "orders", "kafka")
    _kafka(store)
    (summary,) = local_summaries(store, ["orders"], "host", NOW)
    data = summary.to_json()
    assert data["registry_up"] is None and data["lag_messages"] == 150 and data["collectors"] == ["kafka"]
    back = PipelineSummary.from_json(data)
    assert back.lag_messages == 150 and math.isnan(back.registry_up) and back.collectors == ("kafka",)


def test_percentiles_are_nearest_rank_values_that_were_measured():
    assert percentiles(range(1, 101)) == {0.5: 50, 0.95: 95, 0.99: 99}
    assert percentiles([3.0]) == {0.5: 3.0, 0.95: 3.0, 0.99: 3.0}
    assert percentiles([1.0, math.inf, math.nan]) == {0.5: 1.0, 0.95: math.inf, 0.99: math.inf}
    assert percentiles([math.nan]) == {}


def test_nearest_rank_is_the_one_percentile_of_the_pages_too():
    # (the change feed page's p95 delay: of 20 delays the 19th, not the largest)
    assert nearest_rank([float(i) for i in range(1, 21)], 0.95) == 19.0
    assert nearest_rank([0.2], 0.95) == 0.2
    assert nearest_rank(list(range(1, 101)), 0.95) == percentiles(range(1, 101))[0.95]


def test_latency_measures_say_what_they_measure_and_come_from_live_sources_only():
    store = Store()
    _up(store, "orders", "kafka")
    _kafka(store)
    (latency,) = pipeline_latencies(store, "orders", NOW)
    assert latency.measure == "consumer_lag" and latency.samples == 10
    assert latency.quantiles == {0.5: 4, 0.95: 100, 0.99: 100}
    assert "every partition of every consumer group" in latency.description
    _down(store, "orders", "kafka", "x")
    assert pipeline_latencies(store, "orders", NOW) == []


def test_change_feed_delay_is_measured_from_delivered_rows_of_the_last_minute():
    store = Store()
    _up(store, "orders", "change_feed")
    now = time.time()
    store.feed_append(("orders", "change_feed"), [("orders", "insert", "1", {}, now - 100.2)], 10, 100, now - 100)
    store.feed_append(("orders", "change_feed"),
                      [("orders", "insert", str(i), {}, now - 10 - i / 100) for i in range(1, 5)], 10, 100, now - 10)
    store.set_health(CollectorHealth("orders", "change_feed", "db", 1.0, State.UP, last_success=now))
    (latency,) = pipeline_latencies(store, "orders", now)
    assert latency.measure == "change_feed_delay" and latency.samples == 4  # the row of 100 s ago is out
    assert latency.quantiles[0.5] == pytest_approx(0.02) and latency.quantiles[0.99] == pytest_approx(0.04)


def pytest_approx(value: float):
    import pytest

    return pytest.approx(value, abs=1e-6)


def test_evaluator_publishes_summaries_and_writes_pipeline_series():
    store = Store()
    _up(store, "orders", "kafka")
    _up(store, "empty", "profiling")
    _kafka(store)
    Evaluator(store, ["orders", "empty"], instance="host").evaluate(NOW)
    t, summaries = store.snapshot(SUMMARY_SOURCE)
    assert t == NOW and [s.pipeline for s in summaries] == ["orders", "empty"]
    assert store.snapshot(LATENCY_SOURCE)[1]["orders"][0].measure == "consumer_lag"
    assert store.latest("pipewatch_pipeline_throughput", ("orders", "produce")) == (NOW, 50)
    assert store.latest("pipewatch_pipeline_throughput", ("orders", "consume")) == (NOW, 35)
    assert store.latest("pipewatch_pipeline_lag", ("orders",)) == (NOW, 150)
    assert store.latest("pipewatch_pipeline_latency_seconds", ("orders", "consumer_lag", "0.99")) == (NOW, 100)
    assert store.keys(where=lambda key: key[1][0] == "empty") == []  # no Kafka: no throughput series at all


def test_overview_tiles_show_values_unknowns_and_the_reason():
    store = Store()
    _kafka(store)
    _down(store, "orders", "kafka", "ConnectionRefusedError: refused")
    _up(store, "billing", "kafka")
    _kafka(store, "billing")
    summaries = tuple(local_summaries(store, ["orders", "billing"], "host", NOW))
    text = tiles_html(summaries)
    orders, billing = text.split('data-pipeline="billing"')
    assert 'data-health="down"' in orders and "unknown" in orders and "connection_refused" in orders
    assert 'data-health="ok"' in billing and ">50/s<" in billing
    assert "100 messages, 9.0 s" in billing and "150 messages" in billing
    assert ">WARN<" in billing

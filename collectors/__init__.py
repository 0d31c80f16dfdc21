"""Collectors: one module per kind of source. Each writes into the store and knows nothing of views."""

from __future__ import annotations

from monitoring.config import Config
from monitoring.runtime import Collector


def build_collectors(config: Config) -> list[Collector]:
    """One collector per configured source, in config order."""
    from collectors.aggregate.prometheus_query import PrometheusQueryCollector
    from collectors.aggregate.remote_agents import remote_collectors
    from collectors.change_feed.collector import ChangeFeedCollector
    from collectors.flink.collector import FlinkCollector
    from collectors.kafka.collector import KafkaCollector
    from collectors.profiling.collector import ProfilingCollector
    from collectors.schema_registry.collector import SchemaRegistryCollector

    collectors: list[Collector] = []
    for pipeline in config.pipelines:
        several = len(pipeline.kafka_clusters) > 1
        for cluster in pipeline.kafka_clusters:
            collectors.append(KafkaCollector(pipeline.name, cluster, distinct_name=several))
        several = len(pipeline.schema_registries) > 1
        for registry in pipeline.schema_registries:
            collectors.append(SchemaRegistryCollector(pipeline.name, registry, distinct_name=several))
        several = len(pipeline.flink_clusters) > 1
        for flink in pipeline.flink_clusters:
            collectors.append(FlinkCollector(pipeline.name, flink, distinct_name=several))
        if pipeline.profiling is not None:
            collectors.append(ProfilingCollector(pipeline.name, pipeline.profiling))
        if pipeline.change_feed is not None:
            collectors.append(ChangeFeedCollector(pipeline.name, pipeline.change_feed))
    if config.prometheus is not None:
        collectors.append(PrometheusQueryCollector(config.prometheus))
    collectors += remote_collectors(config.remote_agents)
    return collectors

"""Collectors: one module per kind of source. Each writes into the store and knows nothing of views."""

from __future__ import annotations

from monitoring.config import Config
from monitoring.runtime import Collector
from monitoring.sources import DeclaredSource, declared_sources


def build_collectors(config: Config) -> list[Collector]:
    """One collector per declared source (monitoring.sources.declared_sources), in config order, named as declared."""
    return [build_collector(source) for source in declared_sources(config)]


def build_collector(source: DeclaredSource) -> Collector:
    """The collector of one declared source."""
    from collectors.aggregate.prometheus_query import PrometheusQueryCollector
    from collectors.aggregate.remote_agents import RemoteAgentCollector
    from collectors.change_feed.collector import ChangeFeedCollector
    from collectors.change_feed.mysql_reader import MySQLChangeFeedCollector
    from collectors.flink.collector import FlinkCollector
    from collectors.kafka.collector import KafkaCollector
    from collectors.profiling.collector import ProfilingCollector
    from collectors.schema_registry.collector import SchemaRegistryCollector
    from monitoring import sources

    several = source.collector != source.kind  # `kind:label`: one of several of its kind in the pipeline
    match source.kind:
        case sources.KAFKA:
            collector = KafkaCollector(source.pipeline, source.config, distinct_name=several)
        case sources.SCHEMA_REGISTRY:
            collector = SchemaRegistryCollector(source.pipeline, source.config, distinct_name=several)
        case sources.FLINK:
            collector = FlinkCollector(source.pipeline, source.config, distinct_name=several)
        case sources.PROFILING:
            collector = ProfilingCollector(source.pipeline, source.config)
        case sources.CHANGE_FEED if source.config.dialect == "mysql":
            collector = MySQLChangeFeedCollector(source.pipeline, source.config)
        case sources.CHANGE_FEED:
            collector = ChangeFeedCollector(source.pipeline, source.config)
        case sources.PROMETHEUS:
            collector = PrometheusQueryCollector(source.config)
        case sources.REMOTE_AGENT:
            collector = RemoteAgentCollector(source.config)
        case _:
            raise ValueError(f"no collector for a source of kind {source.kind!r}")
    if (collector.pipeline, collector.name) != source.source:  # both come from monitoring.sources.collector_name
        raise AssertionError(f"collector {collector.source} built for the declared source {source.source}")
    return collector

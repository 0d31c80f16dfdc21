"""The sources a config declares, named as their collectors name them in the store.

Every collector writes its health, snapshots and errors under `(pipeline, collector)`. The collector names are made
here, once: the collectors take their `name` from `collector_name`, `collectors.build_collectors` builds one
collector per `declared_sources(config)` entry, and the pages choose their sections from the same list, so a page
never needs a collector object (a mirror process builds none) and the names cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from monitoring.config import Config, RemoteAgent
from monitoring.models.aggregate import AGGREGATE_PIPELINE

KAFKA = "kafka"
SCHEMA_REGISTRY = "schema_registry"
FLINK = "flink"
PROFILING = "profiling"
CHANGE_FEED = "change_feed"
PROMETHEUS = "prometheus"
REMOTE_AGENT = "remote"
KINDS = (KAFKA, SCHEMA_REGISTRY, FLINK, PROFILING, CHANGE_FEED, PROMETHEUS, REMOTE_AGENT)
"""Every kind of declared source: also the first part of its collector's name (`kind` or `kind:label`)."""

MIRROR_PIPELINE = "_pipewatch"
"""The `pipeline` label of a mirror's own copy (pipeline names cannot start with "_")."""
MIRROR_SOURCE = (MIRROR_PIPELINE, "mirror")
"""Where a mirror's copying records its health: whether the copy is current is part of every source's."""


def collector_name(kind: str, label: str | None = None) -> str:
    """The store's `collector` label of a source: its kind, or `kind:label` when a pipeline has several of that
    kind (`label` given) or the kind names each source by its address (remote agents)."""
    return f"{kind}:{label}" if label is not None else kind


def remote_agent_label(url: str) -> str:
    """A remote agent's label: its address without the scheme (`host:port/path`)."""
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


@dataclass(frozen=True)
class DeclaredSource:
    """One source of the config, as the store knows it."""

    pipeline: str
    """The `pipeline` label (AGGREGATE_PIPELINE for the aggregate readers)."""
    kind: str
    """One of KINDS."""
    collector: str
    """The store's `collector` label: `kind`, or `kind:label` when the pipeline has several of the kind."""
    label: str
    """What the source is called on a page: the cluster, registry or agent address, the database target."""
    target: str
    """The address the collector talks to (its health's `target`)."""
    interval: float
    """Seconds between the collector's cycles."""
    config: object
    """The source's section of the config (KafkaSource, FlinkSource, ...)."""

    @property
    def source(self) -> tuple[str, str]:
        """The store's key of the source's health and snapshots."""
        return (self.pipeline, self.collector)


def declared_sources(config: Config) -> list[DeclaredSource]:
    """Every source the config declares, in config order: each pipeline's Kafka clusters, schema registries, Flink
    clusters, profiling and change feed, then the aggregate readers (Prometheus, remote agents)."""
    out: list[DeclaredSource] = []
    for pipeline in config.pipelines:
        name = pipeline.name
        for kind, sources, label_of, target_of in (
                (KAFKA, pipeline.kafka_clusters, lambda s: s.cluster_label, lambda s: ",".join(s.bootstrap_servers)),
                (SCHEMA_REGISTRY, pipeline.schema_registries, lambda s: s.registry_label, lambda s: s.base_url),
                (FLINK, pipeline.flink_clusters, lambda s: s.cluster_label, lambda s: str(s.rest_url))):
            several = len(sources) > 1
            for source in sources:
                label = label_of(source)
                out.append(DeclaredSource(name, kind, collector_name(kind, label if several else None), label,
                                          target_of(source), source.interval_seconds, source))
        if pipeline.profiling is not None:
            profiling = pipeline.profiling
            out.append(DeclaredSource(name, PROFILING, collector_name(PROFILING), profiling.target, profiling.target,
                                      profiling.interval_seconds, profiling))
        if pipeline.change_feed is not None:
            feed = pipeline.change_feed
            out.append(DeclaredSource(name, CHANGE_FEED, collector_name(CHANGE_FEED), feed.target, feed.target,
                                      feed.poll_interval_seconds, feed))
    if config.prometheus is not None:
        url = str(config.prometheus.url).rstrip("/")
        out.append(DeclaredSource(AGGREGATE_PIPELINE, PROMETHEUS, collector_name(PROMETHEUS), url, url,
                                  config.prometheus.interval_seconds, config.prometheus))
    out += [remote_agent_source(agent) for agent in config.remote_agents]
    return out


def remote_agent_source(agent: RemoteAgent) -> DeclaredSource:
    """The declared source of one remote agent (`remote_agents:`)."""
    url = str(agent.url)
    name = collector_name(REMOTE_AGENT, remote_agent_label(url))
    return DeclaredSource(AGGREGATE_PIPELINE, REMOTE_AGENT, name, url, url, agent.interval_seconds, agent)


def pipeline_sources(config: Config, pipeline: str, kind: str | None = None) -> list[DeclaredSource]:
    """The declared sources of one pipeline (of one kind when given), in config order."""
    return [s for s in declared_sources(config) if s.pipeline == pipeline and (kind is None or s.kind == kind)]

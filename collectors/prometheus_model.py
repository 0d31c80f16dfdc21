"""The snapshot the Prometheus read-back publishes: every agent's pipelines as Prometheus has them now."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PipelineSummary:
    """One pipeline of one agent. A measure the pipeline does not have, or Prometheus does not know, is NaN."""

    job: str
    instance: str
    """The agent, as Prometheus scrapes it (its scrape job and target)."""
    pipeline: str
    health: str
    """ok, degraded (some sources down), down (all down) or agent down (Prometheus cannot scrape it)."""
    reason: str
    collectors: tuple[str, ...]
    collectors_down: tuple[str, ...]
    last_success: float | None
    """Newest successful collection of any of its sources (Unix time)."""
    lag_messages: float
    lag_seconds: float
    """Largest consumer-group lag in seconds."""
    worst_status: float
    """Worst consumer-group lag status code (kafka_consumergroup_status)."""
    produce_rate: float
    consume_rate: float
    flink_jobs: float
    flink_running: float
    checkpoint_age: float
    """Oldest time since a running job's last completed checkpoint."""
    registry_up: float
    """1 when every schema registry of the pipeline answers, 0 when one does not."""
    change_rate: float


@dataclass(frozen=True, slots=True)
class AgentSummary:
    job: str
    instance: str
    up: bool | None
    """Prometheus' `up` for the agent: None when it has no current scrape result for it."""
    pipelines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AggregateSnapshot:
    url: str
    rows: tuple[PipelineSummary, ...]
    agents: tuple[AgentSummary, ...]
    measured_at: float

"""The snapshot the Prometheus read-back publishes: every agent's pipelines as Prometheus has them now."""

from __future__ import annotations

from dataclasses import dataclass

from monitoring.summary import PipelineSummary


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

"""What the aggregate readers publish: every agent's pipelines as Prometheus has them now, and other agents'
summaries and lag history read from their JSON API."""

from __future__ import annotations

from dataclasses import dataclass

from monitoring.summary import PipelineSummary

AGGREGATE_PIPELINE = "_aggregate"
"""The `pipeline` label of this collector's own health (pipeline names cannot start with "_")."""


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


@dataclass(frozen=True, slots=True)
class History:
    """The newest points of one remote series: `count` points ever received, the last len(times) of them held.
    A reader that has seen `seen` of them takes the last min(count - seen, len(times)) points."""

    count: int
    times: tuple[float, ...]
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class RemoteAgentSnapshot:
    url: str
    up: bool
    reason: str
    """"ok", or why the agent is marked down."""
    agent: dict[str, object] | None
    """What the agent says of itself (version, host, started_at); None before its first answer."""
    rows: tuple[PipelineSummary, ...]
    history: dict[str, History]
    """pipeline -> its lag (messages) as the agent's evaluator wrote it."""
    measured_at: float | None
    """When the agent computed the summaries (its clock)."""

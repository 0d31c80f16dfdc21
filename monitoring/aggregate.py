"""Every pipeline side by side (this process's, other agents' and Prometheus'), combined from the store into
PipelineSummary rows with one meaning for every field; an agent reached two ways is listed once, from the direct
source. The rules are in docs/internals.md."""

from __future__ import annotations

import dataclasses
import math
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from monitoring.evaluation import SUMMARY_SOURCE
from monitoring.health import State, state_now
from monitoring.models.aggregate import AggregateSnapshot, RemoteAgentSnapshot
from monitoring.sources import PROMETHEUS, REMOTE_AGENT, DeclaredSource
from monitoring.store import Store
from monitoring.summary import PipelineSummary

MEASURES = tuple(name for name, f in PipelineSummary.__dataclass_fields__.items() if f.type == "float")
"""The measured fields of a pipeline's summary (unknown, NaN, when its agent does not answer)."""


def agent_down(rows: tuple[PipelineSummary, ...], reason: str) -> tuple[PipelineSummary, ...]:
    """The rows of an agent that does not answer: still listed, every measure unknown, the reason given."""
    unknown = {name: math.nan for name in MEASURES}
    return tuple(dataclasses.replace(row, health="agent down", reason=reason, collectors_down=row.collectors, **unknown)
                 for row in rows)


@dataclass(frozen=True)
class AgentLine:
    """One agent whose pipelines are listed."""

    label: str
    state: str
    """up, down, no answer yet or no scrape."""
    detail: str
    """Why it is down ("" when up)."""


@dataclass(frozen=True)
class PrometheusStatus:
    """How current the Prometheus read-back is."""

    url: str
    measured_at: float | None
    """None: no answer yet."""
    stale: str | None
    """Why the read-back is stale (its reader is not up), None when it is current."""


@dataclass(frozen=True)
class Combination:
    rows: tuple[PipelineSummary, ...]
    agents: tuple[AgentLine, ...]
    prometheus: PrometheusStatus | None
    remote: dict[str, RemoteAgentSnapshot]
    """url -> the remote agent's snapshot as combined (for its pipelines' lag history)."""


def readers(sources: list[DeclaredSource]) -> list[DeclaredSource]:
    """The aggregate readers among the declared sources: remote agents, then Prometheus."""
    return ([s for s in sources if s.kind == REMOTE_AGENT] + [s for s in sources if s.kind == PROMETHEUS])


def inputs(store: Store, sources: list[DeclaredSource], now: float) -> tuple:
    """What a combination depends on: every snapshot's time and every reader's state (equal: same combination)."""
    health = store.health()
    entries = [store.snapshot(source) for source in [SUMMARY_SOURCE, *(s.source for s in readers(sources))]]
    return (tuple(e[0] if e else None for e in entries),
            tuple(state_now(health.get(s.source), now).value for s in readers(sources)))


def combine(store: Store, sources: list[DeclaredSource], own_instances: frozenset[str], now: float) -> Combination:
    """This process's pipelines, then each remote agent's, then Prometheus' of agents not read directly."""
    health = store.health()
    local = store.snapshot(SUMMARY_SOURCE)
    rows: list[PipelineSummary] = list(local[1]) if local else []
    agents: list[AgentLine] = []
    if local:
        agents.append(AgentLine(f"{rows[0].instance if rows else socket.gethostname()} (this process)", "up", ""))
    remote: dict[str, RemoteAgentSnapshot] = {}
    direct = set(own_instances)
    for reader in (s for s in sources if s.kind == REMOTE_AGENT):
        url = reader.target
        direct.add(urlsplit(url).netloc)
        h = health.get(reader.source)
        state = state_now(h, now)
        entry = store.snapshot(reader.source)
        if entry is None:
            reason = h.reason(now) if h is not None else "first collection not finished yet"
            agents.append(AgentLine(url, "down" if state is State.DOWN else "no answer yet", reason))
            continue
        snapshot: RemoteAgentSnapshot = entry[1]
        if snapshot.up and state is not State.UP:  # hung or stale: the reader's last answer is too old
            reason = f"agent at {url}: collector {state.value}: {h.reason(now)}"
            snapshot = RemoteAgentSnapshot(snapshot.url, False, reason, snapshot.agent,
                                           agent_down(snapshot.rows, reason), snapshot.history, snapshot.measured_at)
        remote[url] = snapshot
        rows.extend(snapshot.rows)
        agents.append(AgentLine(url, "up" if snapshot.up else "down", "" if snapshot.up else snapshot.reason))
    prometheus = None
    for reader in (s for s in sources if s.kind == PROMETHEUS):
        entry = store.snapshot(reader.source)
        h = health.get(reader.source)
        if entry is None:
            prometheus = PrometheusStatus(reader.target, None, None)
            continue
        read_back: AggregateSnapshot = entry[1]
        stale = h is not None and h.effective_state(now) is not State.UP
        prometheus = PrometheusStatus(reader.target, entry[0], h.reason(now) if stale else None)
        rows.extend(row for row in read_back.rows if row.instance not in direct)
        agents.extend(AgentLine(f"{a.instance} ({a.job})", "up" if a.up else "down" if a.up is False else "no scrape",
                                "") for a in read_back.agents if a.instance not in direct)
    return Combination(tuple(rows), tuple(agents), prometheus, remote)


def watched(row: PipelineSummary, kind: str, value: float) -> float | None:
    """The value when the pipeline has a source of this kind (NaN: unknown), else None (nothing to show)."""
    return value if row.watches(kind) else None


def kafka_total(rows: tuple[PipelineSummary, ...], field: str) -> tuple[float | None, int]:
    """A sum over the pipelines with Kafka that report the measure, and how many with Kafka do not (unknown), so a
    partial sum never passes for the whole. The sum is None when none reports it."""
    values = [v for row in rows if (v := watched(row, "kafka", getattr(row, field))) is not None]
    known = [v for v in values if not math.isnan(v)]
    return (sum(known) if known else None), len(values) - len(known)

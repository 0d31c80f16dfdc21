"""The pipeline's flow: producers -> topics -> Flink jobs -> sinks / databases -> consumer groups.

Details: docs/internals.md, "The flow model"."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from monitoring.format import age, count, duration
from monitoring.format import rate as format_rate
from monitoring.health import CollectorHealth, State
from monitoring.models.flink import TERMINAL_STATES, FlinkSnapshot, Job
from monitoring.models.kafka import KafkaSnapshot, TopicInfo
from monitoring.store import Store

STATES = ("ok", "warning", "error", "stale", "down", "unknown")
"""A node's health, worst last but unknown (grey: nothing measured says good or bad)."""
COLUMNS = {"producer": 0, "registry": 0, "topic": 1, "job": 2, "sink": 3, "database": 3, "profiling": 3, "group": 4}
"""Left to right. A topic that a job writes sits in the sinks' column, so the flow reads left to right."""
COLUMN_TITLES = ("producers", "topics", "Flink jobs", "sinks / databases", "consumer groups")
MAX_PER_KIND = 40
"""Topics and groups drawn per Kafka cluster (the most relevant first); the rest are one "+N more" node."""
FRESHNESS_STEP = 5.0
"""Seconds between redraws of the layers' freshness (an age) when nothing else changed."""
BACKPRESSURE_WARNING = "HIGH"
CHECKPOINT_INTERVALS = 3.0
"""A running job whose last checkpoint is older than this many intervals is flagged (as the alert rule does)."""


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    kind: str
    label: str
    state: str
    reason: str
    rate: str
    """The live rate with its unit, or "unknown"."""
    detail: str = ""
    """One more line for the hover (lag, partitions, subjects...)."""
    column: int = 0
    layer: str = ""
    """The medallion layer (config `flow.layers`) whose patterns match the node's name; "" for none."""


@dataclass(frozen=True, slots=True)
class Layer:
    """One medallion layer as measured: its members' worst health and, where measured, its freshness."""

    name: str
    state: str
    """The worst state among its members that are measured; unknown when none is."""
    reason: str
    members: int
    measured: int
    freshness: str
    """When the layer's stalest measured table was last profiled or changed (`2 min ago`), or "unknown"."""
    freshness_detail: str = ""


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    basis: str
    """measured (a group's commits, a measured produce rate), plan (the Flink job's vertex names) or hint."""
    rate: str = ""


@dataclass(frozen=True, slots=True)
class Topology:
    pipeline: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    layers: tuple[Layer, ...] = ()
    """The config's medallion layers, in its order (data-flow order)."""

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)


@dataclass(frozen=True)
class FlowInputs:
    """Everything the diagram is drawn from, read from the store at one moment."""

    pipeline: str
    now: float
    health: dict[str, CollectorHealth]
    """Collector name -> its health, for this pipeline's collectors."""
    snapshots: dict[str, tuple[float, Any]]
    """Collector name -> (time, snapshot) of those that published one."""
    hints: tuple[tuple[str, str], ...] = ()
    database: str | None = None
    """The change feed's database name."""
    change_rate: float = math.nan
    change_backlog: float = math.nan
    change_seen: tuple[float, ...] = ()
    """Times of the change feed's newest points (part of the fingerprint)."""
    layers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """The config's medallion layers: (name, patterns) in data-flow order."""
    changed_tables: tuple[tuple[str, float], ...] = ()
    """(schema.table, time of its newest change) of each change-feed entity: its freshness."""

    @classmethod
    def gather(cls, store: Store, pipeline: str, hints: Any = None, change_feed: Any = None,
               now: float | None = None) -> FlowInputs:
        """hints: the pipeline's `flow` config (FlowHints) or None; change_feed: its ChangeFeedSource or None."""
        import time

        now = time.time() if now is None else now
        health = {collector: h for (p, collector), h in store.health().items() if p == pipeline}
        snapshots = {}
        for collector in health:
            entry = store.snapshot((pipeline, collector))
            if entry is not None:
                snapshots[collector] = entry
        edges = tuple((e.source, e.target) for e in hints.edges) if hints is not None else ()
        layers = tuple((name, tuple(patterns)) for name, patterns in hints.layers.items()) if hints is not None else ()
        database, rate, backlog, seen, changed = None, math.nan, math.nan, (), ()
        if change_feed is not None:
            database = database_name(change_feed.dsn.get_secret_value())
            rates, times = [], []
            for entity in change_feed.entities:
                point = store.latest("db_change_feed_rate", (pipeline, entity.name))
                rates.append(point[1] if point else math.nan)
                times.append(point[0] if point else math.nan)
            rate = math.fsum(rates) if rates and not any(math.isnan(r) for r in rates) else math.nan
            point = store.latest("db_change_feed_backlog", (pipeline,))
            backlog = point[1] if point else math.nan
            seen = (*times, point[0] if point else math.nan)
            if layers:
                newest: dict[str, float] = {}
                for collector in health:
                    if _kind_of(collector) == "change_feed":
                        for entity, rows in store.feed_recent((pipeline, collector))[1].items():
                            newest[entity] = max([newest.get(entity, -math.inf), *(r.changed_at for r in rows)])
                changed = tuple((f"{e.db_schema or change_feed.db_schema}.{e.table}", newest.get(e.name, math.nan))
                                for e in change_feed.entities)
        return cls(pipeline, now, health, snapshots, edges, database, rate, backlog, seen, layers, changed)

    def fingerprint(self) -> tuple:
        """Equal fingerprints draw the same diagram: new snapshots, health changes and the change feed's
        newest points change it; the clock alone does not (except a source turning stale)."""
        return (
            tuple(sorted((c, t) for c, (t, _) in self.snapshots.items())),
            tuple(sorted((c, h.effective_state(self.now).value, h.error_category, h.last_error)
                         for c, h in self.health.items())),
            self.hints, self.change_seen, self.layers, self.changed_tables,
            # A layer's freshness is an age: redrawn as the clock moves, in steps.
            int(self.now // FRESHNESS_STEP) if self.layers else None,
        )


def database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/") or "database"


def rate_text(value: float | None, unit: str) -> str:
    """A rate with its unit (`57 msg/s`), by monitoring.format's rules."""
    return format_rate(value, f" {unit}")


def _count(value: float | int | None, unit: str) -> str:
    return f"{count(value)} {unit}"


def _kind_of(collector: str) -> str:
    return collector.split(":", 1)[0]


_GROUP_STATES = {"OK": "ok", "WARN": "warning", "ERR": "error", "STOP": "error", "STALL": "error", "REWIND": "error",
                 "NOTFOUND": "unknown"}
_GROUP_ORDER = {"error": 0, "warning": 1, "unknown": 2, "ok": 3}


class _Builder:
    def __init__(self, inputs: FlowInputs) -> None:
        self.inputs = inputs
        self.now = inputs.now
        self.nodes: dict[str, Node] = {}
        self.edges: dict[tuple[str, str], Edge] = {}
        self.topics: dict[str, list[tuple[str, TopicInfo, str]]] = {}
        """Topic name -> (cluster, info, kafka collector) over every cluster of the pipeline (not only drawn ones)."""
        self.topic_rates: dict[str, float | None] = {}
        """Topic node id -> its measured produce rate (None: unknown)."""
        self.jobs: dict[str, list[tuple[str, Job]]] = {}
        """Job name -> (node id, job) of the jobs drawn."""
        self.all_jobs: dict[str, list[tuple[str, Job, str]]] = {}
        """Job name -> (cluster, newest job of that name, flink collector) over every cluster."""

    # -- helpers -----------------------------------------------------------------------------------

    def source_state(self, collector: str) -> tuple[str | None, str]:
        """(state, reason) that overrides a node's own evaluation when its source is not up; (None, "") when up."""
        health = self.inputs.health.get(collector)
        if health is None:
            return "unknown", f"{collector}: not monitored"
        state = health.effective_state(self.now)
        if state is State.UP:
            return None, ""
        if state is State.STARTING:
            return "unknown", f"{collector}: first collection not finished yet"
        return ("down" if state is State.DOWN else "stale"), f"{collector} {state.value}: {health.reason(self.now)}"

    def without_data(self, collector: str, node_id: str, kind: str, label: str, detail: str = "") -> Node:
        """The node of a source with nothing to show: its source's state and reason, or "no data yet"."""
        override, why = self.source_state(collector)
        return Node(node_id, kind, label, override or "unknown", why or "no data yet", "unknown", detail)

    def add(self, node: Node) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id

    def edge(self, source: str, target: str, basis: str, rate: str = "") -> None:
        if (source, target) not in self.edges:
            self.edges[(source, target)] = Edge(source, target, basis, rate)

    def collectors(self, kind: str) -> list[str]:
        return sorted(c for c in self.inputs.health if _kind_of(c) == kind)

    def missing(self, kind: str, source_kind: str, name: str, what: str) -> Node:
        """A hinted node the collectors did not find: unknown without such a source, its state when the
        source is not up, else a warning that it was not found."""
        collectors = self.collectors(source_kind)
        node_id = f"{kind}:?/{name}"
        if not collectors:
            return Node(node_id, kind, name, "unknown", f"from the flow hints; no {what} is monitored in this pipeline",
                        "unknown")
        for collector in collectors:
            state, reason = self.source_state(collector)
            if state is not None:
                return Node(node_id, kind, name, state, reason, "unknown")
        return Node(node_id, kind, name, "warning",
                    f"named in the flow hints but not found by {', '.join(collectors)}", "unknown")

    # -- sources -----------------------------------------------------------------------------------

    def kafka(self, collector: str, several: bool) -> None:
        override, why = self.source_state(collector)
        entry = self.inputs.snapshots.get(collector)
        if entry is None:
            self.add(self.without_data(collector, f"kafka:{collector}", "topic",
                                       f"Kafka {self.inputs.health[collector].target}"))
            return
        snapshot: KafkaSnapshot = entry[1]
        cluster = snapshot.cluster
        for name, info in snapshot.topics.items():
            self.topics.setdefault(name, []).append((cluster, info, collector))
        groups = sorted(snapshot.groups, key=lambda g: (_GROUP_ORDER[_GROUP_STATES.get(g.status.name, "unknown")],
                                                        g.group_id))
        drawn_groups = groups[:MAX_PER_KIND]
        consumed = sorted({topic for (gid, topic) in snapshot.group_topics
                           if gid in {g.group_id for g in drawn_groups}})
        written = sorted(name for name, info in snapshot.topics.items()
                         if info.produce_rate and not name.startswith("__") and name not in consumed)
        wanted = (consumed + written)
        for name in wanted[:MAX_PER_KIND]:
            self.topic_node(cluster, snapshot.topics.get(name), name, collector, several)
        if len(wanted) > MAX_PER_KIND:
            self.add(Node(f"topic:{cluster}/+more", "topic", f"+{len(wanted) - MAX_PER_KIND} more topics",
                          override or "unknown", why or "not drawn: the diagram shows at most "
                          f"{MAX_PER_KIND} topics per cluster", "unknown"))
        for group in drawn_groups:
            progress = [p for (gid, _), p in snapshot.group_topics.items() if gid == group.group_id]
            rates = [p.consume_rate for p in progress]
            rate = math.fsum(rates) if rates and None not in rates else None
            if override:
                state, reason, rate = override, why, None
            elif group.error:
                state, reason = "warning", f"offsets not read this cycle: {group.error}"
            else:
                state = _GROUP_STATES.get(group.status.name, "unknown")
                reason = f"{group.status.name}: {group.status_reason}" if group.status_reason else group.status.name
            lag = "unknown" if override else _count(group.lag_sum, "messages")
            seconds = "unknown" if override else duration(group.max_lag_seconds)
            node_id = self.add(Node(
                f"group:{cluster}/{group.group_id}", "group", (f"{cluster}: " if several else "") + group.group_id,
                state, reason, rate_text(rate, "msg/s"),
                f"lag {lag}, oldest unconsumed {seconds}; {group.state}, {_count(group.member_count, 'members')}"))
            for p in sorted(progress, key=lambda p: p.topic):
                topic_id = f"topic:{cluster}/{p.topic}"
                if topic_id in self.nodes:
                    self.edge(topic_id, node_id, "measured",
                              "" if override else rate_text(p.consume_rate, "msg/s"))
        if len(groups) > MAX_PER_KIND:
            self.add(Node(f"group:{cluster}/+more", "group", f"+{len(groups) - MAX_PER_KIND} more groups",
                          override or "unknown", why or f"not drawn: at most {MAX_PER_KIND} groups per cluster",
                          "unknown"))

    def topic_node(self, cluster: str, info: TopicInfo | None, name: str, collector: str, several: bool) -> str:
        node_id = f"topic:{cluster}/{name}"
        if node_id in self.nodes:
            return node_id
        override, why = self.source_state(collector)
        rate = None if override or info is None else info.produce_rate
        if override:
            state, reason = override, why
        elif info is None:
            state, reason = "warning", "a group committed on it but the cluster no longer lists it"
        elif info.offline:
            state, reason = "error", f"{info.offline} of {len(info.partitions)} partitions offline (no leader)"
        elif info.under_replicated:
            state, reason = "warning", f"{info.under_replicated} of {len(info.partitions)} partitions under-replicated"
        else:
            state, reason = "ok", f"{len(info.partitions)} partitions, all with a leader and every replica in sync"
        self.topic_rates[node_id] = rate
        return self.add(Node(node_id, "topic", (f"{cluster}: " if several else "") + name, state, reason,
                             rate_text(rate, "msg/s in"),
                             f"{len(info.partitions)} partitions" if info is not None else ""))

    def flink(self, collector: str) -> None:
        entry = self.inputs.snapshots.get(collector)
        if entry is None:
            self.add(self.without_data(collector, f"flink:{collector}", "job",
                                       f"Flink {self.inputs.health[collector].target}"))
            return
        snapshot: FlinkSnapshot = entry[1]
        newest: dict[str, Job] = {}
        for job in snapshot.jobs:  # one node per job name: its newest run (a resubmitted job keeps its name)
            current = newest.get(job.name)
            if current is None or _newer(job, current):
                newest[job.name] = job
        for name, job in sorted(newest.items()):
            self.all_jobs.setdefault(name, []).append((snapshot.cluster, job, collector))
            # Finished and cancelled jobs are history, not part of the flow (unless a hint names them).
            if job.state not in TERMINAL_STATES or job.state == "FAILED":
                self.job_node(snapshot, job, collector)

    def job_node(self, snapshot: FlinkSnapshot, job: Job, collector: str) -> str:
        node_id = f"job:{snapshot.cluster}/{job.name}"
        if node_id in self.nodes:
            return node_id
        override, why = self.source_state(collector)
        sources, sinks = _ends(job)
        rate_in = _sum(v.records_out_per_second for v in sources) if sources and not override else None
        rate_out = _sum(v.records_in_per_second for v in sinks) if sinks and not override else None
        if override:
            state, reason = override, why
        else:
            state, reason = _job_health(job, snapshot)
        rate = ("unknown" if rate_in is None and rate_out is None else
                f"in {format_rate(rate_in, '')} / out {format_rate(rate_out, ' records/s')}")
        restarts = count(job.restarts)
        self.jobs.setdefault(job.name, []).append((node_id, job))
        return self.add(Node(node_id, "job", job.name, state, reason, rate,
                             f"{job.state}, {len(job.vertices)} vertices, restarts {restarts}"))

    def registry(self, collector: str) -> None:
        override, why = self.source_state(collector)
        entry = self.inputs.snapshots.get(collector)
        if entry is None:
            self.add(self.without_data(collector, f"registry:{collector}", "registry", "schema registry",
                                       self.inputs.health[collector].target))
            return
        snapshot = entry[1]
        if override:
            state, reason = override, why
        elif snapshot.warnings:
            state, reason = "warning", "; ".join(snapshot.warnings)
        else:
            state, reason = "ok", "answers"
        self.add(Node(f"registry:{collector}", "registry", f"schema registry {snapshot.registry}", state, reason,
                      "unknown" if override else _count(snapshot.subject_count, "subjects"),
                      "" if override else
                      f"compatibility {snapshot.compatibility or 'unknown'}, mode {snapshot.mode or 'unknown'}"))

    def change_feed(self, collector: str) -> None:
        override, why = self.source_state(collector)
        name = self.inputs.database or "database"
        backlog = self.inputs.change_backlog
        self.add(Node(f"database:{name}", "database", f"{name} (change feed)", override or "ok",
                      why or "change feed delivering", "unknown" if override else rate_text(self.inputs.change_rate,
                                                                                            "changes/s"),
                      "backlog " + ("unknown" if override else _count(backlog, "changes"))))

    def profiling(self, collector: str) -> None:
        override, why = self.source_state(collector)
        entry = self.inputs.snapshots.get(collector)
        if entry is None or override:
            self.add(self.without_data(collector, "profiling", "profiling", "profiling"))
            return
        freshness = entry[1].freshness
        stale = [f.table for f in freshness if not f.fresh]
        state = "warning" if stale else "ok"
        reason = (f"{len(stale)} table(s) not profiled recently: {', '.join(stale[:5])}" if stale
                  else "every table profiled recently")
        self.add(Node("profiling", "profiling", "profiling", state, reason,
                      f"{len(freshness) - len(stale)} of {len(freshness)} tables fresh"))

    # -- links -------------------------------------------------------------------------------------

    def link_plans(self, several: bool) -> None:
        """topic -> job / job -> topic where a source or sink vertex is named exactly after a topic."""
        for _name, drawn in self.jobs.items():
            for node_id, job in drawn:
                sources, sinks = _ends(job)
                for vertex in sources:
                    topic = _strip_source(vertex.name)
                    for cluster, info, collector in self.topics.get(topic, ()):
                        topic_id = self.topic_node(cluster, info, topic, collector, several)
                        self.edge(topic_id, node_id, "plan", rate_text(vertex.records_out_per_second, "records/s"))
                for vertex in sinks:
                    topic = _strip_sink(vertex.name)
                    for cluster, info, collector in self.topics.get(topic, ()):
                        topic_id = self.topic_node(cluster, info, topic, collector, several)
                        self.edge(node_id, topic_id, "plan", rate_text(vertex.records_in_per_second, "records/s"))

    def resolve(self, ref: str, several: bool) -> list[str]:
        kind, _, name = ref.partition(":")
        if kind == "topic":
            found = [self.topic_node(cluster, info, name, collector, several)
                     for cluster, info, collector in self.topics.get(name, ())]
            return found or [self.add(self.missing("topic", "kafka", name, "Kafka cluster"))]
        if kind == "job":
            found = [node_id for node_id, _ in self.jobs.get(name, ())]
            for _cluster, job, collector in self.all_jobs.get(name, ()):
                snapshot = self.inputs.snapshots[collector][1]
                found.append(self.job_node(snapshot, job, collector))
            return sorted(set(found)) or [self.add(self.missing("job", "flink", name, "Flink cluster"))]
        if kind == "group":
            found = [n.id for n in self.nodes.values() if n.kind == "group" and n.id.split("/", 1)[-1] == name
                     and not n.id.startswith("group:?/")]
            return found or [self.add(self.missing("group", "kafka", name, "Kafka cluster"))]
        if kind == "database" and name == self.inputs.database and f"database:{name}" in self.nodes:
            return [f"database:{name}"]
        return [self.add(Node(f"{kind}:{name}", kind, name, "unknown", "from the flow hints; not measured",
                              "unknown"))]

    def apply_hints(self, several: bool) -> None:
        for source, target in self.inputs.hints:
            for a in self.resolve(source, several):
                for b in self.resolve(target, several):
                    self.edge(a, b, "hint")

    def producers(self) -> None:
        """Rates of hinted producers (when they alone write their topics), and the measured "producers" node."""
        writers: dict[str, list[str]] = {}
        for (a, b) in self.edges:
            if b.startswith("topic:") and self.nodes[a].kind in ("producer", "job"):
                writers.setdefault(b, []).append(a)
        for node in list(self.nodes.values()):
            if node.kind != "producer":
                continue
            topics = [b for (a, b) in self.edges if a == node.id]
            rates = [self.topic_rates.get(t) if writers.get(t) == [node.id] else None for t in topics]
            if topics and None not in rates:
                self.nodes[node.id] = _replace(
                    node, rate=rate_text(math.fsum(rates), "msg/s"),
                    reason="from the flow hints; rate measured on the topics it alone writes")
                for t in topics:
                    self.edges[(node.id, t)] = _replace(self.edges[(node.id, t)], rate=rate_text(self.topic_rates[t],
                                                                                                 "msg/s"))
        measured = {t: r for t, r in self.topic_rates.items() if r and t not in writers}
        if measured:
            self.add(Node("producer:*", "producer", "producers", "ok",
                          "writing: produce rate measured from the topics' offsets (producers are not named; "
                          "name them with flow hints)", rate_text(math.fsum(measured.values()), "msg/s"),
                          f"{len(measured)} topic(s)"))
            for topic, rate in sorted(measured.items()):
                self.edge("producer:*", topic, "measured", rate_text(rate, "msg/s"))

    def place(self) -> tuple[Node, ...]:
        written_by_job = {b for (a, b) in self.edges if b.startswith("topic:") and self.nodes[a].kind == "job"}
        return tuple(_replace(n, column=COLUMNS["sink"] if n.id in written_by_job else COLUMNS.get(n.kind, 0))
                     for n in self.nodes.values())


def build_topology(inputs: FlowInputs) -> Topology:
    builder = _Builder(inputs)
    several = len(builder.collectors("kafka")) > 1
    for collector in builder.collectors("kafka"):
        builder.kafka(collector, several)
    for collector in builder.collectors("flink"):
        builder.flink(collector)
    for collector in builder.collectors("schema_registry"):
        builder.registry(collector)
    for collector in builder.collectors("change_feed"):
        builder.change_feed(collector)
    for collector in builder.collectors("profiling"):
        builder.profiling(collector)
    builder.link_plans(several)
    builder.apply_hints(several)
    builder.producers()
    nodes = builder.place()
    nodes, layers = _layers(inputs, nodes)
    return Topology(inputs.pipeline, nodes, tuple(builder.edges.values()), layers)


_SEVERITY = {"ok": 0, "warning": 1, "stale": 2, "error": 3, "down": 4}
"""Which measured state of a layer's members is the worst (unknown is not measured: it is counted apart)."""


def layer_name(node: Node) -> str | None:
    """The name a layer pattern is matched against: the topic, job, group, sink, database or producer name
    without kind or cluster; None for nodes that stand for a whole source (registry, profiling, "+N more")."""
    kind, _, rest = node.id.partition(":")
    if kind not in ("topic", "job", "group", "sink", "database", "producer") or rest.endswith("/+more") \
            or rest == "*" or "/" not in rest and kind in ("topic", "job", "group"):
        return None
    return rest.split("/", 1)[1] if kind in ("topic", "job", "group") else rest


def _layer_of(layers: tuple[tuple[str, tuple[str, ...]], ...], name: str) -> str:
    for layer, patterns in layers:
        if any(re.fullmatch(pattern, name) for pattern in patterns):
            return layer
    return ""


def _layers(inputs: FlowInputs, nodes: tuple[Node, ...]) -> tuple[tuple[Node, ...], tuple[Layer, ...]]:
    """The nodes with their layer, and each layer's health and freshness."""
    if not inputs.layers:
        return nodes, ()
    nodes = tuple(_replace(n, layer=_layer_of(inputs.layers, name)) if (name := layer_name(n)) else n for n in nodes)
    tables: list[tuple[str, float, str, bool]] = []  # (table, time of its data, measured by, late)
    for collector, (_, snapshot) in inputs.snapshots.items():
        if _kind_of(collector) == "profiling" and inputs.health[collector].effective_state(inputs.now) is State.UP:
            for f in snapshot.freshness:
                name = f"{f.schema}.{f.table}" if f.schema else f.table
                tables.append((name, math.nan if f.last_profiled_at is None else f.last_profiled_at, "profiled",
                               not f.fresh))
    feed_up = any(_kind_of(c) == "change_feed" and h.effective_state(inputs.now) is State.UP
                  for c, h in inputs.health.items())
    if feed_up:
        tables += [(table, t, "changed", False) for table, t in inputs.changed_tables]
    layers = []
    for layer, _ in inputs.layers:
        members = [n for n in nodes if n.layer == layer]
        measured = [n for n in members if n.state in _SEVERITY]
        worst = max(measured, key=lambda n: _SEVERITY[n.state], default=None)
        if worst is None:
            state = "unknown"
            reason = "nothing in it is measured" if members else "no node matches its patterns"
        elif worst.state == "ok":
            state, reason = "ok", f"{len(measured)} of {len(members)} measured, all ok"
        else:
            state, reason = worst.state, f"{worst.label}: {worst.reason}"
        mine = [t for t in tables if _layer_of(inputs.layers, t[0]) == layer
                or _layer_of(inputs.layers, t[0].split(".", 1)[-1]) == layer]
        known = [t for t in mine if not math.isnan(t[1])]
        late = [t for t in mine if t[3]]
        if known:
            table, t, how, _ = min(known, key=lambda t: t[1])
            freshness, detail = age(t, inputs.now), f"stalest: {table}, last {how} {age(t, inputs.now)}"
        else:
            freshness, detail = "unknown", ("not measured: no profiled or change-feed table matches its patterns"
                                            if not mine else "its tables have no measured time yet")
        if late and _SEVERITY.get(state, -1) < _SEVERITY["warning"]:
            state, reason = "warning", f"{late[0][0]} not profiled recently"
        layers.append(Layer(layer, state, reason, len(members), len(measured), freshness, detail))
    return nodes, tuple(layers)


class TopologyCache:
    """The newest topology per (pipeline, hints), recomputed only when its inputs' fingerprint changes: a
    hundred sessions refreshing once a second share one computation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[int, str, Any], tuple[tuple, Topology]] = {}

    def get(self, store: Store, pipeline: str, hints: Any = None, change_feed: Any = None,
            now: float | None = None) -> tuple[tuple, Topology]:
        inputs = FlowInputs.gather(store, pipeline, hints, change_feed, now)
        fingerprint = inputs.fingerprint()
        key = (id(store), pipeline, inputs.hints)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == fingerprint:
                return entry
        topology = build_topology(inputs)
        with self._lock:
            self._entries[key] = (fingerprint, topology)
        return fingerprint, topology


TOPOLOGIES = TopologyCache()


# -- small pieces ----------------------------------------------------------------------------------


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


def _newer(a: Job, b: Job) -> bool:
    active_a, active_b = a.state not in TERMINAL_STATES, b.state not in TERMINAL_STATES
    if active_a != active_b:
        return active_a
    return (a.start_time or 0) > (b.start_time or 0)


def _ends(job: Job) -> tuple[list, list]:
    """(source vertices: no inputs, sink vertices: input of no other vertex), from the job plan."""
    fed = {i for v in job.vertices for i in v.inputs}
    return [v for v in job.vertices if not v.inputs], [v for v in job.vertices if v.vertex_id not in fed]


def _sum(values: Iterable[float | None]) -> float | None:
    values = list(values)
    return None if not values or None in values else math.fsum(values)


def _strip_source(name: str) -> str:
    first = name.split(" -> ")[0].strip()
    return first.removeprefix("Source: ").strip()


def _strip_sink(name: str) -> str:
    last = name.split(" -> ")[-1].strip().removeprefix("Sink: ").strip()
    for suffix in (": Writer", ": Committer", " Writer", " Committer"):
        if last.endswith(suffix):
            return last[: -len(suffix)].strip()
    return last


def _job_health(job: Job, snapshot: FlinkSnapshot) -> tuple[str, str]:
    if job.state in ("FAILED", "FAILING", "RESTARTING"):
        exception = next((e for e in snapshot.exceptions if e.job_id == job.job_id), None)
        restarts = f", {count(job.restarts)} restarts" if job.restarts else ""
        return "error", job.state + restarts + (f"; last exception: {exception.name}: {exception.message}"
                                                 if exception else "")
    if job.state in ("FINISHED", "CANCELED"):
        return "unknown", job.state
    if job.state != "RUNNING":
        return "warning", job.state
    problems = []
    high = [v.name for v in job.vertices if v.backpressure and v.backpressure.level == BACKPRESSURE_WARNING]
    if high:
        problems.append(f"backpressure HIGH at {', '.join(high)}")
    checkpoints, age = job.checkpoints, job.checkpoint_age_seconds
    interval = checkpoints.interval_seconds if checkpoints else None
    if age is not None and interval and age > CHECKPOINT_INTERVALS * interval:
        problems.append(f"last checkpoint {duration(age)} ago "
                        f"({age / interval:.1f}x the {duration(interval)} interval)")
    if job.errors:
        problems.append("could not read " + "; ".join(job.errors))
    if problems:
        return "warning", "RUNNING; " + "; ".join(problems)
    return "ok", "RUNNING" + (f"; last checkpoint {duration(age)} ago" if age is not None and interval else "")



"""Per-session views over the shared store. Views read the store; they never talk to sources."""

from __future__ import annotations

import functools
import math
import time

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import HTMLTemplateFormatter
from panel.viewable import Viewer

from apps.change_feed_view import ChangeFeedView
from apps.dead_letter_view import DeadLetterView, declares_dead_letters
from apps.escape import esc, pipeline_href
from apps.flink_view import FlinkView
from apps.flow_view import FlowDiagram
from apps.format_templates import COUNT, RATE, duration_formatter
from apps.health_bar import HealthBar
from apps.live import LiveChart
from apps.pages import SECTIONS, sections_of
from apps.palette import LAG_STATUS_COLOURS, WARNING_TEXT, coloured_cell, text_colour
from apps.pipeline_overview import PipelineOverview
from apps.profiling_view import ProfilingView
from apps.registry_view import SchemaRegistryView
from apps.report import ReportDownload
from apps.widgets import LiveHTML, LiveTable, SnapshotSection, dim, freshness, shared_frame
from monitoring.config import FlowHints, Pipeline
from monitoring.format import duration
from monitoring.health import CollectorHealth
from monitoring.models.kafka import GroupInfo, KafkaSnapshot, PartitionLag, TopicInfo
from monitoring.sources import CHANGE_FEED, FLINK, KAFKA, PROFILING, SCHEMA_REGISTRY, DeclaredSource
from monitoring.store import Store

PARTITION_ROWS = 1000
DETAIL_SECONDS = 5.0
"""Charts move every second; tables, status lines, health badges and the flow diagram are redrawn at most this
often, and at once when a source's health changes. Redrawing them every second in every session cost the server
several times what the charts cost; what they show (each with the time it was measured) is as current, give
or take this many seconds, and a source going down or coming back shows within a second."""
"""The partition table keeps the most-lagging rows only: the browser stays fast at any cluster size."""


class KafkaLagView(SnapshotSection, Viewer):
    """Kafka for one pipeline: live lag charts, groups, partitions, topics and brokers."""

    _snapshot: KafkaSnapshot | None = None

    def __init__(self, store: Store, pipeline: str, collector: str, cluster: str, **params) -> None:
        super().__init__(**params)
        self.store, self.pipeline = store, pipeline
        self.source = (pipeline, collector)
        mine = (pipeline, cluster)  # the first two labels of every Kafka series
        self._notes = ""
        self.lag_chart = LiveChart(
            store, "Lag (messages) per group and topic", "messages",
            select=lambda k: k[0] == "kafka_consumergroup_group_topic_sum_lag" and k[1][:2] == mine,
            label=lambda k: f"{k[1][2]} / {k[1][3]}", name="lag-chart",
        )
        self.lag_seconds_chart = LiveChart(
            store, "Age of the oldest unconsumed record", "seconds",
            select=lambda k: k[0] == "kafka_consumergroup_group_max_lag_seconds" and k[1][:2] == mine,
            label=lambda k: k[1][2], name="lag-seconds-chart",
        )
        self.rate_chart = LiveChart(
            store, "Produce and consume rate (messages/s)", "messages / s",
            select=lambda k: (k[1][:2] == mine
                              and k[0] in ("kafka_topic_produce_rate", "kafka_consumergroup_consume_rate")),
            label=lambda k: (f"produced to {k[1][2]}" if k[0] == "kafka_topic_produce_rate"
                             else f"consumed by {k[1][2]} from {k[1][3]}"),
            name="rate-chart",
        )
        self.charts = (self.lag_chart, self.lag_seconds_chart, self.rate_chart)
        self.status = LiveHTML("", name="kafka-status", sizing_mode="stretch_width")
        self.groups = LiveTable(_GROUP_COLUMNS, "groups-table", page_size=10)
        self.partitions = LiveTable(_PARTITION_COLUMNS, "partitions-table", page_size=20)
        self.topics = LiveTable(_TOPIC_COLUMNS, "topics-table", page_size=10)
        self.brokers = LiveTable(_BROKER_COLUMNS, "brokers-table", page_size=10)
        self.members = LiveTable(_MEMBER_COLUMNS, "members-table", page_size=10)
        self.group_choice = pn.widgets.Select(label="Drill down into", options=[_ALL_GROUPS], value=_ALL_GROUPS,
                                              width=320)
        self.group_choice.param.watch(lambda _: self._render_group(), "value")
        self._layout = pn.Column(
            pn.pane.HTML(f"<h3>Kafka cluster <code>{esc(cluster)}</code></h3>"),
            pn.pane.Bokeh(self.status.model, sizing_mode="stretch_width"),
            pn.Row(*(pn.pane.Bokeh(chart.figure, sizing_mode="stretch_width") for chart in self.charts),
                   sizing_mode="stretch_width"),
            pn.pane.Markdown("#### Consumer groups"), self.groups,
            self.group_choice,
            pn.pane.HTML(f"<h4>Partitions (the {PARTITION_ROWS:,} most lagging)</h4>"), self.partitions,
            pn.pane.Markdown("#### Members of the chosen group"), self.members,
            pn.Row(pn.Column(pn.pane.Markdown("#### Topics"), self.topics),
                   pn.Column(pn.pane.Markdown("#### Brokers"), self.brokers), sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    def refresh(self, detail: bool = True) -> None:
        """Stream the charts; with `detail`, also the status line and the tables (see DETAIL_SECONDS)."""
        for chart in self.charts:
            chart.refresh()
        if detail:
            shown = self._follow_snapshot(time.time())
            self._refresh_status(shown, self.store.health().get(self.source))

    def _refresh_status(self, snapshot_time: float | None, health: CollectorHealth | None) -> None:
        text, stale = freshness("Kafka", snapshot_time, health, time.time())
        text += self._notes
        self.status.text = text  # a Bokeh property set to its own value sends nothing
        dim((self.groups, self.partitions, self.members, self.topics, self.brokers), stale)

    def _render(self, now: float) -> None:
        snapshot = self._snapshot
        notes = []
        if snapshot.unmatched_patterns:
            notes.append("No consumer group matches " + ", ".join(
                f"<code>{esc(p)}</code>" for p in snapshot.unmatched_patterns))
        for progress in snapshot.group_topics.values():
            if progress.retention_risk_seconds == 0:
                notes.append(f"<b>{esc(progress.group_id)}</b> lost records of "
                             f"<b>{esc(progress.topic)}</b>: retention deleted them before they were consumed")
            elif math.isfinite(progress.retention_risk_seconds):
                notes.append(f"<b>{esc(progress.group_id)}</b>: records of <b>{esc(progress.topic)}</b> "
                             f"will be deleted before they are consumed in about "
                             f"{duration(progress.retention_risk_seconds)}")
        self._notes = "".join(f'<div class="pw-note" style="color:{text_colour(WARNING_TEXT)}">{n}</div>'
                              for n in notes)
        frame = functools.partial(shared_frame, self.source, snapshot)
        self.groups.value = frame("groups", lambda: pd.DataFrame([_group_row(g, snapshot) for g in snapshot.groups],
                                                                 columns=list(_GROUP_COLUMNS)))
        options = [_ALL_GROUPS, *(g.group_id for g in snapshot.groups)]
        if self.group_choice.options != options:
            self.group_choice.options = options  # a vanished group falls back to all groups
        self._render_group()
        self.topics.value = frame("topics", lambda: pd.DataFrame(
            [_topic_row(t) for t in sorted(snapshot.topics.values(), key=lambda t: t.name)],
            columns=list(_TOPIC_COLUMNS)))
        self.brokers.value = frame("brokers", lambda: pd.DataFrame(
            [{"id": str(b.node_id), "host": b.host, "port": str(b.port), "reachable": "yes" if b.reachable else "NO",
              "error": b.error or "",
              "leads": float(sum(meta.leader == b.node_id for t in snapshot.topics.values()
                                 for meta in t.partitions.values()))}
             for b in snapshot.brokers], columns=list(_BROKER_COLUMNS)))

    def _render_group(self) -> None:
        """Partitions of the chosen group (or of all groups) and the chosen group's members."""
        if self._snapshot is None:
            return
        chosen = self.group_choice.value
        snapshot = self._snapshot
        groups = [g for g in snapshot.groups if chosen in (_ALL_GROUPS, g.group_id)]

        def partitions() -> pd.DataFrame:
            frame = pd.DataFrame([_partition_row(g, p) for g in groups for p in g.partitions],
                                 columns=list(_PARTITION_COLUMNS))
            # Most lagging first (unknown lag after known), then a stable order.
            frame = frame.sort_values(["lag", "group", "topic", "partition"], ascending=[False, True, True, True],
                                      na_position="last", kind="stable").head(PARTITION_ROWS)
            return frame.reset_index(drop=True)

        def members() -> pd.DataFrame:
            shown = [m for g in groups for m in (g.members or ())] if chosen != _ALL_GROUPS else []
            return pd.DataFrame(
                [{"member": m.member_id, "client id": m.client_id or "unknown", "host": m.client_host or "unknown",
                  "partitions": ", ".join(f"{t}[{p}]" for t, p in m.assignment) or "not reported"} for m in shown],
                columns=list(_MEMBER_COLUMNS))

        self.partitions.value = shared_frame(self.source, snapshot, "partitions", partitions, variant=chosen)
        self.members.value = shared_frame(self.source, snapshot, "members", members, variant=chosen)


_STATUS = HTMLTemplateFormatter(template=coloured_cell("pw-status", "status", LAG_STATUS_COLOURS))
_GROUP_COLUMNS = {
    "group": None, "state": None, "status": _STATUS, "members": COUNT, "lag": COUNT, "max lag": COUNT,
    "lag seconds": duration_formatter("unbounded"), "catch-up": duration_formatter("not catching up"),
    "consume rate": RATE, "reason": None, "error": None,
}
_PARTITION_COLUMNS = {
    "group": None, "topic": None, "partition": COUNT, "owner": None, "committed": COUNT, "high watermark": COUNT,
    "lag": COUNT, "lag seconds": duration_formatter("unbounded"), "method": None, "status": _STATUS, "reason": None,
}
_TOPIC_COLUMNS = {
    "topic": None, "partitions": COUNT, "under-replicated": COUNT, "offline": COUNT, "messages": COUNT,
    "produce rate": RATE,
}
_ALL_GROUPS = "all groups"
_MEMBER_COLUMNS = {"member": None, "client id": None, "host": None, "partitions": None}
_BROKER_COLUMNS = {"id": None, "host": None, "port": None, "reachable": None, "leads": COUNT, "error": None}


def _group_row(group: GroupInfo, snapshot: KafkaSnapshot) -> dict[str, object]:
    progress = [p for (gid, _), p in snapshot.group_topics.items() if gid == group.group_id]
    rates = [p.consume_rate for p in progress if p.consume_rate is not None]
    catch_up = [p.catch_up_seconds for p in progress if not math.isnan(p.catch_up_seconds)]
    return {
        "group": group.group_id, "state": group.state, "status": group.status.name, "members": _num(group.member_count),
        "lag": _num(group.lag_sum), "max lag": _num(group.max_lag), "lag seconds": group.max_lag_seconds,
        "catch-up": max(catch_up) if catch_up else np.nan, "consume rate": sum(rates) if rates else np.nan,
        "reason": group.status_reason, "error": group.error or "",
    }


def _partition_row(group: GroupInfo, p: PartitionLag) -> dict[str, object]:
    return {
        "group": group.group_id, "topic": p.topic, "partition": p.partition, "owner": p.owner or "",
        "committed": _num(p.committed), "high watermark": _num(p.high_watermark), "lag": _num(p.lag),
        "lag seconds": p.lag_seconds, "method": p.lag_seconds_method, "status": p.status.name,
        "reason": p.status_reason,
    }


def _topic_row(topic: TopicInfo) -> dict[str, object]:
    complete = len(topic.high_watermarks) == len(topic.log_start_offsets) == len(topic.partitions)
    messages = sum(topic.high_watermarks.values()) - sum(topic.log_start_offsets.values()) if complete else np.nan
    return {"topic": topic.name, "partitions": float(len(topic.partitions)),
            "under-replicated": float(topic.under_replicated), "offline": float(topic.offline),
            "messages": float(messages), "produce rate": _num(topic.produce_rate)}


def _num(value: float | int | None) -> float:
    return np.nan if value is None else float(value)


class PipelinePage(Viewer):
    """One pipeline: its summary (source health, flow diagram, throughput, lag and latency, links into the sections)
    or one of its sections (every declared source of one kind: Kafka, Flink...), under its source health."""

    def __init__(self, store: Store, pipeline: str, sources: list[DeclaredSource], config: Pipeline | None = None,
                 flow_hints: FlowHints | None = None, section: str = "", defer: bool = False, **params) -> None:
        """sources: the config's declared sources (monitoring.sources.declared_sources), the pipeline's picked
        here; config: the pipeline's configuration (expected traffic, flow hints, what reports include), when known;
        section: a kind of source (apps/pages.py SECTIONS), "" for the summary; defer: build the charts, tables and
        diagram only in `complete()` (the session calls it once the page is shown), not now."""
        super().__init__(**params)
        self.store, self.pipeline, self.section = store, pipeline, section
        self.health = HealthBar(store, pipeline, section or None)
        self._mine = [s for s in sources if s.pipeline == pipeline]
        self._flow_hints = flow_hints if flow_hints is not None or config is None else config.flow
        self._config = config
        self.flow: FlowDiagram | None = None
        self.sections: list = []
        """The parts that follow the store every second (charts, tables), once built."""
        if section:  # each source's part has its own heading
            self._layout = pn.Column(self.health, sizing_mode="stretch_width")
        else:
            self.report = ReportDownload(store, config or pipeline)  # builds nothing until clicked
            self._layout = pn.Column(self.health, pn.pane.HTML(_section_links(pipeline, self._mine),
                                                               sizing_mode="stretch_width"),
                                     sizing_mode="stretch_width")
        self._complete = False
        self._states: tuple | None = None
        self._detail_at = 0.0
        if not defer:
            self.complete()

    def __panel__(self):
        return self._layout

    def complete(self) -> None:
        """Build and show the heavy parts: the flow diagram and charts (summary) or the section's sources."""
        if self._complete:
            return
        self._complete = True
        if self.section:
            self.sections = [_section(self.store, source) for source in self._mine if source.kind == self.section]
            self._layout.extend(self.sections)
            return
        self.flow = FlowDiagram(self.store, self.pipeline, self._flow_hints,
                                next((s.config for s in self._mine if s.kind == CHANGE_FEED), None))
        traffic = self._config.traffic if self._config is not None else None
        self.sections = [PipelineOverview(self.store, self.pipeline, traffic)]
        if declares_dead_letters(self._config):
            self.sections.append(DeadLetterView(self.store, self.pipeline))
        self._layout.extend([self.flow, self.report.panel, *self.sections])

    def refresh(self) -> None:
        """Called once a second by the session: the charts every time, the rest every DETAIL_SECONDS or when a
        source's health changed."""
        now = time.time()
        states = self.health.states(now)
        detail = states != self._states or now - self._detail_at >= DETAIL_SECONDS
        if detail:
            self._states, self._detail_at = states, now
            self.health.refresh()
            if self.flow is not None:
                self.flow.refresh()
        for section in self.sections:
            section.refresh(detail)

    def go_live(self) -> None:
        """The browser is connected: sections that follow their source by push (the change feed) start now."""
        for section in self.sections:
            if hasattr(section, "go_live"):
                section.go_live()

    def close(self) -> None:
        for section in self.sections:
            if hasattr(section, "close"):
                section.close()


def _section_links(pipeline: str, sources: list[DeclaredSource]) -> str:
    """Links into the pipeline's sections (the health bar above names their sources)."""
    links = []
    for kind in sections_of(sources, pipeline):
        links.append(f'<a class="pw-section-link" data-section="{kind}" href="{pipeline_href(pipeline, kind)}" '
                     'style="color:var(--pw-link)">'
                     f'{esc(SECTIONS[kind])}</a>')
    if not links:
        return ""
    return '<nav class="pw-sections" style="margin:4px 0">Sections: ' + " &middot; ".join(links) + "</nav>"


def _section(store: Store, source: DeclaredSource):
    """The page section that shows one declared source."""
    pipeline, collector = source.source
    if source.kind == KAFKA:
        return KafkaLagView(store, pipeline, collector, source.label)
    if source.kind == SCHEMA_REGISTRY:
        return SchemaRegistryView(store, pipeline, collector, source.label)
    if source.kind == FLINK:
        return FlinkView(store, pipeline, collector, source.label)
    if source.kind == PROFILING:
        return ProfilingView(store, pipeline, collector)
    if source.kind == CHANGE_FEED:
        return ChangeFeedView(store, pipeline, collector, source.config)
    raise ValueError(f"no page section for a source of kind {source.kind!r}")

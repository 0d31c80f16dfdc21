"""The aggregate page: every pipeline side by side, this process's own, other agents' and Prometheus'.

Three kinds of rows, all PipelineSummary with the same meaning for every field:
- this process's pipelines, from the evaluator's snapshot (SUMMARY_SOURCE), job "local";
- each remote agent's (`remote_agents:`), read from its JSON API by collectors/aggregate/remote_agents.py, job "remote";
- every agent a Prometheus scrapes (`prometheus:`), read back by collectors/aggregate/prometheus_query.py.
An agent reached both directly and through Prometheus (or this process's own exporter, scraped by that
Prometheus) is listed once, from the direct source.

The rows, the table's frame and the totals are combined once per process whenever a source publishes; each
session re-renders only when the combined content changed. Below the table, a small chart per pipeline shows
its lag (messages): local ones stream the store's pipewatch_pipeline_lag deltas, remote ones the history the
collector keeps from the agents' series endpoint. Prometheus rows have no chart (no history is read back).
"""

from __future__ import annotations

import dataclasses
import math
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
import panel as pn
from bokeh.models import CDSView, ColumnDataSource, DataTable, Div, HTMLTemplateFormatter, TableColumn
from bokeh.plotting import figure
from panel.viewable import Viewer

from apps.escape import esc
from apps.views import HealthBar
from apps.widgets import clock, redraw
from collectors.aggregate.prometheus_query import PrometheusQueryCollector
from collectors.aggregate.remote_agents import RemoteAgentCollector, agent_down
from monitoring.evaluation import SUMMARY_SOURCE
from monitoring.health import State
from monitoring.models.aggregate import (
    AGGREGATE_PIPELINE,
    AggregateSnapshot,
    History,
    PipelineSummary,
    RemoteAgentSnapshot,
)
from monitoring.runtime import Collector
from monitoring.store import Store


def _cell(field: str, body: str) -> HTMLTemplateFormatter:
    """A cell that names its column (`data-field`), so the page can be read cell by cell."""
    return HTMLTemplateFormatter(template=f'<span class="pw-cell" data-field="{field}">{body}</span>')


_BLANK = "<% if (value === null || value === undefined) { %>"
"""None: the pipeline has no such source, a blank cell. NaN: it has the source and the value is unknown."""
_NUMBER = _BLANK + "<% } else if (Number.isNaN(value)) { %>unknown<% } else { %>{shown}<% } %>"
_TEXT = "<%- value %>"
"""Escaped: reasons and names may come from other agents."""
_HEALTH = (
    '<span class="pw-agg-health" data-health="<%- value %>" style="font-weight:bold;color:'
    "<%- ({'ok': '#1a7f37', 'degraded': '#bf8700', 'down': '#cf222e', 'agent down': '#cf222e'})[value] "
    "|| '#6e7781' %>\"><%- value %></span>"
)
_SECONDS = (_BLANK + "<% } else if (Number.isNaN(value)) { %>unknown<% } else if (value === Infinity) { %>unbounded"
            "<% } else if (value < 120) { %><%- value.toFixed(1) %> s"
            "<% } else if (value < 7200) { %><%- (value / 60).toFixed(1) %> min"
            "<% } else { %><%- (value / 3600).toFixed(1) %> h<% } %>")
_COUNT = _NUMBER.replace("{shown}", "<%- Math.round(value).toLocaleString('en') %>")
_RATE = _NUMBER.replace("{shown}", "<%- value.toFixed(1) %>")
_COLUMNS = {  # field: (title, cell template, width)
    "agent": ("agent", _TEXT, 170), "pipeline": ("pipeline", _TEXT, 120), "health": ("health", _HEALTH, 90),
    "sources_down": ("sources down", _TEXT, 110), "lag": ("lag", _COUNT, 80), "max_lag": ("max lag", _SECONDS, 80),
    "lag_status": ("lag status", _TEXT, 75), "produce_rate": ("produce rate", _RATE, 90),
    "consume_rate": ("consume rate", _RATE, 90), "flink_running": ("Flink jobs running", _TEXT, 110),
    "checkpoint_age": ("checkpoint age", _SECONDS, 100), "registry": ("registry", _TEXT, 65),
    "change_rate": ("change rate", _RATE, 80), "last_update": ("last update", _TEXT, 95),
    "reason": ("reason", _TEXT, 420),
}
_ROW_HEIGHT = 28
_VISIBLE_ROWS = 20
_STATUS_NAMES = ("NOTFOUND", "OK", "WARN", "ERR")

CHART_SECONDS = 5.0
"""How often a session feeds its small charts (they receive every point, a few at a time)."""
SMALL_MULTIPLES = 48
"""Pipelines charted below the table (in table order); the rest are counted, not drawn."""
_ROLLOVER = 600
_LOCAL_LAG = "pipewatch_pipeline_lag"


@dataclass(frozen=True)
class _AgentLine:
    label: str
    state: str
    """up, down or no scrape."""
    detail: str


@dataclass(frozen=True)
class Combined:
    """Every row the page shows now, built once per process per change of any of its sources."""

    version: int
    """Bumped only when what the page shows changed (rows, agents, status): sessions compare it."""
    rows: tuple[PipelineSummary, ...]
    columns: dict[str, list]
    """The table's data, column by column (each session copies the dict into its own data source)."""
    agents: tuple[_AgentLine, ...]
    status: str
    totals: str
    agents_html: str
    remote: dict[str, RemoteAgentSnapshot]
    """url -> the remote agent's snapshot (for its pipelines' small charts)."""


class _Combiner:
    """Combines the sources into rows; one per store (process), shared by every session."""

    def __init__(self, store: Store, collectors: list[Collector], own_instances: frozenset[str]) -> None:
        self.store = store
        self.prometheus = next((c for c in collectors if isinstance(c, PrometheusQueryCollector)), None)
        self.remotes = [c for c in collectors if isinstance(c, RemoteAgentCollector)]
        self.own_instances = own_instances
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._content: tuple | None = None
        self._combined: Combined | None = None

    def current(self, now: float) -> Combined:
        health = self.store.health()
        sources = [SUMMARY_SOURCE] + [c.source for c in self.remotes] + ([self.prometheus.source] if self.prometheus else [])
        entries = [self.store.snapshot(source) for source in sources]
        # What decides the content: every snapshot's time, and whether each remote collector is up now.
        key = (tuple(e[0] if e else None for e in entries),
               tuple(self._remote_state(health.get(c.source), now) for c in self.remotes),
               self._prometheus_state(health, now))
        with self._lock:
            if key != self._key or self._combined is None:
                self._key = key
                self._build(entries, health, now)
            assert self._combined is not None
            return self._combined

    @staticmethod
    def _remote_state(health, now: float) -> str:
        return health.effective_state(now).value if health is not None else "starting"

    def _prometheus_state(self, health, now: float) -> str:
        if self.prometheus is None:
            return ""
        h = health.get(self.prometheus.source)
        return self._remote_state(h, now)

    def _build(self, entries: list, health: dict, now: float) -> None:
        local_entry, remote_entries = entries[0], entries[1:1 + len(self.remotes)]
        rows: list[PipelineSummary] = list(local_entry[1]) if local_entry else []
        agents = []
        status = []
        if local_entry:
            agents.append(_AgentLine(f"{rows[0].instance if rows else socket.gethostname()} (this process)", "up", ""))
        remote: dict[str, RemoteAgentSnapshot] = {}
        direct = set(self.own_instances)
        for collector, entry in zip(self.remotes, remote_entries, strict=True):
            direct.add(urlsplit(collector.url).netloc)
            h = health.get(collector.source)
            state = h.effective_state(now) if h is not None else State.STARTING
            if entry is None:
                reason = h.reason(now) if h is not None else "first collection not finished yet"
                agents.append(_AgentLine(collector.url, "down" if state is State.DOWN else "no answer yet", reason))
                continue
            snapshot: RemoteAgentSnapshot = entry[1]
            if snapshot.up and state is not State.UP:  # hung or stale: the collector's last answer is too old
                reason = f"agent at {collector.url}: collector {state.value}: {h.reason(now)}"
                snapshot = RemoteAgentSnapshot(snapshot.url, False, reason, snapshot.agent,
                                               agent_down(snapshot.rows, reason), snapshot.history, snapshot.measured_at)
            remote[collector.url] = snapshot
            rows.extend(snapshot.rows)
            agents.append(_AgentLine(collector.url, "up" if snapshot.up else "down",
                                     "" if snapshot.up else snapshot.reason))
        if self.prometheus is not None:
            entry = entries[-1]
            h = health.get(self.prometheus.source)
            if entry is None:
                status.append(f"Prometheus at {esc(self.prometheus.url)}: no answer yet")
            else:
                read_back: AggregateSnapshot = entry[1]
                stale = h is not None and h.effective_state(now) is not State.UP
                status.append(f"Prometheus at {esc(self.prometheus.url)}: measured at {clock(entry[0])}"
                              + (f" (STALE: {esc(h.reason(now))})" if stale else ""))
                rows.extend(row for row in read_back.rows if row.instance not in direct)
                agents.extend(_AgentLine(f"{a.instance} ({a.job})", "up" if a.up else "down" if a.up is False
                                         else "no scrape", "") for a in read_back.agents if a.instance not in direct)
        rows_t, agents_t, status_text = tuple(rows), tuple(agents), " &middot; ".join(status)
        # Compared as JSON: a NaN (unknown) is never equal to another NaN, None is.
        content = ([row.to_json() for row in rows_t], agents_t, status_text)
        if self._combined is not None and content == self._content:
            self._combined = dataclasses.replace(self._combined, rows=rows_t, agents=agents_t, remote=remote)
            return
        self._content = content
        table = [_row(row) for row in rows_t]
        columns = {field: [row[field] for row in table] for field in _COLUMNS}
        version = self._combined.version + 1 if self._combined is not None else 1
        self._combined = Combined(version, rows_t, columns, agents_t, status_text, _totals(rows_t),
                                  _agents_html(agents_t), remote)


_combiners: dict[int, _Combiner] = {}
_combiners_lock = threading.Lock()


def combiner(store: Store, collectors: list[Collector], own_instances: frozenset[str] = frozenset()) -> _Combiner:
    with _combiners_lock:
        found = _combiners.get(id(store))
        if found is None or found.store is not store:
            found = _combiners[id(store)] = _Combiner(store, collectors, own_instances)
        return found


class _SmallChart:
    """One pipeline's lag over the last minutes: a small figure with one line fed by deltas."""

    def __init__(self, row: PipelineSummary) -> None:
        self.key = (row.job, row.instance, row.pipeline)
        self.seen = 0
        self.source = ColumnDataSource({"t": [], "y": []})
        agent = "this process" if row.job == "local" else row.instance
        self.figure = figure(title=f"{row.pipeline} · {agent}", name="small-multiple", x_axis_type="datetime",
                             height=150, width=280, tools="", toolbar_location=None)
        self.figure.title.text_font_size = "9pt"
        self.figure.xaxis.major_label_text_font_size = self.figure.yaxis.major_label_text_font_size = "7pt"
        self.figure.line("t", "y", source=self.source, line_width=2, color="#1f77b4",
                         name=f"{row.pipeline} @ {row.instance}")

    def feed(self, times, values, count: int) -> None:
        """Points of a series whose newest point is the count-th: stream the ones after `seen`."""
        if count < self.seen:  # the history began again (an agent restarted)
            self.seen = 0
            self.source.data = {"t": [], "y": []}
        new = min(count - self.seen, len(times))
        if new <= 0:
            return
        self.seen = count
        self.source.stream({"t": np.asarray(times[len(times) - new:], dtype=np.float64) * 1000.0,
                            "y": np.asarray(values[len(values) - new:], dtype=np.float64)}, rollover=_ROLLOVER)


class SmallMultiples(Viewer):
    """A small lag chart per pipeline with history (local and remote agents' pipelines), in table order."""

    def __init__(self, store: Store, **params) -> None:
        super().__init__(**params)
        self.store = store
        self.charts: dict[tuple[str, str, str], _SmallChart] = {}
        self.note = pn.pane.HTML("", sizing_mode="stretch_width")
        self.box = pn.FlexBox(sizing_mode="stretch_width")
        self._layout = pn.Column(pn.pane.Markdown("#### Lag (messages) per pipeline"), self.note, self.box,
                                 sizing_mode="stretch_width")

    def __panel__(self):
        return self._layout

    def arrange(self, rows: tuple[PipelineSummary, ...]) -> bool:
        """Keep the charts still wanted, add the new ones; True when that changed the charts."""
        charted = [row for row in rows if row.job in ("local", "remote")]
        wanted = charted[:SMALL_MULTIPLES]
        keys = [(row.job, row.instance, row.pipeline) for row in wanted]
        if keys == list(self.charts):
            return False
        self.charts = {key: self.charts.get(key) or _SmallChart(row) for key, row in zip(keys, wanted, strict=True)}
        self.box.objects = [pn.pane.Bokeh(chart.figure) for chart in self.charts.values()]
        hidden = len(charted) - len(wanted)
        without = len(rows) - len(charted)
        self.note.object = " ".join(
            ([f"<em>{hidden:,} more pipeline(s) not charted (the first {SMALL_MULTIPLES:,} are).</em>"] if hidden else [])
            + ([f"<em>{without:,} pipeline(s) read from Prometheus have no chart: only their current values are "
                f"read back.</em>"] if without else []))
        return True

    def refresh(self, remote: dict[str, RemoteAgentSnapshot]) -> None:
        for (job, instance, pipeline), chart in self.charts.items():
            if job == "local":
                delta = self.store.since((_LOCAL_LAG, (pipeline,)), chart.seen)
                if delta is not None and delta.count != chart.seen:
                    chart.feed(delta.times, delta.values, delta.count)
            else:
                snapshot = remote.get(instance)
                history: History | None = snapshot.history.get(pipeline) if snapshot else None
                if history is not None and history.count != chart.seen:
                    chart.feed(history.times, history.values, history.count)


class AggregateView(Viewer):
    """All pipelines: a sortable table, the totals and the agents, and a small chart per pipeline."""

    def __init__(self, store: Store, collectors: list[Collector], own_instances: frozenset[str] = frozenset(),
                 **params) -> None:
        super().__init__(**params)
        self.store = store
        self.combiner = combiner(store, collectors, own_instances)
        self._version = 0
        self._charts_fed = 0.0
        # Plain Bokeh models (see HealthBar): a Panel pane or Tabulator update costs far more per session, and
        # a DataTable sorts in the browser (click a column's header) without asking the server.
        self.status = Div(text="", name="aggregate-status", sizing_mode="stretch_width")
        self.totals = Div(text="", name="aggregate-totals", sizing_mode="stretch_width")
        self.agents = Div(text="", name="aggregate-agents", sizing_mode="stretch_width")
        self.source_rows = ColumnDataSource({field: [] for field in _COLUMNS})
        self.pipelines = DataTable(
            source=self.source_rows, view=CDSView(), name="aggregate-table", index_position=None, sortable=True, reorderable=False,
            sizing_mode="stretch_width", height=_ROW_HEIGHT + 2, row_height=_ROW_HEIGHT,
            columns=[TableColumn(field=field, title=title, width=width, formatter=_cell(field, body))
                     for field, (title, body, width) in _COLUMNS.items()])
        self.small = SmallMultiples(store)
        sources = ["this process"]
        if self.combiner.remotes:
            sources.append(f"{len(self.combiner.remotes)} remote agent(s) through their JSON API")
        if self.combiner.prometheus is not None:
            sources.append(f"Prometheus at <code>{esc(self.combiner.prometheus.url)}</code>")
        heading = ", ".join(sources)  # (each part escaped)
        self._layout = pn.Column(
            pn.pane.HTML(f"<h3>All pipelines: {heading}</h3>"),
            *(pn.pane.Bokeh(model, sizing_mode="stretch_width") for model in (self.status, self.totals, self.agents,
                                                                             self.pipelines)),
            self.small, sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    def refresh(self) -> None:
        now = time.time()
        combined = self.combiner.current(now)
        if combined.version != self._version:
            self._version = combined.version
            self._render(combined)
        if now - self._charts_fed >= CHART_SECONDS:  # the charts show minutes: a few points at a time will do
            self._charts_fed = now
            self.small.refresh(combined.remote)

    def _render(self, combined: Combined) -> None:
        rows = combined.rows
        shown = combined.status  # HTML, its parts escaped as it was combined
        status = f'<span class="pw-agg-status">{shown}</span>' if shown else ""
        if status != self.status.text:
            self.status.text = status
        if combined.totals != self.totals.text:
            self.totals.text = combined.totals
        if combined.agents_html != self.agents.text:
            self.agents.text = combined.agents_html
        self.source_rows.data = dict(combined.columns)
        redraw(self.pipelines)
        height = _ROW_HEIGHT * (min(len(rows), _VISIBLE_ROWS) + 1) + 2
        if height != self.pipelines.height:
            self.pipelines.height = height
        if self.small.arrange(rows):
            self.small.refresh(combined.remote)


def _totals(rows: tuple[PipelineSummary, ...]) -> str:
    healthy = sum(row.health == "ok" for row in rows)
    agents = len({(row.job, row.instance) for row in rows})
    return (f'<div class="pw-agg-totals"><b>{len(rows):,}</b> pipelines on <b>{agents:,}</b> agents: '
            f"<b>{healthy:,}</b> ok, <b>{len(rows) - healthy:,}</b> not &middot; lag {_total(rows, 'lag_messages', 0)} "
            f"messages &middot; produce {_total(rows, 'produce_rate', 1)}/s &middot; consume "
            f"{_total(rows, 'consume_rate', 1)}/s</div>")


def _agents_html(agents: tuple[_AgentLine, ...]) -> str:
    return " ".join(
        f'<span class="pw-agent" data-state="{esc(agent.state)}" style="margin-right:12px"'
        f' title="{esc(agent.detail)}">{esc(agent.label)}: {esc(agent.state.upper())}</span>'
        for agent in agents)


def _total(rows: tuple[PipelineSummary, ...], field: str, decimals: int) -> str:
    """A sum over the pipelines with Kafka that report the measure; those that do not are named as unknown, so a
    partial sum never passes for the whole."""
    values = [v for row in rows if (v := _watched(row, "kafka", getattr(row, field))) is not None]
    known = [v for v in values if not math.isnan(v)]
    if not known:
        return "unknown"
    unknown = len(values) - len(known)
    return f"{sum(known):,.{decimals}f}" + (f" (+ {unknown} pipeline(s) unknown)" if unknown else "")


def _watched(row: PipelineSummary, kind: str, value: float) -> float | None:
    """The value when the pipeline has a source of this kind (NaN: unknown), else None (a blank cell)."""
    return value if row.watches(kind) else None


def _row(row: PipelineSummary) -> dict[str, object]:
    status = ""  # blank: the pipeline has no consumer group status (no Kafka, or not known)
    if not math.isnan(row.worst_status):
        code = int(row.worst_status)
        status = _STATUS_NAMES[code] if 0 <= code < len(_STATUS_NAMES) else str(code)
    running = "" if math.isnan(row.flink_jobs) else f"{row.flink_running:.0f} of {row.flink_jobs:.0f}"
    registry = "" if math.isnan(row.registry_up) else "up" if row.registry_up == 1 else "DOWN"
    return {
        "agent": row.instance, "pipeline": row.pipeline, "health": row.health,
        "sources_down": ", ".join(row.collectors_down), "lag": _watched(row, "kafka", row.lag_messages),
        "max_lag": _watched(row, "kafka", row.lag_seconds), "lag_status": status,
        "produce_rate": _watched(row, "kafka", row.produce_rate), "consume_rate": _watched(row, "kafka", row.consume_rate),
        "flink_running": running, "checkpoint_age": _watched(row, "flink", row.checkpoint_age),
        "registry": registry, "change_rate": _watched(row, "change_feed", row.change_rate),
        "last_update": clock(row.last_success), "reason": row.reason,
    }


class AggregatePage(Viewer):
    """The aggregate page: the health of its readers (remote agents, Prometheus), then every pipeline."""

    def __init__(self, store: Store, collectors: list[Collector], own_instances: frozenset[str] = frozenset(),
                 **params) -> None:
        super().__init__(**params)
        readers = [c for c in collectors if c.pipeline == AGGREGATE_PIPELINE]
        self.health = HealthBar(store, AGGREGATE_PIPELINE) if readers else None
        self.view = AggregateView(store, collectors, own_instances)
        self._layout = pn.Column(*([self.health] if self.health else []), self.view, sizing_mode="stretch_width")

    @classmethod
    def of(cls, service) -> AggregatePage:
        """The page for a pipewatch.service.Service: its rows from Prometheus that are its own exporter's are
        left out (they are listed from this process directly)."""
        own: frozenset[str] = frozenset()
        if service.exporter is not None:
            hosts = {service.exporter.host, "127.0.0.1", "localhost", socket.gethostname(), socket.getfqdn()}
            own = frozenset(f"{host}:{service.exporter.port}" for host in hosts)
        return cls(service.store, service.collectors, own)

    def __panel__(self):
        return self._layout

    def refresh(self) -> None:
        if self.health is not None:
            self.health.refresh()
        self.view.refresh()

    def go_live(self) -> None:
        """Nothing here follows a source by push: the sources change once a cycle."""

    def close(self) -> None:
        """Nothing to stop."""

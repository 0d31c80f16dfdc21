"""The aggregate page: every agent's pipelines side by side, read back from Prometheus."""

from __future__ import annotations

import html
import math
import time

import pandas as pd
import panel as pn
from bokeh.models import HTMLTemplateFormatter
from panel.viewable import Viewer

from apps.views import HealthBar
from apps.widgets import SnapshotSection, clock, duration_formatter, freshness, table
from collectors.prometheus_model import AggregateSnapshot, PipelineSummary
from collectors.prometheus_query import PrometheusQueryCollector
from monitoring.store import Store

_NUMBER = "<% if (Number.isNaN(value)) { %>unknown<% } else { %>{shown}<% } %>"
"""NaN: the pipeline has the source and the value is unknown. None, where it has no such source, stays a blank
cell (the table leaves empty cells to themselves)."""
_HEALTH = HTMLTemplateFormatter(template=(
    '<span class="pw-agg-health" data-health="<%= value %>" style="font-weight:bold;color:'
    + "<%= ({'ok': '#1a7f37', 'degraded': '#bf8700', 'down': '#cf222e', 'agent down': '#cf222e'})[value] "
    + "|| '#6e7781' %>\"><%= value %></span>"
))
_SECONDS = duration_formatter("unbounded")
_COLUMNS = {
    "agent": None, "pipeline": None, "health": _HEALTH, "sources down": None,
    "lag": HTMLTemplateFormatter(template=_NUMBER.replace("{shown}", "<%= Math.round(value).toLocaleString('en') %>")),
    "max lag": _SECONDS, "lag status": None,
    "produce rate": HTMLTemplateFormatter(template=_NUMBER.replace("{shown}", "<%= value.toFixed(1) %>")),
    "consume rate": HTMLTemplateFormatter(template=_NUMBER.replace("{shown}", "<%= value.toFixed(1) %>")),
    "Flink jobs running": None, "checkpoint age": _SECONDS, "registry": None,
    "change rate": HTMLTemplateFormatter(template=_NUMBER.replace("{shown}", "<%= value.toFixed(1) %>")),
    "last update": None, "reason": None,
}
_STATUS_NAMES = ("NOTFOUND", "OK", "WARN", "ERR")


class AggregateView(SnapshotSection, Viewer):
    """All pipelines of all agents: a sortable table and the totals, from the Prometheus read-back."""

    def __init__(self, store: Store, collector: PrometheusQueryCollector, **params) -> None:
        super().__init__(**params)
        self.store = store
        self.source = collector.source
        self.status = pn.pane.HTML("", name="aggregate-status", sizing_mode="stretch_width")
        self.totals = pn.pane.HTML("", name="aggregate-totals", sizing_mode="stretch_width")
        self.agents = pn.pane.HTML("", name="aggregate-agents", sizing_mode="stretch_width")
        self.pipelines = table(_COLUMNS, "aggregate-table", page_size=25)
        self._layout = pn.Column(
            pn.pane.Markdown(f"### All pipelines, read from Prometheus at `{html.escape(collector.url)}`"),
            self.status, self.totals, self.agents, self.pipelines, sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    def refresh(self) -> None:
        now = time.time()
        shown = self._follow_snapshot(now)
        text, stale = freshness("aggregate", shown, self.store.health().get(self.source), now)
        if text != self.status.object:
            self.status.object = text
        self.pipelines.styles = {"opacity": "0.5"} if stale else {}

    def _render(self, now: float) -> None:
        snapshot: AggregateSnapshot = self._snapshot
        rows = snapshot.rows
        healthy = sum(row.health == "ok" for row in rows)
        self.totals.object = (
            f'<div class="pw-agg-totals"><b>{len(rows)}</b> pipelines on <b>{len(snapshot.agents)}</b> agents: '
            f"<b>{healthy}</b> ok, <b>{len(rows) - healthy}</b> not &middot; lag {_total(rows, 'lag_messages', 0)} "
            f"messages &middot; produce {_total(rows, 'produce_rate', 1)}/s &middot; consume "
            f"{_total(rows, 'consume_rate', 1)}/s</div>"
        )
        self.agents.object = " ".join(
            f'<span class="pw-agent" data-up="{agent.up}" style="margin-right:12px">'
            f'{html.escape(agent.instance)} ({html.escape(agent.job)}): '
            f"{'UP' if agent.up else 'DOWN' if agent.up is False else 'no scrape'}</span>"
            for agent in snapshot.agents)
        # object columns: None (no such source) must reach the browser as null, apart from NaN (unknown)
        self.pipelines.value = pd.DataFrame([_row(row) for row in rows], columns=list(_COLUMNS), dtype=object)


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
    return value if any(c == kind or c.startswith(kind + ":") for c in row.collectors) else None


def _row(row: PipelineSummary) -> dict[str, object]:
    status = ""  # blank: the pipeline has no consumer group status (no Kafka, or not known)
    if not math.isnan(row.worst_status):
        code = int(row.worst_status)
        status = _STATUS_NAMES[code] if 0 <= code < len(_STATUS_NAMES) else str(code)
    running = "" if math.isnan(row.flink_jobs) else f"{row.flink_running:.0f} of {row.flink_jobs:.0f}"
    registry = "" if math.isnan(row.registry_up) else "up" if row.registry_up == 1 else "DOWN"
    return {
        "agent": row.instance, "pipeline": row.pipeline, "health": row.health,
        "sources down": ", ".join(row.collectors_down), "lag": _watched(row, "kafka", row.lag_messages),
        "max lag": _watched(row, "kafka", row.lag_seconds), "lag status": status,
        "produce rate": _watched(row, "kafka", row.produce_rate), "consume rate": _watched(row, "kafka", row.consume_rate),
        "Flink jobs running": running, "checkpoint age": _watched(row, "flink", row.checkpoint_age),
        "registry": registry, "change rate": _watched(row, "change_feed", row.change_rate),
        "last update": clock(row.last_success), "reason": row.reason,
    }



class AggregatePage(Viewer):
    """The aggregate page: the read-back's own health, then the table of every agent's pipelines."""

    def __init__(self, store: Store, collector: PrometheusQueryCollector, **params) -> None:
        super().__init__(**params)
        self.health = HealthBar(store, collector.pipeline)
        self.view = AggregateView(store, collector)
        self._layout = pn.Column(self.health, self.view, sizing_mode="stretch_width")

    def __panel__(self):
        return self._layout

    def refresh(self) -> None:
        self.health.refresh()
        self.view.refresh()

    def go_live(self) -> None:
        """Nothing here follows a source by push: the read-back changes once a cycle."""

    def close(self) -> None:
        """Nothing to stop."""

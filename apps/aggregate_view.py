"""The aggregate page: every pipeline side by side, this process's own, other agents' and Prometheus' (per session).

What is combined, and how, is monitoring/aggregate.py's; the combined rows are written once per process
(apps/shared_aggregate.py) and each session shows them: a sortable table, the totals and the agents, and a small
lag chart per pipeline (apps/aggregate_charts.py). The page knows its readers from the config's declared sources;
it reads what they published into the store and never holds a collector.
"""

from __future__ import annotations

import socket
import time

import panel as pn
from bokeh.models import CDSView, ColumnDataSource, DataTable, HTMLTemplateFormatter, TableColumn
from panel.viewable import Viewer

from apps.aggregate_charts import SmallMultiples
from apps.aggregate_table import COLUMNS, cell_templates
from apps.escape import esc
from apps.health_bar import HealthBar
from apps.shared_aggregate import Combined, shared_aggregate
from apps.theme import TABLE_CSS
from apps.widgets import LiveHTML, redraw, table_pane
from monitoring.models.aggregate import AGGREGATE_PIPELINE
from monitoring.sources import PROMETHEUS, REMOTE_AGENT, DeclaredSource
from monitoring.store import Store

_ROW_HEIGHT = 28
_VISIBLE_ROWS = 20
CHART_SECONDS = 5.0
"""How often a session feeds its small charts (they receive every point, a few at a time)."""


class AggregateView(Viewer):
    """All pipelines: a sortable table, the totals and the agents, and a small chart per pipeline."""

    def __init__(self, store: Store, sources: list[DeclaredSource], own_instances: frozenset[str] = frozenset(),
                 **params) -> None:
        super().__init__(**params)
        self.store = store
        self.shared = shared_aggregate(store, sources, own_instances)
        self._version = 0
        self._charts_fed = 0.0
        # Plain Bokeh models (see HealthBar): a Panel pane or Tabulator update costs far more per session, and
        # a DataTable sorts in the browser (click a column's header) without asking the server.
        self.status = LiveHTML("", name="aggregate-status", sizing_mode="stretch_width")
        self.totals = LiveHTML("", name="aggregate-totals", sizing_mode="stretch_width")
        self.agents = LiveHTML("", name="aggregate-agents", sizing_mode="stretch_width")
        self.source_rows = ColumnDataSource({field: [] for field in COLUMNS})
        templates = cell_templates()
        self.pipelines = DataTable(
            source=self.source_rows, view=CDSView(), name="aggregate-table", index_position=None, sortable=True,
            stylesheets=[TABLE_CSS],
            reorderable=False, sizing_mode="stretch_width", height=_ROW_HEIGHT + 2, row_height=_ROW_HEIGHT,
            columns=[TableColumn(field=field, title=title, width=width,
                                 formatter=HTMLTemplateFormatter(template=templates[field]))
                     for field, (title, _, width) in COLUMNS.items()])
        self.small = SmallMultiples(store)
        remotes = [s for s in self.shared.readers if s.kind == REMOTE_AGENT]
        prometheus = next((s for s in self.shared.readers if s.kind == PROMETHEUS), None)
        heading = ["this process"]
        if remotes:
            heading.append(f"{len(remotes)} remote agent(s) through their JSON API")
        if prometheus is not None:
            heading.append(f"Prometheus at <code>{esc(prometheus.target)}</code>")
        heading_html = ", ".join(heading)  # (each part escaped)
        self._layout = pn.Column(
            pn.pane.HTML(f"<h3>All pipelines: {heading_html}</h3>"),
            *(pn.pane.Bokeh(model, sizing_mode="stretch_width")
              for model in (self.status.model, self.totals.model, self.agents.model)),
            table_pane(self.pipelines),
            self.small, sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    def refresh(self) -> None:
        now = time.time()
        combined = self.shared.current(now)
        if combined.version != self._version:
            self._version = combined.version
            self._render(combined)
        if now - self._charts_fed >= CHART_SECONDS:  # the charts show minutes: a few points at a time will do
            self._charts_fed = now
            self.small.refresh(combined.remote)

    def _render(self, combined: Combined) -> None:
        rows = combined.rows
        for div, text in ((self.status, combined.status), (self.totals, combined.totals),
                          (self.agents, combined.agents_html)):
            if text != div.text:
                div.text = text
        self.source_rows.data = dict(combined.columns)
        redraw(self.pipelines)
        height = _ROW_HEIGHT * (min(len(rows), _VISIBLE_ROWS) + 1) + 2
        if height != self.pipelines.height:
            self.pipelines.height = height
        if self.small.arrange(rows):
            self.small.refresh(combined.remote)


class AggregatePage(Viewer):
    """The aggregate page: the health of its readers (remote agents, Prometheus), then every pipeline."""

    def __init__(self, store: Store, sources: list[DeclaredSource], own_instances: frozenset[str] = frozenset(),
                 **params) -> None:
        super().__init__(**params)
        readers = [s for s in sources if s.pipeline == AGGREGATE_PIPELINE]
        self.health = HealthBar(store, AGGREGATE_PIPELINE) if readers else None
        self.view = AggregateView(store, sources, own_instances)
        self._layout = pn.Column(*([self.health] if self.health else []), self.view, sizing_mode="stretch_width")

    @classmethod
    def of(cls, service) -> AggregatePage:
        """The page for a pipewatch.service.Service: its rows from Prometheus that are its own exporter's are
        left out (they are listed from this process directly)."""
        own: frozenset[str] = frozenset()
        if service.exporter is not None:
            hosts = {service.exporter.host, "127.0.0.1", "localhost", socket.gethostname(), socket.getfqdn()}
            own = frozenset(f"{host}:{service.exporter.port}" for host in hosts)
        return cls(service.store, service.sources, own)

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

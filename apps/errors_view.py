"""The errors page: every error the store's error registry holds, newest last seen first, with filters."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import panel as pn
from bokeh.models import HTMLTemplateFormatter
from panel.viewable import Viewer

from apps.escape import esc
from apps.format_templates import COUNT
from apps.palette import SEVERITY_COLOURS, coloured_cell
from apps.widgets import table
from monitoring.errors import SEVERITIES, ErrorEntry
from monitoring.store import Store

ALL = "all"
MAX_ROWS = 500
"""Rows handed to the table at most (the registry's own bound is the same by default)."""
_SEVERITY = HTMLTemplateFormatter(template=coloured_cell("pw-error-severity", "severity", SEVERITY_COLOURS,
                                                         SEVERITY_COLOURS["warning"]))
_WRAPPED = {"type": "textarea"}
"""Tabulator's own formatter that wraps long text (as text, never as HTML)."""
_COLUMNS = {
    "pipeline": None, "component": None, "severity": _SEVERITY, "category": None, "first seen": None,
    "last seen": None, "count": COUNT, "message": _WRAPPED, "hint": _WRAPPED,
}


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


class ErrorsPage(Viewer):
    """One table of errors, filtered by pipeline, component and severity; redrawn only when the registry
    changed or a filter did, so a quiet tick costs one integer comparison."""

    def __init__(self, store: Store, pipelines: list[str], **params) -> None:
        super().__init__(**params)
        self.store = store
        self.pipelines = list(pipelines)
        self.pipeline_filter = pn.widgets.Select(label="Pipeline", options=[ALL, *self.pipelines], value=ALL, width=220,
                                                 css_classes=["pw-errors-pipeline"])
        self.component_filter = pn.widgets.Select(label="Component", options=[ALL], value=ALL, width=220,
                                                  css_classes=["pw-errors-component"])
        self.severity_filter = pn.widgets.Select(label="Severity", options=[ALL, *SEVERITIES], value=ALL, width=160,
                                                 css_classes=["pw-errors-severity"])
        self.count_line = pn.pane.HTML("", sizing_mode="stretch_width")
        self.table = table(_COLUMNS, "errors-table", page_size=25)
        # Fixed widths for the short columns; message and hint share the rest and wrap.
        self.table.layout = "fit_columns"
        self.table.widths = {"pipeline": 100, "component": 140, "severity": 95, "category": 160, "first seen": 175,
                             "last seen": 175, "count": 80}
        self.table.titles = {"first seen": "first seen (UTC)", "last seen": "last seen (UTC)"}
        self._entries: list[ErrorEntry] = []
        self._generation: int | None = None
        for widget in (self.pipeline_filter, self.component_filter, self.severity_filter):
            widget.param.watch(lambda _: self._render(), "value")
        self._layout = pn.Column(
            pn.pane.Markdown("### Errors"),
            pn.pane.HTML("<span style='opacity:.8'>Every collector failure and every failure a source reported, "
                         "one row per error (repeats are counted), the most recently seen first.</span>",
                         sizing_mode="stretch_width"),
            pn.Row(self.pipeline_filter, self.component_filter, self.severity_filter),
            self.count_line, self.table,
            sizing_mode="stretch_width", css_classes=["pw-errors"],
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    def refresh(self) -> None:
        """Called once a second by the session."""
        generation = self.store.errors_generation
        if generation == self._generation:
            return
        self._generation = generation
        self._entries = self.store.errors()
        pipelines = [ALL, *self.pipelines, *sorted({e.pipeline for e in self._entries} - set(self.pipelines))]
        if self.pipeline_filter.options != pipelines:
            self.pipeline_filter.options = pipelines
        components = [ALL, *sorted({e.component for e in self._entries})]
        if self.component_filter.options != components:
            self.component_filter.options = components  # the chosen one stays: components never leave but by eviction
        self._render()

    def go_live(self) -> None:
        """Nothing is pushed to this page: the once-a-second refresh is enough."""

    def close(self) -> None:
        """Nothing to release: the page only reads the store."""

    def _render(self) -> None:
        pipeline, component, severity = (self.pipeline_filter.value, self.component_filter.value,
                                         self.severity_filter.value)
        shown = [e for e in self._entries
                 if pipeline in (ALL, e.pipeline) and component in (ALL, e.component) and severity in (ALL, e.severity)]
        rows = [{"pipeline": e.pipeline, "component": e.component, "severity": e.severity, "category": e.category,
                 "first seen": _when(e.first_seen), "last seen": _when(e.last_seen), "count": float(e.count),
                 "message": e.message, "hint": e.hint} for e in shown[:MAX_ROWS]]
        self.table.value = pd.DataFrame(rows, columns=list(_COLUMNS))
        occurrences = sum(e.count for e in shown)
        if not self._entries:
            text = "No errors seen since pipewatch started."
        else:
            text = (f"{len(shown):,} error(s) shown ({occurrences:,} occurrence(s))"
                    + (f", the {MAX_ROWS:,} most recently seen" if len(shown) > MAX_ROWS else "")
                    + f" of {len(self._entries):,} in all")
        self.count_line.object = (f'<div class="pw-errors-count" data-shown="{len(shown):d}" '
                                  f'data-total="{len(self._entries):d}" data-occurrences="{occurrences:d}">'
                                  f"{esc(text)}</div>")

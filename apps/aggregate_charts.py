"""The aggregate page's small charts: a lag chart per pipeline with history, below the table (per session).

Local pipelines stream the store's pipewatch_pipeline_lag deltas, remote agents' the history their readers keep
from the agents' series endpoint. Prometheus rows have no chart (no history is read back).
"""

from __future__ import annotations

import numpy as np
import panel as pn
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure
from panel.viewable import Viewer

from apps.escape import plain
from apps.format_templates import value_axis
from apps.palette import LINE
from monitoring.models.aggregate import History, RemoteAgentSnapshot
from monitoring.store import Store
from monitoring.summary import PipelineSummary

SMALL_MULTIPLES = 48
"""Pipelines charted below the table (in table order); the rest are counted, not drawn."""
_ROLLOVER = 600
_LOCAL_LAG = "pipewatch_pipeline_lag"


class _SmallChart:
    """One pipeline's lag over the last minutes: a small figure with one line fed by deltas."""

    def __init__(self, row: PipelineSummary) -> None:
        self.key = (row.job, row.instance, row.pipeline)
        self.seen = 0
        self.source = ColumnDataSource({"t": [], "y": []})
        agent = "this process" if row.job == "local" else row.instance
        self.figure = figure(name="small-multiple", x_axis_type="datetime", height=150, width=280, tools="",
                             toolbar_location=None)
        self.figure.title.text = plain(f"{row.pipeline} · {agent}")  # an agent's names
        self.figure.title.text_font_size = "9pt"
        self.figure.xaxis.major_label_text_font_size = self.figure.yaxis.major_label_text_font_size = "7pt"
        value_axis(self.figure, "count")  # lag in messages
        self.figure.line("t", "y", source=self.source, line_width=2, color=LINE,
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
            ([f"<em>{hidden:,} more pipeline(s) not charted (the first {SMALL_MULTIPLES:,} are).</em>"]
             if hidden else [])
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

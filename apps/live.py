"""Live line charts fed from the store by streaming deltas.

Each line owns a ColumnDataSource; every tick it receives only the points the store got since the
last tick (`Store.since`), through `ColumnDataSource.stream(..., rollover)`. Nothing is re-sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bokeh.models import ColumnDataSource, HoverTool, Legend
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from monitoring.store import SeriesKey, Store


@dataclass
class _Line:
    source: ColumnDataSource
    seen: int


class LiveChart:
    """One Bokeh figure with one line per matching series; lines come and go with the series."""

    def __init__(
        self,
        store: Store,
        title: str,
        y_label: str,
        select: Callable[[SeriesKey], bool],
        label: Callable[[SeriesKey], str],
        name: str,
        rollover: int = 720,
        max_lines: int = 20,
    ) -> None:
        self.store = store
        self.select = select
        self.label = label
        self.rollover = rollover
        self.max_lines = max_lines
        self.hidden_lines = 0
        self._lines: dict[SeriesKey, _Line] = {}
        self._generation = -1
        self.figure = figure(
            title=title, name=name, x_axis_type="datetime", height=300, sizing_mode="stretch_width",
            tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="above",
        )
        self.figure.yaxis.axis_label = y_label
        self.figure.add_tools(HoverTool(tooltips=[("series", "$name"), ("value", "$y{0,0.[00]}"),
                                                  ("time", "$x{%H:%M:%S}")], formatters={"$x": "datetime"}))
        # Outside the plot area: a legend inside hides the newest points, which is where users look.
        self.figure.add_layout(Legend(click_policy="hide", label_text_font_size="9pt"), "below")

    def refresh(self) -> None:
        """Stream whatever is new; call inside the session's `pn.io.hold()`."""
        if self.store.series_generation != self._generation:
            self._discover()
        for key, line in self._lines.items():
            delta = self.store.since(key, line.seen)
            if delta is None or delta.count == line.seen:
                continue
            line.seen = delta.count
            line.source.stream({"t": delta.times * 1000.0, "y": delta.values}, rollover=self.rollover)

    def _discover(self) -> None:
        self._generation = self.store.series_generation
        keys = sorted(self.store.keys(where=self.select), key=self.label)
        shown, self.hidden_lines = keys[: self.max_lines], max(0, len(keys) - self.max_lines)
        for key in [k for k in self._lines if k not in shown]:
            self._remove(key)
        for key in shown:
            if key not in self._lines:
                self._add(key)

    def _add(self, key: SeriesKey) -> None:
        source = ColumnDataSource({"t": [], "y": []})
        color = Category10_10[len(self.figure.renderers) % len(Category10_10)]
        label = self.label(key)
        self.figure.line("t", "y", source=source, color=color, line_width=2, legend_label=label, name=label)
        self._lines[key] = _Line(source, 0)

    def _remove(self, key: SeriesKey) -> None:
        line = self._lines.pop(key)
        renderers = [r for r in self.figure.renderers if getattr(r, "data_source", None) is not line.source]
        self.figure.renderers = renderers
        for item in list(self.figure.legend.items):
            item.renderers = [r for r in item.renderers if r in renderers]
        self.figure.legend.items = [item for item in self.figure.legend.items if item.renderers]

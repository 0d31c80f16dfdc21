"""Live line charts fed from the store by streaming deltas.

Each line owns a ColumnDataSource; every tick it receives only the points the store got since the
last tick (`Store.since`), through `ColumnDataSource.stream(..., rollover)`. Nothing is re-sent.

A chart builds all its line slots (renderer, data source, legend item) up front and only shows,
hides and relabels them afterwards. Adding Bokeh models to a live document while the browser is
still connecting can leave it with references it never received ("reference ... isn't known"),
after which the session stops updating.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bokeh.core.properties import value
from bokeh.models import ColumnDataSource, GlyphRenderer, HoverTool, Legend, LegendItem
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from monitoring.store import SeriesKey, Store


@dataclass
class _Slot:
    source: ColumnDataSource
    renderer: GlyphRenderer
    legend: LegendItem
    key: SeriesKey | None = None
    seen: int = 0


class LiveChart:
    """One Bokeh figure with a line per matching series (at most `max_lines`)."""

    def __init__(
        self,
        store: Store,
        title: str,
        y_label: str,
        select: Callable[[SeriesKey], bool],
        label: Callable[[SeriesKey], str],
        name: str,
        rollover: int = 720,
        max_lines: int = 10,
        legend_columns: int = 1,
    ) -> None:
        self.store = store
        self.select = select
        self.label = label
        self.rollover = rollover
        self.hidden_lines = 0
        self._generation = -1
        self.figure = figure(
            title=title, name=name, x_axis_type="datetime", height=300, sizing_mode="stretch_width",
            tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="above",
        )
        self.figure.yaxis.axis_label = y_label
        self.figure.add_tools(HoverTool(tooltips=[("series", "$name"), ("value", "$y{0,0.[00]}"),
                                                  ("time", "$x{%H:%M:%S}")], formatters={"$x": "datetime"}))
        self._slots: list[_Slot] = []
        for index in range(max_lines):
            source = ColumnDataSource({"t": [], "y": []})
            renderer = self.figure.line("t", "y", source=source, color=Category10_10[index % 10], line_width=2,
                                        visible=False)
            self._slots.append(_Slot(source, renderer, LegendItem(label=value(""), renderers=[renderer], visible=False)))
        # The axes follow the lines only: bands drawn behind them (traffic bursts) must not stretch them.
        lines = [slot.renderer for slot in self._slots]
        self.figure.x_range.renderers = lines
        self.figure.y_range.renderers = lines
        # Outside the plot area: a legend inside hides the newest points, which is where users look.
        self.figure.add_layout(Legend(items=[slot.legend for slot in self._slots], click_policy="hide",
                                      label_text_font_size="9pt", ncols=legend_columns), "below")

    def show_window(self, seconds: float | None) -> None:
        """Show the newest `seconds` (None: every point kept), following new points as they come."""
        self.figure.x_range.follow = "end" if seconds else None
        self.figure.x_range.follow_interval = seconds * 1000 if seconds else None

    def reselect(self) -> None:
        """The selection changed (e.g. another job was chosen): reassign the lines on the next refresh."""
        self._generation = -1

    def refresh(self) -> None:
        """Stream whatever is new; call inside the session's `pn.io.hold()`."""
        if self.store.series_generation != self._generation:
            self._assign()
        for slot in self._slots:
            if slot.key is None:
                continue
            delta = self.store.since(slot.key, slot.seen)
            if delta is None or delta.count == slot.seen:
                continue
            slot.seen = delta.count
            slot.source.stream({"t": delta.times * 1000.0, "y": delta.values}, rollover=self.rollover)

    def _assign(self) -> None:
        """Give each wanted series a slot, keeping the slots of series still wanted."""
        self._generation = self.store.series_generation
        keys = sorted(self.store.keys(where=self.select), key=self.label)
        wanted = set(keys[: len(self._slots)])
        self.hidden_lines = max(0, len(keys) - len(self._slots))
        for slot in self._slots:
            if slot.key is not None and slot.key not in wanted:
                slot.key, slot.seen = None, 0
                slot.source.data = {"t": [], "y": []}
                slot.renderer.visible = slot.legend.visible = False
        shown = {slot.key for slot in self._slots}
        free = (slot for slot in self._slots if slot.key is None)
        for key in (k for k in keys if k in wanted and k not in shown):
            slot = next(free)
            slot.key, slot.seen = key, 0
            slot.renderer.name = self.label(key)
            slot.legend.label = value(slot.renderer.name)  # a plain string would be read as a column name
            slot.renderer.visible = slot.legend.visible = True

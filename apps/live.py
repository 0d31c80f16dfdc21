"""Live line charts fed from the store by streaming deltas.

Each line owns a ColumnDataSource; every tick it receives only the points the store got since the
last tick (`Store.since`), through `ColumnDataSource.stream(..., rollover)`. Nothing is re-sent.

A line slot (renderer, data source, legend item) is made when a series first needs one and is then
only shown, hidden and relabelled: a chart has as many slots as it ever showed lines, not
`max_lines` from the start. Every model costs each of the session's updates (Bokeh indexes all of a
document's models for every PATCH-DOC), and a page of 14 charts with 10 slots each had 900 models
of line slots alone. Slots made after the page was sent are safe because sessions only refresh
once the browser is connected (apps/main.py): models added while it is still connecting can leave
it with references it never received ("reference ... isn't known").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bokeh.core.properties import value
from bokeh.models import ColumnDataSource, GlyphRenderer, HoverTool, Legend, LegendItem
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from monitoring.store import SeriesKey, Store


_INLINE_POINTS = 16
"""Deltas up to this many points are sent as JSON lists; longer ones (a backfill) as binary arrays."""


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
        # Outside the plot area: a legend inside hides the newest points, which is where users look.
        self._legend = Legend(items=[], click_policy="hide", label_text_font_size="9pt", ncols=legend_columns)
        self.figure.add_layout(self._legend, "below")
        self.max_lines = max_lines

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
            times, values = delta.times * 1000.0, delta.values
            if len(times) <= _INLINE_POINTS:
                # A tick's few points as JSON numbers: arrays would travel as binary buffers, two websocket
                # frames each, for every line of every session every second.
                times, values = times.tolist(), values.tolist()
            slot.seen = delta.count
            slot.source.stream({"t": times, "y": values}, rollover=self.rollover)

    def _assign(self) -> None:
        """Give each wanted series a slot, keeping the slots of series still wanted."""
        self._generation = self.store.series_generation
        keys = sorted(self.store.keys(where=self.select), key=self.label)
        wanted = set(keys[: self.max_lines])
        self.hidden_lines = max(0, len(keys) - self.max_lines)
        for slot in self._slots:
            if slot.key is not None and slot.key not in wanted:
                slot.key, slot.seen = None, 0
                slot.source.data = {"t": [], "y": []}
                slot.renderer.visible = slot.legend.visible = False
        shown = {slot.key for slot in self._slots}
        free = [slot for slot in self._slots if slot.key is None]
        for key in (k for k in keys if k in wanted and k not in shown):
            slot = free.pop(0) if free else self._new_slot()
            slot.key, slot.seen = key, 0
            slot.renderer.name = self.label(key)
            slot.legend.label = value(slot.renderer.name)  # a plain string would be read as a column name
            slot.renderer.visible = slot.legend.visible = True

    def _new_slot(self) -> _Slot:
        source = ColumnDataSource({"t": [], "y": []})
        renderer = self.figure.line("t", "y", source=source, color=Category10_10[len(self._slots) % 10], line_width=2,
                                    visible=False)
        # No selection and no muting (the legend hides lines): two glyph models fewer per line.
        renderer.nonselection_glyph = renderer.muted_glyph = None
        slot = _Slot(source, renderer, LegendItem(label=value(""), renderers=[renderer], visible=False))
        self._slots.append(slot)
        # The axes follow the lines only: bands drawn behind them (traffic bursts) must not stretch them.
        lines = [s.renderer for s in self._slots]
        self.figure.x_range.renderers = lines
        self.figure.y_range.renderers = lines
        self._legend.items = [s.legend for s in self._slots]
        return slot

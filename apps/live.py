"""Live line charts fed from the store by streaming deltas.

Each line owns a ColumnDataSource; every tick it receives only the points the store got since the
last tick (`Store.since`), through `ColumnDataSource.stream(..., rollover)`. Nothing is re-sent. In a
browser session a line that has caught up follows the shared stream of its series instead: one message
a second for every session that shows the same lines (apps/shared_lines.py).

A line slot (renderer, data source, legend item) is made when a series first needs one and is then
only shown, hidden and relabelled: a chart has as many slots as it ever showed lines, not
`max_lines` from the start. Every model costs each of the session's updates (Bokeh indexes all of a
document's models for every PATCH-DOC), and a page of 14 charts with 10 slots each had 900 models
of line slots alone. New slots are indexed into the live document on their own
(`_indexing_new_models`), not by Bokeh's re-index of every model. Slots made after the page was
sent are safe because sessions only refresh once the browser is connected (apps/main.py): models
added while it is still connecting can leave it with references it never received ("reference ...
isn't known").
"""

from __future__ import annotations

import contextlib
import itertools
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from bokeh.core.properties import value
from bokeh.model import Model
from bokeh.models import ColumnDataSource, GlyphRenderer, HoverTool, Legend, LegendItem, Line
from bokeh.palettes import Category10_10
from bokeh.plotting import figure
from panel.io.state import state

from apps.format_templates import format_axes
from apps.shared_lines import Channel, SharedLines
from apps.shared_patch import shared, writes_at_once
from apps.theme import TOOLBAR_CSS
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
    """Points of the series the browser has."""
    channel: Channel | None = None
    """The shared stream the slot follows (apps/shared_lines.py); None: it streams on its own."""
    whole: bool = False
    """Its data must be sent whole (the browser's copy is unknown) before streaming again."""


_chart_numbers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Session document -> a count of the charts made in it: the same page makes the same numbers in every session."""


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
        self.figure.toolbar.stylesheets = [TOOLBAR_CSS]
        hover = format_axes(self.figure, y_label)
        self.figure.add_tools(HoverTool(tooltips=[("series", "$name"), ("value", "$y{custom}"),
                                                  ("time", "$x{%H:%M:%S}")],
                                        formatters={"$x": "datetime", "$y": hover}))
        self._slots: list[_Slot] = []
        document = state.curdoc
        self._number = None if document is None else next(_chart_numbers.setdefault(document, itertools.count()))
        self._solo_until = 0.0
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
        """Stream whatever is new; call inside the session's `pn.io.hold()`.

        A slot that has shown its series up to where the shared stream of its line is follows that stream and is
        left alone here; one that is behind catches up to it (never past it), then follows."""
        if self.store.series_generation != self._generation:
            self._assign()
        lines = None
        if self._number is not None and time.monotonic() >= self._solo_until and writes_at_once(self.figure.document):
            lines = SharedLines.of(self.store, self.figure.document)
        for slot in self._slots:
            if slot.key is None or slot.channel is not None:
                continue
            channel = (slot.source.id, slot.key, self.rollover)
            delta = self.store.since(slot.key, 0 if slot.whole else slot.seen)
            if delta is None:
                continue
            count, times, values = delta.count, delta.times, delta.values
            upto = None if lines is None else lines.seen(channel)
            if upto is not None and upto < count:  # the shared stream sends the rest
                keep = max(0, len(times) - (count - upto))
                count, times, values = upto, times[:keep], values[:keep]
            if count > slot.seen or slot.whole:
                self._show(slot, times, values)
                slot.seen = count
            if lines is not None:
                lines.follow(self, slot, channel)

    def _show(self, slot: _Slot, times, values) -> None:
        times = times * 1000.0
        if len(times) <= _INLINE_POINTS:
            # A tick's few points as JSON numbers: arrays would travel as binary buffers, two websocket
            # frames each, for every line of every session every second.
            times, values = times.tolist(), values.tolist()
        if slot.whole:
            slot.whole = False
            slot.source.data = {"t": times, "y": values}
        else:
            slot.source.stream({"t": times, "y": values}, rollover=self.rollover)

    def _assign(self) -> None:
        """Give each wanted series a slot, keeping the slots of series still wanted."""
        self._generation = self.store.series_generation
        keys = sorted(self.store.keys(where=self.select), key=self.label)
        wanted = set(keys[: self.max_lines])
        self.hidden_lines = max(0, len(keys) - self.max_lines)
        if wanted == {slot.key for slot in self._slots if slot.key is not None}:
            return  # another source's series came or went: a generation is store-wide
        for slot in self._slots:
            if slot.key is not None and slot.key not in wanted:
                slot.key, slot.seen, slot.channel, slot.whole = None, 0, None, False
                slot.source.data = {"t": [], "y": []}
                slot.renderer.visible = slot.legend.visible = False
        shown = {slot.key for slot in self._slots}
        free = [slot for slot in self._slots if slot.key is None]
        new = [k for k in keys if k in wanted and k not in shown]
        if len(new) > len(free):
            with _indexing_new_models(self.figure.document) as index:
                free += self._add_slots(len(new) - len(free))
                index(self._legend)
        for key in new:
            slot = free.pop(0)
            slot.key, slot.seen, slot.channel = key, 0, None
            slot.renderer.name = self.label(key)
            slot.legend.label = value(slot.renderer.name)  # a plain string would be read as a column name
            slot.renderer.visible = slot.legend.visible = True

    def _add_slots(self, count: int) -> list[_Slot]:
        slots = []
        for _ in range(count):
            source = ColumnDataSource({"t": [], "y": []})
            if self._number is not None:  # the same id in every session that made the same page (shared_lines.py)
                shared(source, f"pw-line-{self._number}-{len(self._slots) + len(slots)}")
            # Only the line glyph: no selection, hover or muted ones (the legend hides lines), which `figure.line`
            # would make and which cost every session's updates.
            line = Line(x="t", y="y", line_color=Category10_10[(len(self._slots) + len(slots)) % 10], line_width=2)
            renderer = GlyphRenderer(data_source=source, glyph=line, nonselection_glyph=None, hover_glyph=None,
                                     muted_glyph=None, visible=False)
            slots.append(_Slot(source, renderer, LegendItem(label=value(""), renderers=[renderer], visible=False)))
        self._slots += slots
        lines = [slot.renderer for slot in self._slots]
        self.figure.renderers = [*self.figure.renderers, *(slot.renderer for slot in slots)]
        # The axes follow the lines only: bands drawn behind them (traffic bursts) must not stretch them.
        self.figure.x_range.renderers = lines
        self.figure.y_range.renderers = lines
        self._legend.items = [slot.legend for slot in self._slots]
        return slots


@contextlib.contextmanager
def _indexing_new_models(document):
    """Link new models into a live document, then index just those.

    Bokeh re-indexes all of a document's models whenever a change links new ones in (`recompute`, ~150 µs a model:
    ~150 ms for a pipeline page, frozen or not); a line appearing in a hundred sessions then held the server's one
    thread for 15 s. Inside this block that re-indexing is held back; `index(model)` names a model the new ones hang
    from, and at the end the new models reachable from them are indexed as `recompute` would index them. Where
    Bokeh's internals differ from the 3.9 ones this relies on, it falls back to Bokeh's own (slow) freeze.
    """
    manager = getattr(document, "models", None)
    if manager is None or not all(hasattr(manager, name) for name in _MANAGER_INTERNALS):
        with manager.freeze() if manager is not None else contextlib.nullcontext():
            yield lambda model: None
        return
    roots: list[Model] = []
    manager._freeze_count += 1
    try:
        yield roots.append
    finally:
        manager._freeze_count -= 1
    for model in {reference for root in roots for reference in root.references()}:
        if model.id not in manager._models:
            manager._models[model.id] = model
            if model.name is not None:
                manager._models_by_name.add_value(model.name, model)
            model._attach_document(document)
            manager._new_models.add(model)  # sent whole to the browser with the next update


_MANAGER_INTERNALS = ("_freeze_count", "_models", "_models_by_name", "_new_models")

"""Pieces every source's view uses: tables, the freshness line. (Values are written by monitoring/format.py,
in table cells by apps/format_templates.py; colours are apps/palette.py's.)"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import panel as pn
from bokeh.model import Model
from bokeh.models import (
    Button,
    CDSView,
    CellEditor,
    ColumnDataSource,
    DataTable,
    StringFormatter,
    TableColumn,
)
from panel.models.markup import HTML as _PanelHTML

from apps.escape import esc
from apps.format_templates import session_copy
from apps.palette import WARNING_TEXT, text_colour
from apps.theme import TABLE_CSS, TABULATOR_CSS
from monitoring.format import age, clock
from monitoring.health import CollectorHealth, State


class LiveHTML:
    """HTML that changes while the page is open (health badges, status lines, cards, page numbers).

    Not a Bokeh Div: BokehJS (3.9) lays the whole page out again on every change of a Div's text (it measures
    every table and redraws every chart). On a pipeline page with every section, where status lines change every
    few seconds and choosing a Flink job or a group changes several at once, the browser fell behind the server's
    updates for good and stopped answering. Panel's HTML model only replaces its content. It is set as a plain
    Bokeh property, as cheap on the server as a Div. Its view decodes the text once (Panel's HTML pane sends it
    HTML-escaped): `text` is the HTML to show, the model holds it escaped, and no script in it ever runs."""

    def __init__(self, text: str = "", **properties: object) -> None:
        self._text = text
        self.model = _PanelHTML(text=esc(text), run_scripts=False, disable_math=True, **properties)

    @property
    def text(self) -> str:
        return self._text

    @text.setter
    def text(self, text: str) -> None:
        self._text = text
        self.model.text = esc(text)  # a Bokeh property set to its own value sends nothing

    @property
    def visible(self) -> bool:
        return self.model.visible

    @visible.setter
    def visible(self, visible: bool) -> None:
        self.model.visible = visible


def table(columns: dict[str, object], name: str, page_size: int) -> pn.widgets.Tabulator:
    """A Tabulator paged on the server, for tables that change rarely and that users select rows in or filter
    (profiling runs, the errors page). Tables that follow a live source every second are `LiveTable`s."""
    return pn.widgets.Tabulator(
        pd.DataFrame(columns=list(columns)), label=name, show_index=False, disabled=True, sizing_mode="stretch_width",
        pagination="remote", page_size=page_size, layout="fit_data_stretch", stylesheets=[TABULATOR_CSS],
        formatters={column: session_copy(f) if isinstance(f, Model) else f
                    for column, f in columns.items() if f is not None},
    )


_ROW_HEIGHT = 25
_PAGES_KEPT = 256
_pages: dict[tuple[int, int, int], tuple[pd.DataFrame, dict[str, object]]] = {}
"""Columns of a page of a frame, by (id(frame), first row, rows): every session shows the same shared frames
(`shared_frame`), so a page is converted once for all of them. Each entry holds its frame, so an id is not
reused while its entry lives."""


def table_pane(table: DataTable) -> pn.pane.Bokeh:
    """A DataTable in a pane that keeps the table's theme: a page's design sets the stylesheets of the models its
    panes hold when the page is first drawn (a table built later keeps its own), so the pane names them too."""
    return pn.pane.Bokeh(table, sizing_mode="stretch_width", stylesheets=[TABLE_CSS])


class LiveTable:
    """A read-only table that follows a live source: a plain Bokeh DataTable paged on the server.

    Every session updates its tables once a second. A Panel Tabulator value update costs the server tens of
    milliseconds a session (the page of rows, column configuration, styles and selection are recomputed and
    sent); here a new frame costs a look-up of its page (converted once for every session) and, when the page
    changed, one data change carrying only the columns that changed. Clicking a header sorts the rows of the page in
    the browser; the server's order (e.g. most lagging first) decides which rows are on which page."""

    def __init__(self, columns: dict[str, object], name: str, page_size: int) -> None:
        """columns: title -> Bokeh cell formatter (None: text)."""
        self.columns = list(columns)
        self.page_size = page_size
        self._frame = pd.DataFrame(columns=self.columns)
        self._page = 0
        self._shown: dict[str, object] = {}
        self.source = ColumnDataSource({column: [] for column in self.columns})
        # One text formatter and one editor for every column: a column's own defaults are two models each,
        # and every model in a session's document costs each of its updates.
        text, editor = StringFormatter(), CellEditor()
        self.table = DataTable(
            source=self.source, view=CDSView(), name=name, css_classes=[f"pw-table-{name}"], index_position=None,
            stylesheets=[TABLE_CSS],
            sortable=True, reorderable=False, sizing_mode="stretch_width", row_height=_ROW_HEIGHT,
            height=_ROW_HEIGHT + 6,
            columns=[TableColumn(field=c, title=c, formatter=session_copy(f) if f is not None else text, editor=editor)
                     for c, f in columns.items()])
        self.previous = Button(label="Previous", width=90, visible=False, name=f"{name}-previous")
        self.next = Button(label="Next", width=90, visible=False, name=f"{name}-next")
        self.page_info = LiveHTML("", visible=False, name=f"{name}-page")
        self.previous.on_click(lambda: self.turn(-1))
        self.next.on_click(lambda: self.turn(+1))
        self._panel = pn.Column(
            table_pane(self.table),
            pn.Row(pn.pane.Bokeh(self.previous), pn.pane.Bokeh(self.next), pn.pane.Bokeh(self.page_info.model)),
            sizing_mode="stretch_width")

    def __panel__(self):
        return self._panel

    @property
    def value(self) -> pd.DataFrame:
        """Every row (not just the page on screen)."""
        return self._frame

    @value.setter
    def value(self, frame: pd.DataFrame) -> None:
        if frame is not self._frame:
            self._frame = frame
            self._show_page()

    @property
    def styles(self) -> dict[str, str]:
        return self.table.styles

    @styles.setter
    def styles(self, styles: dict[str, str]) -> None:
        self.table.styles = styles

    def turn(self, pages: int) -> None:
        self._page += pages
        self._show_page()

    def _show_page(self) -> None:
        rows = len(self._frame)
        pages = max(1, -(-rows // self.page_size))
        self._page = max(0, min(self._page, pages - 1))
        start = self._page * self.page_size
        columns = _page_columns(self._frame, start, self.page_size)
        shown = len(next(iter(columns.values()), ()))
        if not self._shown or shown != len(next(iter(self._shown.values()), ())):
            self.source.data = dict(columns)
            redraw(self.table)
        else:
            changed = {c: v for c, v in columns.items() if not _same(v, self._shown[c])}
            if changed:
                self.source.data.update(changed)  # one event carrying only these columns
                redraw(self.table)
        height = _ROW_HEIGHT * (max(shown, 1) + 1) + 6
        if self.table.height != height:
            self.table.height = height
        self._shown = columns
        paged = pages > 1
        info = f"rows {start + 1:,}&ndash;{start + shown:,} of {rows:,}" if paged else ""
        if self.page_info.text != info:
            self.page_info.text = info
        for model, visible, disabled in ((self.previous, paged, self._page == 0),
                                         (self.next, paged, self._page >= pages - 1)):
            if model.visible != visible:
                model.visible = visible
            if model.disabled != disabled:
                model.disabled = disabled
        if self.page_info.visible != paged:
            self.page_info.visible = paged


def redraw(table: DataTable) -> None:
    """Make the browser redraw a DataTable whose data was just changed. It redraws when the table's view changes,
    and the view's indices do not when the number of rows stays the same (Bokeh 3.9): a changed tag tells it (and
    keeps the user's sort order). The table needs an explicit `view=CDSView()`: a default one is created only when
    first touched, after the browser got the document. Tags come from one process-wide count, so a value never
    repeats, not even on a view that another session's shared update has changed (apps/shared_patch.py)."""
    table.view.tags = [next_tag()]


def next_tag() -> int:
    return next(_tags)


_tags = itertools.count(1)


def _page_columns(frame: pd.DataFrame, start: int, rows: int) -> dict[str, object]:
    key = (id(frame), start, rows)
    entry = _pages.get(key)
    if entry is not None and entry[0] is frame:
        return entry[1]
    page = frame.iloc[start:start + rows]
    columns = {c: (page[c].to_numpy(dtype=float) if pd.api.types.is_numeric_dtype(page[c].dtype)
                   else ["" if v is None else str(v) for v in page[c]]) for c in frame.columns}
    if len(_pages) >= _PAGES_KEPT:
        _pages.clear()
    _pages[key] = (frame, columns)
    return columns


def _same(a: object, b: object) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))
    return a == b


def dim(tables, stale: bool) -> None:
    """Grey out the tables while what they show is stale; set only on a change (every session, every second)."""
    styles = {"opacity": "0.5"} if stale else {}
    for shown in tables:
        if shown.styles != styles:
            shown.styles = styles


_shared: dict[tuple, tuple[object, object, pd.DataFrame]] = {}


def shared_frame(source: tuple[str, str], snapshot: object, name: str, build, variant: object = None) -> pd.DataFrame:
    """The frame `build()` makes from a source's snapshot, built once for every session that shows it.

    Sessions show the same snapshot: instead of each building the same rows (and sorting the partition
    table) in every session, the first one to render a snapshot builds the frame and the others reuse
    it. `variant` names a per-session choice the frame depends on (the chosen group). Only the newest
    frame per (source, name) is kept. Frames are read-only once shared: the tables are disabled (not
    editable) and pipewatch never changes a frame it handed to a table. All sessions run on the Bokeh
    server's event loop, one at a time."""
    key = (source, name)
    entry = _shared.get(key)
    if entry is None or entry[0] is not snapshot or entry[1] != variant:
        entry = _shared[key] = (snapshot, variant, build())
    return entry[2]


def freshness(what: str, snapshot_time: float | None, health: CollectorHealth | None, now: float) -> tuple[str, bool]:
    """The line above a source's tables: no data yet, measured at, or STALE with the reason.
    Also whether what is shown is stale (its collector is not up)."""
    state = health.effective_state(now) if health is not None else None
    if snapshot_time is None:
        text = f"<em>No {what} data yet: waiting for the first successful collection.</em>"
        if state is State.DOWN:
            text += f" Collector down: {esc(health.reason(now))}"
        return text, False
    if state is not None and state is not State.UP:
        return (f'<div class="pw-stale" style="color:{text_colour(WARNING_TEXT)}"><b>STALE</b>: tables and '
                f'charts show data '
                f'measured at {clock(snapshot_time)} ({age(snapshot_time, now)}); the collector is '
                f'{esc(state.value)}: {esc(health.reason(now))}</div>'), True
    return f'<span class="pw-fresh">Measured at {clock(snapshot_time)} ({age(snapshot_time, now)})</span>', False


class SnapshotSection:
    """A page section that draws its collector's latest snapshot, re-rendered only when a new one is
    published. Subclasses set `store` and `source` and implement `_render(now)` from `self._snapshot`."""

    _snapshot_time: float | None = None
    _snapshot = None

    def _follow_snapshot(self, now: float) -> float | None:
        """Render a newer snapshot if there is one; return the time of the one shown (None: none yet)."""
        entry = self.store.snapshot(self.source)
        if entry is not None and entry[0] != self._snapshot_time:
            self._snapshot_time, self._snapshot = entry
            self._render(now)
        return entry[0] if entry else None

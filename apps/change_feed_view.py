"""The live change feed of one pipeline: a card per entity, the newest changes, filters, pause, export.

New changes are pushed: the store tells the view when rows arrive (on the collectors' thread), and
the view schedules one update on its session's event loop; arrivals while that update is pending
join it, so a busy server sends fewer, larger updates instead of falling behind. The table is a
plain Bokeh DataTable whose rows (one page of 25) are replaced in one ColumnDataSource assignment:
about a tenth of a millisecond a session, against several for a Panel Tabulator, which is what lets
a hundred viewers follow 1,000 changes a second. Sessions with the same filters at the same
position share one list of matching rows (apps/change_feed_rows.py), so many viewers cost one filtering per
change. Sessions that follow the newest changes unfiltered (the usual case) go further: their table's
models have the same ids in every session, and one update, serialized once, is written to all of them
(apps/shared_feed.py, apps/shared_patch.py): a hundred viewers cost one serialization and a hundred socket
writes per update, at most every `SHARED_UPDATE_SECONDS`, instead of a hundred serializations per reader
batch. Changed rows are user data: every value is shown as text (the table's string cells escape
it), never as HTML.
"""

from __future__ import annotations

import io
import json
import time

import pandas as pd
import panel as pn
from bokeh.models import Button, DataTable, HTMLTemplateFormatter, TableColumn
from panel.viewable import Viewer
from tornado.ioloop import IOLoop

from apps.change_feed_rows import COLUMNS, EVENTS, PAGE_ROWS, UNFILTERED, page_columns, rows_matching
from apps.change_feed_text import cards_text, status_text
from apps.escape import choice_options, spreadsheet_safe
from apps.palette import NEUTRAL, entity_colour
from apps.shared_feed import SharedFeed, shared_models
from apps.shared_patch import in_server_session, sent_to_browser, writes_at_once
from apps.theme import TABLE_CSS
from apps.widgets import LiveHTML, redraw, table_pane
from monitoring.config import ChangeFeedSource
from monitoring.health import State, state_now
from monitoring.store import FeedRow, Store

__all__ = ["ChangeFeedView", "entity_colour"]


class ChangeFeedView(Viewer):
    def __init__(self, store: Store, pipeline: str, collector: str, config: ChangeFeedSource, **params) -> None:
        super().__init__(**params)
        self.store, self.source, self.config = store, (pipeline, collector), config
        self.entities = [e.name for e in config.entities]
        self._fields = {e.name: list(e.fields) for e in config.entities}
        self._events = {e.name: list(e.events) for e in config.entities}
        self._seq = -1
        self._paused_at: int | None = None
        self._shown_key: tuple | None = None
        self._shown_at_once = False
        """Whether the browser gets what the last own show sent before any later shared update: not so for a show in
        the page's `onload` turn, nor before the section's table went out in a message of its own (the section is
        built in `onload`, and Bokeh writes it some turns later): a shared update sent before it would reach a table
        the browser does not have yet, and the row it carried would be missed."""
        self._slow_at = 0.0
        self._page = 0
        self.rows: list[dict[str, str]] = []
        """Every change matching the filters, newest first (what the export writes); one page is shown."""
        self._doc = None
        self._push_pending = False
        self._unsubscribe = None
        self._shared: SharedFeed | None = None
        # A JavaScript object in the cell template: JSON, with no "%>" that would end the template's code.
        colours = json.dumps({name: entity_colour(name) for name in self.entities}).replace("%", "\\u0025")
        entity_cell = HTMLTemplateFormatter(template=(
            f'<span class="pw-entity" style="border-left:6px solid <%- ({colours})[value] || \'{NEUTRAL}\' %>;'
            'padding-left:6px"><%- value %></span>'))
        # Plain models for what changes every second (LiveHTML, see HealthBar), the same in every session: shared.
        self.source_rows, table_view, self.cards, self.status = shared_models(self.source)
        self.entity_filter = pn.widgets.MultiChoice(label="Entity", options=choice_options(self.entities),
                                                    width=260)
        self.event_filter = pn.widgets.MultiChoice(label="Event", options=EVENTS, width=220)
        self.search = pn.widgets.TextInput(label="Search in the changed rows", width=280)
        self.pause = pn.widgets.Toggle(label="Pause", width=100, margin=(24, 10, 10, 10))
        self.arrived = LiveHTML("", name="feed-arrived")
        widths = {"time": 95, "entity": 110, "event": 60, "key": 70, "fields": 380, "payload": 600}
        self.table = DataTable(
            source=self.source_rows, view=table_view, name="feed-table", index_position=None, stylesheets=[TABLE_CSS],
            sortable=False, reorderable=False, sizing_mode="stretch_width", height=30 + 25 * PAGE_ROWS, row_height=25,
            columns=[TableColumn(field=c, title=c, width=widths[c],
                                 **({"formatter": entity_cell} if c == "entity" else {}))
                     for c in COLUMNS])
        self.newer = Button(label="Newer", width=90, disabled=True, name="feed-newer")
        self.older = Button(label="Older", width=90, disabled=True, name="feed-older")
        self.page_info = LiveHTML("", name="feed-page")
        self.newer.on_click(lambda: self._turn(-1))
        self.older.on_click(lambda: self._turn(+1))
        self.download = pn.widgets.FileDownload(callback=self._csv, filename="changes.csv",
                                                label="Export what is shown (CSV)", width=240)
        for widget in (self.entity_filter, self.event_filter, self.search):
            widget.param.watch(lambda _: self.refresh(), "value")
        self.search.param.watch(lambda _: self.refresh(), "value_input")
        self.pause.param.watch(lambda event: self._pause(event.new), "value")
        self._layout = pn.Column(
            pn.pane.Markdown("### Database change feed"), pn.pane.Bokeh(self.status.model, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.cards.model, sizing_mode="stretch_width"),
            pn.Row(self.entity_filter, self.event_filter, self.search, self.pause, pn.pane.Bokeh(self.arrived.model)),
            table_pane(self.table),
            pn.Row(pn.pane.Bokeh(self.newer), pn.pane.Bokeh(self.older), pn.pane.Bokeh(self.page_info.model),
                   self.download),
            sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    def go_live(self) -> None:
        """Follow the feed by push from now on (call on the session's thread once the browser is connected:
        changes made before that never reach it)."""
        doc = pn.state.curdoc
        if doc is None or self._unsubscribe is not None:
            return
        self._doc = doc
        self._unsubscribe = self.store.on_feed(self.source, self._feed_advanced)
        if in_server_session(doc) and IOLoop.current(instance=False) is not None:
            self._shared = SharedFeed.join(self)
        self._shown_key = None  # shows what arrived before the subscription on its own, then follows the shared updates
        self._feed_advanced()

    def close(self) -> None:
        """Stop following the feed (the session ended or shows another page)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._shared is not None:
            self._shared.leave(self)
            self._shared = None

    def _follows_newest(self) -> bool:
        """Whether the shared update keeps this session's table: it shows the newest changes, unfiltered, and has
        shown them once on its own since it came back to them (its browser holds that page; the shared updates
        replace it)."""
        return (self._shared is not None and self._paused_at is None and self._page == 0
                and self._shown_at_once and self._shown_key is not None and self._shown_key[2:] == UNFILTERED
                and self._filters(0)[2:] == UNFILTERED)

    def _followed(self, key: tuple, rows: list[dict[str, str]]) -> None:
        """The shared update showed these rows in this session's browser."""
        self._seq, self._shown_key, self.rows, self._shown_at_once = key[1], key, rows, True

    def _feed_advanced(self) -> None:
        # On the collectors' thread: only hand over. add_next_tick_callback is the Document's one
        # thread-safe method; one pending update at a time, which takes everything that arrived.
        if self._follows_newest():
            return
        if not self._push_pending:
            self._push_pending = True
            try:
                self._doc.add_next_tick_callback(self._pushed)
            except Exception:  # the session is going away: stop following rather than stay stuck as pending
                self._push_pending = False
                self.close()
                raise

    def _pushed(self) -> None:
        self._push_pending = False
        self._refresh_rows()

    def refresh(self, detail: bool = True) -> None:
        """The feed is the page's live part: its rows and cards follow every push whatever `detail` says."""
        self._refresh_rows()  # a no-op when the pushes are up to date; what they missed otherwise
        now = time.time()
        if now - self._slow_at >= 1.0:  # cards and status change by the second
            self._slow_at = now
            state = state_now(self.store.health().get(self.source), now)
            if self._shared is None:  # else the shared feed sends them to every session that shows this feed
                _set_text(self.cards, cards_text(self.store, self.source, self.entities, self._events, now))
                _set_text(self.status, status_text(self.store, self.source, self.config, state, self._seq, now))
            styles = {"opacity": "0.5"} if state is not State.UP else {}
            if self.table.styles != styles:
                self.table.styles = styles
            if self._follows_newest():
                self._show_page_controls()

    def _refresh_rows(self) -> None:
        if self._follows_newest():
            return
        seq, recent = self.store.feed_recent(self.source) if self._needs_rows() else (self._seq, None)
        if self._paused_at is not None:
            text = f'<span class="pw-arrived">{seq - self._paused_at:,} change(s) arrived while paused</span>'
            if text != self.arrived.text:
                self.arrived.text = text
        elif recent is not None:
            self._show(seq, recent)
        self._seq = seq

    def _needs_rows(self) -> bool:
        last = self.store.feed_position(self.source)
        return last != self._seq or self._shown_key != self._filters(last)

    def _filters(self, seq: int) -> tuple:
        return (self.source, seq, tuple(self.entity_filter.value), tuple(self.event_filter.value),
                (self.search.value_input or self.search.value or "").strip().lower())

    def _show(self, seq: int, recent: dict[str, list[FeedRow]]) -> None:
        key = self._filters(seq)
        rows = rows_matching(key, recent, self._fields)
        if self._shown_key is None or key[2:] != self._shown_key[2:]:
            self._page = 0  # other filters (or just resumed): back to the newest changes
        self._shown_key = key
        self._shown_at_once = writes_at_once(self._doc) and sent_to_browser(self.source_rows)
        self.rows = rows
        self._showpage_columns()

    def _showpage_columns(self) -> None:
        self._show_page_controls()
        # update(), not an assignment: it is sent even when the server's copy looks the same (a shared update
        # may have changed what the browser shows since).
        self.source_rows.data.update(page_columns(self.rows, self._page))
        redraw(self.table)  # a full page of changes is always 25 rows

    def _show_page_controls(self) -> None:
        pages = max(1, -(-len(self.rows) // PAGE_ROWS))
        self._page = min(self._page, pages - 1)
        start = self._page * PAGE_ROWS
        shown = len(self.rows[start:start + PAGE_ROWS])
        for button, disabled in ((self.newer, self._page == 0), (self.older, self._page >= pages - 1)):
            if button.disabled != disabled:
                button.disabled = disabled
        info = (f"changes {start + 1:,}&ndash;{start + shown:,} of the {len(self.rows):,} kept, newest first"
                if shown else "no changes match")
        if info != self.page_info.text:
            self.page_info.text = info

    def _turn(self, pages: int) -> None:
        self._page = max(0, self._page + pages)
        self._showpage_columns()

    def shown(self) -> pd.DataFrame:
        """The page of changes on screen."""
        return pd.DataFrame(page_columns(self.rows, self._page), columns=COLUMNS)

    def _pause(self, paused: bool) -> None:
        self._paused_at = self._seq if paused else None
        self.pause.label = "Resume" if paused else "Pause"
        if not paused:
            self.arrived.text = ""
            self._shown_key = None
            self.refresh()

    def _csv(self) -> io.StringIO:
        frame = pd.DataFrame(self.rows, columns=COLUMNS)  # leaves out "_search"
        return io.StringIO(spreadsheet_safe(frame).to_csv(index=False))


def _set_text(div: LiveHTML, text: str) -> None:
    if text != div.text:
        div.text = text

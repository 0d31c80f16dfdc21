"""The live change feed of one pipeline: a card per entity, the newest changes, filters, pause, export.

New changes are pushed: the store tells the view when rows arrive (on the collectors' thread), and
the view schedules one update on its session's event loop; arrivals while that update is pending
join it, so a busy server sends fewer, larger updates instead of falling behind. The table is a
plain Bokeh DataTable whose rows (one page of 25) are replaced in one ColumnDataSource assignment:
about a tenth of a millisecond a session, against several for a Panel Tabulator, which is what lets
a hundred viewers follow 1,000 changes a second. Sessions with the same filters at the same
position share one list of matching rows (`_matches`), so many viewers cost one filtering per
change. Sessions that follow the newest changes unfiltered (the usual case) go further: their table's
models have the same ids in every session, and one update, serialized once, is written to all of them
(`_SharedFeed`, apps/shared_patch.py): a hundred viewers cost one serialization and a hundred socket
writes per update, at most every `SHARED_UPDATE_SECONDS`, instead of a hundred serializations per reader
batch. Changed rows are user data: every value is shown as text (the table's string cells escape
it), never as HTML.
"""

from __future__ import annotations

import hashlib
import io
import json
import statistics
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone

import pandas as pd
import panel as pn
from bokeh.models import Button, CDSView, ColumnDataSource, DataTable, Div, HTMLTemplateFormatter, TableColumn
from bokeh.palettes import Category10_10
from panel.viewable import Viewer
from tornado.ioloop import IOLoop, PeriodicCallback

from apps.escape import choice_options, esc, spreadsheet_safe
from apps.shared_patch import SessionWriter, SharedModels, in_server_session, shared
from apps.widgets import age, clock, next_tag, redraw
from monitoring.config import ChangeFeedSource
from monitoring.evaluation import nearest_rank
from monitoring.health import State
from monitoring.store import FeedRow, Store

COLUMNS = ["time", "entity", "event", "key", "fields", "payload"]
PAGE_ROWS = 25
_EVENTS = ["insert", "update", "delete"]
_DEFAULT_FIELDS = 4
_matches: OrderedDict[tuple, list[dict[str, str]]] = OrderedDict()
_matches_lock = threading.Lock()
_texts: OrderedDict[tuple, dict[str, str]] = OrderedDict()
"""Each delivered row as the table shows it, made once for every session: (source, seq, delivered at) -> cells."""
_TEXTS_KEPT = 50_000
SHARED_UPDATE_SECONDS = 0.03
"""The shared page is sent at most this often (about 33 times a second): at 1,000 changes a second a viewer's page
is at most this much older than the feed, and a hundred viewers cost the server ~3,300 messages a second, not
50,000 (one per reader batch each)."""


def entity_colour(name: str) -> str:
    """The same colour for an entity on every page and in every process."""
    return Category10_10[int(hashlib.md5(name.encode()).hexdigest(), 16) % len(Category10_10)]


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
        self._slow_at = 0.0
        self._page = 0
        self.rows: list[dict[str, str]] = []
        """Every change matching the filters, newest first (what the export writes); one page is shown."""
        self._doc = None
        self._push_pending = False
        self._unsubscribe = None
        self._shared: _SharedFeed | None = None
        # A JavaScript object in the cell template: JSON, with no "%>" that would end the template's code.
        colours = json.dumps({name: entity_colour(name) for name in self.entities}).replace("%", "\\u0025")
        entity_cell = HTMLTemplateFormatter(template=(
            f'<span class="pw-entity" style="border-left:6px solid <%- ({colours})[value] || \'#6e7781\' %>;'
            'padding-left:6px"><%- value %></span>'))
        # Plain Bokeh Divs for what changes every second (see HealthBar), the same in every session: shared.
        self.source_rows, table_view, self.cards, self.status = _shared_models(self.source)
        self.entity_filter = pn.widgets.MultiChoice(label="Entity", options=choice_options(self.entities),
                                                    width=260)
        self.event_filter = pn.widgets.MultiChoice(label="Event", options=_EVENTS, width=220)
        self.search = pn.widgets.TextInput(label="Search in the changed rows", width=280)
        self.pause = pn.widgets.Toggle(label="Pause", width=100, margin=(24, 10, 10, 10))
        self.arrived = Div(text="", name="feed-arrived")
        widths = {"time": 95, "entity": 110, "event": 60, "key": 70, "fields": 380, "payload": 600}
        self.table = DataTable(
            source=self.source_rows, view=table_view, name="feed-table", index_position=None,
            sortable=False, reorderable=False, sizing_mode="stretch_width", height=30 + 25 * PAGE_ROWS, row_height=25,
            columns=[TableColumn(field=c, title=c, width=widths[c], **({"formatter": entity_cell} if c == "entity" else {}))
                     for c in COLUMNS])
        self.newer = Button(label="Newer", width=90, disabled=True, name="feed-newer")
        self.older = Button(label="Older", width=90, disabled=True, name="feed-older")
        self.page_info = Div(text="", name="feed-page")
        self.newer.on_click(lambda: self._turn(-1))
        self.older.on_click(lambda: self._turn(+1))
        self.download = pn.widgets.FileDownload(callback=self._csv, filename="changes.csv",
                                                label="Export what is shown (CSV)", width=240)
        for widget in (self.entity_filter, self.event_filter, self.search):
            widget.param.watch(lambda _: self.refresh(), "value")
        self.search.param.watch(lambda _: self.refresh(), "value_input")
        self.pause.param.watch(lambda event: self._pause(event.new), "value")
        self._layout = pn.Column(
            pn.pane.Markdown("### Database change feed"), pn.pane.Bokeh(self.status, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.cards, sizing_mode="stretch_width"),
            pn.Row(self.entity_filter, self.event_filter, self.search, self.pause, pn.pane.Bokeh(self.arrived)),
            pn.pane.Bokeh(self.table, sizing_mode="stretch_width"),
            pn.Row(pn.pane.Bokeh(self.newer), pn.pane.Bokeh(self.older), pn.pane.Bokeh(self.page_info),
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
            self._shared = _SharedFeed.join(self)
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
                and self._shown_key is not None and self._shown_key[2:] == _UNFILTERED
                and self._filters(0)[2:] == _UNFILTERED)

    def _followed(self, key: tuple, rows: list[dict[str, str]]) -> None:
        """The shared update showed these rows in this session's browser."""
        self._seq, self._shown_key, self.rows = key[1], key, rows

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
            state = _feed_state(self.store, self.source, now)
            if self._shared is None:  # else the shared feed sends them to every session that shows this feed
                _set_text(self.cards, _cards_text(self.store, self.source, self.entities, self._events, now))
                _set_text(self.status, _status_text(self.store, self.source, self.config, state, self._seq, now))
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
        rows = _rows_matching(key, recent, self._fields)
        if self._shown_key is None or key[2:] != self._shown_key[2:]:
            self._page = 0  # other filters (or just resumed): back to the newest changes
        self._shown_key = key
        self.rows = rows
        self._show_page()

    def _show_page(self) -> None:
        self._show_page_controls()
        # update(), not an assignment: it is sent even when the server's copy looks the same (a shared update
        # may have changed what the browser shows since).
        self.source_rows.data.update(_page(self.rows, self._page))
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
        self._show_page()

    def shown(self) -> pd.DataFrame:
        """The page of changes on screen."""
        return pd.DataFrame(_page(self.rows, self._page), columns=COLUMNS)

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


def _feed_state(store: Store, source: tuple[str, str], now: float) -> State:
    health = store.health().get(source)
    return health.effective_state(now) if health is not None else State.STARTING


def _set_text(div: Div, text: str) -> None:
    if text != div.text:
        div.text = text


def _latest(store: Store, name: str, pipeline: str, *labels: str) -> float | None:
    point = store.latest(name, (pipeline, *labels))
    return None if point is None else point[1]


def _cards_text(store: Store, source: tuple[str, str], entities: list[str], events: dict[str, list[str]],
                now: float) -> str:
    """A card per entity: totals by event type, rate and the last change's age."""
    _, recent = store.feed_recent(source)
    cards = []
    for name in entities:
        counts = {event: _latest(store, "db_change_events_total", source[0], name, event) for event in events[name]}
        rate = _latest(store, "db_change_feed_rate", source[0], name)
        rows = recent.get(name) or []
        last = rows[-1].changed_at if rows else None
        totals = " &middot; ".join(f"{'unknown' if n is None else f'{n:,.0f}'} {event}s" for event, n in counts.items())
        rate_text = "unknown" if rate is None else f"{rate:,.1f}/s"
        cards.append(
            f'<div class="pw-feed-card" data-entity="{esc(name)}" style="display:inline-block;'
            f"min-width:220px;margin:4px 8px 4px 0;padding:6px 10px;border:1px solid #d0d7de;"
            f'border-left:6px solid {entity_colour(name)};border-radius:6px"><b>{esc(name)}</b><br>'
            f'<span class="pw-feed-totals">{totals}</span><br>'
            f"{rate_text} &middot; last change {age(last, now)}</div>")
    return "".join(cards)


def _status_text(store: Store, source: tuple[str, str], config: ChangeFeedSource, state: State, seq: int,
                 now: float) -> str:
    """The connection (or why it is down), the measured delay over the last changes and the backlog."""
    health = store.health().get(source)
    if state is State.UP:
        text = (f'<span class="pw-feed-connection" data-state="up">Listening on <code>{esc(config.channel)}'
                f"</code> (and reading every {config.poll_interval_seconds:g} s)</span>")
    else:
        text = (f'<span class="pw-feed-connection" data-state="{esc(state.value)}" style="color:#cf222e">'
                f"<b>{esc(state.value.upper())}</b>: {esc(health.reason(now) if health else 'not started')}</span>")
    rows = store.feed_since(source, max(0, seq - 200))
    delays = sorted(r.delivered_at - r.changed_at for r in rows)
    if delays:
        p95 = nearest_rank(delays, 0.95)
        text += (f' &middot; <span class="pw-feed-delay">delay from change to delivery over the last '
                 f"{len(delays)}: median {statistics.median(delays) * 1000:,.0f} ms, p95 {p95 * 1000:,.0f} ms, "
                 f"last delivery {clock(rows[-1].delivered_at)}</span>")
    backlog = _latest(store, "db_change_feed_backlog", source[0])
    if backlog:
        text += f" &middot; backlog {backlog:,.0f}"
    return text


_UNFILTERED = ((), (), "")
"""Entities, events and search text of a view without filters (the end of its `_filters` key)."""


class _SharedFeed:
    """The newest page of one feed for every session that follows it unfiltered, made and serialized once per
    update on the server's event loop and written to each of them (apps/shared_patch.py). Process-wide: one per
    store and source while a session follows it."""

    _feeds: dict[tuple[int, tuple[str, str]], _SharedFeed] = {}
    _feeds_lock = threading.Lock()

    def __init__(self, view: ChangeFeedView) -> None:
        self.store, self.source, self._fields = view.store, view.source, view._fields
        self._loop = IOLoop.current()
        self._views: set[ChangeFeedView] = set()
        self._lock = threading.Lock()
        self._pending = False
        self._sent_at = 0.0
        self._page: dict[str, list[str]] | None = None
        self._config, self._entities, self._events = view.config, view.entities, view._events
        self._rows, self._view, self._cards, self._status = _shared_models(self.source)
        self._models = SharedModels(self._rows, self._view, self._cards, self._status)
        self._writer = SessionWriter()
        self._unsubscribe = self.store.on_feed(self.source, self._advanced)
        self._texts = PeriodicCallback(self._send_texts, 1000)
        self._texts.start()

    @classmethod
    def join(cls, view: ChangeFeedView) -> _SharedFeed:
        with cls._feeds_lock:
            key = (id(view.store), view.source)
            feed = cls._feeds.get(key)
            if feed is None:
                feed = cls._feeds[key] = cls(view)
            with feed._lock:
                feed._views.add(view)
            return feed

    def leave(self, view: ChangeFeedView) -> None:
        with _SharedFeed._feeds_lock:
            with self._lock:
                self._views.discard(view)
                if self._views:
                    return
            _SharedFeed._feeds.pop((id(self.store), self.source), None)
            self._unsubscribe()
            self._texts.stop()

    def _advanced(self) -> None:
        # On the collectors' thread: hand over to the server's loop, one pending update taking all that arrived.
        if not self._pending:
            self._pending = True
            self._loop.add_callback(self._schedule)

    def _schedule(self) -> None:
        wait = self._sent_at + SHARED_UPDATE_SECONDS - time.monotonic()
        if wait > 0:
            self._loop.call_later(wait, self._send)
        else:
            self._send()

    def _send(self) -> None:
        self._pending = False
        self._sent_at = time.monotonic()
        with self._lock:
            followers = [view for view in self._views if view._follows_newest()]
        if not followers:
            return
        seq, recent = self.store.feed_recent(self.source)
        key = (self.source, seq, *_UNFILTERED)
        rows = _rows_matching(key, recent, self._fields)
        page = _page(rows, 0)
        message = None if page == self._page else self._models.patch(lambda: self._show(page))
        for view in followers:
            view._followed(key, rows)
            if message is not None:
                self._writer.send(view._doc, message)

    def _send_texts(self) -> None:
        """The cards and the status line, made once a second for every session that shows this feed."""
        with self._lock:
            documents = {view._doc for view in self._views if view._doc is not None}
        if not documents:
            return
        now = time.time()
        state = _feed_state(self.store, self.source, now)
        cards = _cards_text(self.store, self.source, self._entities, self._events, now)
        status = _status_text(self.store, self.source, self._config, state, self.store.feed_position(self.source), now)

        def show() -> None:
            # Sent every second whatever the copies held: a session that just joined may show older text.
            self._cards.text, self._status.text = cards, status

        self._cards.text = self._status.text = ""  # (outside the patch: only the new text is sent)
        message = self._models.patch(show)
        if message is None:
            return
        for document in documents:
            self._writer.send(document, message)

    def _show(self, page: dict[str, list[str]]) -> None:
        self._page = page
        self._rows.data = page
        self._view.tags = [next_tag()]  # as `redraw` does: the table redraws a page of the same size too


def _shared_models(source: tuple[str, str]) -> tuple[ColumnDataSource, CDSView, Div, Div]:
    """New models for the feed table's rows and view, the cards and the status line, with the ids they have in every
    session (each session is a document of its own)."""
    shared_id = "pw-feed-" + hashlib.md5("\0".join(source).encode()).hexdigest()[:12]
    return (shared(ColumnDataSource({column: [] for column in COLUMNS}), f"{shared_id}-rows"),
            shared(CDSView(), f"{shared_id}-view"),
            shared(Div(text="", name="feed-cards", sizing_mode="stretch_width"), f"{shared_id}-cards"),
            shared(Div(text="", name="feed-status", sizing_mode="stretch_width"), f"{shared_id}-status"))


def _rows_matching(key: tuple, recent: dict[str, list[FeedRow]], fields: dict[str, list[str]]) -> list[dict[str, str]]:
    """The rows a `_filters` key selects, made once for every session asking for the same."""
    with _matches_lock:
        rows = _matches.get(key)
    if rows is None:
        rows = _matching(key[0], recent, fields, *key[2:])
        with _matches_lock:
            _matches[key] = rows
            while len(_matches) > 32:
                _matches.popitem(last=False)
    return rows


def _page(rows: list[dict[str, str]], page: int) -> dict[str, list[str]]:
    shown = rows[page * PAGE_ROWS:(page + 1) * PAGE_ROWS]
    return {column: [row[column] for row in shown] for column in COLUMNS}


def _millis(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _matching(source: tuple[str, str], recent: dict[str, list[FeedRow]], fields: dict[str, list[str]],
              entities: tuple[str, ...], events: tuple[str, ...], search: str) -> list[dict[str, str]]:
    rows = [row for name, entity_rows in recent.items() if not entities or name in entities for row in entity_rows
            if not events or row.event_type in events]
    rows.sort(key=lambda row: row.seq, reverse=True)
    keys = [(source, row.seq, row.delivered_at) for row in rows]  # the delivery time tells two stores apart (tests)
    with _matches_lock:  # one lock for the lookups: this runs for every session on every push
        texts = [_texts.get(key) for key in keys]
    new = {key: _text(row, fields) for key, row, text in zip(keys, rows, texts, strict=True) if text is None}
    if new:
        with _matches_lock:
            _texts.update(new)
            while len(_texts) > _TEXTS_KEPT:
                _texts.popitem(last=False)
        texts = [text if text is not None else new[key] for key, text in zip(keys, texts, strict=True)]
    return [text for text in texts if search in text["_search"]] if search else texts


def _text(row: FeedRow, fields: dict[str, list[str]]) -> dict[str, str]:
    """One row's cells as the table shows them (plus the lower-cased payload the search looks in)."""
    payload = json.dumps(row.payload, ensure_ascii=False, default=str)
    shown = fields.get(row.entity) or list(row.payload)[:_DEFAULT_FIELDS]
    return {"time": _millis(row.changed_at), "entity": row.entity, "event": row.event_type, "key": row.key or "",
            "fields": ", ".join(f"{f}={row.payload.get(f)}" for f in shown), "payload": payload,
            "_search": payload.lower()}

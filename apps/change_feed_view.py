"""The live change feed of one pipeline: a card per entity, the newest changes, filters, pause, export.

The view follows the store's feed by sequence number every tick (100 ms); when something new arrived
it rebuilds the table from the store's newest rows per entity. Sessions with the same filters at the
same position share one table frame (`_frames`), so many viewers cost one build per change. Changed
rows are user data: every value is shown as text (Tabulator's plain-text cells), never as HTML.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import statistics
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone

import pandas as pd
import panel as pn
from bokeh.models import HTMLTemplateFormatter
from bokeh.palettes import Category10_10
from panel.viewable import Viewer

from apps.widgets import age, clock
from monitoring.config import ChangeFeedSource
from monitoring.health import State
from monitoring.store import FeedRow, Store

COLUMNS = ["seq", "time", "entity", "event", "key", "fields", "payload"]
_EVENTS = ["insert", "update", "delete"]
_DEFAULT_FIELDS = 4
_frames: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
_frames_lock = threading.Lock()


def entity_colour(name: str) -> str:
    """The same colour for an entity on every page and in every process."""
    return Category10_10[int(hashlib.md5(name.encode()).hexdigest(), 16) % len(Category10_10)]


class ChangeFeedView(Viewer):
    fast = True
    """Refreshed every tick of the page (100 ms), not once a second like the other sections."""

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
        colours = "{" + ", ".join(f"'{name}': '{entity_colour(name)}'" for name in self.entities) + "}"
        entity_cell = HTMLTemplateFormatter(template=(  # entity names are validated config, never row data
            f'<span class="pw-entity" style="border-left:6px solid <%= ({colours})[value] || \'#6e7781\' %>;'
            'padding-left:6px"><%- value %></span>'))
        self.cards = pn.pane.HTML("", name="feed-cards", sizing_mode="stretch_width")
        self.status = pn.pane.HTML("", name="feed-status", sizing_mode="stretch_width")
        self.entity_filter = pn.widgets.MultiChoice(label="Entity", options=self.entities, width=260)
        self.event_filter = pn.widgets.MultiChoice(label="Event", options=_EVENTS, width=220)
        self.search = pn.widgets.TextInput(label="Search in the changed rows", width=280)
        self.pause = pn.widgets.Toggle(label="Pause", width=100, margin=(24, 10, 10, 10))
        self.arrived = pn.pane.HTML("", name="feed-arrived")
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=COLUMNS), show_index=False, disabled=True, sizing_mode="stretch_width",
            pagination="remote", page_size=25, layout="fit_data_stretch", hidden_columns=["seq"],
            formatters={"entity": entity_cell, "fields": {"type": "plaintext"}, "payload": {"type": "plaintext"},
                        "key": {"type": "plaintext"}})
        self.download = pn.widgets.FileDownload(callback=self._csv, filename="changes.csv",
                                                label="Export what is shown (CSV)", width=240)
        for widget in (self.entity_filter, self.event_filter, self.search):
            widget.param.watch(lambda _: self.refresh(), "value")
        self.search.param.watch(lambda _: self.refresh(), "value_input")
        self.pause.param.watch(lambda event: self._pause(event.new), "value")
        self._layout = pn.Column(
            pn.pane.Markdown("### Database change feed"), self.status, self.cards,
            pn.Row(self.entity_filter, self.event_filter, self.search, self.pause, self.arrived),
            self.table, self.download,
            sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    def refresh(self) -> None:
        seq, recent = self.store.feed_recent(self.source) if self._needs_rows() else (self._seq, None)
        if self._paused_at is not None:
            text = f'<span class="pw-arrived">{seq - self._paused_at:,} change(s) arrived while paused</span>'
            if text != self.arrived.object:
                self.arrived.object = text
        elif recent is not None:
            self._show(seq, recent)
        self._seq = seq
        now = time.time()
        if now - self._slow_at >= 1.0:  # cards and status change by the second
            self._slow_at = now
            self._refresh_cards(now)
            self._refresh_status(now)

    def _needs_rows(self) -> bool:
        last = self.store.feed_position(self.source)
        return last != self._seq or self._shown_key != self._filters(last)

    def _filters(self, seq: int) -> tuple:
        return (self.source, seq, tuple(self.entity_filter.value), tuple(self.event_filter.value),
                (self.search.value_input or self.search.value or "").strip().lower())

    def _show(self, seq: int, recent: dict[str, list[FeedRow]]) -> None:
        key = self._filters(seq)
        with _frames_lock:
            frame = _frames.get(key)
        if frame is None:
            frame = _frame(recent, self._fields, *key[2:])
            with _frames_lock:
                _frames[key] = frame
                while len(_frames) > 32:
                    _frames.popitem(last=False)
        self._shown_key = key
        self.table.value = frame

    def _pause(self, paused: bool) -> None:
        self._paused_at = self._seq if paused else None
        self.pause.label = "Resume" if paused else "Pause"
        if not paused:
            self.arrived.object = ""
            self._shown_key = None
            self.refresh()

    def _csv(self) -> io.StringIO:
        return io.StringIO(self.table.value.drop(columns=["seq"]).to_csv(index=False))

    def _refresh_cards(self, now: float) -> None:
        _, recent = self.store.feed_recent(self.source)
        cards = []
        for name in self.entities:
            counts = {event: self._latest("db_change_events_total", name, event) for event in self._events[name]}
            rate = self._latest("db_change_feed_rate", name)
            rows = recent.get(name) or []
            last = rows[-1].changed_at if rows else None
            totals = " &middot; ".join(f"{'unknown' if n is None else f'{n:,.0f}'} {event}s" for event, n in counts.items())
            cards.append(
                f'<div class="pw-feed-card" data-entity="{html.escape(name)}" style="display:inline-block;'
                f"min-width:220px;margin:4px 8px 4px 0;padding:6px 10px;border:1px solid #d0d7de;"
                f'border-left:6px solid {entity_colour(name)};border-radius:6px"><b>{html.escape(name)}</b><br>'
                f'<span class="pw-feed-totals">{totals}</span><br>'
                f"{'unknown' if rate is None else f'{rate:,.1f}/s'} &middot; last change {age(last, now)}</div>")
        text = "".join(cards)
        if text != self.cards.object:
            self.cards.object = text

    def _latest(self, name: str, *labels: str) -> float | None:
        point = self.store.latest(name, (self.source[0], *labels))
        return None if point is None else point[1]

    def _refresh_status(self, now: float) -> None:
        health = self.store.health().get(self.source)
        state = health.effective_state(now) if health is not None else State.STARTING
        if state is State.UP:
            text = (f'<span class="pw-feed-connection" data-state="up">Listening on <code>{html.escape(self.config.channel)}'
                    f"</code> (and reading every {self.config.poll_interval_seconds:g} s)</span>")
        else:
            text = (f'<span class="pw-feed-connection" data-state="{state.value}" style="color:#cf222e">'
                    f"<b>{state.value.upper()}</b>: {html.escape(health.reason(now) if health else 'not started')}</span>")
        rows = self.store.feed_since(self.source, max(0, self._seq - 200))
        delays = sorted(r.delivered_at - r.changed_at for r in rows)
        if delays:
            p95 = delays[min(len(delays) - 1, int(len(delays) * 0.95))]
            text += (f' &middot; <span class="pw-feed-delay">delay from change to delivery over the last '
                     f"{len(delays)}: median {statistics.median(delays) * 1000:,.0f} ms, p95 {p95 * 1000:,.0f} ms, "
                     f"last delivery {clock(rows[-1].delivered_at)}</span>")
        backlog = self._latest("db_change_feed_backlog")
        if backlog:
            text += f" &middot; backlog {backlog:,.0f}"
        if text != self.status.object:
            self.status.object = text
        self.table.styles = {"opacity": "0.5"} if state is not State.UP else {}


def _millis(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def _frame(recent: dict[str, list[FeedRow]], fields: dict[str, list[str]], entities: tuple[str, ...],
           events: tuple[str, ...], search: str) -> pd.DataFrame:
    rows = [row for name, entity_rows in recent.items() if not entities or name in entities for row in entity_rows
            if not events or row.event_type in events]
    rows.sort(key=lambda row: row.seq, reverse=True)
    out = []
    for row in rows:
        payload = json.dumps(row.payload, ensure_ascii=False, default=str)
        if search and search not in payload.lower():
            continue
        shown = fields.get(row.entity) or list(row.payload)[:_DEFAULT_FIELDS]
        out.append({"seq": row.seq, "time": _millis(row.changed_at), "entity": row.entity, "event": row.event_type,
                    "key": row.key or "", "fields": ", ".join(f"{f}={row.payload.get(f)}" for f in shown),
                    "payload": payload})
    return pd.DataFrame(out, columns=COLUMNS)

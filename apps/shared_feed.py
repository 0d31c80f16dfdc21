"""The newest page of a change feed, serialized once for every session that follows it unfiltered.

Sessions that follow the newest changes unfiltered (the usual case) have the table's models with the same ids in
every session, and one update, serialized once, is written to all of them (apps/shared_patch.py): a hundred viewers
cost one serialization and a hundred socket writes per update, at most every `SHARED_UPDATE_SECONDS`, instead of a
hundred serializations per reader batch. The cards and the status line are made once a second the same way.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING

from bokeh.models import CDSView, ColumnDataSource
from tornado.ioloop import IOLoop, PeriodicCallback

from apps.change_feed_rows import COLUMNS, UNFILTERED, page_columns, rows_matching
from apps.change_feed_text import cards_text, status_text
from apps.shared_patch import SessionWriter, SharedModels, shared
from apps.widgets import LiveHTML, next_tag
from monitoring.health import state_now

if TYPE_CHECKING:
    from apps.change_feed_view import ChangeFeedView

SHARED_UPDATE_SECONDS = 0.03
"""The shared page is sent at most this often (about 33 times a second): at 1,000 changes a second a viewer's page
is at most this much older than the feed, and a hundred viewers cost the server ~3,300 messages a second, not
50,000 (one per reader batch each)."""


class SharedFeed:
    """The newest page of one feed for every session that follows it unfiltered, made and serialized once per
    update on the server's event loop and written to each of them (apps/shared_patch.py). Process-wide: one per
    store and source while a session follows it."""

    _feeds: dict[tuple[int, tuple[str, str]], SharedFeed] = {}
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
        self._rows, self._view, self._cards, self._status = shared_models(self.source)
        # The cards' and status line's copies are LiveHTML models: setting a LiveHTML's text writes the escaped text
        # Panel's HTML view expects (by id, in every session).
        self._models = SharedModels(self._rows, self._view, self._cards.model, self._status.model)
        self._writer = SessionWriter()
        self._unsubscribe = self.store.on_feed(self.source, self._advanced)
        self._texts = PeriodicCallback(self._send_texts, 1000)
        self._texts.start()

    @classmethod
    def join(cls, view: ChangeFeedView) -> SharedFeed:
        with cls._feeds_lock:
            key = (id(view.store), view.source)
            feed = cls._feeds.get(key)
            if feed is None:
                feed = cls._feeds[key] = cls(view)
            with feed._lock:
                feed._views.add(view)
            return feed

    def leave(self, view: ChangeFeedView) -> None:
        with SharedFeed._feeds_lock:
            with self._lock:
                self._views.discard(view)
                if self._views:
                    return
            SharedFeed._feeds.pop((id(self.store), self.source), None)
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
        key = (self.source, seq, *UNFILTERED)
        rows = rows_matching(key, recent, self._fields)
        page = page_columns(rows, 0)
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
        state = state_now(self.store.health().get(self.source), now)
        cards = cards_text(self.store, self.source, self._entities, self._events, now)
        status = status_text(self.store, self.source, self._config, state, self.store.feed_position(self.source), now)

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


def shared_models(source: tuple[str, str]) -> tuple[ColumnDataSource, CDSView, LiveHTML, LiveHTML]:
    """New models for the feed table's rows and view, the cards and the status line, with the ids they have in every
    session (each session is a document of its own)."""
    shared_id = "pw-feed-" + hashlib.md5("\0".join(source).encode()).hexdigest()[:12]
    return (shared(ColumnDataSource({column: [] for column in COLUMNS}), f"{shared_id}-rows"),
            shared(CDSView(), f"{shared_id}-view"),
            _shared_html("feed-cards", f"{shared_id}-cards"), _shared_html("feed-status", f"{shared_id}-status"))


def _shared_html(name: str, id: str) -> LiveHTML:
    """A LiveHTML whose model has the same id in every session."""
    html = LiveHTML("", name=name, sizing_mode="stretch_width")
    shared(html.model, id)
    return html

"""Live chart lines streamed once a second to every session that shows them, in one message per kind of page.

A line's new points are the same in every session that shows its series. Streamed by each session on its own,
a second of a hundred open pipeline pages cost a hundred times the stream calls, a PATCH-DOC made (Bokeh indexes
the session's whole document for it) and a socket write, about 1% of a core per page: the charts were most of
what a page cost. Here each line slot's data source has an id that is the same in every session that built the
same page (apps/live.py: `pw-line-<chart's number in the session>-<slot>`); a slot that has shown its series up
to where the shared stream is follows it. Every `TICK_SECONDS` the points new since then are read from the store
once per line and serialized once, and every session gets one PATCH-DOC with the lines it follows: sessions that
follow the same lines (the same page) get the same bytes (apps/shared_patch.py). A page's own tick then has
nothing to send most seconds.

A session's server-side copies of the lines it follows are not kept in step (the browser holds the points): what
a chart does on its own later replaces a line's data whole, or streams only points after what was shown. A
message a session could not take at once (a slow browser) is dropped, never merged: its charts then show their
lines whole on their own and stream on their own for `SOLO_SECONDS` before following again.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tornado.ioloop import IOLoop, PeriodicCallback

from apps.shared_patch import Frames, SessionWriter, in_server_session, patch_of, streamed
from monitoring.store import SeriesKey, Store

if TYPE_CHECKING:
    from apps.live import LiveChart, _Slot

Channel = tuple[str, SeriesKey, int]
"""What a following slot shows: (its data source's id, the series, the rollover)."""


@dataclass
class _Stream:
    """One line as every session that follows it has it: the series' points up to `seen`."""

    seen: int
    order: int
    """Makes a set of followed lines into the same message key in every session."""


@dataclass
class _Followers:
    slots: list[_Slot] = field(default_factory=list)
    charts: set[LiveChart] = field(default_factory=set)


class SharedLines:
    """The lines that sessions' charts follow for one store: process-wide, on the server's event loop."""

    TICK_SECONDS = 1.0
    SOLO_SECONDS = 30.0
    _instances: dict[int, SharedLines] = {}

    def __init__(self, store: Store) -> None:
        self.store = store
        self._streams: dict[Channel, _Stream] = {}
        self._charts: weakref.WeakSet[LiveChart] = weakref.WeakSet()
        self._orders = 0
        self._writer = SessionWriter()
        self._ticker = PeriodicCallback(self._tick, self.TICK_SECONDS * 1000)
        self._ticker.start()

    @classmethod
    def of(cls, store: Store, document) -> SharedLines | None:
        """The store's shared lines, for a chart in this document; None where there is nothing to share with (not a
        browser session on a Bokeh server, or no event loop running)."""
        if not in_server_session(document) or IOLoop.current(instance=False) is None:
            return None
        lines = cls._instances.get(id(store))
        if lines is None:
            lines = cls._instances[id(store)] = cls(store)
        return lines

    def seen(self, channel: Channel) -> int | None:
        """How far the shared stream of this line is; None if nobody follows it."""
        stream = self._streams.get(channel)
        return None if stream is None else stream.seen

    def follow(self, chart: LiveChart, slot: _Slot, channel: Channel) -> bool:
        """Let the slot follow the shared stream of its line if it has shown exactly as much of it."""
        stream = self._streams.get(channel)
        if stream is None:
            self._orders += 1
            stream = self._streams[channel] = _Stream(slot.seen, self._orders)
        if stream.seen != slot.seen:
            return False
        slot.channel = channel
        self._charts.add(chart)
        return True

    def _tick(self) -> None:
        followers = self._followers()
        self._streams = {channel: self._streams[channel]
                         for each in followers.values() for channel in (slot.channel for slot in each.slots)}
        if not self._streams:
            self._ticker.stop()
            self._instances.pop(id(self.store), None)
            return
        events: dict[Channel, str] = {}
        for channel, stream in self._streams.items():
            delta = self.store.since(channel[1], stream.seen)
            if delta is None or delta.count <= stream.seen:
                continue
            times, values = (delta.times * 1000.0).tolist(), delta.values.tolist()
            events[channel] = streamed(channel[0], {"t": times, "y": values}, channel[2])
            stream.seen = delta.count
        if not events:
            return
        messages: dict[tuple[int, ...], Frames] = {}
        for document, each in followers.items():
            streamed_slots = [slot for slot in each.slots if slot.channel in events]
            if not streamed_slots:
                continue
            channels = sorted({slot.channel for slot in streamed_slots}, key=lambda c: self._streams[c].order)
            key = tuple(self._streams[channel].order for channel in channels)
            message = messages.get(key)
            if message is None:
                message = messages[key] = patch_of([events[channel] for channel in channels])
            for slot in streamed_slots:
                slot.seen = self._streams[slot.channel].seen
            self._writer.send(document, message, on_dropped=lambda each=each: _go_solo(each))

    def _followers(self) -> dict[object, _Followers]:
        """The following slots of live sessions' charts, by session document."""
        followers: dict[object, _Followers] = {}
        for chart in list(self._charts):
            slots = [slot for slot in chart._slots if slot.channel is not None]
            document = chart.figure.document
            if document is None or not slots or not in_server_session(document):  # gone, or left the page
                for slot in slots:
                    slot.channel = None
                self._charts.discard(chart)
                continue
            each = followers.setdefault(document, _Followers())
            each.slots += slots
            each.charts.add(chart)
        return followers


def _go_solo(followers: _Followers) -> None:
    """The session missed a shared update: its charts show their lines whole again, on their own for a while."""
    until = time.monotonic() + SharedLines.SOLO_SECONDS
    for chart in followers.charts:
        chart._solo_until = until
    for slot in followers.slots:
        slot.channel, slot.seen, slot.whole = None, 0, True

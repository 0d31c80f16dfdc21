"""Shared updates (apps/shared_patch.py): the messages made once for many sessions, and how they are written."""

from __future__ import annotations

import asyncio
import json
import math
from types import SimpleNamespace

from bokeh.document import Document
from bokeh.models import ColumnDataSource
from bokeh.protocol import Protocol
from tornado.locks import Lock

from apps.shared_patch import SessionWriter, patch_of, shared, streamed


def test_a_streamed_line_is_the_message_bokeh_makes_for_the_same_stream():
    source = shared(ColumnDataSource({"t": [1.0], "y": [2.0]}), "pw-line-3-1")
    document = Document()
    document.add_root(source)
    document.models.flush_synced()
    events = []
    document.on_change(events.append)
    new = {"t": [1000.0, 2000.0], "y": [5.5, math.nan]}  # an unknown value stays unknown in the browser
    source.stream(new, rollover=720)
    bokeh = Protocol().create("PATCH-DOC", events)

    ours = patch_of([streamed("pw-line-3-1", new, 720), streamed("pw-line-3-2", {"t": [], "y": []}, 720)])

    header, metadata, content = (json.loads(data) for data, _binary in ours.parts)
    assert header["msgtype"] == "PATCH-DOC" and metadata == {}
    assert content["events"][0] == json.loads(bokeh.content_json)["events"][0]
    assert content["events"][1]["model"] == {"id": "pw-line-3-2"}
    assert all(not binary for _data, binary in ours.parts)


class _Socket:
    """What SessionWriter uses of Bokeh's WSHandler: its write lock and tornado's websocket connection."""

    def __init__(self) -> None:
        self.write_lock = Lock()
        self.written: list[bytes] = []
        stream = SimpleNamespace(write=self.written.append, _write_buffer_size=0)
        self.ws_connection = SimpleNamespace(_compressor=None, mask_outgoing=False, stream=stream)


class _Document:
    """What SessionWriter uses of a session's document: its session's connections."""

    def __init__(self, *sockets: _Socket) -> None:
        connections = [SimpleNamespace(_socket=socket) for socket in sockets]
        session = SimpleNamespace(destroyed=False, _subscribed_connections=connections)
        self.session_context = SimpleNamespace(_session=session)


_document = _Document


def test_a_delta_a_session_cannot_take_at_once_is_dropped_and_said_so_never_merged():
    async def scenario() -> None:
        writer = SessionWriter()
        idle, slow, busy = _Socket(), _Socket(), _Socket()
        slow.ws_connection.stream._write_buffer_size = SessionWriter.BACKLOG_BYTES + 1
        dropped: list[str] = []
        first, second = patch_of([streamed("a", {"t": [1.0], "y": [1.0]}, 9)]), patch_of([])

        writer.send(_document(idle, slow), first, on_dropped=lambda: dropped.append("slow"))
        assert idle.written == [first.wire] and slow.written == [] and dropped == ["slow"]

        # Behind a write of the session's own, a delta waits for it; a second one while it waits is dropped.
        await busy.write_lock.acquire()
        writer.send(_document(busy), first, on_dropped=lambda: dropped.append("first"))
        writer.send(_document(busy), second, on_dropped=lambda: dropped.append("second"))
        assert dropped == ["slow", "second"]
        busy.write_lock.release()
        for _ in range(10):
            await asyncio.sleep(0)
        assert busy.written == [first.wire]

        # A whole-state message replaces a waiting delta, which is then dropped and said so.
        await busy.write_lock.acquire()
        writer.send(_document(busy), first, on_dropped=lambda: dropped.append("replaced"))
        writer.send(_document(busy), second)
        assert dropped[-1] == "replaced"
        busy.write_lock.release()
        for _ in range(10):
            await asyncio.sleep(0)
        assert busy.written == [first.wire, second.wire]

    asyncio.run(scenario())


def test_a_shared_message_waits_for_the_messages_panel_holds_back_for_the_session():
    from panel.io import document as panel_document

    async def scenario() -> None:
        writer = SessionWriter()
        socket = _Socket()
        document = _document(socket)
        own, shared_points = patch_of([streamed("a", {"t": [1.0], "y": [1.0]}, 9)]), patch_of([])
        panel_document._WRITE_BLOCK[document] = True  # a hold() ended while the socket was busy: Panel writes later
        writer.send(document, shared_points, on_dropped=lambda: None)
        for _ in range(3):
            await asyncio.sleep(0.01)
        assert socket.written == []
        socket.written.append(own.wire)  # Panel's turn: it writes what it held back, then lets go
        del panel_document._WRITE_BLOCK[document]
        for _ in range(20):
            await asyncio.sleep(0.01)
            if len(socket.written) == 2:
                break
        assert socket.written == [own.wire, shared_points.wire]

    asyncio.run(scenario())

"""One Bokeh update, serialized once, written to many sessions.

Bokeh turns each change of each session's document into a PATCH-DOC message of its own: with a hundred
sessions showing the same rows, the same change is serialized a hundred times (a few milliseconds each, most of
it spent indexing the session's whole document), on the one thread that serves them all. A model that shows
the same thing in every session can have the same id in each of them (ids need only be unique within a
document, and every session has its own). Then one PATCH-DOC message, made once on a small document that holds
only copies of those models, is valid in every session, and its bytes are written to each session's websocket
as they are.

The sessions' own copies of the shared models on the server do not see these updates (keeping them in step
would cost what sharing saves), so an update a session makes on its own must not depend on their old values:
`ColumnDataSource.data.update(...)` is sent whatever the old value was, and `redraw`'s tags never repeat.
"""

from __future__ import annotations

import asyncio
import functools
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from bokeh.core.json_encoder import serialize_json
from bokeh.core.serialization import Serializer
from bokeh.document import Document
from bokeh.model import Model
from bokeh.protocol import Protocol
from bokeh.protocol.messages.patch_doc import patch_doc
from panel.io import document as _panel_document
from panel.io.state import state as panel_state
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError

_protocol = Protocol()
M = TypeVar("M", bound=Model)


class SharedModels:
    """Copies of models that every session holds under the same ids, in a document of their own: `patch` turns a
    change of them into one message for all those sessions."""

    def __init__(self, *models: Model) -> None:
        self._document = Document()
        for model in models:
            self._document.add_root(model)
        self._document.models.flush_synced()  # the sessions have these models: a patch refers to them by id only
        self._events: list = []
        self._document.on_change(self._changed)

    def _changed(self, event) -> None:
        self._events.append(event)

    def patch(self, change: Callable[[], None]) -> Frames | None:
        """Make the change on the copies; the PATCH-DOC message that makes it in every session, as the websocket
        frames Bokeh would write (None: no change)."""
        self._events.clear()
        change()
        if not self._events:
            return None
        message = _protocol.create("PATCH-DOC", list(self._events))
        parts = [(text.encode(), False) for text in (message.header_json, message.metadata_json, message.content_json)]
        for buffer in message.buffers:  # as Message.write_buffers: a header, then the bytes
            parts += [(json.dumps(buffer.ref).encode(), False), (buffer.to_bytes(), True)]
        return Frames(tuple(parts))


def streamed(model_id: str, data: dict[str, list], rollover: int | None) -> str:
    """A ColumnsStreamed event as Bokeh's serializer writes it (e.g. NaN as a tagged number), for `patch_of`: what
    `ColumnDataSource.stream(data, rollover)` on the model with that id would send. Columns are plain lists: no
    binary buffers."""
    return serialize_json({"kind": "ColumnsStreamed", "model": {"id": model_id}, "attr": "data",
                           "data": Serializer().encode(data), "rollover": rollover})


def patch_of(events: list[str]) -> Frames:
    """One PATCH-DOC message of events serialized on their own (`streamed`), as the frames Bokeh writes."""
    return Frames(((json.dumps(patch_doc.create_header()).encode(), False), (b"{}", False),
                   (('{"events":[' + ",".join(events) + "]}").encode(), False)))


@dataclass(frozen=True)
class Frames:
    """One Bokeh message as the websocket frames Bokeh writes for it (bytes, whether binary; else UTF-8 text)."""

    parts: tuple[tuple[bytes, bool], ...]

    @functools.cached_property
    def wire(self) -> bytes:
        """The frames as a server sends them (unmasked, uncompressed: RFC 6455 5.2), made once for every socket."""
        wire = bytearray()
        for data, binary in self.parts:
            wire.append(0x80 | (0x2 if binary else 0x1))  # FIN and the opcode
            size = len(data)
            wire += bytes([size]) if size < 126 else (
                struct.pack("!BH", 126, size) if size <= 0xFFFF else struct.pack("!BQ", 127, size))
            wire += data
        return bytes(wire)


class SessionWriter:
    """Writes shared messages to sessions' websockets, on the server's event loop.

    A message goes into the socket's buffer at once when nobody is writing to it (no task, no waiting: a hundred
    sockets took about 2 ms an update in the change-feed benchmark); behind a write of the session's own, it
    waits for that one. A session still behind (a slow network, a full buffer) gets only the newest message when
    it can take one, so a slow viewer holds at most `BACKLOG_BYTES` and one message. A message that carries the
    whole state of what it changes (e.g. a whole page of rows) can stand in for the ones before it; one that
    carries a delta (points to append) cannot: it is sent with `on_dropped`, which is called instead when the
    message is not written (its session must then catch up on its own).
    """

    BACKLOG_BYTES = 1 << 20

    def __init__(self) -> None:
        self._waiting: dict[object, tuple[Frames, Callable[[], None] | None]] = {}
        """The newest message of each socket that could not take it at once, and what to call if it never goes."""
        self._tasks: set[asyncio.Task] = set()

    def send(self, document: Document, message: Frames, on_dropped: Callable[[], None] | None = None) -> None:
        for socket in _websockets(document):
            waiting = self._waiting.get(socket)
            if waiting is not None:  # a write of its own or a backlog is ahead
                if on_dropped is not None:
                    on_dropped()
                    continue
                self._waiting[socket] = (message, None)  # this one replaces the waiting one
                if waiting[1] is not None:
                    waiting[1]()
                continue
            lock = socket.write_lock.acquire()
            if not lock.done() or _panel_holds_writes(document):  # the session is writing: follow its write
                self._waiting[socket] = (message, on_dropped)
                self._spawn(self._write_after(socket, lock, document))
                continue
            try:
                if _backlog(socket) <= self.BACKLOG_BYTES:
                    _write(socket, message)
                elif on_dropped is not None:
                    on_dropped()
                else:
                    self._waiting[socket] = (message, None)
                    self._spawn(self._write_when_drained(socket, document))
            finally:
                socket.write_lock.release()

    def _spawn(self, work) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_after(self, socket, lock, document: Document | None = None) -> None:
        await lock
        while document is not None and _panel_holds_writes(document) and socket.ws_connection is not None:
            socket.write_lock.release()  # Panel writes what it holds back only while nobody holds the lock
            await asyncio.sleep(0.005)
            await socket.write_lock.acquire()
        try:
            waiting = self._waiting.pop(socket, None)
            if waiting is not None:
                _write(socket, waiting[0])
        finally:
            socket.write_lock.release()

    async def _write_when_drained(self, socket, document: Document) -> None:
        while _backlog(socket) > self.BACKLOG_BYTES and socket.ws_connection is not None:
            await asyncio.sleep(0.1)
        await self._write_after(socket, socket.write_lock.acquire(), document)


def _write(socket, message: Frames) -> None:
    # The frames in one go while the socket's write lock is held, as Bokeh's own Message.send writes them.
    connection = socket.ws_connection
    try:
        if getattr(connection, "_compressor", True) is None and getattr(connection, "mask_outgoing", True) is False:
            connection.stream.write(message.wire)  # tornado's own frames, but built once for every socket
        else:  # compression negotiated (each socket compresses its own way), or another websocket implementation
            for data, binary in message.parts:
                connection.write_message(data, binary=binary)
    except (AttributeError, WebSocketClosedError, StreamClosedError):  # closing: Bokeh ends the session
        pass


def _panel_holds_writes(document) -> bool:
    """Whether Panel holds messages of the session's own back, to write them on a later turn of the loop (it does
    when the socket was busy as a `hold()` ended): a shared message must not overtake them (a line's points would
    arrive out of order). Panel keeps them in private maps of panel.io.document; if those are gone, nothing is held
    back that way."""
    return any(document in getattr(_panel_document, name, ()) for name in ("_WRITE_BLOCK", "_WRITE_MSGS"))


def _backlog(socket) -> int:
    """Bytes the socket has not sent yet (tornado keeps them in its stream)."""
    stream = getattr(socket.ws_connection, "stream", None)
    return getattr(stream, "_write_buffer_size", 0)


def shared(model: M, id: str) -> M:
    """The model, under an id it has in every session. Bokeh gives an id of one's choosing only to models its
    deserializer makes (`id=` leaves the properties unset), so this takes a new model, before any document has it."""
    if model.document is not None:
        raise ValueError(f"{model} is in a document already: its id can no longer change")
    model._id = id
    return model


def in_server_session(document: Document | None) -> bool:
    """Whether the document is a browser session's on a Bokeh server (the only kind with websockets to write to)."""
    context = getattr(document, "session_context", None)
    return context is not None and getattr(context, "_session", None) is not None


def writes_at_once(document: Document | None) -> bool:
    """Whether what the session changes now reaches its socket before this turn of the event loop ends, so a shared
    message sent later cannot overtake it: Panel writes a `hold()`'s changes as it ends (or holds them back where
    `SessionWriter` waits for them) once the page has loaded; before that (e.g. in an `onload` callback) Bokeh
    writes them on a later turn."""
    return document is not None and panel_state.curdoc is document and panel_state.loaded


def sent_to_browser(model: Model) -> bool:
    """Whether the model went out in a message of its session's own (written, or held back where SessionWriter waits
    for it): a shared update that refers to it cannot reach the browser before the model itself. Bokeh keeps the
    models no message has carried yet in a private set of the document (DocumentModelManager._new_models)."""
    document = model.document
    return document is not None and model not in getattr(document.models, "_new_models", ())


def _websockets(document: Document) -> list:
    # Bokeh keeps a session's connections private (ServerSession._subscribed_connections, each one's _socket, the
    # WSHandler whose send_message takes the connection's write lock): the one place pipewatch reaches into them.
    session = getattr(document.session_context, "_session", None)
    if session is None or session.destroyed:
        return []
    return [connection._socket for connection in list(session._subscribed_connections)]

"""Headless viewers of a Bokeh server app, and what a benchmark reads about a server process.

A viewer speaks the Bokeh websocket protocol as a browser does (a session token, PULL-DOC-REQ,
then Panel's `document_ready` event, which runs the page's `onload` callbacks), renders nothing,
and counts what the server sends it: PATCH-DOC messages, the events in them by kind, the points
streamed into data sources and the bytes. Many viewers share one event loop in the benchmark's
process. Used by bench_change_feed.py and bench_sessions.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bokeh.util.token import generate_jwt_token, generate_session_id
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


class BokehViewer:
    """One session of the app at ws://127.0.0.1:PORT/APP/ws, counting what it receives."""

    def __init__(self, port: int, app: str = "apps", on_content: Callable[[float, str], None] | None = None,
                 arguments: dict[str, str] | None = None) -> None:
        """arguments: the page URL's query (`?page=pipeline&...`), carried in the session token as a browser's is."""
        self.port, self.app = port, app
        self.arguments = {name: [value.encode()] for name, value in (arguments or {}).items()}
        self.on_content = on_content
        """Called with (arrival time, content JSON text) of every message after the document."""
        self.pulled = asyncio.Event()
        """Set when the server sent the session's document (its views are built)."""
        self.frames = 0
        self.patches = 0
        """PATCH-DOC messages received."""
        self.events: Counter[str] = Counter()
        """Events of those messages by kind (ColumnsStreamed, ModelChanged, ...)."""
        self.points = 0
        """Points streamed (rows of ColumnsStreamed events, summed over events)."""
        self.sources: set[str] = set()
        """Ids of the data sources streamed to."""
        self.bytes = 0
        """Bytes of every frame received after the document (header, content and binary buffers)."""
        self._connection = None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Open the session and receive until `stop` is set (or close() is called, or the server closes)."""
        # The token must outlive the wait for a busy server to take the connection (Bokeh's default is 300 s).
        token = generate_jwt_token(generate_session_id(), expiration=3600,
                                   extra_payload={"headers": {}, "cookies": {}, "arguments": self.arguments})
        # A busy server can take minutes to accept a hundred sessions at once: no client-side timeout.
        request = HTTPRequest(f"ws://127.0.0.1:{self.port}/{self.app}/ws", connect_timeout=3600, request_timeout=3600)
        self._connection = connection = await websocket_connect(request, subprotocols=["bokeh", token],
                                                                max_message_size=1 << 30)
        closer = asyncio.create_task(self._close_on(stop)) if stop is not None else None
        try:
            header = await self._read_message(connection)
            if header is None or header[0].get("msgtype") != "ACK":
                raise RuntimeError(f"expected the server's ACK, got {header}")
            await self._send(connection, "PULL-DOC-REQ", {})
            await self._send(connection, "PATCH-DOC", {"events": [{
                "kind": "MessageSent", "msg_type": "bokeh_event",
                "msg_data": {"type": "event", "name": "document_ready", "values": {}}}]})
            while True:
                message = await self._read_message(connection)
                if message is None:
                    break
                header, content, size = message
                msgtype = header.get("msgtype")
                if msgtype == "PULL-DOC-REPLY":
                    self.pulled.set()
                    continue
                self.bytes += size
                if self.on_content is not None:
                    self.on_content(time.time(), content)
                if msgtype == "PATCH-DOC":
                    self._count(content)
        finally:
            if closer is not None:
                closer.cancel()
            connection.close()

    def close(self) -> None:
        """Close the websocket, as a browser tab that is closed does."""
        if self._connection is not None:
            self._connection.close()

    def counters(self) -> dict[str, object]:
        return {"patches": self.patches, "events": Counter(self.events), "points": self.points,
                "bytes": self.bytes, "sources": len(self.sources)}

    async def _close_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self.close()

    async def _read_message(self, connection) -> tuple[dict, str, int] | None:
        """One whole message: header, metadata and content frames, then its buffers (a text header and a
        binary payload each). Returns (header, content text, bytes) or None once the connection closed."""
        frames = []
        for _ in range(3):
            frame = await connection.read_message()
            if frame is None:
                return None
            frames.append(frame)
        self.frames += 3
        header = json.loads(frames[0])
        size = sum(len(f) for f in frames)
        for _ in range(2 * header.get("num_buffers", 0)):
            frame = await connection.read_message()
            if frame is None:
                return None
            self.frames += 1
            size += len(frame)
        return header, frames[2], size

    def _count(self, content: str) -> None:
        self.patches += 1
        for event in json.loads(content).get("events", ()):
            kind = event.get("kind", "?")
            self.events[kind] += 1
            if kind == "ColumnsStreamed":
                self.sources.add(event.get("model", {}).get("id", "?"))
                self.points += _rows(event.get("data", {}))

    @staticmethod
    async def _send(connection, msgtype: str, content: dict) -> None:
        header = {"msgid": generate_session_id()[:12], "msgtype": msgtype}
        for part in (header, {}, content):
            await connection.write_message(json.dumps(part))


def _rows(data: object) -> int:
    """Rows of a streamed column dict: the length of its first column (a list or a serialized ndarray)."""
    entries = data.get("entries") if isinstance(data, dict) and data.get("type") == "map" else None
    columns = [value for _, value in entries] if entries is not None else (
        list(data.values()) if isinstance(data, dict) else [])
    if not columns:
        return 0
    first = columns[0]
    if isinstance(first, list):
        return len(first)
    if isinstance(first, dict) and first.get("type") == "ndarray":
        shape = first.get("shape") or [0]
        return int(shape[0])
    return 0


# -- the server process, from /proc -----------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """CPU time the process has used (user + system, all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime: fields 14 and 15 of stat

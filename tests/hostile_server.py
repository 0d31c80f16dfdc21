"""A pipewatch agent that cannot be trusted, on a loopback port: each path answers what the test sets (wrong
types, a gzip bomb, ...), or what a real Api over a real store answers (gzipped as the exporter does)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Answer = tuple[int, dict[str, str], bytes]


def gzip_bomb(size: int) -> bytes:
    """A JSON object of `size` bytes, gzipped: ~1,000 times smaller than what it claims once inflated."""
    return gzip.compress(b'{"agent": {}, "pad": "' + b"0" * (size - 24) + b'"}', 9)


class HostileAgent:
    def __init__(self) -> None:
        self.answers: dict[str, Callable[[str], Answer]] = {}
        """path -> the answer to a request with this query string."""
        self.requests: list[tuple[str, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path, _, query = self.path.partition("?")
                owner.requests.append((path, dict(self.headers)))
                answer = owner.answers.get(path)
                status, headers, body = answer(query) if answer else (404, {}, b'{"error": "no such path"}')
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def serve_api(self, api, path: str) -> None:
        """`path` answered by a real exporters.api.Api, gzipped as pipewatch's exporter does."""
        def answer(query: str) -> Answer:
            status, body = api.handle(path, query)
            return status, {"Content-Encoding": "gzip"}, gzip.compress(body, 1)

        self.answers[path] = answer

    def __enter__(self) -> HostileAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

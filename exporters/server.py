"""The agent's HTTP endpoint: /metrics for Prometheus, the JSON API (/api/v1, exporters/api.py) for programs and
other agents, /healthz and /readyz for service managers.

It runs on its own threads, so a slow scrape never stalls the collectors' event loop, and a
stalled event loop is still reported (/healthz) instead of hiding behind a frozen /metrics.
Basic auth and TLS protect /metrics and /api/v1; the probes stay open (they reveal no measurement), so a
load balancer or kubelet can call them without credentials.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from exporters.api import PREFIX as API_PREFIX
from exporters.api import Api
from exporters.prometheus import CONTENT_TYPE, Exposition
from monitoring.config import BasicAuth, ExporterTls
from monitoring.store import Store

log = logging.getLogger(__name__)

Liveness = Callable[[], str | None]
"""None while the process works; otherwise why it does not (e.g. the event loop is blocked)."""

_GZIP_LEVEL = 1
"""A 100k-series exposition is ~15 MB; level 1 shrinks it ~8x in a fraction of level 6's time."""


def readiness(store: Store) -> tuple[bool, str]:
    """Ready once every collector has finished its first run and at least one run succeeded.

    Before that, /metrics would be missing whole sources. A source that is down does not hold
    readiness back once it has been tried: its collector is reported down on /metrics, which is
    what the scraper needs to see.
    """
    health = store.health()
    pending = sorted(f"{pipeline}/{collector}" for (pipeline, collector), h in health.items() if h.runs == 0)
    succeeded = sum(1 for h in health.values() if h.last_success is not None)
    if pending:
        return False, f"first run not finished: {', '.join(pending)}"
    if health and not succeeded:
        return False, "no collector has succeeded yet"
    return True, f"{succeeded} of {len(health)} collectors succeeded at least once"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: Store, credentials: bytes | None,
                 liveness: Liveness | None, tls: ssl.SSLContext | None, started_at: float) -> None:
        super().__init__(address, _Handler)
        self.exposition = Exposition(store)
        self.api = Api(store, started_at)
        self.store = store
        self.credentials = credentials
        self.liveness = liveness
        if tls is not None:
            # The handshake runs on the request's thread (finish_request), not on the accepting one.
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def finish_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(_Handler.timeout)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
                return
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 30
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms wait for a delayed ACK

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        path, _, query = self.path.partition("?")
        if path == "/metrics" or path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            if not self._authorized():
                self._send(HTTPStatus.UNAUTHORIZED, b"authentication required\n", "text/plain; charset=utf-8",
                           {"WWW-Authenticate": 'Basic realm="pipewatch", charset="UTF-8"'})
                return
            if path == "/metrics":
                status, body, content_type = HTTPStatus.OK, self.server.exposition.render(), CONTENT_TYPE
            else:
                status, body = self.server.api.handle(path, query)
                content_type = "application/json"
            headers = {"Cache-Control": "no-store"} if content_type == "application/json" else {}
            if len(body) > 1024 and "gzip" in self.headers.get("Accept-Encoding", ""):
                body = gzip.compress(body, compresslevel=_GZIP_LEVEL)
                headers["Content-Encoding"] = "gzip"
            self._send(status, body, content_type, headers)
        elif path == "/healthz":
            problem = self.server.liveness() if self.server.liveness else None
            self._json(HTTPStatus.OK if problem is None else HTTPStatus.SERVICE_UNAVAILABLE,
                       {"status": "ok" if problem is None else "failing", "reason": problem or "serving"})
        elif path == "/readyz":
            ready, reason = readiness(self.server.store)
            self._json(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
                       {"status": "ready" if ready else "not ready", "reason": reason})
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found: try /metrics, /api/v1/pipelines, /healthz or /readyz\n",
                       "text/plain; charset=utf-8")

    def _authorized(self) -> bool:
        expected = self.server.credentials
        if expected is None:
            return True
        scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except ValueError:
            return False
        return hmac.compare_digest(given, expected)

    def _json(self, status: HTTPStatus, payload: dict[str, str]) -> None:
        self._send(status, json.dumps(payload).encode() + b"\n", "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server interface
        log.debug("%s %s", self.address_string(), format % args)


@dataclass
class ExporterServer:
    host: str
    port: int
    scheme: str
    _server: _Server
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def tls_context(tls: ExporterTls) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        if tls.client_ca_file is not None:  # mutual TLS: only clients with a certificate signed by this CA
            context.load_verify_locations(str(tls.client_ca_file))
            context.verify_mode = ssl.CERT_REQUIRED
    except ssl.SSLError as exc:
        raise OSError(f"exporter.tls: cannot use cert_file {tls.cert_file}, key_file {tls.key_file}"
                      f"{f', client_ca_file {tls.client_ca_file}' if tls.client_ca_file else ''}: {exc.reason or exc}") from None
    return context


def start_exporter(store: Store, host: str, port: int, *, basic_auth: BasicAuth | None = None,
                   tls: ExporterTls | None = None, liveness: Liveness | None = None,
                   started_at: float | None = None) -> ExporterServer:
    """Serve the store on host:port (port 0 picks a free port); raises OSError naming host:port."""
    credentials = None
    if basic_auth is not None:
        credentials = f"{basic_auth.username}:{basic_auth.password.get_secret_value()}".encode()
    context = tls_context(tls) if tls else None
    try:
        server = _Server((host, port), store, credentials, liveness, context,
                         time.time() if started_at is None else started_at)
    except OSError as exc:
        raise OSError(exc.errno, f"exporter cannot listen on {host}:{port}: {exc.strerror}") from None
    thread = threading.Thread(target=server.serve_forever, name="pipewatch-exporter", daemon=True)
    thread.start()
    actual_port = server.server_address[1]
    scheme = "https" if tls else "http"
    log.info("exporter serving %s://%s:%d/metrics", scheme, host, actual_port)
    return ExporterServer(host, actual_port, scheme, server, thread)

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
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from exporters.api import PREFIX as API_PREFIX
from exporters.api import PROTECTED_PATHS, STATE_PATH, Api
from exporters.profilemesh import PREFIX as PROFILEMESH_PREFIX
from exporters.profilemesh import ProfileMeshApi
from exporters.prometheus import CONTENT_TYPE, Exposition
from monitoring.alerts.engine import AlertEngine
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


HEADER_TIMEOUT = 10.0
"""Seconds a client has to send its request line and headers (from connecting, or from the previous answer on
a kept-alive connection): a client that dribbles them (slowloris) is cut off, and an idle connection frees its
thread after this long too."""
MAX_CONNECTIONS = 64
"""Connections served at once, each on its own thread. Over it a connection gets a 503 at once (TLS ones are
closed: answering would need a handshake on the accepting thread)."""
MAX_STATE_ANSWERS = 2
"""/api/v1/state answers built at once (each may be hundreds of MB): over it, 503 with Retry-After."""
RETRY_AFTER = "1"
_LINGER = 1.0
"""A refused connection is closed this long after its 503, so the client reads the answer instead of a reset."""
_MAX_LINGERING = 256
_BUSY_BODY = b'{"status": "error", "error": "too many connections at once: try again after Retry-After"}\n'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: %s\r\n"
         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s") % (RETRY_AFTER.encode(), len(_BUSY_BODY), _BUSY_BODY)
PROBES = ("/healthz", "/readyz")
_ALLOWED_ALWAYS = ("localhost", "127.0.0.1", "::1")


def default_allowed_hosts(host: str, also: Iterable[str] = ()) -> list[str]:
    """exporter.allowed_hosts when not configured: the listening address, loopback names, and this machine's
    name when listening on every interface (plus `also`, e.g. the host of the config's mirror.url)."""
    names = [host, *_ALLOWED_ALWAYS]
    if host in ("", "0.0.0.0", "::"):
        hostname = socket.gethostname()
        names += [hostname, hostname.split(".")[0]]
    names += list(also)
    return sorted({normal_host(name) for name in names if name and name not in ("0.0.0.0", "::")})


def normal_host(name: str) -> str:
    return name.strip().strip("[]").rstrip(".").lower()


def _host_name(header: str) -> str | None:
    """The name of a Host header ("name", "name:port", "[v6]:port"), or None when it is malformed."""
    header = header.strip()
    if header.startswith("["):
        name, sep, rest = header[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
        return name.lower()
    name, _, port = header.partition(":")
    if (port and not (port.isascii() and port.isdigit())) or not name or not all(
            c.isascii() and (c.isalnum() or c in "-._") for c in name):
        return None
    return normal_host(name)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class _Deadlines:
    """One thread that cuts connections past their deadline (shutdown: a read blocked on them returns at once),
    and closes refused connections once they lingered."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[socket.socket, tuple[float, bool]] = {}
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="pipewatch-exporter-deadlines", daemon=True)
        self._thread.start()

    def arm(self, sock: socket.socket, seconds: float, close: bool = False) -> None:
        with self._cond:
            self._due[sock] = (time.monotonic() + seconds, close)
            self._cond.notify()

    def disarm(self, sock: socket.socket) -> bool:
        """False when the deadline had already passed (the connection is cut)."""
        with self._cond:
            return self._due.pop(sock, None) is not None

    def lingering(self) -> int:
        with self._cond:
            return sum(1 for _, close in self._due.values() if close)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                for sock, (due, close) in list(self._due.items()):
                    if due <= now:
                        del self._due[sock]
                        try:
                            sock.close() if close else socket.socket.shutdown(sock, socket.SHUT_RDWR)
                        except OSError:
                            pass
                due = min((d for d, _ in self._due.values()), default=None)
                self._cond.wait(None if due is None else max(0.0, due - now))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the kernel's backlog: connections waiting for the accepting thread

    def __init__(self, address: tuple[str, int], store: Store, credentials: bytes | None,
                 liveness: Liveness | None, tls: ssl.SSLContext | None, started_at: float, *,
                 api_credentials: bytes | None = None, allowed_hosts: Iterable[str] = (),
                 max_connections: int = MAX_CONNECTIONS, max_state_answers: int = MAX_STATE_ANSWERS,
                 header_timeout: float = HEADER_TIMEOUT, alerts: AlertEngine | None = None) -> None:
        self.deadlines = _Deadlines()  # before binding: a failed bind calls server_close, which stops it
        super().__init__(address, _Handler)
        self.exposition = Exposition(store)
        self.api = Api(store, started_at, scrape_auth=credentials is not None, api_auth=api_credentials is not None,
                       alerts=alerts)
        self.profilemesh = ProfileMeshApi(store)
        self.store = store
        self.credentials = credentials
        self.api_credentials = api_credentials
        self.liveness = liveness
        self.allowed_hosts = frozenset(normal_host(h) for h in allowed_hosts)
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.connections = threading.BoundedSemaphore(max_connections)
        self.state_answers = threading.BoundedSemaphore(max_state_answers)
        if tls is not None:
            # The handshake runs on the request's thread (finish_request), not on the accepting one.
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        if self.connections.acquire(blocking=False):
            try:
                super().process_request(request, client_address)
            except BaseException:  # no thread: give the slot back
                self.connections.release()
                raise
            return
        log.warning("exporter: %d connections at once, refusing %s", self.max_connections, client_address[0])
        self._refuse(request)

    def _refuse(self, request: socket.socket) -> None:
        """On the accepting thread, so it must not block: a canned 503 into the empty send buffer."""
        if isinstance(request, ssl.SSLSocket) or self.deadlines.lingering() >= _MAX_LINGERING:
            request.close()
            return
        try:
            request.setblocking(False)
            try:
                while request.recv(65536):  # what already arrived: unread data would turn the close into a reset
                    pass
            except (BlockingIOError, InterruptedError):
                pass
            request.send(_BUSY)
            request.shutdown(socket.SHUT_WR)
        except OSError:
            request.close()
            return
        self.deadlines.arm(request, _LINGER, close=True)

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.deadlines.disarm(request)
            self.connections.release()

    def finish_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        self.deadlines.arm(request, self.header_timeout)  # the TLS handshake counts against it too
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(_Handler.timeout)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                log.debug("TLS handshake with %s failed: %s", client_address[0], exc)
                return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        # A client that went away mid-answer is routine, not a traceback on stderr.
        log.debug("exporter: connection from %s ended with an error", client_address[0], exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        self.deadlines.stop()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 30
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # errors about a malformed request line still get a status line and headers
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms wait for a delayed ACK
    _served = 0

    def handle_one_request(self) -> None:
        # BaseHTTPRequestHandler's, with the header deadline, JSON errors, and 405 for methods other than GET/HEAD.
        deadlines, sock = self.server.deadlines, self.connection
        if self._served:
            deadlines.arm(sock, self.server.header_timeout)
        try:
            self.raw_requestline = self.rfile.readline(65537)
            line = self.raw_requestline
            if not line or not line.endswith(b"\n") and len(line) <= 65536:
                self.close_connection = True  # closed, or cut off by the deadline mid-line
                return
            if len(line) > 65536:
                self._overlong()
                return
            parsed = self.parse_request()
            if not deadlines.disarm(sock):  # the headers did not all arrive in time: the connection is cut
                self.close_connection = True
                return
            if not parsed:
                return
            self._served += 1
            if self.headers.get("Content-Length", "0").strip() not in ("", "0") or "Transfer-Encoding" in self.headers:
                self.close_connection = True  # a GET's body is never read: it must not be taken for the next request
            if self.command in ("GET", "HEAD"):
                self._get()
            else:
                self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command[:20]} is not allowed: only GET and "
                                                           f"HEAD", {"Allow": "GET, HEAD"})
            self.wfile.flush()
        except TimeoutError as exc:
            log.debug("exporter: request from %s timed out: %r", self.client_address[0], exc)
            self.close_connection = True
        except OSError as exc:  # the client went away, or the deadline cut the connection
            log.debug("exporter: connection from %s failed: %r", self.client_address[0], exc)
            self.close_connection = True

    def _overlong(self) -> None:
        """A 400 naming the parameter the URL was cut in; then the rest of the request is read (bounded), since
        closing with unread data resets the connection and the client might never see the answer."""
        self.requestline = self.request_version = ""
        self.command = "GET"
        query = self.raw_requestline.decode("latin-1").partition("?")[2]
        parameter = query.rpartition("&")[2].partition("=")[0][:60] if "=" in query.rpartition("&")[2] else None
        message = "the request line is longer than 65,536 bytes"
        payload = {"status": "error", "error": f"{parameter}: {message}" if parameter else message}
        if parameter:
            payload["parameter"] = parameter
        self.close_connection = True
        self._send(HTTPStatus.BAD_REQUEST, json.dumps(payload).encode() + b"\n", "application/json",
                   {"Connection": "close"})
        self.wfile.flush()
        left, tail = 1 << 20, b""
        while left > 0 and b"\r\n\r\n" not in tail:
            chunk = self.rfile.read1(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)
            tail = (tail + chunk)[-4096:]

    def _get(self) -> None:
        try:
            self._answer()
        except Exception:  # a bug must still answer, never drop the connection
            log.exception("exporter: GET %s failed", _shown(self.path))
            self.close_connection = True
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error: see the agent's log")

    def _answer(self) -> None:
        path, _, query = self.path.partition("?")
        if path in PROBES:
            self._probe(path)
            return
        profilemesh = path == PROFILEMESH_PREFIX or path.startswith(PROFILEMESH_PREFIX + "/")
        api = path == API_PREFIX or path.startswith(API_PREFIX + "/") or profilemesh
        if path != "/metrics" and not api:
            self._send(HTTPStatus.NOT_FOUND, b"not found: try /metrics, /api/v1/pipelines, "
                                             b"/profilemesh/<pipeline>/api/runs, /healthz or /readyz\n",
                       "text/plain; charset=utf-8")
            return
        refused = self._host_refused()
        if refused is not None:
            self._error(*refused)
            return
        if not self._authorized(path.rstrip("/") in PROTECTED_PATHS):
            challenge = {"WWW-Authenticate": 'Basic realm="pipewatch", charset="UTF-8"'}
            if api:
                self._error(HTTPStatus.UNAUTHORIZED, "authentication required", challenge)
            else:
                self._send(HTTPStatus.UNAUTHORIZED, b"authentication required\n", "text/plain; charset=utf-8",
                           challenge)
            return
        extra: dict[str, str] = {}
        if path == "/metrics":
            status, body, content_type = HTTPStatus.OK, self.server.exposition.render(), CONTENT_TYPE
        elif profilemesh:
            answer = self.server.profilemesh.handle(path, query)
            status, body, content_type, extra = answer.status, answer.body, answer.content_type, answer.headers
        elif path.rstrip("/") == STATE_PATH:
            if not self.server.state_answers.acquire(blocking=False):
                self._error(HTTPStatus.SERVICE_UNAVAILABLE, "too many /api/v1/state answers being built at once: "
                                                            "try again after Retry-After", {"Retry-After": RETRY_AFTER})
                return
            try:
                status, body = self.server.api.handle(path, query)
            finally:
                self.server.state_answers.release()
            content_type = "application/json"
        else:
            status, body = self.server.api.handle(path, query)
            content_type = "application/json"
        headers = {"Cache-Control": "no-store", **extra} if content_type != CONTENT_TYPE else {}
        if len(body) > 1024 and "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=_GZIP_LEVEL)
            headers["Content-Encoding"] = "gzip"
        self._send(status, body, content_type, headers)

    def _probe(self, path: str) -> None:
        if path == "/healthz":
            problem = self.server.liveness() if self.server.liveness else None
            self._json(HTTPStatus.OK if problem is None else HTTPStatus.SERVICE_UNAVAILABLE,
                       {"status": "ok" if problem is None else "failing", "reason": problem or "serving"})
        else:
            ready, reason = readiness(self.server.store)
            self._json(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
                       {"status": "ready" if ready else "not ready", "reason": reason})

    def _host_refused(self) -> tuple[HTTPStatus, str] | None:
        """DNS rebinding: a page of evil.example whose name now resolves to this host would send Host: evil.example.
        An IP address as Host cannot come from rebinding, so Prometheus may scrape by address."""
        given = self.headers.get_all("Host") or []
        if not given:
            return None  # HTTP/1.0 without Host: browsers always send one
        if len(given) > 1:
            return HTTPStatus.BAD_REQUEST, "more than one Host header"
        name = _host_name(given[0])
        if name is None:
            return HTTPStatus.BAD_REQUEST, f"Host: {_shown(given[0])!r} is not a host name with an optional port"
        if name in self.server.allowed_hosts or "*" in self.server.allowed_hosts or _is_ip(name):
            return None
        return (HTTPStatus.MISDIRECTED_REQUEST,
                f"Host: {_shown(name)!r} is not a name this agent answers to: add it to "
                f"exporter.allowed_hosts if clients reach the agent by this name")

    def _authorized(self, state: bool) -> bool:
        """The API credential opens everything; the scrape credential everything but the change-feed rows of
        /api/v1/state when an API credential is configured."""
        scrape, api = self.server.credentials, self.server.api_credentials
        expected = [c for c in ((api,) if state and api is not None else (scrape, api)) if c is not None]
        if state and api is None and scrape is None or not state and scrape is None:
            return True
        given = self._basic_credentials()
        # compare_digest against each, without stopping early, so timing does not tell which one nearly matched
        return given is not None and sum(hmac.compare_digest(given, c) for c in expected) > 0

    def _basic_credentials(self) -> bytes | None:
        scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            return base64.b64decode(encoded.strip(), validate=True)
        except ValueError:
            return None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own errors (bad request line, too many or too long headers) as JSON, not HTML.
        try:
            status = HTTPStatus(code)
        except ValueError:
            status = HTTPStatus.BAD_REQUEST
        self.close_connection = True
        self._error(status, message or status.phrase, {"Connection": "close"})

    def _error(self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"status": "error", "error": message}).encode() + b"\n"
        self._send(status, body, "application/json", headers)

    def _json(self, status: HTTPStatus, payload: dict[str, str]) -> None:
        self._send(status, json.dumps(payload).encode() + b"\n", "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server interface
        log.debug("%s %s", self.address_string(), format % args)


def _shown(text: str, width: int = 200) -> str:
    return text if len(text) <= width else text[:width] + "..."


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
        client_ca = f", client_ca_file {tls.client_ca_file}" if tls.client_ca_file else ""
        raise OSError(f"exporter.tls: cannot use cert_file {tls.cert_file}, key_file {tls.key_file}"
                      f"{client_ca}: {exc.reason or exc}") from None
    return context


def start_exporter(store: Store, host: str, port: int, *, basic_auth: BasicAuth | None = None,
                   api_auth: BasicAuth | None = None, allowed_hosts: Iterable[str] | None = None,
                   tls: ExporterTls | None = None, liveness: Liveness | None = None,
                   started_at: float | None = None, max_connections: int = MAX_CONNECTIONS,
                   max_state_answers: int = MAX_STATE_ANSWERS,
                   header_timeout: float = HEADER_TIMEOUT, alerts: AlertEngine | None = None) -> ExporterServer:
    """Serve the store on host:port (port 0 picks a free port); raises OSError naming host:port.

    allowed_hosts: the Host header names answered (None: default_allowed_hosts(host); "*": any)."""
    credentials = _credentials(basic_auth)
    context = tls_context(tls) if tls else None
    try:
        server = _Server((host, port), store, credentials, liveness, context,
                         time.time() if started_at is None else started_at, api_credentials=_credentials(api_auth),
                         allowed_hosts=default_allowed_hosts(host) if allowed_hosts is None else allowed_hosts,
                         max_connections=max_connections, max_state_answers=max_state_answers,
                         header_timeout=header_timeout, alerts=alerts)
    except OSError as exc:
        raise OSError(exc.errno, f"exporter cannot listen on {host}:{port}: {exc.strerror}") from None
    thread = threading.Thread(target=server.serve_forever, name="pipewatch-exporter", daemon=True)
    thread.start()
    actual_port = server.server_address[1]
    scheme = "https" if tls else "http"
    log.info("exporter serving %s://%s:%d/metrics", scheme, host, actual_port)
    return ExporterServer(host, actual_port, scheme, server, thread)


def _credentials(auth: BasicAuth | None) -> bytes | None:
    return None if auth is None else f"{auth.username}:{auth.password.get_secret_value()}".encode()

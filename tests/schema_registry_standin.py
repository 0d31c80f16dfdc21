"""A local stand-in for a Confluent-compatible schema registry, for tests only.

No registry server can be installed from the package registries this project uses, so the tests
run the collector against this one. It speaks the documented contract
(../shared/reference/schema-registry.md): content type application/vnd.schemaregistry.v1+json,
error bodies {"error_code": N, "message": ...} with the HTTP status of N's first three digits,
soft and permanent deletes, global and per-subject compatibility and mode, an optional path
prefix (Apicurio's /apis/ccompat/v7) and an optional Karapace /_health. Faults are switched on
by attributes: `delay` (seconds before every answer), `failure` ((status, error_code, message)
for every request), `path_failures` (the same for the requests of one path, without the prefix),
`credentials` (basic auth required), and `stop()` (connection refused).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from pipewatch.local.broker import free_port

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
LEVELS = {"NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"}
MODES = {"READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT"}


@dataclass
class _Version:
    version: int
    schema_id: int
    deleted: bool = False


class _Failure(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _not_found_subject(subject: str) -> _Failure:
    return _Failure(404, 40401, f"Subject '{subject}' not found.")


class SchemaRegistryStandIn:
    def __init__(self, prefix: str = "", karapace: bool = False, port: int | None = None) -> None:
        self.prefix = prefix.rstrip("/")
        self.karapace = karapace
        self.port = port or free_port()
        self.delay = 0.0
        self.failure: tuple[int, int, str] | None = None
        self.path_failures: dict[str, tuple[int, int, str]] = {}
        self.credentials: tuple[str, str] | None = None
        self.karapace_status = {"schema_registry_ready": True, "schema_registry_startup_time_sec": 1.5,
                                "schema_registry_reader_current_offset": 10,
                                "schema_registry_reader_highest_offset": 10,
                                "schema_registry_is_primary": True}
        self.requests: Counter[str] = Counter()
        """Requests answered, by method and path (without the prefix), e.g. 'GET /subjects'."""
        self.compatibility = "BACKWARD"
        self.mode = "READWRITE"
        self.subject_compatibility: dict[str, str] = {}
        self.subject_mode: dict[str, str] = {}
        self._subjects: dict[str, list[_Version]] = {}
        self._schemas: dict[int, tuple[str, str]] = {}
        """id -> (schema text, schema type)."""
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SchemaRegistryStandIn:
        standin = self

        class Handler(_Handler):
            registry = standin

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name=f"registry-standin-{self.port}", daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listening socket: new connections are refused until start() again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- direct set-up for tests (the same state the HTTP API changes) ---------------------------

    def register(self, subject: str, schema: str, schema_type: str = "AVRO") -> tuple[int, int]:
        """Register a schema under a subject; (version, schema id), as POST /subjects/{s}/versions."""
        with self._lock:
            return self._register(subject, schema, schema_type)

    def _register(self, subject: str, schema: str, schema_type: str) -> tuple[int, int]:
        if (self.subject_mode.get(subject) or self.mode) in ("READONLY", "READONLY_OVERRIDE"):
            raise _Failure(422, 42205, f"Subject {subject} is in read-only mode")
        schema_id = next((i for i, s in self._schemas.items() if s == (schema, schema_type)), None)
        if schema_id is None:
            schema_id = len(self._schemas) + 1
            self._schemas[schema_id] = (schema, schema_type)
        versions = self._subjects.setdefault(subject, [])
        live = [v for v in versions if not v.deleted]
        if live and live[-1].schema_id == schema_id:
            return live[-1].version, schema_id
        number = (versions[-1].version + 1) if versions else 1
        versions.append(_Version(number, schema_id))
        return number, schema_id

    # -- the contract -----------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: object) -> tuple[int, object]:
        flag = lambda name: query.get(name, ["false"])[0].lower() == "true"  # noqa: E731
        with self._lock:
            if path == "/" and method == "GET":
                return 200, {}
            if path == "/_health" and method == "GET" and self.karapace:
                ready = bool(self.karapace_status.get("schema_registry_ready"))
                return (200 if ready else 503), {"status": dict(self.karapace_status), "healthy": ready}
            if path == "/schemas/types" and method == "GET":
                return 200, ["AVRO", "JSON", "PROTOBUF"]
            if path == "/subjects" and method == "GET":
                prefix = query.get("subjectPrefix", [""])[0]
                deleted = flag("deleted")
                names = [name for name, versions in self._subjects.items()
                         if name.startswith(prefix) and any(deleted or not v.deleted for v in versions)]
                return 200, sorted(names)
            if match := re.fullmatch(r"/schemas/ids/(\d+)", path):
                schema = self._schemas.get(int(match.group(1)))
                if schema is None:
                    raise _Failure(404, 40403, "Schema not found")
                return 200, _schema_body(schema[0], schema[1])
            if match := re.fullmatch(r"/(config|mode)(?:/([^/]+))?", path):
                return self._setting(method, match.group(1), match.group(2) and unquote(match.group(2)), body,
                                     flag("defaultToGlobal"))
            if match := re.fullmatch(r"/subjects/([^/]+)", path):
                subject = unquote(match.group(1))
                if method == "DELETE":
                    return 200, self._delete(subject, flag("permanent"))
            if match := re.fullmatch(r"/subjects/([^/]+)/versions", path):
                subject = unquote(match.group(1))
                if method == "POST":
                    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
                        raise _Failure(422, 42201, "Invalid schema")
                    _, schema_id = self._register(subject, body["schema"], body.get("schemaType", "AVRO"))
                    return 200, {"id": schema_id}
                if method == "GET":
                    versions = [v.version for v in self._live(subject, include_deleted=flag("deleted"))]
                    return 200, versions
            if match := re.fullmatch(r"/subjects/([^/]+)/versions/(latest|-1|\d+)", path):
                subject, wanted = unquote(match.group(1)), match.group(2)
                if method == "GET":
                    versions = self._live(subject, include_deleted=flag("deleted"))
                    if wanted in ("latest", "-1"):
                        version = versions[-1]
                    else:
                        version = next((v for v in versions if v.version == int(wanted)), None)
                        if version is None:
                            raise _Failure(404, 40402, f"Version {wanted} not found.")
                    schema, schema_type = self._schemas[version.schema_id]
                    return 200, {"subject": subject, "version": version.version, "id": version.schema_id,
                                 **_schema_body(schema, schema_type)}
        raise _Failure(404, 404, "HTTP 404 Not Found")

    def _live(self, subject: str, include_deleted: bool = False) -> list[_Version]:
        versions = [v for v in self._subjects.get(subject, []) if include_deleted or not v.deleted]
        if not versions:
            raise _not_found_subject(subject)
        return versions

    def _delete(self, subject: str, permanent: bool) -> list[int]:
        versions = self._subjects.get(subject)
        if not versions:
            raise _not_found_subject(subject)
        if permanent:
            if any(not v.deleted for v in versions):
                raise _Failure(404, 40405,
                               f"Subject '{subject}' was not deleted first before being permanently deleted")
            del self._subjects[subject]
            return [v.version for v in versions]
        live = [v for v in versions if not v.deleted]
        if not live:
            raise _not_found_subject(subject)
        for version in live:
            version.deleted = True
        return [v.version for v in live]

    def _setting(self, method: str, kind: str, subject: str | None, body: object, default_to_global: bool):
        key, known = ("compatibilityLevel", LEVELS) if kind == "config" else ("mode", MODES)
        own = self.subject_compatibility if kind == "config" else self.subject_mode
        if method == "PUT":
            field = "compatibility" if kind == "config" else "mode"
            value = body.get(field) if isinstance(body, dict) else None
            if value not in known:
                raise _Failure(422, 42203 if kind == "config" else 42204, f"Invalid {field} {value}")
            if subject is None:
                setattr(self, "compatibility" if kind == "config" else "mode", value)
            else:
                own[subject] = value
            return 200, {field: value}
        if method != "GET":
            raise _Failure(405, 405, "HTTP 405 Method Not Allowed")
        global_value = self.compatibility if kind == "config" else self.mode
        if subject is None:
            return 200, {key: global_value}
        if subject in own:
            return 200, {key: own[subject]}
        if default_to_global:
            return 200, {key: global_value}
        if kind == "config":
            raise _Failure(404, 40408, f"Subject '{subject}' does not have subject-level compatibility configured")
        raise _Failure(404, 40409, f"Subject '{subject}' does not have subject-level mode configured")


def _schema_body(schema: str, schema_type: str) -> dict[str, str]:
    # The API leaves schemaType out for AVRO.
    return {"schema": schema} if schema_type == "AVRO" else {"schema": schema, "schemaType": schema_type}


class _Handler(BaseHTTPRequestHandler):
    registry: SchemaRegistryStandIn
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and delayed ACKs
        # hold every answer back for tens of milliseconds.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args) -> None:  # quiet: tests read the request counter instead
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        registry = self.registry
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if registry.delay:
            time.sleep(registry.delay)
        try:
            path = parts.path
            if registry.prefix:
                if not path.startswith(registry.prefix):
                    raise _Failure(404, 404, "HTTP 404 Not Found")
                path = path[len(registry.prefix):] or "/"
            registry.requests[f"{method} {path}"] += 1
            if registry.credentials is not None and not self._authorised(registry.credentials):
                raise _Failure(401, 401, "Unauthorized")
            if registry.failure is not None:
                raise _Failure(*registry.failure)
            if path in registry.path_failures:
                raise _Failure(*registry.path_failures[path])
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                raise _Failure(400, 400, "Unexpected character in request body") from None
            status, answer = registry.handle(method, path, parse_qs(parts.query), body)
        except _Failure as failure:
            status, answer = failure.status, {"error_code": failure.code, "message": failure.message}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="SchemaRegistry"')
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self, credentials: tuple[str, str]) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == credentials

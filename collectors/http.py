"""What the HTTP collectors share: one pooled client per source and one GET of a JSON answer (`get_json`) whose
failures fall into one set of categories (HTTP_CATEGORIES), so every source reports them alike; each source keeps
only how its error bodies name a failure (`detail`). The categories are listed in docs/internals.md."""

from __future__ import annotations

import json
import ssl
import zlib
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from monitoring.config import BasicAuth, HttpTls
from monitoring.health import SourceError

TRANSPORT_FAILURES = frozenset({"timeout", "connection_refused", "tls", "connection"})
"""Categories of a request that got no answer at all: the source itself is unreachable."""
HTTP_CATEGORIES = (*sorted(TRANSPORT_FAILURES), "auth", "server_error", "http_error", "protocol", "too_large")
"""Every category get_json raises (the documented names: docs/collectors.md, docs/metrics.md)."""
DEFAULT_MAX_ANSWER_BYTES = 64 * 2**20
"""The decoded size past which an answer is refused, for sources without a setting of their own."""

Params = Mapping[str, str] | Sequence[tuple[str, str]] | None


class HttpSourceError(SourceError):
    """A GET that got no usable answer. `status` is the HTTP status when an answer came (None: none came), `code`
    the source's own error code when its body named one ("" otherwise)."""

    def __init__(self, category: str, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(category, message)
        self.status = status
        self.code = code


def status_category(status: int) -> str:
    """The category of an HTTP error status."""
    if status in (401, 403):
        return "auth"
    if status >= 500:
        return "server_error"
    return "http_error"


@dataclass(frozen=True, slots=True)
class JsonAnswer:
    """An answer read whole (within the cap): its status, and its body decoded (None when it is not JSON)."""

    status: int
    reason: str
    content_type: str
    body: Any


Detail = Callable[[Any], tuple[str, str | None]]
"""A source's reading of an error answer's JSON body (None when not JSON): (its error code or "", its message or
None for the HTTP reason phrase)."""


def no_detail(body: Any) -> tuple[str, str | None]:
    return "", None


async def fetch_json(client: httpx.AsyncClient, path: str, *, params: Params = None,
                     max_bytes: int = DEFAULT_MAX_ANSWER_BYTES, error: type[HttpSourceError] = HttpSourceError,
                     what: str = "the source", cap_name: str | None = None) -> JsonAnswer:
    """GET `path` and read its answer whole, whatever its status; HttpSourceError (as `error`) when no answer came
    (timeout, connection_refused, tls, connection), or it is over `max_bytes` decoded (too_large), or in an
    encoding not asked for (protocol)."""
    try:
        async with client.stream("GET", path, params=params, headers=ACCEPT_GZIP) as response:
            content = await read_capped(response, max_bytes)
    except httpx.TimeoutException:
        raise error("timeout", f"GET {path}: no answer within {_seconds(client)}") from None
    except httpx.TransportError as exc:
        raise error(transport_category(exc), f"GET {path}: {first_line(exc)}") from None
    except AnswerTooLarge:
        at = str(client.base_url).rstrip("/")
        setting = f" ({cap_name})" if cap_name else ""
        raise error("too_large", f"GET {path}: the answer of {what} at {at} is over {_size(max_bytes)} decoded"
                                 f"{setting}: refused, nothing of it used", response.status_code) from None
    except UndecodableAnswer as exc:
        raise error("protocol", f"GET {path}: {exc}", response.status_code) from None
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):  # (not JSON, or nested deeper than the parser goes)
        body = None
    return JsonAnswer(response.status_code, response.reason_phrase, response.headers.get("content-type", ""), body)


def checked(answer: JsonAnswer, path: str, *, error: type[HttpSourceError] = HttpSourceError,
            detail: Detail = no_detail, ok: Container[int] = range(200, 300)) -> Any:
    """The body of an answer whose status is in `ok`, or HttpSourceError: "GET <path>: HTTP <status>[, error
    <code>]: <detail>" (auth, server_error, http_error), or protocol when the body is not JSON."""
    if answer.status not in ok:
        code, text = detail(answer.body)
        text = text or answer.reason
        message = f"GET {path}: HTTP {answer.status}" + (f", error {code}" if code else "") \
            + (f": {text}" if text else "")
        raise error(status_category(answer.status), message, answer.status, code)
    if answer.body is None:
        raise error("protocol", f"GET {path}: answer is not JSON ({answer.content_type or 'no content type'})",
                    answer.status)
    return answer.body


async def get_json(client: httpx.AsyncClient, path: str, *, params: Params = None,
                   max_bytes: int = DEFAULT_MAX_ANSWER_BYTES, error: type[HttpSourceError] = HttpSourceError,
                   detail: Detail = no_detail, ok: Container[int] = range(200, 300), what: str = "the source",
                   cap_name: str | None = None) -> Any:
    """GET `path`: the decoded JSON body of an answer whose status is in `ok`, read with its decoded size capped,
    or HttpSourceError (as `error`) in one of HTTP_CATEGORIES (see fetch_json and checked)."""
    answer = await fetch_json(client, path, params=params, max_bytes=max_bytes, error=error, what=what,
                              cap_name=cap_name)
    return checked(answer, path, error=error, detail=detail, ok=ok)


def _seconds(client: httpx.AsyncClient) -> str:
    seconds = client.timeout.read if client.timeout.read is not None else client.timeout.connect
    return f"{seconds:g} s" if seconds is not None else "the timeout"


def _size(count: int) -> str:
    return f"{count // 2**20} MiB" if count % 2**20 == 0 else f"{count:,} bytes"


def build_client(base_url: str, basic_auth: BasicAuth | None, tls: HttpTls | None, timeout: float,
                 max_connections: int, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    auth = None
    if basic_auth is not None:
        auth = httpx.BasicAuth(basic_auth.username, basic_auth.password.get_secret_value())
    return httpx.AsyncClient(base_url=base_url, auth=auth, verify=_tls_context(tls), timeout=timeout,
                             headers=headers or {}, follow_redirects=False,
                             limits=httpx.Limits(max_connections=max_connections))


class AnswerTooLarge(Exception):
    """An answer whose decoded body is over the reader's limit (read no further)."""


class UndecodableAnswer(Exception):
    """An answer in an encoding the reader did not ask for, or whose gzip stream is broken."""


ACCEPT_GZIP = {"Accept-Encoding": "gzip"}
"""What a capped reader asks for: the only encoding read_capped decompresses (pipewatch's exporter sends it)."""


async def read_capped(response: httpx.Response, limit: int) -> bytearray:
    """The body of a streamed response, decompressed here, refused past `limit` decoded bytes.

    httpx inflates a whole network chunk at once (64 KB of gzipped zeros is 64 MB); here zlib is given a
    budget, so no more than `limit` + 1 bytes are ever held, whatever the other side claims to send."""
    if response.is_stream_consumed:  # an answer made in memory (httpx.MockTransport), already decoded
        if len(response.content) > limit:
            raise AnswerTooLarge(limit)
        return bytearray(response.content)
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        inflate = None
    elif encoding in ("gzip", "x-gzip"):
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    else:
        raise UndecodableAnswer(f"Content-Encoding {encoding[:40]!r}, not the gzip asked for")
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            if inflate is None:
                body += chunk
            while inflate is not None and chunk and len(body) <= limit:
                body += inflate.decompress(chunk, limit + 1 - len(body))  # (never 0: that would mean no limit)
                chunk = inflate.unconsumed_tail
            if len(body) > limit:
                raise AnswerTooLarge(limit)
    except zlib.error as exc:
        raise UndecodableAnswer(f"a broken gzip stream: {exc}") from None
    return body


def _tls_context(tls: HttpTls | None) -> ssl.SSLContext | bool:
    if tls is None:
        return True
    if not tls.verify:
        return False
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return context


def transport_category(exc: httpx.TransportError) -> str:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return "tls"
        if isinstance(seen, ConnectionRefusedError):
            return "connection_refused"
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return "tls"
    if "refused" in text.lower():
        return "connection_refused"
    return "connection"


def first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:limit]

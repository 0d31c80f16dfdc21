"""What the HTTP collectors (schema registry, Flink) share: one pooled client per source, and
failures told apart (a timeout, a refused connection, a TLS failure) for the health line."""

from __future__ import annotations

import ssl
import zlib

import httpx

from monitoring.config import BasicAuth, HttpTls

TRANSPORT_FAILURES = frozenset({"timeout", "connection_refused", "tls", "connection"})
"""Categories of a request that got no answer at all: the source itself is unreachable."""


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

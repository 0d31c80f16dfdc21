"""Every error pipewatch saw, in one bounded list: collector failures and the failures sources report.

Details: docs/internals.md, "The error registry"."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

SEVERITIES = ("error", "warning")
DEFAULT_CAPACITY = 500
MAX_MESSAGE_CHARS = 4000
"""An error's message and hint are kept up to this long (a source's answer quoted whole could be megabytes)."""


@dataclass(frozen=True, slots=True)
class ErrorEntry:
    pipeline: str
    component: str
    """The collector that saw it (kafka, flink:<cluster>, schema_registry, ...)."""
    category: str
    severity: str
    """error: the source or part of it failed; warning: a part failed while the rest was read."""
    message: str
    """The latest occurrence's full message."""
    hint: str
    """What the error itself says to do; "" when no rule knows the error."""
    target: str
    first_seen: float
    last_seen: float
    count: int
    key: str
    """The normalised message: what occurrences of one error have in common."""


_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b(?:0x[0-9a-fA-F]+|(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,})\b")
_KEPT = re.compile(r"(HTTP \d{3}|\[Error \d+\]|\berror(?:_code)?[ =:]+\d{3,5}\b|_ssl\.c:\d+"
                   r"|(?<!\w)'[^'\n]{1,100}'(?!\w)|(?<!\w)\"[^\"\n]{1,100}\"(?!\w))", re.IGNORECASE)
"""Kept as they are: error codes, and quoted names (group 'orders-2024' is another group than 'orders-2025')."""
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@'\"]*):(?P<secret>[^\s/?#@'\"]*)@")
_PASSWORD_SETTING = re.compile(r"(?P<head>\b[\w.-]*(?:password|passwd|pwd)\b\s*[=:]\s*)(?P<secret>[^\s&;,'\")]+)",
                               re.IGNORECASE)
REDACTED = "***"


def redact(text: str) -> str:
    """The text with passwords of URLs (scheme://user:***@host) and password=... settings masked.

    The choke point for what sources say about themselves: exception texts (a driver quoting its DSN, a
    Flink job's stack trace quoting a JDBC URL) pass here before a page, /api/v1, an event or a log sees them."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{REDACTED}@", text)
    return _PASSWORD_SETTING.sub(lambda m: m["head"] + REDACTED, text)


def normalise(message: str) -> str:
    """The message with what varies between occurrences of one error (numbers, ids) replaced."""
    text = _UUID.sub("<id>", message)
    text = _HEX.sub("<id>", text)
    parts = _KEPT.split(text)  # odd parts are codes and quoted names: kept as they are
    return "".join(part if i % 2 else _NUMBER.sub("<n>", part) for i, part in enumerate(parts))


class ErrorRegistry:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._entries: dict[tuple[str, str, str, str], ErrorEntry] = {}
        self.generation = 0
        """Bumped on every record: a reader that saw this generation has seen everything."""
        self.evicted = 0

    def record(self, pipeline: str, component: str, category: str, message: str, severity: str, target: str,
               hint: str, t: float, count: int = 1) -> ErrorEntry:
        message, hint = redact(message)[:MAX_MESSAGE_CHARS], redact(hint)[:MAX_MESSAGE_CHARS]
        key_text = normalise(message)
        key = (pipeline, component, category, key_text)
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self.capacity:
                oldest = min(self._entries, key=lambda k: self._entries[k].last_seen)
                del self._entries[oldest]
                self.evicted += 1
            entry = ErrorEntry(pipeline, component, category, severity, message, hint, target, t, t, count, key_text)
        else:
            newer = t >= entry.last_seen
            entry = replace(
                entry, count=entry.count + count, first_seen=min(entry.first_seen, t),
                last_seen=max(entry.last_seen, t),
                # An occurrence reported late (a Flink exception's own time) does not replace a newer message.
                **({"message": message, "hint": hint, "severity": severity, "target": target} if newer else {}))
        self._entries[key] = entry
        self.generation += 1
        return entry

    def replace(self, entries: list[ErrorEntry]) -> None:
        """Hold exactly these entries (the newest `capacity` of them)."""
        newest = sorted(entries, key=lambda e: -e.last_seen)[:self.capacity]
        self._entries = {(e.pipeline, e.component, e.category, e.key): e for e in newest}
        self.generation += 1

    def entries(self) -> list[ErrorEntry]:
        """Every error, the most recently seen first."""
        return sorted(self._entries.values(), key=lambda e: (-e.last_seen, e.pipeline, e.component, e.key))

    def __len__(self) -> int:
        return len(self._entries)


# -- hints ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HintContext:
    """What a hint rule reads: the error's category, message (redacted), target and component."""

    category: str
    message: str
    target: str
    component: str

    @property
    def where(self) -> str:
        """The target as a phrase: " at http://flink:8081", or nothing when unknown."""
        return f" at {self.target}" if self.target else ""


HintRule = Callable[[HintContext], str]
"""A rule: the hint for an error, or "" when the rule does not know it."""

ADDRESS = r"((?:[\w.\-]+|\[[0-9a-fA-F:]+\]):\d+)"
"""host:port, or [IPv6]:port."""


def quoted(text: str, after: str) -> str | None:
    """The name quoted after `after` ("group 'billing'" -> billing)."""
    match = re.search(after + r"\s+['\"]([^'\"]+)['\"]", text)
    return match.group(1) if match else None


def request_path(text: str) -> str | None:
    """The path of "GET /path: ..." (what collectors/http.py writes)."""
    match = re.search(r"\bGET (/\S*?):", text)
    return match.group(1) if match else None


def _seconds(text: str) -> str | None:
    match = re.search(r"(\d+(?:\.\d+)?) ?s\b", text)
    return match.group(1) if match else None


def _http_status(ctx: HintContext) -> str:
    match = re.search(r"HTTP (\d{3})", ctx.message)
    if not match:
        return ""
    status, path = int(match.group(1)), request_path(ctx.message) or "the path"
    if status in (401, 403):
        return auth_hint(ctx)
    if status == 500:
        return f"HTTP 500 for {path}: the server{ctx.where} failed internally; its log has the stack trace."
    if status in (502, 504):
        return (f"HTTP {status} for {path}: a proxy in front of the service{ctx.where} got no (timely) answer from "
                "the service behind it: check that service, not the proxy.")
    if status == 503:
        return (f"HTTP 503 for {path}: the service{ctx.where} says it cannot serve now (starting, overloaded, or "
                "without a leader).")
    return ""


def auth_hint(ctx: HintContext) -> str:
    """An HTTP login refused (401) or a path forbidden (403)."""
    text = ctx.message
    if "HTTP 401" in text:
        return (f"HTTP 401: {ctx.target or 'the server'} rejected the credentials: check basic_auth's username and "
                "password (or add basic_auth if the server requires a login).")
    if "HTTP 403" in text:
        return (f"HTTP 403 for {request_path(text) or 'the path'}: the user is known but may not read it: grant it "
                "read access on the server.")
    return ""


def _refused(ctx: HintContext) -> str:
    addresses = re.findall(ADDRESS + r": connection refused", ctx.message) or re.findall(
        r"\('([^']+)', (\d+)\)", ctx.message)
    where = ", ".join(a if isinstance(a, str) else f"{a[0]}:{a[1]}" for a in addresses) or ctx.target
    at = f" at {where}" if where else ""
    return (f"Nothing accepts connections{at}: check the host and port in the config and that the service is "
            "running and listening there.")


def _timeout(ctx: HintContext) -> str:
    run = re.search(r"run took longer than the (\S+) s timeout", ctx.message)
    if run:
        return (f"A whole collection run took longer than {run.group(1)} s: the source{ctx.where} answers slowly or "
                "has much to read; raise the source's timeout_seconds if it is merely slow.")
    seconds = _seconds(ctx.message)
    within = f" within {seconds} s" if seconds else " in time"
    path = request_path(ctx.message)
    what = f"{path} on {ctx.target}" if path and ctx.target else (ctx.target or "the source")
    return (f"No answer from {what}{within}: check that it is reachable from this host (firewall, routing) and not "
            "overloaded; raise timeout_seconds if it is merely slow.")


def _tls(ctx: HintContext) -> str:
    text = ctx.message
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return (f"The server{ctx.where} answered the TLS handshake in plain text: the port does not speak TLS; use "
                "http:// (or PLAINTEXT), or the TLS port.")
    if "certificate has expired" in text:
        return f"The certificate of the server{ctx.where} has expired: renew it."
    if "Hostname mismatch" in text or "doesn't match" in text or "IP address mismatch" in text:
        return (f"The certificate of the server{ctx.where} is not issued for the host name in the URL: connect by a "
                "name the certificate lists, or reissue it.")
    if "self-signed certificate" in text or "unable to get local issuer certificate" in text \
            or "CERTIFICATE_VERIFY_FAILED" in text:
        return (f"The certificate of the server{ctx.where} is not signed by a CA pipewatch trusts: set tls.ca_file to "
                "the CA that signed it.")
    if "TLSV1_ALERT_UNKNOWN_CA" in text or "CERTIFICATE_REQUIRED" in text or "BAD_CERTIFICATE" in text:
        return (f"The server{ctx.where} refused pipewatch's client certificate: set tls.cert_file and key_file to a "
                "certificate its client CA signed.")
    return ""


def _network(ctx: HintContext) -> str:
    text = ctx.message
    if re.search(r"Name or service not known|nodename nor servname|getaddrinfo failed|"
                 r"Temporary failure in name resolution|No address associated", text):
        return (f"The host name of {ctx.target or 'the source'} does not resolve: "
                "check its spelling and this host's DNS.")
    if re.search(r"No route to host|Network is unreachable", text, re.IGNORECASE):
        return (f"{ctx.target or 'The source'} cannot be reached from this host (no route): check the address, and "
                "the firewall or VPN between them.")
    if "Connection reset by peer" in text or "Server disconnected" in text:
        return (f"{ctx.target or 'The source'} closed the connection mid-request: it restarted, or a TLS or "
                "protocol mismatch made it hang up.")
    return ""


_RULES: tuple[tuple[frozenset[str] | None, HintRule], ...] = (
    # (applies to these categories, or None for all; the rule): after the component's own, the first answer wins
    (frozenset({"connection_refused"}), _refused),
    (frozenset({"tls"}), _tls),
    (frozenset({"auth", "permission"}), auth_hint),
    (None, _http_status),
    (frozenset({"timeout"}), _timeout),
    (frozenset({"connection", "unreachable", "os_error", "connection_refused"}), _network),
)
_SOURCE_RULES: dict[str, list[tuple[frozenset[str] | None, HintRule]]] = {}
"""Component kind (a component's name before any ":", e.g. flink of flink:local) -> its source's own rules."""


def register_hints(kind: str, rule: HintRule, categories: Iterable[str] | None = None) -> None:
    """Add a source's own rule for the errors of components of `kind` (kafka, flink, schema_registry, ...), tried
    before the general rules, in the order registered; `categories` limits it to errors of those categories.
    Registering a rule again changes nothing."""
    entry = (None if categories is None else frozenset(categories), rule)
    rules = _SOURCE_RULES.setdefault(kind, [])
    if entry not in rules:
        rules.append(entry)


def hint_for(category: str, message: str, target: str = "", component: str = "") -> str:
    """What the error itself says to do, or "" when no rule knows this error: the rules its component's source
    registered first, then the general ones."""
    ctx = HintContext(category, redact(message), target, component)
    for categories, rule in (*_SOURCE_RULES.get(component.split(":", 1)[0], ()), *_RULES):
        if categories is None or category in categories:
            hint = rule(ctx)
            if hint:
                return hint
    return ""

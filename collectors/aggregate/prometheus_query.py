"""Every agent's pipelines, read back from a Prometheus-compatible query API (httpx): several agents feed one
Prometheus, and the aggregate page shows them side by side. It writes no series (Prometheus would be fed its own
data); docs/internals.md says what it asks and how an agent that went away is shown."""

from __future__ import annotations

import asyncio
import math
import time

import httpx

from collectors.http import HttpSourceError, build_client, get_json
from monitoring.config import PrometheusSource
from monitoring.cycle import CycleResult
from monitoring.metrics import JOB_STATES
from monitoring.models.aggregate import AGGREGATE_PIPELINE, AgentSummary, AggregateSnapshot, PipelineSummary
from monitoring.runtime import Collector
from monitoring.sources import PROMETHEUS, collector_name

_KNOWN_WINDOW = "1h"
"""How long the pipelines of an agent that stopped answering stay listed."""
_BY = "job, instance, pipeline"
_RUNNING = JOB_STATES.index("RUNNING")
_QUERIES = {
    "known": f"count by ({_BY}, collector) (last_over_time(pipewatch_collector_up{{S}}[{_KNOWN_WINDOW}]))",
    "collector_up": "pipewatch_collector_up{S}",
    "agent_up": "max by (job, instance) (up{S})",
    "last_success": f"max by ({_BY}) (pipewatch_collector_last_success_timestamp_seconds{{S}})",
    "lag_messages": f"sum by ({_BY}) (kafka_consumergroup_group_sum_lag{{S}})",
    "max_lag_messages": f"max by ({_BY}) (kafka_consumergroup_group_max_lag{{S}})",
    "lag_seconds": f"max by ({_BY}) (kafka_consumergroup_group_max_lag_seconds{{S}})",
    "worst_status": f"max by ({_BY}) (kafka_consumergroup_status{{S}})",
    "produce_rate": f"sum by ({_BY}) (kafka_topic_produce_rate{{S}})",
    "consume_rate": f"sum by ({_BY}) (kafka_consumergroup_consume_rate{{S}})",
    "flink_jobs": f"count by ({_BY}) (flink_jobmanager_job_state{{S}})",
    "flink_running": f"count by ({_BY}) (flink_jobmanager_job_state{{S}} == {_RUNNING})",
    "checkpoint_age": f"max by ({_BY}) (flink_jobmanager_job_checkpoint_age_seconds{{S}})",
    "registry_up": f"min by ({_BY}) (schema_registry_up{{S}})",
    "change_rate": f"sum by ({_BY}) (db_change_feed_rate{{S}})",
}


class PrometheusQueryError(HttpSourceError):
    """A query the Prometheus API did not answer with a result."""


class PrometheusQueryCollector(Collector):
    name = collector_name(PROMETHEUS)

    def __init__(self, config: PrometheusSource) -> None:
        self.config = config
        self.url = str(config.url).rstrip("/")
        super().__init__(AGGREGATE_PIPELINE, self.url, config.interval_seconds, config.timeout_seconds)
        selector = "{" + config.selector + "}" if config.selector else ""
        self.queries = {key: query.replace("{S}", selector) for key, query in _QUERIES.items()}
        self._client: httpx.AsyncClient | None = None

    async def fetch(self) -> CycleResult:
        if self._client is None:
            self._client = build_client(self.url, self.config.basic_auth, self.config.tls, self.config.timeout_seconds,
                                        max_connections=4)
        keys = list(self.queries)
        answers = await asyncio.gather(*(self._query(self.queries[key]) for key in keys))
        results = dict(zip(keys, answers, strict=True))
        now = time.time()
        return CycleResult(measured_at=now, requests=len(keys), snapshot=summarize(results, self.url, now))

    async def _query(self, expr: str) -> list[dict]:
        assert self._client is not None

        def detail(body: object) -> tuple[str, str | None]:  # {"status": "error", "errorType": ..., "error": ...}
            if not isinstance(body, dict) or body.get("status") != "error":
                return "", None
            return str(body.get("errorType", "")), f"{body.get('error', '')} (query {expr})"

        body = await get_json(self._client, "/api/v1/query", params={"query": expr}, error=PrometheusQueryError,
                              detail=detail, what="Prometheus")
        result = (body.get("data") or {}).get("result") if isinstance(body, dict) and body.get("status") == "success" \
            else None
        if not isinstance(result, list):
            raise PrometheusQueryError("protocol", f"GET /api/v1/query: no result in the answer (query {expr})", 200)
        return result

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _by_pipeline(result: list[dict]) -> dict[tuple[str, str, str], float]:
    out = {}
    for series in result:
        labels = series["metric"]
        out[(labels.get("job", ""), labels.get("instance", ""), labels.get("pipeline", ""))] = float(series["value"][1])
    return out


def summarize(results: dict[str, list[dict]], url: str, now: float) -> AggregateSnapshot:
    """The snapshot from the answers of the queries above (by their keys)."""
    known: dict[tuple[str, str, str], set[str]] = {}
    for series in results["known"]:
        labels = series["metric"]
        key = (labels.get("job", ""), labels.get("instance", ""), labels.get("pipeline", ""))
        known.setdefault(key, set()).add(labels.get("collector", ""))
    up: dict[tuple[str, str, str], dict[str, bool]] = {}
    for series in results["collector_up"]:
        labels = series["metric"]
        key = (labels.get("job", ""), labels.get("instance", ""), labels.get("pipeline", ""))
        up.setdefault(key, {})[labels.get("collector", "")] = float(series["value"][1]) == 1.0
        known.setdefault(key, set()).add(labels.get("collector", ""))
    agents_up = {(s["metric"].get("job", ""), s["metric"].get("instance", "")): float(s["value"][1]) == 1.0
                 for s in results["agent_up"]}
    values = {key: _by_pipeline(results[key]) for key in _QUERIES if key not in ("known", "collector_up", "agent_up")}
    agent_keys = sorted({(job, instance) for job, instance, _ in known})
    agents = tuple(AgentSummary(job, instance, agents_up.get((job, instance)),
                                tuple(sorted(p for j, i, p in known
                                             if (j, i) == (job, instance) and p != AGGREGATE_PIPELINE)))
                   for job, instance in agent_keys)
    rows = []
    for key in sorted(known):
        job, instance, pipeline = key
        if pipeline == AGGREGATE_PIPELINE:
            continue

        def value(name: str, key: tuple[str, str, str] = key) -> float:
            return values[name].get(key, math.nan)

        collectors = tuple(sorted(known[key]))
        current = up.get(key, {})
        agent_up = agents_up.get((job, instance))
        down = tuple(sorted(c for c in collectors if not current.get(c, False)))
        if agent_up is not True:
            health = "agent down"
            reason = (f"Prometheus cannot scrape the agent at {instance} (up = 0)" if agent_up is False
                      else f"no scrape of the agent at {instance} in Prometheus now")
        elif not down:
            health, reason = "ok", "every source up"
        elif len(down) == len(collectors):
            health, reason = "down", "down: " + ", ".join(down)
        else:
            health, reason = "degraded", "down: " + ", ".join(down)
        last = value("last_success")
        rows.append(PipelineSummary(
            job=job, instance=instance, pipeline=pipeline, health=health, reason=reason, collectors=collectors,
            collectors_down=down if agent_up is True else collectors, last_success=None if math.isnan(last) else last,
            lag_messages=value("lag_messages"), max_lag_messages=value("max_lag_messages"),
            lag_seconds=value("lag_seconds"), worst_status=value("worst_status"),
            produce_rate=value("produce_rate"), consume_rate=value("consume_rate"), flink_jobs=value("flink_jobs"),
            # No series from the count of running jobs means none runs, when there are jobs at all.
            flink_running=values["flink_running"].get(key, 0.0 if not math.isnan(value("flink_jobs")) else math.nan),
            checkpoint_age=value("checkpoint_age"), registry_up=value("registry_up"),
            change_rate=value("change_rate"),
        ))
    return AggregateSnapshot(url=url, rows=tuple(rows), agents=agents, measured_at=now)

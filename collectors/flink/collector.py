"""The Flink cycle: what is read each cycle, what is read once per job, and what the cluster's failures become
(errors and events). The requests are in client.py, the answers read in decode.py, the series written in
write.py; docs/flink-collector.md describes the cycle and the API's traps."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import time
from dataclasses import dataclass

import httpx

from collectors.flink import decode
from collectors.flink.client import FlinkRequests, connect, segment
from collectors.flink.write import write_snapshot
from monitoring.config import FlinkSource
from monitoring.cycle import CycleEvent, CycleResult, SourceFailure
from monitoring.models.flink import (
    TERMINAL_STATES,
    Backpressure,
    FlinkException,
    FlinkSnapshot,
    Job,
    TaskManager,
    Vertex,
)
from monitoring.runtime import Collector
from monitoring.sources import FLINK, collector_name

_CONFIG_REFRESH_SECONDS = 600.0


@dataclass
class _JobCache:
    """What is read once (or rarely) per job."""

    checkpoint_config: decode.CheckpointConfig | None = None
    config_read_at: float = -math.inf
    inputs: dict[str, tuple[str, ...]] | None = None
    vertex_metrics: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    """Vertex id -> the wanted metric names it has (listed once; [] until the job has run)."""
    restarts_seen: float | None = None
    exceptions: tuple[FlinkException, ...] = ()
    checkpoint_failure_seen: float | None = None
    """Time of the latest failed checkpoint already in the error registry."""


class FlinkCollector(Collector):
    def __init__(self, pipeline: str, config: FlinkSource, distinct_name: bool = False) -> None:
        super().__init__(pipeline, config.rest_url, config.interval_seconds, config.timeout_seconds * 4)
        self.name = collector_name(FLINK, config.cluster_label if distinct_name else None)
        self.config = config
        self.cluster = config.cluster_label
        self._client: httpx.AsyncClient | None = None
        self._limit = asyncio.Semaphore(config.max_concurrent_requests)
        self._jobs: dict[str, _JobCache] = {}
        self._backpressure: dict[tuple[str, str], Backpressure] = {}

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def fetch(self) -> CycleResult:
        if self._client is None:
            self._client = connect(self.config)
        api = FlinkRequests(self._client, self._limit)
        snapshot, new_exceptions = await self._collect(api)
        return CycleResult(
            measured_at=snapshot.measured_at, requests=api.requests, snapshot=snapshot,
            write=functools.partial(write_snapshot, snapshot=snapshot), failures=tuple(api.failures),
            events=tuple(CycleEvent("error", f"{self.cluster}: job {exception.job_id[:8]} {exception.task or ''}: "
                                             f"{exception.name}: {exception.message[:200]} [{exception.category}]",
                                    exception.time) for exception in new_exceptions))

    async def _collect(self, api: FlinkRequests) -> tuple[FlinkSnapshot, list[FlinkException]]:
        overview, jobs_overview, taskmanagers = await asyncio.gather(
            api.get("/overview"), api.get("/jobs/overview"), api.get("/taskmanagers"))
        listed = sorted(jobs_overview.get("jobs") or [], key=lambda j: -(decode.number(j.get("start-time")) or 0))
        active = [j for j in listed if j.get("state") not in TERMINAL_STATES][: self.config.max_jobs]
        ended = [j for j in listed if j.get("state") in TERMINAL_STATES][: self.config.finished_jobs]
        tms = await asyncio.gather(*(self._taskmanager(api, tm) for tm in taskmanagers.get("taskmanagers") or []))
        details = await asyncio.gather(*(self._job(api, summary) for summary in active))
        jobs = [job for job, _ in details] + [decode.job_from_overview(summary) for summary in ended]
        new_exceptions = [e for _, fresh in details for e in fresh]
        for gone in set(self._jobs) - {j["jid"] for j in active}:
            del self._jobs[gone]
        self._backpressure = {key: bp for key, bp in self._backpressure.items() if key[0] in self._jobs}
        by_state: dict[str, int] = {}
        for summary in listed:
            by_state[summary.get("state", "UNKNOWN")] = by_state.get(summary.get("state", "UNKNOWN"), 0) + 1
        exceptions = sorted((e for cache in self._jobs.values() for e in cache.exceptions), key=lambda e: -e.time)
        return FlinkSnapshot(
            cluster=self.cluster, rest_url=self.config.rest_url, version=overview.get("flink-version"),
            taskmanagers_count=decode.integer(overview.get("taskmanagers")),
            slots_total=decode.integer(overview.get("slots-total")),
            slots_available=decode.integer(overview.get("slots-available")), jobs_by_state=by_state,
            taskmanagers=tuple(tms), jobs=tuple(jobs), exceptions=tuple(exceptions), measured_at=time.time(),
        ), new_exceptions

    async def _taskmanager(self, api: FlinkRequests, listed: dict) -> TaskManager:
        path = f"/taskmanagers/{segment(str(listed.get('id')))}/metrics"
        return decode.taskmanager(listed, await api.metrics(path, list(decode.TASKMANAGER_METRICS), []))

    async def _job(self, api: FlinkRequests, summary: dict) -> tuple[Job, list[FlinkException]]:
        jid = summary["jid"]
        cache = self._jobs.setdefault(jid, _JobCache())
        base = f"/jobs/{segment(jid)}"
        errors: list[str] = []
        detail, checkpoints, metrics = await asyncio.gather(
            api.part(base, errors), api.part(f"{base}/checkpoints", errors),
            api.metrics(f"{base}/metrics", list(decode.JOB_METRICS), errors))
        if detail is None:  # the job vanished between the list and this read, or cannot be read now
            return dataclasses.replace(decode.job_from_overview(summary), errors=tuple(errors)), []
        now = time.time()
        if cache.checkpoint_config is None or now - cache.config_read_at > _CONFIG_REFRESH_SECONDS:
            config = await api.part(f"{base}/checkpoints/config", errors)
            if config is not None:
                cache.checkpoint_config = decode.checkpoint_config(config)
                cache.config_read_at = now
        if cache.inputs is None:
            plan = await api.part(f"{base}/plan", errors)
            if plan is not None:
                cache.inputs = decode.plan_inputs(plan)
        vertices = await asyncio.gather(*(self._vertex(api, jid, cache, v, errors)
                                          for v in detail.get("vertices") or ()))
        restarts = metrics.get("numRestarts")
        state = detail.get("state", "UNKNOWN")
        fresh = await self._new_exceptions(api, jid, str(detail.get("name") or jid), cache, restarts, state, errors)
        timestamps = decode.state_entered(detail)
        checkpoint_info = decode.checkpoints(checkpoints, cache.checkpoint_config) if checkpoints is not None \
            else None
        if checkpoint_info is not None and checkpoint_info.last_failure_at is not None \
                and checkpoint_info.last_failure_at != cache.checkpoint_failure_seen:
            cache.checkpoint_failure_seen = checkpoint_info.last_failure_at
            api.failures.append(SourceFailure(
                "checkpointing", f"job {detail.get('name') or jid}: checkpoint failed: "
                                 f"{checkpoint_info.last_failure_message or 'no reason given'}",
                t=checkpoint_info.last_failure_at))
        age = None
        if state == "RUNNING":
            since = (checkpoint_info.last_completed_at if checkpoint_info else None) or timestamps.get("RUNNING")
            age = max(0.0, now - since) if since else None
        job = Job(
            job_id=jid, name=str(detail.get("name") or summary.get("name") or jid), state=state,
            start_time=decode.seconds(detail.get("start-time")), end_time=decode.seconds(detail.get("end-time")),
            duration_seconds=decode.seconds(detail.get("duration")), tasks=decode.task_counts(summary),
            state_entered=timestamps, uptime_ms=metrics.get("uptime"), downtime_ms=metrics.get("downtime"),
            restarting_ms=metrics.get("restartingTime"), restarts=restarts, vertices=tuple(vertices),
            checkpoints=checkpoint_info, checkpoint_age_seconds=age, detailed=True, errors=tuple(errors),
        )
        return job, fresh

    async def _new_exceptions(self, api: FlinkRequests, jid: str, name: str, cache: _JobCache,
                              restarts: float | None, state: str, errors: list[str]) -> list[FlinkException]:
        """Read the job's exceptions when the restart count moved or the job is failing: each one not seen before
        goes into the error registry; after the first read (the baseline) they are the cycle's new events too."""
        fresh: list[FlinkException] = []
        if (cache.restarts_seen is None or restarts != cache.restarts_seen
                or state in ("FAILING", "RESTARTING", "FAILED")):
            answer = await api.part(f"/jobs/{segment(jid)}/exceptions", errors,
                                    {"maxExceptions": str(self.config.exceptions_per_job)})
            if answer is not None:
                read = decode.exceptions(answer, jid, self.config.exceptions_per_job)
                known = {(e.time, e.name, e.task) for e in cache.exceptions}
                unseen = [e for e in read if (e.time, e.name, e.task) not in known]
                fresh = unseen if cache.restarts_seen is not None else []
                cache.exceptions = read
                for e in unseen:
                    api.failures.append(SourceFailure(
                        e.category, f"job {name}: {e.task or 'job'}: {e.name}: {e.message}", "error", e.hint, e.time))
        if restarts is not None or cache.restarts_seen is None:
            cache.restarts_seen = restarts
        return fresh

    async def _vertex(self, api: FlinkRequests, jid: str, cache: _JobCache, vertex: dict,
                      errors: list[str]) -> Vertex:
        vid = vertex["id"]
        base = f"/jobs/{segment(jid)}/vertices/{segment(vid)}"
        running = vertex.get("status") == "RUNNING"
        names = cache.vertex_metrics.get(vid) if running else []
        if running and not names:  # not listed yet, or listed while the vertex was not running: list again
            names = cache.vertex_metrics[vid] = decode.vertex_metric_names(
                await api.part(f"{base}/subtasks/metrics", errors))
        values: dict[str, float | None] = {}
        if names:
            aggregates = sorted({decode.VERTEX_METRICS[n] for n in names})
            values = decode.vertex_metrics(await api.part(f"{base}/subtasks/metrics", errors,
                                                          {"get": ",".join(names), "agg": ",".join(aggregates)}))
        watermarks = await api.part(f"{base}/watermarks", errors) if running else None
        return Vertex(
            vertex_id=vid, name=str(vertex.get("name")), parallelism=int(vertex.get("parallelism") or 0),
            status=str(vertex.get("status")), records_in_per_second=values.get("numRecordsInPerSecond"),
            records_out_per_second=values.get("numRecordsOutPerSecond"),
            busy_ms_per_second=values.get("busyTimeMsPerSecond"), idle_ms_per_second=values.get("idleTimeMsPerSecond"),
            backpressured_ms_per_second=values.get("backPressuredTimeMsPerSecond"),
            input_watermark=decode.input_watermark(watermarks),
            backpressure=await self._backpressure_of(api, jid, vid, base, errors) if running else None,
            inputs=(cache.inputs or {}).get(vid, ()),
        )

    async def _backpressure_of(self, api: FlinkRequests, jid: str, vid: str, base: str,
                               errors: list[str]) -> Backpressure | None:
        """The vertex's backpressure, sampled at most every backpressure_refresh_seconds."""
        previous = self._backpressure.get((jid, vid))
        if previous is not None and previous.measured_at is not None and \
                time.time() - previous.measured_at < self.config.backpressure_refresh_seconds:
            return previous
        answer = await api.part(f"{base}/backpressure", errors)
        if answer is None:
            return None
        measured = self._backpressure[(jid, vid)] = decode.backpressure(answer, time.time())
        return measured

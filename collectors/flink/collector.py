"""Flink: cluster, taskmanagers, jobs, vertices, checkpoints, backpressure and exceptions, from the REST API.

One cycle: GET /overview, /jobs/overview and /taskmanagers; per taskmanager its JVM and memory
metrics; per active job (up to `max_jobs`) the job, its checkpoints, its metrics, and per vertex the
aggregated subtask metrics and the watermarks. Checkpoint config and the job plan are read once per
job; backpressure per vertex at most every `backpressure_refresh_seconds`; exceptions when the
restart count moved or the job is failing. Requests in flight are bounded.

The API's traps (../shared/reference/flink-rest.md), each handled here:
- the aggregated metrics endpoint answers [] if any requested name is missing for the vertex, so
  each vertex's available names are listed once and only those are asked for;
- numbers may come as strings, "NaN" included; a job's metrics are [] while it restarts; both
  become "unknown" for the cycle, not zero;
- `latest.failed` may be null while `counts.failed` > 0; `backpressure` `deprecated` means not
  yet measured; 1.x and 2.x exception shapes differ; errors carry Java stack traces (kept to
  their first line).

What the cluster reports as failed goes into the store's error registry: each job exception once
(the first read included; an exception already recorded, same time, name and task, is not counted
again), each new latest checkpoint failure once (Flink names only the latest; all of them are
counted by numberOfFailedCheckpoints), and a part of a job answered with an error once per cycle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from collectors.flink.exceptions import classify
from collectors.http import TRANSPORT_FAILURES, HttpSourceError, build_client, get_json
from monitoring.config import FlinkSource
from monitoring.cycle import CycleEvent, CycleResult, SourceFailure
from monitoring.errors import redact
from monitoring.health import describe
from monitoring.metrics import BACKPRESSURE_LEVELS, JOB_STATES
from monitoring.models.flink import (
    TERMINAL_STATES,
    Backpressure,
    CheckpointRecord,
    Checkpoints,
    FlinkException,
    FlinkSnapshot,
    Job,
    TaskManager,
    Vertex,
)
from monitoring.runtime import Collector
from monitoring.sources import FLINK, collector_name
from monitoring.store import CycleWriter

_TM_METRICS = {
    "Status.JVM.CPU.Load": "cpu_load", "Status.JVM.Memory.Heap.Used": "heap_used",
    "Status.JVM.Memory.Heap.Max": "heap_max", "Status.Flink.Memory.Managed.Used": "managed_used",
    "Status.Flink.Memory.Managed.Total": "managed_total",
    "Status.JVM.GarbageCollector.All.TimeMsPerSecond": "gc_ms_per_second", "Status.JVM.Threads.Count": "threads",
}
_JOB_METRICS = ("uptime", "downtime", "restartingTime", "numRestarts")
_VERTEX_METRICS = {  # name -> how subtasks combine: rates add up, time-per-second is as bad as the worst subtask
    "numRecordsInPerSecond": "sum", "numRecordsOutPerSecond": "sum", "busyTimeMsPerSecond": "max",
    "idleTimeMsPerSecond": "max", "backPressuredTimeMsPerSecond": "max",
}
_NO_WATERMARK = -(2 ** 63)  # Long.MIN_VALUE: the subtask has seen no watermark yet
_CHECKPOINTING_OFF = 2 ** 62
"""Flink reports interval Long.MAX_VALUE when checkpointing is disabled."""
_CONFIG_REFRESH_SECONDS = 600.0


def _segment(identifier: str) -> str:
    """An id the cluster sent, as one path segment: `../x?y` must not reach another endpoint."""
    return quote(str(identifier), safe="")


class FlinkError(HttpSourceError):
    """A Flink REST request that got no usable answer."""


@dataclass
class _JobCache:
    """What is read once (or rarely) per job."""

    checkpoint_config: tuple[float | None, float | None] | None = None
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
        self._requests = 0
        self._jobs: dict[str, _JobCache] = {}
        self._backpressure: dict[tuple[str, str], Backpressure] = {}
        self._failures: list[SourceFailure] = []
        """This cycle's failures for the error registry."""

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def fetch(self) -> CycleResult:
        self._requests = 0
        self._failures = []
        snapshot, new_exceptions = await self._collect()
        return CycleResult(
            measured_at=snapshot.measured_at, requests=self._requests, snapshot=snapshot,
            write=functools.partial(self._write, snapshot=snapshot), failures=tuple(self._failures),
            events=tuple(CycleEvent("error", f"{self.cluster}: job {exception.job_id[:8]} {exception.task or ''}: "
                                             f"{exception.name}: {exception.message[:200]} [{exception.category}]",
                                    exception.time) for exception in new_exceptions))

    # -- one cycle -------------------------------------------------------------------------------

    async def _collect(self) -> tuple[FlinkSnapshot, list[FlinkException]]:
        client = self._connect()
        overview, jobs_overview, taskmanagers = await asyncio.gather(
            self._get(client, "/overview"), self._get(client, "/jobs/overview"), self._get(client, "/taskmanagers"))
        listed = sorted(jobs_overview.get("jobs") or [], key=lambda j: -(_num(j.get("start-time")) or 0))
        active = [j for j in listed if j.get("state") not in TERMINAL_STATES][: self.config.max_jobs]
        ended = [j for j in listed if j.get("state") in TERMINAL_STATES][: self.config.finished_jobs]
        tms = await asyncio.gather(*(self._taskmanager(client, tm) for tm in taskmanagers.get("taskmanagers") or []))
        details = await asyncio.gather(*(self._job(client, summary) for summary in active))
        jobs = [job for job, _ in details] + [_job_from_overview(summary) for summary in ended]
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
            taskmanagers_count=_int(overview.get("taskmanagers")), slots_total=_int(overview.get("slots-total")),
            slots_available=_int(overview.get("slots-available")), jobs_by_state=by_state, taskmanagers=tuple(tms),
            jobs=tuple(jobs), exceptions=tuple(exceptions), measured_at=time.time(),
        ), new_exceptions

    async def _taskmanager(self, client: httpx.AsyncClient, tm: dict) -> TaskManager:
        tm_id = str(tm.get("id"))
        values = await self._metrics(client, f"/taskmanagers/{_segment(tm_id)}/metrics", list(_TM_METRICS), [])
        heartbeat = _num(tm.get("timeSinceLastHeartbeat"))
        if heartbeat is not None:
            # Despite its name, recent versions put the heartbeat's timestamp here; older ones a duration.
            heartbeat = heartbeat / 1000 if heartbeat > 1e12 else time.time() - heartbeat / 1000
        return TaskManager(
            tm_id=tm_id, slots=_int(tm.get("slotsNumber")), free_slots=_int(tm.get("freeSlots")),
            last_heartbeat=heartbeat,
            **{field: values.get(name) for name, field in _TM_METRICS.items()},
        )

    async def _job(self, client: httpx.AsyncClient, summary: dict) -> tuple[Job, list[FlinkException]]:
        jid = summary["jid"]
        cache = self._jobs.setdefault(jid, _JobCache())
        base = f"/jobs/{_segment(jid)}"
        errors: list[str] = []
        detail, checkpoints, metrics = await asyncio.gather(
            self._part(client, base, errors), self._part(client, f"{base}/checkpoints", errors),
            self._metrics(client, f"{base}/metrics", list(_JOB_METRICS), errors))
        if detail is None:  # the job vanished between the list and this read, or cannot be read now
            return dataclasses.replace(_job_from_overview(summary), errors=tuple(errors)), []
        now = time.time()
        if cache.checkpoint_config is None or now - cache.config_read_at > _CONFIG_REFRESH_SECONDS:
            config = await self._part(client, f"{base}/checkpoints/config", errors)
            if config is not None:
                interval, timeout = _num(config.get("interval")), _num(config.get("timeout"))
                cache.checkpoint_config = (interval / 1000 if interval and interval < _CHECKPOINTING_OFF else None,
                                           timeout / 1000 if timeout else None)
                cache.config_read_at = now
        if cache.inputs is None:
            plan = await self._part(client, f"{base}/plan", errors)
            if plan is not None:
                nodes = (plan.get("plan") or {}).get("nodes") or ()
                cache.inputs = {node["id"]: tuple(i["id"] for i in node.get("inputs") or ()) for node in nodes}
        vertices = await asyncio.gather(*(self._vertex(client, jid, cache, v, errors)
                                          for v in detail.get("vertices") or ()))
        restarts = metrics.get("numRestarts")
        fresh: list[FlinkException] = []
        state = detail.get("state", "UNKNOWN")
        if (cache.restarts_seen is None or restarts != cache.restarts_seen
                or state in ("FAILING", "RESTARTING", "FAILED")):
            read = await self._exceptions(client, jid, errors)
            if read is not None:
                known = {(e.time, e.name, e.task) for e in cache.exceptions}
                unseen = [e for e in read if (e.time, e.name, e.task) not in known]
                # The first read is the baseline: only exceptions after it become events (but all are errors).
                fresh = unseen if cache.restarts_seen is not None else []
                cache.exceptions = read
                name = detail.get("name") or jid
                for e in unseen:
                    self._failures.append(SourceFailure(
                        e.category, f"job {name}: {e.task or 'job'}: {e.name}: {e.message}", "error", e.hint, e.time))
        if restarts is not None or cache.restarts_seen is None:
            cache.restarts_seen = restarts
        timestamps = {s: t / 1000 for s, t in (detail.get("timestamps") or {}).items() if _num(t)}
        checkpoint_info = _checkpoints(checkpoints, cache.checkpoint_config) if checkpoints is not None else None
        if checkpoint_info is not None and checkpoint_info.last_failure_at is not None \
                and checkpoint_info.last_failure_at != cache.checkpoint_failure_seen:
            cache.checkpoint_failure_seen = checkpoint_info.last_failure_at
            self._failures.append(SourceFailure(
                "checkpointing", f"job {detail.get('name') or jid}: checkpoint failed: "
                                 f"{checkpoint_info.last_failure_message or 'no reason given'}",
                t=checkpoint_info.last_failure_at))
        age = None
        if state == "RUNNING":
            since = (checkpoint_info.last_completed_at if checkpoint_info else None) or timestamps.get("RUNNING")
            age = max(0.0, now - since) if since else None
        job = Job(
            job_id=jid, name=str(detail.get("name") or summary.get("name") or jid), state=state,
            start_time=_ms(detail.get("start-time")), end_time=_ms(detail.get("end-time")),
            duration_seconds=_ms(detail.get("duration")), tasks={k.lower(): int(v) for k, v in
                                                                  (summary.get("tasks") or {}).items()},
            state_entered=timestamps, uptime_ms=metrics.get("uptime"), downtime_ms=metrics.get("downtime"),
            restarting_ms=metrics.get("restartingTime"), restarts=restarts, vertices=tuple(vertices),
            checkpoints=checkpoint_info, checkpoint_age_seconds=age, detailed=True, errors=tuple(errors),
        )
        return job, fresh

    async def _vertex(self, client: httpx.AsyncClient, jid: str, cache: _JobCache, vertex: dict,
                      errors: list[str]) -> Vertex:
        vid = vertex["id"]
        base = f"/jobs/{_segment(jid)}/vertices/{_segment(vid)}"
        running = vertex.get("status") == "RUNNING"
        names = await self._vertex_metric_names(client, base, cache, vid, errors) if running else []
        values: dict[str, float | None] = {}
        if names:
            aggregates = sorted({_VERTEX_METRICS[n] for n in names})
            answer = await self._part(client, f"{base}/subtasks/metrics", errors,
                                      {"get": ",".join(names), "agg": ",".join(aggregates)})
            for entry in answer if isinstance(answer, list) else ():
                values[entry.get("id")] = _num(entry.get(_VERTEX_METRICS.get(entry.get("id"), "sum")))
        watermarks = await self._part(client, f"{base}/watermarks", errors) if running else None
        marks = ([_num(w.get("value")) for w in watermarks if isinstance(w, dict)]
                 if isinstance(watermarks, list) else [])
        known = [m for m in marks if m is not None and m > _NO_WATERMARK]
        # Every subtask must have one: the vertex's input watermark is the lowest of them.
        watermark = min(known) / 1000 if known and len(known) == len(marks) else None
        return Vertex(
            vertex_id=vid, name=str(vertex.get("name")), parallelism=int(vertex.get("parallelism") or 0),
            status=str(vertex.get("status")), records_in_per_second=values.get("numRecordsInPerSecond"),
            records_out_per_second=values.get("numRecordsOutPerSecond"),
            busy_ms_per_second=values.get("busyTimeMsPerSecond"), idle_ms_per_second=values.get("idleTimeMsPerSecond"),
            backpressured_ms_per_second=values.get("backPressuredTimeMsPerSecond"), input_watermark=watermark,
            backpressure=await self._backpressure_of(client, jid, vid, base, errors) if running else None,
            inputs=(cache.inputs or {}).get(vid, ()),
        )

    async def _vertex_metric_names(self, client: httpx.AsyncClient, base: str, cache: _JobCache, vid: str,
                                   errors: list[str]) -> list[str]:
        names = cache.vertex_metrics.get(vid)
        if not names:  # not listed yet, or listed while the vertex was not running: list again
            listed = await self._part(client, f"{base}/subtasks/metrics", errors)
            available = ({entry.get("id") for entry in listed if isinstance(entry, dict)}
                         if isinstance(listed, list) else set())
            names = cache.vertex_metrics[vid] = [n for n in _VERTEX_METRICS if n in available]
        return names

    async def _backpressure_of(self, client: httpx.AsyncClient, jid: str, vid: str, base: str,
                               errors: list[str]) -> Backpressure | None:
        previous = self._backpressure.get((jid, vid))
        if previous is not None and previous.measured_at is not None and \
                time.time() - previous.measured_at < self.config.backpressure_refresh_seconds:
            return previous
        answer = await self._part(client, f"{base}/backpressure", errors)
        if answer is None:
            return None
        if answer.get("status") != "ok":  # "deprecated": no samples stored yet, not "no backpressure"
            measured = Backpressure("UNKNOWN", None, (), time.time())
        else:
            ratios = tuple(_num(s.get("ratio")) for s in answer.get("subtasks") or ())
            level = str(answer.get("backpressureLevel") or answer.get("backpressure-level") or "").upper()
            known = [r for r in ratios if r is not None]
            measured = Backpressure(level if level in BACKPRESSURE_LEVELS else "UNKNOWN",
                                    max(known) if known else None, ratios, time.time())
        self._backpressure[(jid, vid)] = measured
        return measured

    async def _exceptions(self, client: httpx.AsyncClient, jid: str,
                          errors: list[str]) -> tuple[FlinkException, ...] | None:
        answer = await self._part(client, f"/jobs/{_segment(jid)}/exceptions", errors,
                                  {"maxExceptions": str(self.config.exceptions_per_job)})
        if answer is None:
            return None
        raw: list[tuple[str, str, str | None, str | None, float | None]] = []
        history = answer.get("exceptionHistory")
        if isinstance(history, dict) and history.get("entries") is not None:  # 1.15+ and 2.x
            for entry in history.get("entries") or ():
                raw.append((entry.get("exceptionName") or "", entry.get("stacktrace") or "", entry.get("taskName"),
                            entry.get("endpoint") or entry.get("location"), _num(entry.get("timestamp"))))
        else:  # 1.x before the history: root-exception plus all-exceptions
            if answer.get("root-exception"):
                trace = answer["root-exception"]
                raw.append((trace.split(":", 1)[0].strip(), trace, None, None, _num(answer.get("timestamp"))))
            for entry in answer.get("all-exceptions") or ():
                trace = entry.get("exception") or ""
                raw.append((trace.split(":", 1)[0].strip(), trace, entry.get("task"), entry.get("location"),
                            _num(entry.get("timestamp"))))
        out = []
        for name, trace, task, location, stamp in raw[: self.config.exceptions_per_job]:
            trace = redact(trace)  # a job's own errors quote its connectors' URLs (JDBC, with their passwords)
            category, hint = classify(name, trace)
            lines = trace.strip().splitlines()
            message = lines[0].removeprefix(name).removeprefix(":").strip() if lines else ""
            out.append(FlinkException(job_id=jid, name=name, message=message, task=task, location=location,
                                      time=stamp / 1000 if stamp else time.time(), trace_head="\n".join(lines[:6]),
                                      category=category, hint=hint))
        return tuple(out)

    # -- requests --------------------------------------------------------------------------------

    def _connect(self) -> httpx.AsyncClient:
        if self._client is None:
            config = self.config
            self._client = build_client(config.rest_url, config.basic_auth, config.tls, config.timeout_seconds,
                                        config.max_concurrent_requests, {"Accept": "application/json"})
        return self._client

    async def _part(self, client: httpx.AsyncClient, path: str, errors: list[str],
                    params: dict[str, str] | None = None) -> Any:
        """A request for one part of a job: when the cluster answers with an error (a vertex that is not
        running, a job that just vanished), that part is unknown and the error noted; only a cluster
        that does not answer at all fails the cycle."""
        try:
            return await self._get(client, path, params)
        except FlinkError as exc:
            if exc.category in TRANSPORT_FAILURES:
                raise
            errors.append(str(exc))
            self._failures.append(SourceFailure(exc.category, describe(exc), t=time.time()))
            return None

    async def _metrics(self, client: httpx.AsyncClient, path: str, names: list[str],
                       errors: list[str]) -> dict[str, float | None]:
        """Named metrics of a taskmanager or job; missing, "NaN" or an empty answer (restarting) are None."""
        answer = await self._part(client, path, errors, {"get": ",".join(names)})
        values = {entry.get("id"): _num(entry.get("value")) for entry in answer if isinstance(entry, dict)} \
            if isinstance(answer, list) else {}
        return {name: values.get(name) for name in names}

    async def _get(self, client: httpx.AsyncClient, path: str, params: dict[str, str] | None = None) -> Any:
        async with self._limit:
            self._requests += 1
            return await get_json(client, path, params=params, error=FlinkError, detail=_java_error)

    # -- results ---------------------------------------------------------------------------------

    def _write(self, cycle: CycleWriter, snapshot: FlinkSnapshot) -> None:
        cluster = (self.cluster,)
        for name, value in (("flink_jobmanager_numRegisteredTaskManagers", snapshot.taskmanagers_count),
                            ("flink_jobmanager_taskSlotsTotal", snapshot.slots_total),
                            ("flink_jobmanager_taskSlotsAvailable", snapshot.slots_available),
                            ("flink_jobmanager_numRunningJobs", snapshot.jobs_by_state.get("RUNNING", 0))):
            if value is not None:
                cycle.set(name, cluster, value)
        for state, count in snapshot.jobs_by_state.items():
            cycle.set("flink_jobs", (*cluster, state), count)
        for tm in snapshot.taskmanagers:
            labels = (*cluster, tm.tm_id)
            for name, value in (("flink_taskmanager_Status_JVM_CPU_Load", tm.cpu_load),
                                ("flink_taskmanager_Status_JVM_Memory_Heap_Used", tm.heap_used),
                                ("flink_taskmanager_Status_JVM_Memory_Heap_Max", tm.heap_max),
                                ("flink_taskmanager_Status_Flink_Memory_Managed_Used", tm.managed_used),
                                ("flink_taskmanager_Status_Flink_Memory_Managed_Total", tm.managed_total),
                                ("flink_taskmanager_Status_JVM_GarbageCollector_All_TimeMsPerSecond",
                                 tm.gc_ms_per_second),
                                ("flink_taskmanager_Status_JVM_Threads_Count", tm.threads),
                                ("flink_taskmanager_last_heartbeat_timestamp_seconds", tm.last_heartbeat)):
                if value is not None:
                    cycle.set(name, labels, value)
            if tm.slots is not None and tm.free_slots is not None:
                cycle.set("flink_taskmanager_slots", (*labels, "free"), tm.free_slots)
                cycle.set("flink_taskmanager_slots", (*labels, "used"), tm.slots - tm.free_slots)
        for job in snapshot.jobs:
            labels = (*cluster, job.name, job.job_id)
            cycle.set("flink_jobmanager_job_state", labels,
                      JOB_STATES.index(job.state) if job.state in JOB_STATES else 0)
            if not job.detailed:
                continue
            for state, count in job.tasks.items():
                if state != "total":
                    cycle.set("flink_jobmanager_job_tasks", (*labels, state), count)
            for name, value in (("flink_jobmanager_job_uptime", job.uptime_ms),
                                ("flink_jobmanager_job_downtime", job.downtime_ms),
                                ("flink_jobmanager_job_restartingTime", job.restarting_ms),
                                ("flink_jobmanager_job_numRestarts", job.restarts),
                                ("flink_jobmanager_job_checkpoint_age_seconds", job.checkpoint_age_seconds)):
                if value is not None:
                    cycle.set(name, labels, value)
            checkpoints = job.checkpoints
            if checkpoints is not None:
                for name, value in (
                        ("flink_jobmanager_job_numberOfCompletedCheckpoints", checkpoints.completed),
                        ("flink_jobmanager_job_numberOfFailedCheckpoints", checkpoints.failed),
                        ("flink_jobmanager_job_numberOfInProgressCheckpoints", checkpoints.in_progress),
                        ("flink_jobmanager_job_lastCheckpointDuration", checkpoints.last_duration_ms),
                        ("flink_jobmanager_job_lastCheckpointSize", checkpoints.last_checkpointed_size),
                        ("flink_jobmanager_job_lastCheckpointFullSize", checkpoints.last_state_size),
                        ("flink_jobmanager_job_lastCheckpointCompletedTimestamp",
                         checkpoints.last_completed_at * 1000 if checkpoints.last_completed_at else None),
                        ("flink_jobmanager_job_checkpoint_interval_seconds", checkpoints.interval_seconds),
                        ("flink_jobmanager_job_checkpoint_timeout_seconds", checkpoints.timeout_seconds)):
                    if value is not None:
                        cycle.set(name, labels, value)
                for stat, value in checkpoints.duration_stats.items():
                    cycle.set("flink_jobmanager_job_checkpoint_duration_seconds", (*labels, stat), value / 1000)
                for stat, value in checkpoints.size_stats.items():
                    cycle.set("flink_jobmanager_job_checkpoint_size_bytes", (*labels, stat), value)
            for vertex in job.vertices:
                task = (*labels, vertex.name)
                cycle.set("flink_task_parallelism", task, vertex.parallelism)
                for name, value in (("flink_taskmanager_job_task_numRecordsInPerSecond", vertex.records_in_per_second),
                                    ("flink_taskmanager_job_task_numRecordsOutPerSecond",
                                     vertex.records_out_per_second),
                                    ("flink_taskmanager_job_task_busyTimeMsPerSecond", vertex.busy_ms_per_second),
                                    ("flink_taskmanager_job_task_idleTimeMsPerSecond", vertex.idle_ms_per_second),
                                    ("flink_taskmanager_job_task_backPressuredTimeMsPerSecond",
                                     vertex.backpressured_ms_per_second)):
                    if value is not None:
                        cycle.set(name, task, value)
                if vertex.input_watermark is not None:
                    cycle.set("flink_taskmanager_job_task_currentInputWatermark", task, vertex.input_watermark * 1000)
                    cycle.set("flink_task_watermark_lag_seconds", task, max(0.0, snapshot.measured_at
                                                                            - vertex.input_watermark))
                if vertex.backpressure is not None:
                    cycle.set("flink_task_backpressure_level", task,
                              BACKPRESSURE_LEVELS.index(vertex.backpressure.level))
                    if vertex.backpressure.max_ratio is not None:
                        cycle.set("flink_task_backpressure_ratio", task, vertex.backpressure.max_ratio)


def _checkpoints(body: dict, config: tuple[float | None, float | None] | None) -> Checkpoints:
    counts = body.get("counts") or {}
    latest = body.get("latest") or {}
    completed = latest.get("completed") or {}
    failed = latest.get("failed") or {}  # null while counts.failed > 0 is normal: failures before the trigger
    summary = body.get("summary") or {}

    def stats(name: str) -> dict[str, float]:
        values = summary.get(name) or {}
        if not _num(counts.get("completed")):
            return {}  # Flink fills the summary with 0 and "NaN" before any checkpoint completed
        out = {stat: _num(values.get(stat)) for stat in ("p50", "p90", "p99", "max")}
        return {stat: v for stat, v in out.items() if v is not None}

    return Checkpoints(
        completed=_int(counts.get("completed")), failed=_int(counts.get("failed")),
        in_progress=_int(counts.get("in_progress")),
        last_completed_at=_ms(completed.get("latest_ack_timestamp")),
        last_duration_ms=_num(completed.get("end_to_end_duration")),
        last_checkpointed_size=_num(completed.get("checkpointed_size")),
        last_state_size=_num(completed.get("state_size")),
        last_failure_at=_ms(failed.get("failure_timestamp")), last_failure_message=failed.get("failure_message"),
        interval_seconds=config[0] if config else None, timeout_seconds=config[1] if config else None,
        duration_stats=stats("end_to_end_duration"), size_stats=stats("checkpointed_size"),
        history=tuple(_checkpoint_record(entry) for entry in body.get("history") or () if isinstance(entry, dict)
                      and _int(entry.get("id")) is not None),
    )


def _checkpoint_record(entry: dict) -> CheckpointRecord:
    status = str(entry.get("status") or "UNKNOWN")
    finished = entry.get("failure_timestamp") if status == "FAILED" else entry.get("latest_ack_timestamp")
    return CheckpointRecord(
        checkpoint_id=_int(entry.get("id")), status=status, triggered_at=_ms(entry.get("trigger_timestamp")),
        finished_at=_ms(finished), duration_ms=_num(entry.get("end_to_end_duration")),
        checkpointed_size=_num(entry.get("checkpointed_size")), state_size=_num(entry.get("state_size")),
        failure_message=(str(entry["failure_message"]).strip().splitlines()[0] if entry.get("failure_message")
                         else None),
    )


def _job_from_overview(summary: dict) -> Job:
    return Job(job_id=summary["jid"], name=str(summary.get("name") or summary["jid"]),
               state=str(summary.get("state", "UNKNOWN")), start_time=_ms(summary.get("start-time")),
               end_time=_ms(summary.get("end-time")), duration_seconds=_ms(summary.get("duration")),
               tasks={k.lower(): int(v) for k, v in (summary.get("tasks") or {}).items()})


def _java_error(body: Any) -> tuple[str, str | None]:
    """The first line of the Java stack trace Flink puts in {"errors": [...]} (None: the reason phrase)."""
    errors = body.get("errors") if isinstance(body, dict) else None
    text = str(errors[0]).strip() if isinstance(errors, list) and errors else ""
    return "", text.splitlines()[0][:300] if text else None


def _num(value: Any) -> float | None:
    """A number from the API (numbers often come as strings); "NaN", infinities and the rest are None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    number = _num(value)
    return int(number) if number is not None else None


def _ms(value: Any) -> float | None:
    """Milliseconds (a timestamp or a duration) as seconds; -1 and 0 ("not yet") are None."""
    number = _num(value)
    return number / 1000 if number is not None and number > 0 else None

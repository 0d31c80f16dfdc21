"""Flink's REST answers read into the model (monitoring.models.flink). The API's traps are handled here, once:
numbers as strings or "NaN", -1 and 0 for "not yet", Long.MIN_VALUE watermarks, 1.x and 2.x exception shapes
(docs/flink-collector.md)."""

from __future__ import annotations

import math
import time
from typing import Any

from collectors.flink.exceptions import classify
from monitoring.errors import redact
from monitoring.metrics import BACKPRESSURE_LEVELS
from monitoring.models.flink import Backpressure, CheckpointRecord, Checkpoints, FlinkException, Job, TaskManager

TASKMANAGER_METRICS = {
    "Status.JVM.CPU.Load": "cpu_load", "Status.JVM.Memory.Heap.Used": "heap_used",
    "Status.JVM.Memory.Heap.Max": "heap_max", "Status.Flink.Memory.Managed.Used": "managed_used",
    "Status.Flink.Memory.Managed.Total": "managed_total",
    "Status.JVM.GarbageCollector.All.TimeMsPerSecond": "gc_ms_per_second", "Status.JVM.Threads.Count": "threads",
}
"""Taskmanager metric -> TaskManager field."""
JOB_METRICS = ("uptime", "downtime", "restartingTime", "numRestarts")
VERTEX_METRICS = {  # name -> how subtasks combine: rates add up, time-per-second is as bad as the worst subtask
    "numRecordsInPerSecond": "sum", "numRecordsOutPerSecond": "sum", "busyTimeMsPerSecond": "max",
    "idleTimeMsPerSecond": "max", "backPressuredTimeMsPerSecond": "max",
}
_NO_WATERMARK = -(2 ** 63)  # Long.MIN_VALUE: the subtask has seen no watermark yet
_CHECKPOINTING_OFF = 2 ** 62
"""Flink reports interval Long.MAX_VALUE when checkpointing is disabled."""

CheckpointConfig = tuple[float | None, float | None]
"""(interval, timeout) in seconds; None: checkpointing off, or no timeout."""


def number(value: Any) -> float | None:
    """A number from the API (numbers often come as strings); "NaN", infinities and the rest are None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        parsed = float(value)
    except (TypeError, ValueError):
        return None
    return parsed if math.isfinite(parsed) else None


def integer(value: Any) -> int | None:
    parsed = number(value)
    return int(parsed) if parsed is not None else None


def seconds(value: Any) -> float | None:
    """Milliseconds (a timestamp or a duration) as seconds; -1 and 0 ("not yet") are None."""
    parsed = number(value)
    return parsed / 1000 if parsed is not None and parsed > 0 else None


def java_error(body: Any) -> tuple[str, str | None]:
    """The first line of the Java stack trace Flink puts in {"errors": [...]} (None: the reason phrase)."""
    errors = body.get("errors") if isinstance(body, dict) else None
    text = str(errors[0]).strip() if isinstance(errors, list) and errors else ""
    return "", text.splitlines()[0][:300] if text else None


def taskmanager(listed: dict, values: dict[str, float | None]) -> TaskManager:
    """A taskmanager of GET /taskmanagers, with its TASKMANAGER_METRICS' values."""
    heartbeat = number(listed.get("timeSinceLastHeartbeat"))
    if heartbeat is not None:
        # Despite its name, recent versions put the heartbeat's timestamp here; older ones a duration.
        heartbeat = heartbeat / 1000 if heartbeat > 1e12 else time.time() - heartbeat / 1000
    return TaskManager(
        tm_id=str(listed.get("id")), slots=integer(listed.get("slotsNumber")),
        free_slots=integer(listed.get("freeSlots")), last_heartbeat=heartbeat,
        **{field: values.get(name) for name, field in TASKMANAGER_METRICS.items()},
    )


def job_from_overview(summary: dict) -> Job:
    """A job as GET /jobs/overview lists it (a finished job, or one whose details cannot be read)."""
    return Job(job_id=summary["jid"], name=str(summary.get("name") or summary["jid"]),
               state=str(summary.get("state", "UNKNOWN")), start_time=seconds(summary.get("start-time")),
               end_time=seconds(summary.get("end-time")), duration_seconds=seconds(summary.get("duration")),
               tasks=task_counts(summary))


def task_counts(summary: dict) -> dict[str, int]:
    return {state.lower(): int(count) for state, count in (summary.get("tasks") or {}).items()}


def checkpoint_config(body: dict) -> CheckpointConfig:
    interval, timeout = number(body.get("interval")), number(body.get("timeout"))
    return (interval / 1000 if interval and interval < _CHECKPOINTING_OFF else None,
            timeout / 1000 if timeout else None)


def plan_inputs(body: dict) -> dict[str, tuple[str, ...]]:
    """Vertex id -> the ids of the vertices feeding it, from the job plan."""
    nodes = (body.get("plan") or {}).get("nodes") or ()
    return {node["id"]: tuple(i["id"] for i in node.get("inputs") or ()) for node in nodes}


def state_entered(detail: dict) -> dict[str, float]:
    """Job state -> when the job last entered it (seconds), for the states it has been in."""
    return {state: t / 1000 for state, t in (detail.get("timestamps") or {}).items() if number(t)}


def checkpoints(body: dict, config: CheckpointConfig | None) -> Checkpoints:
    counts = body.get("counts") or {}
    latest = body.get("latest") or {}
    completed = latest.get("completed") or {}
    failed = latest.get("failed") or {}  # null while counts.failed > 0 is normal: failures before the trigger
    summary = body.get("summary") or {}

    def stats(name: str) -> dict[str, float]:
        values = summary.get(name) or {}
        if not number(counts.get("completed")):
            return {}  # Flink fills the summary with 0 and "NaN" before any checkpoint completed
        out = {stat: number(values.get(stat)) for stat in ("p50", "p90", "p99", "max")}
        return {stat: v for stat, v in out.items() if v is not None}

    return Checkpoints(
        completed=integer(counts.get("completed")), failed=integer(counts.get("failed")),
        in_progress=integer(counts.get("in_progress")),
        last_completed_at=seconds(completed.get("latest_ack_timestamp")),
        last_duration_ms=number(completed.get("end_to_end_duration")),
        last_checkpointed_size=number(completed.get("checkpointed_size")),
        last_state_size=number(completed.get("state_size")),
        last_failure_at=seconds(failed.get("failure_timestamp")), last_failure_message=failed.get("failure_message"),
        interval_seconds=config[0] if config else None, timeout_seconds=config[1] if config else None,
        duration_stats=stats("end_to_end_duration"), size_stats=stats("checkpointed_size"),
        history=tuple(_checkpoint_record(entry) for entry in body.get("history") or () if isinstance(entry, dict)
                      and integer(entry.get("id")) is not None),
    )


def _checkpoint_record(entry: dict) -> CheckpointRecord:
    status = str(entry.get("status") or "UNKNOWN")
    finished = entry.get("failure_timestamp") if status == "FAILED" else entry.get("latest_ack_timestamp")
    return CheckpointRecord(
        checkpoint_id=integer(entry.get("id")), status=status, triggered_at=seconds(entry.get("trigger_timestamp")),
        finished_at=seconds(finished), duration_ms=number(entry.get("end_to_end_duration")),
        checkpointed_size=number(entry.get("checkpointed_size")), state_size=number(entry.get("state_size")),
        failure_message=(str(entry["failure_message"]).strip().splitlines()[0] if entry.get("failure_message")
                         else None),
    )


def vertex_metric_names(listed: Any) -> list[str]:
    """The VERTEX_METRICS a vertex has, from the list of its subtasks' metrics (asking for a missing one makes
    the aggregated endpoint answer [] for all)."""
    available = ({entry.get("id") for entry in listed if isinstance(entry, dict)}
                 if isinstance(listed, list) else set())
    return [name for name in VERTEX_METRICS if name in available]


def vertex_metrics(answer: Any) -> dict[str, float | None]:
    """Metric -> its subtasks' values combined as VERTEX_METRICS says, from the aggregated endpoint."""
    return {entry.get("id"): number(entry.get(VERTEX_METRICS.get(entry.get("id"), "sum")))
            for entry in (answer if isinstance(answer, list) else ())}


def input_watermark(answer: Any) -> float | None:
    """The vertex's input watermark (seconds): the lowest of its subtasks', once every subtask has one."""
    marks = [number(w.get("value")) for w in answer if isinstance(w, dict)] if isinstance(answer, list) else []
    known = [m for m in marks if m is not None and m > _NO_WATERMARK]
    return min(known) / 1000 if known and len(known) == len(marks) else None


def backpressure(answer: dict, measured_at: float) -> Backpressure:
    if answer.get("status") != "ok":  # "deprecated": no samples stored yet, not "no backpressure"
        return Backpressure("UNKNOWN", None, (), measured_at)
    ratios = tuple(number(s.get("ratio")) for s in answer.get("subtasks") or ())
    level = str(answer.get("backpressureLevel") or answer.get("backpressure-level") or "").upper()
    known = [r for r in ratios if r is not None]
    return Backpressure(level if level in BACKPRESSURE_LEVELS else "UNKNOWN", max(known) if known else None,
                        ratios, measured_at)


def exceptions(answer: dict, job_id: str, limit: int) -> tuple[FlinkException, ...]:
    """The job's newest `limit` exceptions, classified, with secrets redacted from their traces."""
    raw: list[tuple[str, str, str | None, str | None, float | None]] = []
    history = answer.get("exceptionHistory")
    if isinstance(history, dict) and history.get("entries") is not None:  # 1.15+ and 2.x
        for entry in history.get("entries") or ():
            raw.append((entry.get("exceptionName") or "", entry.get("stacktrace") or "", entry.get("taskName"),
                        entry.get("endpoint") or entry.get("location"), number(entry.get("timestamp"))))
    else:  # 1.x before the history: root-exception plus all-exceptions
        if answer.get("root-exception"):
            trace = answer["root-exception"]
            raw.append((trace.split(":", 1)[0].strip(), trace, None, None, number(answer.get("timestamp"))))
        for entry in answer.get("all-exceptions") or ():
            trace = entry.get("exception") or ""
            raw.append((trace.split(":", 1)[0].strip(), trace, entry.get("task"), entry.get("location"),
                        number(entry.get("timestamp"))))
    out = []
    for name, trace, task, location, stamp in raw[:limit]:
        trace = redact(trace)  # a job's own errors quote its connectors' URLs (JDBC, with their passwords)
        category, hint = classify(name, trace)
        lines = trace.strip().splitlines()
        message = lines[0].removeprefix(name).removeprefix(":").strip() if lines else ""
        out.append(FlinkException(job_id=job_id, name=name, message=message, task=task, location=location,
                                  time=stamp / 1000 if stamp else time.time(), trace_head="\n".join(lines[:6]),
                                  category=category, hint=hint))
    return tuple(out)

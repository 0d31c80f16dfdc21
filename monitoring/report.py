"""What a report says, gathered from the store (rendering is apps/report.py).

For a window (the last N seconds, or everything the store holds): each pipeline's summary (health with
its reason, rates, lag, Flink jobs, checkpoint age, registry), latency percentiles, one sentence saying
what is wrong built from measured values only, the flow diagram's topology, the series for the
throughput, lag and latency charts, the Flink checkpoint history, and the errors. Unknown stays unknown.
"""

from __future__ import annotations

import math
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from monitoring.evaluation import Latency, pipeline_latencies
from monitoring.format import count, duration, rate
from monitoring.models.flink import FlinkSnapshot
from monitoring.store import Store
from monitoring.summary import PipelineSummary, local_summaries
from monitoring.topology import FlowInputs, Topology, build_topology

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*$")
_UNITS = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """"15m", "30s", "2h", "1d" or plain seconds ("90") as seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration such as 30s, 15m, 2h or 1d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def report_filename(now: float | None = None) -> str:
    """pipewatch-report-YYYYmmdd-HHMMSS.html (UTC)."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return f"pipewatch-report-{moment:%Y%m%d-%H%M%S}.html"


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    times: np.ndarray
    """Unix seconds."""
    values: np.ndarray


@dataclass(frozen=True, slots=True)
class Chart:
    name: str
    title: str
    unit: str
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    cluster: str
    job: str
    job_state: str
    checkpoint_id: int
    status: str
    triggered_at: float | None
    finished_at: float | None
    duration_ms: float | None
    checkpointed_size: float | None
    state_size: float | None
    failure: str | None


@dataclass(frozen=True, slots=True)
class JobCheckpoints:
    cluster: str
    job: str
    state: str
    completed: int | None
    failed: int | None
    interval_seconds: float | None
    age_seconds: float | None
    duration_p50_ms: float | None
    duration_max_ms: float | None
    last_failure: str | None


@dataclass(frozen=True, slots=True)
class ErrorRow:
    """One error of the store's error registry (monitoring/errors.py), seen in the window."""

    last_seen: float
    first_seen: float
    count: int
    source: str
    severity: str
    category: str
    message: str
    hint: str


@dataclass(frozen=True)
class PipelineReport:
    summary: PipelineSummary
    latencies: tuple[Latency, ...]
    sentence: str
    topology: Topology
    charts: tuple[Chart, ...]
    jobs: tuple[JobCheckpoints, ...]
    checkpoints: tuple[CheckpointRow, ...]
    errors: tuple[ErrorRow, ...]

    @property
    def name(self) -> str:
        return self.summary.pipeline


@dataclass(frozen=True)
class ReportData:
    generated_at: float
    window_start: float | None
    """None: everything the store holds."""
    window_end: float
    instance: str
    pipelines: tuple[PipelineReport, ...]


def gather_report(store: Store, pipelines: Sequence[Any], window_seconds: float | None = None,
                  now: float | None = None, instance: str | None = None) -> ReportData:
    """pipelines: config Pipelines (their flow hints and change feed are used) or pipeline names."""
    now = time.time() if now is None else now
    instance = instance or socket.gethostname()
    start = now - window_seconds if window_seconds else None
    names = [p if isinstance(p, str) else p.name for p in pipelines]
    summaries = {s.pipeline: s for s in local_summaries(store, names, instance, now)}
    registry = store.errors()
    reports = []
    for pipeline in pipelines:
        name = pipeline if isinstance(pipeline, str) else pipeline.name
        hints = None if isinstance(pipeline, str) else pipeline.flow
        feed = None if isinstance(pipeline, str) else pipeline.change_feed
        topology = build_topology(FlowInputs.gather(store, name, hints, feed, now))
        latencies = tuple(pipeline_latencies(store, name, now))
        summary = summaries[name]
        flink = [entry[1] for (p, collector), entry in _snapshots(store, name, "flink")]
        jobs, checkpoints = _checkpoints(flink, start)
        errors = [ErrorRow(e.last_seen, e.first_seen, e.count, e.component, e.severity, e.category, e.message, e.hint)
                  for e in registry if e.pipeline == name and (start is None or e.last_seen >= start)]
        reports.append(PipelineReport(
            summary=summary, latencies=latencies, sentence=what_is_wrong(summary, latencies, topology),
            topology=topology, charts=_charts(store, name, start), jobs=jobs, checkpoints=checkpoints,
            errors=tuple(sorted(errors, key=lambda e: e.last_seen, reverse=True)),
        ))
    return ReportData(now, start, now, instance, tuple(reports))


def _snapshots(store: Store, pipeline: str, kind: str) -> list:
    out = []
    for (p, collector) in sorted(store.health()):
        if p == pipeline and collector.split(":", 1)[0] == kind:
            entry = store.snapshot((p, collector))
            if entry is not None:
                out.append(((p, collector), entry))
    return out


# -- the sentence -----------------------------------------------------------------------------------


def what_is_wrong(summary: PipelineSummary, latencies: Sequence[Latency], topology: Topology) -> str:
    """One sentence: the pipeline's health, what is wrong (sources not up, then every part of the flow in
    error or warning, with its measured reason), then its headline measures. Never a number not measured."""
    problems = []
    if summary.health not in ("ok", "unknown"):
        problems.append(summary.reason)
    for node in topology.nodes:
        if node.state in ("error", "warning"):
            word = _KIND_WORDS.get(node.kind, node.kind)
            problems.append(f"{word + ' ' if word else ''}{node.label}: {node.reason}")
    measures = []
    if "kafka" in {c.split(":", 1)[0] for c in summary.collectors}:
        measures.append(f"produce {rate(summary.produce_rate, ' msg/s')}, "
                        f"consume {rate(summary.consume_rate, ' msg/s')}, "
                        f"lag {count(summary.lag_messages, 'messages')} "
                        f"(oldest unconsumed {duration(summary.lag_seconds)})")
    consumer = next((lat for lat in latencies if lat.measure == "consumer_lag"), None)
    if consumer is not None:
        measures.append(f"consumer lag p99 {duration(consumer.quantiles.get(0.99, math.nan))}")
    if not math.isnan(summary.flink_jobs):
        measures.append(f"{count(summary.flink_running)} of {count(summary.flink_jobs)} Flink jobs running"
                        + ("" if math.isnan(summary.checkpoint_age) else
                           f", oldest checkpoint {duration(summary.checkpoint_age)} ago"))
    if summary.health == "ok" and problems:  # every source answers, and what they measured is not all well
        head, body = f"{summary.pipeline}: every source up, but ", "; ".join(problems)
    else:
        head = f"{summary.pipeline} is {summary.health}"
        body = ": " + "; ".join(problems) if problems else ": nothing measured is wrong"
    tail = ". " + ", ".join(measures) + "." if measures else "."
    return head + body + tail


_KIND_WORDS = {"group": "consumer group", "job": "Flink job", "topic": "topic", "registry": "", "database": "database",
               "producer": "producer", "sink": "sink", "profiling": ""}


# -- charts -----------------------------------------------------------------------------------------


def _charts(store: Store, pipeline: str, start: float | None) -> tuple[Chart, ...]:
    def lines(name: str, label, where=lambda labels: True) -> tuple[Line, ...]:
        out = []
        for key in sorted(store.keys(name, lambda k: k[1][0] == pipeline and where(k[1]))):
            delta = store.since(key, 0)
            if delta is None:
                continue
            keep = delta.times >= start if start is not None else slice(None)
            out.append(Line(label(key[1]), delta.times[keep], delta.values[keep]))
        return tuple(out)

    several = len({k[1][1] for k in store.keys("kafka_consumergroup_group_sum_lag", lambda k: k[1][0] == pipeline)}) > 1
    return (
        Chart(f"{pipeline}-throughput", "Throughput: produced vs consumed (messages/s)", "messages / s",
              lines("pipewatch_pipeline_throughput", lambda labels: labels[1])),
        Chart(f"{pipeline}-lag", "Consumer lag (messages): the pipeline and each group", "messages",
              lines("pipewatch_pipeline_lag", lambda labels: "pipeline (all groups)")
              + lines("kafka_consumergroup_group_sum_lag",
                      lambda labels: f"{labels[1]}: {labels[2]}" if several else labels[2])),
        Chart(f"{pipeline}-latency", "Latency percentiles (seconds)", "seconds",
              lines("pipewatch_pipeline_latency_seconds",
                    lambda labels: f"{labels[1]} p{float(labels[2]) * 100:g}")),
    )


# -- checkpoints ------------------------------------------------------------------------------------


def _checkpoints(snapshots: list[FlinkSnapshot], start: float | None
                 ) -> tuple[tuple[JobCheckpoints, ...], tuple[CheckpointRow, ...]]:
    jobs, rows = [], []
    for snapshot in snapshots:
        for job in snapshot.jobs:
            if not job.detailed or job.checkpoints is None:
                continue
            c = job.checkpoints
            jobs.append(JobCheckpoints(snapshot.cluster, job.name, job.state, c.completed, c.failed,
                                       c.interval_seconds, job.checkpoint_age_seconds, c.duration_stats.get("p50"),
                                       c.duration_stats.get("max"), c.last_failure_message))
            for record in c.history:
                if start is not None and (record.triggered_at or 0) < start:
                    continue
                rows.append(CheckpointRow(snapshot.cluster, job.name, job.state, record.checkpoint_id, record.status,
                                          record.triggered_at, record.finished_at, record.duration_ms,
                                          record.checkpointed_size, record.state_size, record.failure_message))
    rows.sort(key=lambda r: (r.triggered_at or 0), reverse=True)
    return tuple(jobs), tuple(rows)

"""Flink for one pipeline: the cluster, its jobs, one job in detail (vertex graph, live charts), the
taskmanagers and the exceptions, as the collector last read them."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import HTMLTemplateFormatter
from panel.viewable import Viewer

from apps.escape import esc
from apps.format_templates import COUNT, NUMBER, RATE
from apps.live import LiveChart
from apps.palette import BACKPRESSURE_COLOURS, ERROR, FLINK_JOB_COLOURS, NEUTRAL, coloured_cell, text_colour
from apps.widgets import LiveHTML, LiveTable, SnapshotSection, dim, freshness
from monitoring.format import age, clock, count, duration, number, rate, size
from monitoring.models.flink import FlinkSnapshot, Job, Vertex
from monitoring.store import Store

_STATE = HTMLTemplateFormatter(template=coloured_cell("pw-job-state", "state", FLINK_JOB_COLOURS))
_JOB_COLUMNS = {"job": None, "id": None, "state": _STATE, "uptime": None, "restarts": COUNT,
                "checkpoint age": None, "checkpoints": None, "records in/s": RATE, "busiest vertex": None,
                "problems": None}
_VERTEX_COLUMNS = {"vertex": None, "parallelism": COUNT, "status": None, "records in/s": RATE, "records out/s": RATE,
                   "busy ms/s": NUMBER, "backpressured ms/s": NUMBER, "backpressure": None, "subtask ratios": None,
                   "watermark lag": None}
_TM_COLUMNS = {"taskmanager": None, "slots used": None, "CPU load": None, "heap": None, "managed memory": None,
               "GC ms/s": NUMBER, "threads": COUNT, "last heartbeat": None}
_EXCEPTION_COLUMNS = {"time": None, "job": None, "task": None, "exception": None, "category": None, "hint": None,
                      "trace": None}
_NO_JOB = "(no job)"


class FlinkView(SnapshotSection, Viewer):
    _snapshot: FlinkSnapshot | None = None

    def __init__(self, store: Store, pipeline: str, collector: str, cluster: str, **params) -> None:
        super().__init__(**params)
        self.store, self.pipeline = store, pipeline
        self.source = (pipeline, collector)
        self.status = LiveHTML("", name="flink-status", sizing_mode="stretch_width")
        self.jobs = LiveTable(_JOB_COLUMNS, "flink-jobs-table", page_size=10)
        self.job_choice = pn.widgets.Select(label="Job", options=[_NO_JOB], value=_NO_JOB, width=420)
        self.graph = LiveHTML("", name="flink-graph", sizing_mode="stretch_width")
        self.job_facts = LiveHTML("", name="flink-job-facts", sizing_mode="stretch_width")
        self.vertices = LiveTable(_VERTEX_COLUMNS, "flink-vertices-table", page_size=20)
        self.taskmanagers = LiveTable(_TM_COLUMNS, "flink-taskmanagers-table", page_size=10)
        self.exceptions = LiveTable(_EXCEPTION_COLUMNS, "flink-exceptions-table", page_size=10)
        mine = (pipeline, cluster)

        def of_job(name: str):
            return lambda k: k[0] == name and k[1][:2] == mine and k[1][3] == self.job_choice.value

        self.throughput_chart = LiveChart(store, "Records in per second, per vertex", "records / s",
                                          of_job("flink_taskmanager_job_task_numRecordsInPerSecond"),
                                          lambda k: k[1][4], name="flink-throughput-chart")
        self.checkpoint_chart = LiveChart(store, "Last checkpoint: duration (ms) and age (s)", "ms / s",
                                          lambda k: of_job("flink_jobmanager_job_lastCheckpointDuration")(k)
                                          or of_job("flink_jobmanager_job_checkpoint_age_seconds")(k),
                                          lambda k: "duration (ms)" if "Duration" in k[0] else "age (s)",
                                          name="flink-checkpoint-chart")
        self.size_chart = LiveChart(store, "Last checkpoint size (bytes)", "bytes",
                                    of_job("flink_jobmanager_job_lastCheckpointSize"), lambda k: "checkpointed size",
                                    name="flink-checkpoint-size-chart")
        self.watermark_chart = LiveChart(store, "Watermark lag per vertex (s)", "seconds",
                                         of_job("flink_task_watermark_lag_seconds"), lambda k: k[1][4],
                                         name="flink-watermark-chart")
        self.charts = (self.throughput_chart, self.checkpoint_chart, self.size_chart, self.watermark_chart)
        self.job_choice.param.watch(lambda _: self._job_changed(), "value")
        self._layout = pn.Column(
            pn.pane.HTML(f"<h3>Flink cluster <code>{esc(cluster)}</code></h3>"),
            pn.pane.Bokeh(self.status.model, sizing_mode="stretch_width"),
            pn.pane.Markdown("#### Jobs"), self.jobs,
            self.job_choice, pn.pane.Bokeh(self.job_facts.model, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.graph.model, sizing_mode="stretch_width"),
            pn.Row(*(pn.pane.Bokeh(c.figure, sizing_mode="stretch_width") for c in self.charts[:2]),
                   sizing_mode="stretch_width"),
            pn.Row(*(pn.pane.Bokeh(c.figure, sizing_mode="stretch_width") for c in self.charts[2:]),
                   sizing_mode="stretch_width"),
            self.vertices,
            pn.pane.Markdown("#### Taskmanagers"), self.taskmanagers,
            pn.pane.Markdown("#### Exceptions"), self.exceptions,
            sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    def refresh(self, detail: bool = True) -> None:
        """Stream the charts; with `detail`, also the status line, the graph and the tables (see
        views.DETAIL_SECONDS)."""
        for chart in self.charts:
            chart.refresh()
        if not detail:
            return
        now = time.time()
        shown = self._follow_snapshot(now)
        health = self.store.health().get(self.source)
        text, stale = freshness("Flink", shown, health, now)
        if self._snapshot is not None:
            snap = self._snapshot
            states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(snap.jobs_by_state.items())) or "no jobs"
            text += (f'<div class="pw-flink-facts">Flink {esc(snap.version or "version unknown")} &middot; '
                     f"{count(snap.taskmanagers_count)} taskmanager(s) &middot; {count(snap.slots_available)} of "
                     f"{count(snap.slots_total)} slots free &middot; jobs: {esc(states)}</div>")
        self.status.text = text  # a Bokeh property set to its own value sends nothing
        dim((self.jobs, self.vertices, self.taskmanagers, self.exceptions), stale)

    def _render(self, now: float) -> None:
        snapshot = self._snapshot
        self.jobs.value = pd.DataFrame([_job_row(j, now) for j in snapshot.jobs], columns=list(_JOB_COLUMNS))
        options = [j.job_id for j in snapshot.jobs if j.detailed] or [_NO_JOB]
        labels = {j.job_id: f"{j.name} ({j.job_id[:8]})" for j in snapshot.jobs}
        choices = {labels.get(o, o): o for o in options}
        if self.job_choice.options != choices:
            current = self.job_choice.value
            self.job_choice.options = choices
            if current not in options:
                running = [j.job_id for j in snapshot.jobs if j.detailed and j.state == "RUNNING"]
                self.job_choice.value = (running or options)[0]
        self._render_job(now)
        self.taskmanagers.value = pd.DataFrame([{
            "taskmanager": tm.tm_id,
            "slots used": (f"{tm.slots - tm.free_slots} of {tm.slots}"
                           if tm.slots is not None and tm.free_slots is not None else "unknown"),
            "CPU load": f"{tm.cpu_load:.0%}" if tm.cpu_load is not None else "unknown",
            "heap": _of(tm.heap_used, tm.heap_max), "managed memory": _of(tm.managed_used, tm.managed_total),
            "GC ms/s": _f(tm.gc_ms_per_second), "threads": _f(tm.threads),
            "last heartbeat": age(tm.last_heartbeat, now),
        } for tm in snapshot.taskmanagers], columns=list(_TM_COLUMNS))
        names = {j.job_id: j.name for j in snapshot.jobs}
        self.exceptions.value = pd.DataFrame([{
            "time": clock(e.time), "job": names.get(e.job_id, e.job_id[:8]), "task": e.task or "",
            "exception": f"{e.name}: {e.message}", "category": e.category, "hint": e.hint or "",
            "trace": e.trace_head,
        } for e in snapshot.exceptions[:50]], columns=list(_EXCEPTION_COLUMNS))

    def _job_changed(self) -> None:
        for chart in self.charts:
            chart.reselect()
        if self._snapshot is not None:
            self._render_job(time.time())

    def _render_job(self, now: float) -> None:
        job = next((j for j in self._snapshot.jobs if j.job_id == self.job_choice.value), None)
        if job is None:
            self.graph.text, self.job_facts.text = "", "<em>No job to show.</em>"
            self.vertices.value = pd.DataFrame(columns=list(_VERTEX_COLUMNS))
            return
        self.job_facts.text = _job_facts(job, now)
        self.graph.text = _graph(job, now)
        self.vertices.value = pd.DataFrame([{
            "vertex": v.name, "parallelism": float(v.parallelism), "status": v.status,
            "records in/s": _f(v.records_in_per_second), "records out/s": _f(v.records_out_per_second),
            "busy ms/s": _f(v.busy_ms_per_second), "backpressured ms/s": _f(v.backpressured_ms_per_second),
            "backpressure": v.backpressure.level if v.backpressure else "unknown",
            "subtask ratios": ", ".join("unknown" if r is None else f"{r:.2f}" for r in v.backpressure.subtask_ratios)
            if v.backpressure else "",
            "watermark lag": duration(now - v.input_watermark) if v.input_watermark else "no watermark",
        } for v in job.vertices], columns=list(_VERTEX_COLUMNS))


def _job_row(job: Job, now: float) -> dict[str, object]:
    checkpoints = job.checkpoints
    busiest = max((v for v in job.vertices if v.busy_ms_per_second is not None),
                  key=lambda v: v.busy_ms_per_second, default=None)
    sources = [v.records_out_per_second for v in job.vertices if not v.inputs and v.records_out_per_second is not None]
    age_text = "unknown"
    if job.checkpoint_age_seconds is not None:
        age_text = duration(job.checkpoint_age_seconds)
        if checkpoints and checkpoints.interval_seconds:
            age_text += f" ({job.checkpoint_age_seconds / checkpoints.interval_seconds:.1f}x the interval)"
    elif checkpoints and checkpoints.interval_seconds is None and job.detailed:
        age_text = "checkpointing off"
    return {
        "job": job.name, "id": job.job_id[:8], "state": job.state,
        "uptime": duration(job.uptime_ms / 1000) if job.uptime_ms else ("0 s" if job.detailed else "unknown"),
        "restarts": _f(job.restarts), "checkpoint age": age_text,
        "checkpoints": (f"{count(checkpoints.completed)} done, {count(checkpoints.failed)} failed" if checkpoints
                        else "unknown"),
        "records in/s": float(sum(sources)) if sources else np.nan,
        "busiest vertex": f"{busiest.name} ({number(busiest.busy_ms_per_second, 'ms/s')})" if busiest else "unknown",
        "problems": "; ".join(job.errors),
    }


def _job_facts(job: Job, now: float) -> str:
    checkpoints = job.checkpoints
    colour = FLINK_JOB_COLOURS.get(job.state, NEUTRAL)
    parts = [f'<b style="color:{text_colour(colour)}">{esc(job.state)}</b>']
    if job.state_entered:
        parts.append("entered " + ", ".join(f"{s.lower()} {age(t, now)}" for s, t in
                                           sorted(job.state_entered.items(), key=lambda item: item[1])))
    if checkpoints is not None:
        parts.append(f"checkpoints every {duration(checkpoints.interval_seconds)}" if checkpoints.interval_seconds
                     else "checkpointing off")
        if checkpoints.last_completed_at:
            parts.append(f"last completed {age(checkpoints.last_completed_at, now)} in "
                         f"{_millis(checkpoints.last_duration_ms)}, {size(checkpoints.last_checkpointed_size)}")
        if checkpoints.last_failure_message:
            parts.append(f'<span style="color:{text_colour(ERROR)}">last failure '
                         f'{age(checkpoints.last_failure_at, now)}: '
                         f"{esc(checkpoints.last_failure_message)}</span>")
    return '<div class="pw-flink-job">' + " &middot; ".join(parts) + "</div>"


def _graph(job: Job, now: float) -> str:
    """The job's vertices left to right in the order Flink lists them (topological), each coloured by its
    backpressure and labelled with its rate; inputs other than the previous box are named."""
    boxes = []
    previous: Vertex | None = None
    for vertex in job.vertices:
        level = vertex.backpressure.level if vertex.backpressure else "UNKNOWN"
        colour = BACKPRESSURE_COLOURS[level]
        records = vertex.records_in_per_second if vertex.inputs else vertex.records_out_per_second
        extra = [i for i in vertex.inputs if previous is None or i != previous.vertex_id]
        names = {v.vertex_id: v.name for v in job.vertices}
        rate_text = rate(records, " records/s")
        also = ", ".join(esc(names.get(i, i)) for i in extra)
        boxes.append(
            f'<div class="pw-vertex" data-vertex="{esc(vertex.name)}" data-backpressure="{esc(level)}" '
            f'style="display:inline-block;vertical-align:middle;margin:4px;padding:6px 10px;border:2px solid {colour};'
            f'border-radius:6px;min-width:140px"><b>{esc(vertex.name)}</b><br>'
            f'{rate_text} &middot; x{esc(vertex.parallelism)}<br>'
            f'<span style="color:{text_colour(colour)}">backpressure {esc(level.lower())}</span>'
            + (f"<br><small>also from {also}</small>" if extra else "")
            + "</div>")
        previous = vertex
    return '<div class="pw-flink-graph">' + " &rarr; ".join(boxes) + "</div>"


def _f(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _millis(value: float | None) -> str:
    return duration(None if value is None else value / 1000)


def _of(used: float | None, total: float | None) -> str:
    if used is None or total is None or not total:
        return "unknown"
    return f"{size(used)} of {size(total)} ({used / total:.0%})"

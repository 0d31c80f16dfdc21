"""The Flink collector against a real local Flink 2.3 cluster (the session's `flink` fixture), and on
recorded 2.x and crafted 1.x response shapes for the REST API's traps."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from collectors.flink.client import FlinkError
from collectors.flink.collector import FlinkCollector
from exporters.server import start_exporter
from monitoring.config import FlinkSource
from monitoring.health import State
from monitoring.metrics import CATALOGUE
from monitoring.models.flink import FlinkSnapshot, Job
from monitoring.runtime import Supervisor
from monitoring.store import Store
from pipewatch.local.flink import LocalFlink
from tests.services import async_wait_until
from tests.test_exporter import PROMTOOL, _samples

PIPELINE = "streams"
FLINK_REPORTER_NAMES = {name for name in CATALOGUE if name.startswith("flink_") and name != name.lower()}
"""Names taken verbatim from Flink's Prometheus reporter: the only ones not in snake_case."""
RECORDED = json.loads((Path(__file__).parent / "flink_responses" / "flink-2.3.json").read_text())


def _collector(rest_url: str, **settings) -> FlinkCollector:
    return FlinkCollector(PIPELINE, FlinkSource(**{"rest_url": rest_url, "cluster": "local", "interval_seconds": 1,
                                                   "timeout_seconds": 5, **settings}))


def _snapshot(store: Store, collector: FlinkCollector) -> FlinkSnapshot:
    return store.snapshot(collector.source)[1]


def _job(snapshot: FlinkSnapshot, job_id: str) -> Job:
    return next(j for j in snapshot.jobs if j.job_id == job_id)


def _value(store: Store, name: str, *labels: str) -> float | None:
    point = store.latest(name, (PIPELINE, "local", *labels))
    return None if point is None else point[1]


def _rest(flink, path: str):
    return httpx.get(flink.cluster.rest_url + path, timeout=10).json()


# -- a real cluster -------------------------------------------------------------------------------


async def test_cluster_jobs_and_checkpoints_match_the_rest_api(flink):
    store, collector = Store(), _collector(flink.cluster.rest_url)
    try:
        async def checkpointed() -> bool:
            await collector.collect(store)
            checkpoints = _job(_snapshot(store, collector), flink.steady).checkpoints
            return checkpoints is not None and (checkpoints.completed or 0) >= 1

        await async_wait_until(checkpointed, 60, interval=0.5, what="a completed checkpoint of the steady job")
        overview, jobs = _rest(flink, "/overview"), _rest(flink, "/jobs/overview")["jobs"]
        snapshot = _snapshot(store, collector)
        assert (snapshot.version, snapshot.taskmanagers_count, snapshot.slots_total) == (
            "2.3.0", overview["taskmanagers"], overview["slots-total"])
        assert _value(store, "flink_jobmanager_taskSlotsTotal") == overview["slots-total"] == 4
        assert _value(store, "flink_jobmanager_numRegisteredTaskManagers") == 1
        assert {j.job_id: j.name for j in snapshot.jobs} == {j["jid"]: j["name"] for j in jobs}
        steady = _job(snapshot, flink.steady)
        assert steady.state == "RUNNING" and steady.name == "pipewatch steady job"
        assert [v.name for v in steady.vertices] == ["Source: orders source", "event time", "enrich (slow)",
                                                     "Sink: discard"]
        assert steady.vertices[1].inputs == (steady.vertices[0].vertex_id,)
        assert steady.checkpoints.interval_seconds == 2.0 and steady.checkpoints.timeout_seconds == 600.0
        labels = ("pipewatch steady job", flink.steady)
        assert _value(store, "flink_jobmanager_job_checkpoint_interval_seconds", *labels) == 2.0
        assert _value(store, "flink_jobmanager_job_state", *labels) == 3  # RUNNING
        tm = snapshot.taskmanagers[0]
        assert tm.slots == 4 and tm.heap_max > tm.heap_used > 0 and tm.threads > 0
        assert abs(tm.last_heartbeat - time.time()) < 30

        first = steady.checkpoints.completed
        rest_count = _rest(flink, f"/jobs/{flink.steady}/checkpoints")["counts"]["completed"]
        assert first <= rest_count

        async def more_checkpoints() -> bool:
            await collector.collect(store)
            return _job(_snapshot(store, collector), flink.steady).checkpoints.completed > first

        await async_wait_until(more_checkpoints, 30, interval=0.5, what="the checkpoint count to grow")
        steady = _job(_snapshot(store, collector), flink.steady)
        assert steady.checkpoint_age_seconds < 3 * steady.checkpoints.interval_seconds + 5
        completed = _value(store, "flink_jobmanager_job_numberOfCompletedCheckpoints", *labels)
        assert completed == steady.checkpoints.completed
        assert _value(store, "flink_jobmanager_job_checkpoint_duration_seconds", *labels, "max") > 0
    finally:
        await collector.close()


async def test_failing_job_restarts_and_its_exception_is_categorised(flink):
    store, collector = Store(), _collector(flink.cluster.rest_url)
    try:
        async def restarted() -> bool:
            await collector.collect(store)
            job = _job(_snapshot(store, collector), flink.failing)
            return (job.restarts or 0) >= 2 and bool(_snapshot(store, collector).exceptions)

        await async_wait_until(restarted, 90, interval=0.5, what="the failing job to restart twice")
        job = _job(_snapshot(store, collector), flink.failing)
        rest = {m["id"]: float(m["value"]) for m in _rest(flink, f"/jobs/{flink.failing}/metrics?get=numRestarts")}
        assert job.restarts <= rest["numRestarts"] <= job.restarts + 1  # read a moment apart; a restart every 2 s
        assert _value(store, "flink_jobmanager_job_numRestarts", "pipewatch failing job", flink.failing) == job.restarts
        exception = next(e for e in _snapshot(store, collector).exceptions if e.job_id == flink.failing)
        assert exception.name == "java.lang.ArithmeticException" and exception.message == "/ by zero"
        assert exception.task.startswith("price per unit (1/1)")
        assert exception.category == "user code: arithmetic"
        assert exception.hint == ("An arithmetic error (/ by zero) in user code at PipewatchJobs$Divide.map"
                                  "(PipewatchJobs.java:52): guard the divisor or filter out the records that cause it.")
        assert exception.trace_head.splitlines()[0] == "java.lang.ArithmeticException: / by zero"

        before = job.restarts

        def failure_events() -> int:
            return sum("java.lang.ArithmeticException: / by zero [user code: arithmetic]" in e.message
                       for e in store.events_since(0))

        seen = failure_events()

        async def later_failure_is_an_event() -> bool:
            await collector.collect(store)
            return failure_events() > seen

        await async_wait_until(later_failure_is_an_event, 30, interval=0.5, what="a new exception event")
        assert _job(_snapshot(store, collector), flink.failing).restarts > before
    finally:
        await collector.close()


async def test_backpressure_rates_and_watermark_lag_of_the_steady_job(flink):
    store, collector = Store(), _collector(flink.cluster.rest_url, backpressure_refresh_seconds=1)
    labels = ("pipewatch steady job", flink.steady)
    try:
        async def backpressured() -> bool:
            await collector.collect(store)
            vertices = {v.name: v for v in _job(_snapshot(store, collector), flink.steady).vertices}
            source = vertices["Source: orders source"]
            return source.backpressure is not None and source.backpressure.level == "HIGH" \
                and (vertices["enrich (slow)"].records_in_per_second or 0) > 0

        await async_wait_until(backpressured, 60, interval=0.5, what="the source to be reported as backpressured")
        vertices = {v.name: v for v in _job(_snapshot(store, collector), flink.steady).vertices}
        assert _value(store, "flink_task_backpressure_level", *labels, "Source: orders source") == 3  # HIGH
        assert _value(store, "flink_task_backpressure_ratio", *labels, "Source: orders source") > 0.5
        assert vertices["enrich (slow)"].busy_ms_per_second > 500  # the bottleneck is busy, not backpressured
        assert vertices["enrich (slow)"].backpressure.level in ("OK", "LOW")
        # A slow map of about 2 ms a record: a few hundred records a second at most.
        assert 0 < vertices["enrich (slow)"].records_in_per_second < 600
        assert vertices["Source: orders source"].records_in_per_second == 0  # a source reads no records

        enrich = vertices["enrich (slow)"]
        raw = int(_rest(flink, f"/jobs/{flink.steady}/vertices/{enrich.vertex_id}/watermarks")[0]["value"]) / 1000
        assert enrich.input_watermark is not None and 0 <= raw - enrich.input_watermark < 60
        lag = _value(store, "flink_task_watermark_lag_seconds", *labels, "enrich (slow)")
        assert lag == pytest.approx(_snapshot(store, collector).measured_at - enrich.input_watermark)
        assert vertices["Source: orders source"].input_watermark is None  # sources have none: unknown, not 0
        assert _value(store, "flink_task_watermark_lag_seconds", *labels, "Source: orders source") is None
    finally:
        await collector.close()


async def test_exporter_serves_flink_metrics_that_promtool_accepts(flink):
    store, collector = Store(), _collector(flink.cluster.rest_url)
    Supervisor(store, [collector])
    try:
        async def every_kind_of_series() -> bool:  # checkpoint stats and watermarks included
            await Supervisor(store, []).run_once(collector)
            return bool(store.keys("flink_jobmanager_job_checkpoint_duration_seconds")) and bool(
                store.keys("flink_task_watermark_lag_seconds"))

        await async_wait_until(every_kind_of_series, 60, interval=0.5, what="checkpoint and watermark series")
    finally:
        await collector.close()
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        text = httpx.get(exporter.url, timeout=10).text
    finally:
        exporter.stop()
    samples = _samples(text)
    job = frozenset({("pipeline", PIPELINE), ("cluster", "local"), ("job_name", "pipewatch steady job"),
                     ("job_id", flink.steady)})
    assert samples[("flink_jobmanager_job_state_info", job | {("state", "RUNNING")})] == 1
    assert samples[("flink_jobmanager_taskSlotsTotal", frozenset({("pipeline", PIPELINE), ("cluster", "local")}))] == 4
    assert not any("subtask" in dict(labels) for _, labels in samples)  # bounded: vertices, never subtasks
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    # Flink's own reporter names are kept as they are (camelCase), so dashboards built on them work; promtool's
    # style lint flags exactly that and must find nothing else.
    complaints = [line for line in (lint.stdout + lint.stderr).splitlines() if line.strip()]
    camel = [line for line in complaints if line.startswith("flink_") and "not 'camelCase'" in line]
    assert complaints == camel and camel, complaints
    assert all(line.split()[0] in FLINK_REPORTER_NAMES for line in camel), camel


async def test_stopped_cluster_marks_the_collector_down_and_it_recovers(tmp_path):
    cluster = LocalFlink(tmp_path, slots=1).start()
    try:
        store, collector = Store(), _collector(cluster.rest_url)
        supervisor = Supervisor(store, [collector], max_backoff=1)
        await supervisor.run_once(collector)
        assert store.health()[collector.source].state is State.UP
        cluster.stop()
        await supervisor.run_once(collector)
        health = store.health()[collector.source]
        assert health.state is State.DOWN and health.error_category == "connection_refused", health
        assert re.fullmatch(r"FlinkError: GET /(overview|jobs/overview|taskmanagers): .+", health.last_error), health
        cluster.start()

        async def up() -> bool:
            await supervisor.run_once(collector)
            return store.health()[collector.source].state is State.UP

        await async_wait_until(up, 60, interval=0.5, what="the collector to recover")
        assert _snapshot(store, collector).taskmanagers_count == 1
        await collector.close()
    finally:
        cluster.stop()


# -- recorded and crafted responses ---------------------------------------------------------------


def _replay(responses: dict, overrides: dict | None = None) -> httpx.MockTransport:
    """Serve recorded answers by path and query; `overrides` replace some (a status and body)."""
    def handle(request: httpx.Request) -> httpx.Response:
        params = "&".join(f"{k}={v}" for k, v in sorted(request.url.params.items()))
        key = request.url.path + (f"?{params}" if params else "")
        if overrides and key in overrides:
            status, body = overrides[key]
            return httpx.Response(status, json=body)
        if key not in responses:
            return httpx.Response(404, json={"errors": [f"org.apache.flink.runtime.rest.NotFoundException: {key}"]})
        return httpx.Response(200, json=responses[key])
    return httpx.MockTransport(handle)


async def _replayed(responses: dict, overrides: dict | None = None) -> tuple[FlinkSnapshot, Store]:
    store, collector = Store(), _collector("http://flink.test:8081")
    collector._client = httpx.AsyncClient(base_url="http://flink.test:8081", transport=_replay(responses, overrides))
    try:
        await collector.collect(store)
    finally:
        await collector.close()
    return _snapshot(store, collector), store


async def test_recorded_2x_answers_with_nan_strings_and_empty_metrics():
    responses = RECORDED["responses"]
    snapshot, store = await _replayed(responses)
    failing = _job(snapshot, RECORDED["failing"])
    assert failing.state == "RESTARTING" and failing.checkpoints.completed == 0
    assert failing.checkpoints.duration_stats == {}  # Flink's "NaN" percentiles before any checkpoint
    assert failing.checkpoints.last_completed_at is None
    assert failing.checkpoints.last_failure_message is not None  # latest.failed was recorded
    assert all(v.records_in_per_second is None for v in failing.vertices)  # not running: unknown, not 0
    assert failing.checkpoint_age_seconds is None  # only for running jobs
    assert snapshot.exceptions[0].category == "user code: arithmetic"

    steady = _job(snapshot, RECORDED["steady"])
    assert steady.vertices[2].input_watermark is not None
    # Every number in a metrics answer may arrive as a string, "NaN" among them.
    job_metrics = next(k for k in responses if k.startswith(f"/jobs/{RECORDED['steady']}/metrics"))
    crafted = copy.deepcopy(responses)
    crafted[job_metrics] = [{"id": "uptime", "value": "NaN"}, {"id": "numRestarts", "value": "3"}]
    snapshot, store = await _replayed(crafted)
    steady = _job(snapshot, RECORDED["steady"])
    assert (steady.uptime_ms, steady.restarts) == (None, 3.0)
    assert store.latest("flink_jobmanager_job_uptime", (PIPELINE, "local", steady.name, steady.job_id)) is None

    crafted[job_metrics] = []  # what a restarting job answers
    snapshot, _ = await _replayed(crafted)
    assert _job(snapshot, RECORDED["steady"]).restarts is None


async def test_failed_checkpoints_without_latest_failed_and_errors_with_java_traces():
    responses = copy.deepcopy(RECORDED["responses"])
    key = f"/jobs/{RECORDED['steady']}/checkpoints"
    responses[key]["counts"]["failed"] = 4
    responses[key]["latest"]["failed"] = None  # failures before the trigger are not kept in history
    vertex = next(k for k in responses if k.endswith("/backpressure") and RECORDED["steady"] in k)
    trace = ("org.apache.flink.runtime.rest.handler.RestHandlerException: Internal server error.\n\tat "
             "org.apache.flink.runtime.rest.handler.job.JobVertexBackPressureHandler.handleRequest(...)")
    snapshot, _ = await _replayed(responses, {vertex: (500, {"errors": [trace]})})
    steady = _job(snapshot, RECORDED["steady"])
    assert steady.checkpoints.failed == 4 and steady.checkpoints.last_failure_message is None
    assert steady.errors == (f"GET {vertex}: HTTP 500: org.apache.flink.runtime.rest.handler.RestHandlerException: "
                             f"Internal server error.",)
    assert steady.state == "RUNNING"  # one part failing leaves the rest of the job known

    with pytest.raises(FlinkError) as info:
        await _replayed(responses, {"/overview": (503, {"errors": ["Service temporarily unavailable"]})})
    assert (info.value.category, str(info.value)) == ("server_error",
                                                       "GET /overview: HTTP 503: Service temporarily unavailable")


async def test_flink_1x_exception_and_backpressure_shapes():
    responses = copy.deepcopy(RECORDED["responses"])
    failing = RECORDED["failing"]
    key = next(k for k in responses if k.startswith(f"/jobs/{failing}/exceptions"))
    trace = ("org.apache.flink.runtime.JobException: Recovery is suppressed\n\tat org.apache.flink.runtime..."
             "\nCaused by: java.lang.OutOfMemoryError: Java heap space\n\tat com.acme.Enricher.map(Enricher.java:88)")
    responses[key] = {"root-exception": trace, "timestamp": 1_700_000_000_000, "truncated": False,
                      "all-exceptions": [{"exception": "java.lang.NullPointerException: amount\n\tat "
                                                       "com.acme.Pricing.map(Pricing.java:12)",
                                          "task": "pricing (1/2)", "location": "tm-1:6121",
                                          "timestamp": 1_699_999_999_000}]}
    steady_vertex = next(k for k in responses if k.endswith("/backpressure") and RECORDED["steady"] in k)
    responses[steady_vertex] = {"status": "deprecated", "backpressure-level": "ok", "end-timestamp": 0,
                                "subtasks": []}
    snapshot, _ = await _replayed(responses)
    exceptions = [e for e in snapshot.exceptions if e.job_id == failing]
    assert [(e.name, e.category) for e in exceptions] == [
        ("org.apache.flink.runtime.JobException", "resources: heap"),
        ("java.lang.NullPointerException", "user code: null value"),
    ]
    assert exceptions[1].hint == ("A null value reached user code at com.acme.Pricing.map(Pricing.java:12): check "
                                  "the input for missing fields.")
    assert exceptions[1].task == "pricing (1/2)" and exceptions[1].time == 1_699_999_999.0
    vertex = next(v for v in _job(snapshot, RECORDED["steady"]).vertices if steady_vertex.split("/")[4] == v.vertex_id)
    assert vertex.backpressure.level == "UNKNOWN"  # deprecated: not measured yet, not OK


async def test_hostile_ids_stay_one_path_segment_and_job_traces_lose_their_passwords():
    jid, vid, tm_id = "../../jobs/x?y", "../v#z", "tm/../../overview"
    job, vertex = f"/jobs/{quote(jid, safe='')}", f"/vertices/{quote(vid, safe='')}"
    trace = ("java.sql.SQLException: cannot connect to jdbc:postgresql://sink:hunter2-pw@db:5432/out\n"
             "\tat com.acme.Sink.open(Sink.java:7)")
    answers = {
        "/overview": {"flink-version": "2.3.0"},
        "/jobs/overview": {"jobs": [{"jid": jid, "name": "evil", "state": "FAILING", "start-time": 1}]},
        "/taskmanagers": {"taskmanagers": [{"id": tm_id, "slotsNumber": 1, "freeSlots": 0}]},
        job: {"jid": jid, "name": "evil", "state": "FAILING",
              "vertices": [{"id": vid, "name": "sink", "parallelism": 1, "status": "RUNNING"}]},
        f"{job}/exceptions": {"exceptionHistory": {"entries": [
            {"exceptionName": "java.sql.SQLException", "stacktrace": trace, "timestamp": 1_700_000_000_000}]}},
    }
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode().split("?")[0]
        seen.append(path)
        return httpx.Response(200, json=answers[path]) if path in answers else httpx.Response(404, json={"errors": []})

    store, collector = Store(), _collector("http://flink.test:8081")
    collector._client = httpx.AsyncClient(base_url="http://flink.test:8081", transport=httpx.MockTransport(handle))
    try:
        await collector.collect(store)
    finally:
        await collector.close()
    per_job = [p for p in seen if p not in ("/overview", "/jobs/overview", "/taskmanagers")
               and not p.startswith("/taskmanagers/")]
    assert f"/taskmanagers/{quote(tm_id, safe='')}/metrics" in seen
    assert per_job and all(p == job or p.startswith(f"{job}/") for p in per_job), per_job
    assert f"{job}{vertex}/subtasks/metrics" in per_job and f"{job}{vertex}/backpressure" in per_job
    assert quote(jid, safe="") == "..%2F..%2Fjobs%2Fx%3Fy"
    (exception,) = _snapshot(store, collector).exceptions
    assert exception.message == "cannot connect to jdbc:postgresql://sink:***@db:5432/out"
    assert "hunter2-pw" not in exception.trace_head
    assert all("hunter2-pw" not in e.message and "hunter2-pw" not in e.hint for e in store.errors())
    assert any("jdbc:postgresql://sink:***@db" in e.message for e in store.errors())

"""Reports from a store with known data: exact numbers in the summary and tables, the window, unknowns."""

from __future__ import annotations

import re

import pytest

from apps.report import render_report
from monitoring.evaluation import Evaluator
from monitoring.report import gather_report, parse_duration, report_filename
from tests.flow_fixtures import HINTS, NOW, down, pipeline_store, up, write_series


def _store(kafka_down: bool = False):
    store = pipeline_store()
    evaluator = Evaluator(store, ["orders"], instance="test-host")
    for i, t in enumerate((NOW - 600, NOW - 300, NOW - 10, NOW)):
        for collector, target in (("kafka", "127.0.0.1:9092"), ("flink", "http://flink:8081"),
                                  ("schema_registry", "http://registry:8081")):
            store.set_health(up("orders", collector, target, t))
        write_series(store, t, scale=1.0 if i else 2.0)
        evaluator.evaluate(t)
    for t in (NOW - 900, NOW - 800):
        store.record_error("orders", "kafka", "timeout", "run took longer than the 15 s timeout", t=t)
    store.record_error("orders", "schema_registry", "server_error",
                       "GET /subjects/orders-value/versions: HTTP 500, error 50001: backend store", "warning",
                       t=NOW - 100)
    store.record_error("orders", "flink", "user code: arithmetic",
                       "job enrich: enrich: java.lang.ArithmeticException: / by zero", t=NOW - 60)
    store.record_error("other", "kafka", "timeout", "another pipeline's error", t=NOW - 10)
    if kafka_down:
        store.set_health(down("orders", "kafka", "127.0.0.1:9092", NOW))
    return store


class _Pipeline:
    name, flow, change_feed = "orders", HINTS, None


def test_summary_sentence_checkpoints_and_errors_carry_the_measured_numbers():
    data = gather_report(_store(), [_Pipeline()], window_seconds=None, now=NOW, instance="test-host")
    (report,) = data.pipelines
    s = report.summary
    assert (s.health, s.produce_rate, s.consume_rate, s.lag_messages, s.lag_seconds) == ("ok", 99.0, 48.0, 1244.0, 45.0)
    assert report.sentence == (
        "orders: every source up, but consumer group audit: ERR: orders-enriched[0] STOP: no member is consuming. "
        "produce 99 msg/s, consume 48 msg/s, lag 1,244 messages (oldest unconsumed 45 s), "
        "consumer lag p99 45 s, 1 of 1 Flink jobs running, oldest checkpoint 4.8 s ago.")
    (consumer_lag,) = [lat for lat in report.latencies if lat.measure == "consumer_lag"]
    assert consumer_lag.quantiles == {0.5: 2.5, 0.95: 45.0, 0.99: 45.0}
    assert [(c.checkpoint_id, c.status, c.duration_ms) for c in report.checkpoints] == [
        (12, "COMPLETED", 210.0), (11, "FAILED", None)]
    (job,) = report.jobs
    assert (job.completed, job.failed, job.interval_seconds, job.age_seconds) == (11, 1, 10.0, 4.8)
    assert [(e.source, e.severity, e.count, e.message) for e in report.errors] == [
        ("flink", "error", 1, "job enrich: enrich: java.lang.ArithmeticException: / by zero"),
        ("schema_registry", "warning", 1, "GET /subjects/orders-value/versions: HTTP 500, error 50001: backend store"),
        ("kafka", "error", 2, "run took longer than the 15 s timeout")]
    assert (report.errors[2].first_seen, report.errors[2].last_seen) == (NOW - 900, NOW - 800)
    throughput = {line.label: list(line.values) for line in report.charts[0].lines}
    assert throughput == {"consume": [96.0, 48.0, 48.0, 48.0], "produce": [198.0, 99.0, 99.0, 99.0]}
    lag = {line.label for line in report.charts[1].lines}
    assert lag == {"pipeline (all groups)", "billing", "audit"}

    page = render_report(data)
    for text in ("99 msg/s", "48 msg/s", "1,244 messages", "45 s", "Checkpoint expired before completing.",
                 "java.lang.ArithmeticException: / by zero", "HTTP 500, error 50001: backend store",
                 "1 of 1", "every registry answers", "4.8 s", "210 ms", "4.1 kB",
                 "orders: every source up, but consumer group audit: ERR"):
        assert text in page, text
    # Self-contained: no script, stylesheet, image or frame loaded from anywhere.
    assert re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=", page) == []
    assert "cdn.bokeh.org" not in page and "fonts.googleapis" not in page


def test_a_window_keeps_only_its_points_events_and_checkpoints():
    data = gather_report(_store(), [_Pipeline()], window_seconds=60, now=NOW)
    (report,) = data.pipelines
    assert data.window_start == NOW - 60
    assert {line.label: list(line.values) for line in report.charts[0].lines} == {"consume": [48.0, 48.0],
                                                                                 "produce": [99.0, 99.0]}
    assert [e.message for e in report.errors] == ["job enrich: enrich: java.lang.ArithmeticException: / by zero"]
    assert [c.checkpoint_id for c in report.checkpoints] == [12, 11]


def test_a_source_that_is_down_leaves_its_measures_unknown():
    data = gather_report(_store(kafka_down=True), ["orders"], now=NOW)
    (report,) = data.pipelines
    assert report.summary.health == "degraded"
    assert report.sentence.startswith("orders is degraded: kafka down: connection_refused: ConnectionRefusedError")
    assert "produce unknown, consume unknown, lag unknown (oldest unconsumed unknown)" in report.sentence
    page = render_report(data)
    assert "<td data-fact='produce rate'>unknown</td>" in page


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("90", 90),
                                               ("1.5m", 90)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "-5m", "15 minutes", "m"])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_file_name_has_the_time():
    assert report_filename(NOW) == "pipewatch-report-20270115-080000.html"



async def test_a_second_report_click_while_one_is_built_is_refused_and_says_so():
    import asyncio
    import threading

    from apps.report import ReportDownload

    download = ReportDownload(_store(), _Pipeline())
    release, started = threading.Event(), threading.Event()
    built = []

    def slow_build(window):
        started.set()
        release.wait(10)
        built.append(window)
        return "pipewatch-report-x.html", "<html>report</html>"

    download.build = slow_build
    first = asyncio.ensure_future(download._build())
    await asyncio.to_thread(started.wait, 10)
    assert await download._build() is None  # refused: nothing to download for this click
    assert "being built" in download.message.object
    release.set()
    assert (await first).getvalue() == "<html>report</html>"
    assert built == [3600.0] and download.message.object == "" and download.button.filename == "pipewatch-report-x.html"
    release.clear()
    release.set()  # free again: the next click builds
    assert (await download._build()).getvalue() == "<html>report</html>" and len(built) == 2

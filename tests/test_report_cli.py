"""`pipewatch report` as users run it: against a real broker and a real Flink cluster, and its errors."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from tests.kafka_util import commit, create_topic, produce
from tests.services import run_async

PIPEWATCH = [sys.executable, "-m", "pipewatch.cli"]
REPO = Path(__file__).resolve().parent.parent


def test_report_from_a_real_broker_and_flink_into_a_directory(broker, flink, tmp_path):
    run_async(create_topic(broker.bootstrap, "payments", 2))
    run_async(produce(broker.bootstrap, "payments", {0: 10, 1: 7}))
    run_async(commit(broker.bootstrap, "billing", "payments", {0: 4, 1: 7}))  # lag 6 + 0
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n  - name: orders\n"
        f"    kafka: {{bootstrap_servers: ['{broker.bootstrap}'], cluster: local, interval_seconds: 0.5}}\n"
        f"    flink: {{rest_url: '{flink.cluster.rest_url}', cluster: local, interval_seconds: 1}}\n"
        "    flow:\n      edges: [{from: 'topic:payments', to: 'job:pipewatch steady job'}]\n"
    )
    out = tmp_path / "reports"
    out.mkdir()
    started = time.monotonic()
    result = subprocess.run([*PIPEWATCH, "report", "--config", str(config), "--out", str(out), "--collect", "8s"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 8
    (written,) = out.iterdir()
    assert re.fullmatch(r"pipewatch-report-\d{8}-\d{6}\.html", written.name)
    assert result.stdout.strip() == str(written)
    page = written.read_text()
    assert "<td data-fact='consumer lag'>6 messages</td>" in page
    assert "<td data-fact='health'>ok</td>" in page
    assert "pipewatch steady job" in page and "COMPLETED" in page  # its checkpoint history (every 2 s)
    assert "java.lang.ArithmeticException: / by zero" in page  # the failing job's exceptions
    assert re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=", page) == []
    # The summary sentence is printed too, from the same measurements.
    assert "orders" in result.stderr and "lag 6 messages" in result.stderr


def test_report_to_a_file_with_a_window(tmp_path, broker):
    config = tmp_path / "pipewatch.yml"
    config.write_text(f"pipelines:\n  - name: orders\n    kafka: {{bootstrap_servers: ['{broker.bootstrap}']}}\n")
    out = tmp_path / "my-report.html"
    result = subprocess.run([*PIPEWATCH, "report", "--config", str(config), "--out", str(out), "--collect", "2s",
                             "--window", "1m"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert out.exists() and "window: " in out.read_text() and " to " in out.read_text()
    assert not list(tmp_path.glob(".*.tmp"))


def test_report_errors_come_before_any_collection(tmp_path):
    config = tmp_path / "bad.yml"
    config.write_text("pipelines:\n  - name: orders\n    flow: {edges: [{from: 'queue:x', to: 'topic:y'}]}\n")
    result = subprocess.run([*PIPEWATCH, "report", "--config", str(config)], capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert result.returncode == 2
    assert f"{config}: pipelines[0].flow.edges[0].from: 'queue:x' is not KIND:NAME" in result.stderr

    good = tmp_path / "good.yml"
    good.write_text("pipelines:\n  - name: orders\n    kafka: {bootstrap_servers: ['127.0.0.1:1']}\n")
    started = time.monotonic()
    result = subprocess.run([*PIPEWATCH, "report", "--config", str(good), "--out", str(tmp_path / "missing" / "r.html"),
                             "--collect", "60s"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2 and time.monotonic() - started < 30  # did not collect for a minute first
    assert f"pipewatch report: cannot write the report: {tmp_path / 'missing'} is not a directory" in result.stderr

    result = subprocess.run([*PIPEWATCH, "report", "--config", str(good), "--collect", "soon"], capture_output=True,
                            text=True, timeout=60, cwd=REPO)
    assert result.returncode == 2 and "'soon' is not a duration such as 30s, 15m, 2h or 1d" in result.stderr

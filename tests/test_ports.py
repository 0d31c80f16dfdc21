"""One instance per port (issue #20): a second agent or dashboard on a taken address says who holds it, exit 2.

Real processes throughout: `pipewatch agent` and `pipewatch dashboard` (panel serve) hold the ports, and the second
one is started as a user would start it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pipewatch.local.broker import port_open
from tests.services import free_port, wait_until

PIPEWATCH = [sys.executable, "-m", "pipewatch.cli"]
REPO = Path(__file__).resolve().parent.parent


def _config(tmp_path: Path, name: str, exporter_port: int) -> Path:
    # The source need not answer: the collector is down, the process itself is up and healthy.
    config = tmp_path / f"{name}.yml"
    config.write_text(f"pipelines:\n  - name: orders\n    kafka:\n"
                      f"      bootstrap_servers: [\"127.0.0.1:{free_port()}\"]\n"
                      f"exporter:\n  host: 127.0.0.1\n  port: {exporter_port}\n")
    return config


def _healthy(url: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status == 200
    except OSError:
        return False


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*PIPEWATCH, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.communicate()[0]


def _second(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PIPEWATCH, *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_a_second_agent_on_the_port_says_a_healthy_pipewatch_holds_it(tmp_path):
    port = free_port()
    config = _config(tmp_path, "agent", port)
    first = _start("agent", "--config", str(config))
    try:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}/healthz"), 30, interval=0.2, what="the first agent")
        second = _second("agent", "--config", str(config))
        assert first.poll() is None, "the first agent must keep running"
    finally:
        _stop(first)
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip() == (
        f"pipewatch agent: the exporter's address (exporter.host, exporter.port) 127.0.0.1:{port} is already in use: "
        f"a pipewatch is already running there and healthy (http://127.0.0.1:{port}/healthz answers 200). Stop that "
        f"process first, or give this agent another exporter.port in its config.")


def test_a_port_held_by_something_else_is_named_as_not_a_pipewatch(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as holder:  # listens, never answers HTTP
        port = holder.getsockname()[1]
        result = _second("agent", "--config", str(_config(tmp_path, "agent", port)))
    assert result.returncode == 2, result.stderr
    assert f"127.0.0.1:{port} is already in use: something that is not a pipewatch holds it" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_dashboard_on_its_port_or_its_exporters_port_is_refused(tmp_path):
    dashboard, exporter = free_port(), free_port()
    first = _start("dashboard", "--config", str(_config(tmp_path, "first", exporter)), "--port", str(dashboard))
    try:
        wait_until(lambda: _healthy(f"http://127.0.0.1:{dashboard}/healthz"), 90, interval=0.2,
                   what="the first dashboard's /healthz")
        assert _healthy(f"http://127.0.0.1:{dashboard}/apps", timeout=60)  # a page is served, not only the probe
        # Same Panel port, its own exporter port: the Panel port is named.
        same_port = _second("dashboard", "--config", str(_config(tmp_path, "second", free_port())),
                            "--port", str(dashboard))
        # Another Panel port, the same config (and so the same exporter port): the exporter's address is named.
        same_exporter = _second("dashboard", "--config", str(_config(tmp_path, "third", exporter)),
                                "--port", str(free_port()))
        assert first.poll() is None, "the first dashboard must keep running"
    finally:
        output = _stop(first)
    assert same_port.returncode == 2, same_port.stderr
    assert same_port.stderr.strip() == (
        f"pipewatch dashboard: the dashboard's address (--address, --port) 127.0.0.1:{dashboard} is already in use: "
        f"a pipewatch is already running there and healthy (http://127.0.0.1:{dashboard}/healthz answers 200). "
        f"Stop that process first, or pass another --port.")
    assert same_exporter.returncode == 2, same_exporter.stderr
    assert (f"the exporter's address (exporter.host, exporter.port) 127.0.0.1:{exporter} is already in use: a "
            f"pipewatch is already running there and healthy" in same_exporter.stderr)
    assert "Traceback" not in output + same_port.stderr + same_exporter.stderr
    assert not port_open(dashboard) and not port_open(exporter), "SIGTERM stops the dashboard and its exporter"


@pytest.mark.parametrize("command", ["agent", "dashboard"])
def test_a_bad_config_still_exits_2_before_any_port_is_checked(tmp_path, command):
    config = tmp_path / "bad.yml"
    config.write_text("pipelines:\n  - name: orders\n    kafka: {bootstrap_servers: []}\n")
    result = _second(command, "--config", str(config))
    assert result.returncode == 2
    assert "pipelines[0].kafka.bootstrap_servers" in result.stderr

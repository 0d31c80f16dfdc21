"""Secrets stay secret: a password planted through the sanctioned ways (a `password` key from the environment,
a `password_file`, basic_auth) and quoted back by a source (a Flink job's exception naming a JDBC URL) appears
in no output: /metrics, every /api/v1 endpoint, the agent's log, a report."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import asyncpg

from monitoring.errors import redact
from monitoring.health import describe
from tests.services import free_port, run_async, send_json, wait_until

REPO = Path(__file__).resolve().parent.parent
PIPEWATCH = [sys.executable, "-m", "pipewatch.cli"]
PLANTED = "Pl4nted-s3cret-77"
JOB = "0123456789abcdef0123456789abcdef"


def test_redact_masks_url_passwords_and_password_settings_only():
    assert redact("connect to postgresql://app:hunter2@db:5432/shop failed") == \
        "connect to postgresql://app:***@db:5432/shop failed"
    assert redact("jdbc:mysql://root:toor@10.0.0.1:3306/db; url=jdbc:postgresql://db/x?user=a&password=pw&ssl=1") == \
        "jdbc:mysql://root:***@10.0.0.1:3306/db; url=jdbc:postgresql://db/x?user=a&password=***&ssl=1"
    assert redact("host=db password=abc dbname=x, spring.datasource.password: s") == \
        "host=db password=*** dbname=x, spring.datasource.password: ***"
    for kept in ('password authentication failed for user "bob"', "ssh://git@github.com/x", "GET /jobs/ab: HTTP 404",
                 "postgresql://app@db/shop"):
        assert redact(kept) == kept
    assert describe(OSError(f"cannot reach https://u:{PLANTED}@registry:8081")) == \
        "OSError: cannot reach https://u:***@registry:8081"


class _Flink(BaseHTTPRequestHandler):
    """A Flink REST API behind basic auth whose one job failed with an exception quoting its sink's URL."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        expected = "Basic " + base64.b64encode(f"monitor:{PLANTED}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            return self._answer(401, {"errors": ["Unauthorized"]})
        path = self.path.split("?")[0]
        trace = (f"java.sql.SQLException: cannot open jdbc:postgresql://sink:{PLANTED}@warehouse:5432/out\n"
                 f"\tat com.acme.Sink.open(Sink.java:7)")
        answers = {
            "/overview": {"flink-version": "2.3.0", "taskmanagers": 0, "slots-total": 0, "slots-available": 0},
            "/jobs/overview": {"jobs": [{"jid": JOB, "name": "loader", "state": "RESTARTING", "start-time": 1}]},
            "/taskmanagers": {"taskmanagers": []},
            f"/jobs/{JOB}": {"jid": JOB, "name": "loader", "state": "RESTARTING", "vertices": []},
            f"/jobs/{JOB}/exceptions": {"exceptionHistory": {"entries": [
                {"exceptionName": "java.sql.SQLException", "stacktrace": trace, "timestamp": 1_700_000_000_000}]}},
        }
        self._answer(200, answers[path]) if path in answers else self._answer(404, {"errors": [f"no {path}"]})

    def _answer(self, status: int, body: object) -> None:
        send_json(self, status, body)

    def log_message(self, *args) -> None:
        pass


async def _database(dsn: str, role: str, schema: str) -> None:
    """A role that must log in with the planted password (scram), a watched table, the change feed installed."""
    connection = await asyncpg.connect(dsn)
    try:
        hba = Path(await connection.fetchval("SHOW hba_file"))
        line = f'local all "{role}" scram-sha-256\n'
        if line not in hba.read_text():
            hba.write_text(line + hba.read_text())  # first match wins: only this role needs a password
            await connection.execute("SELECT pg_reload_conf()")
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; DROP ROLE IF EXISTS "{role}"')
        await connection.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{PLANTED}'")
        await connection.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{role}"')
        await connection.execute(f'CREATE TABLE "{schema}".orders (id bigint PRIMARY KEY, name text)')
        await connection.execute(f'ALTER TABLE "{schema}".orders OWNER TO "{role}"')
    finally:
        await connection.close()


def _config(tmp_path: Path, dsn: str, schema: str, flink_port: int, port: int) -> Path:
    password_file = tmp_path / "pg-password"
    password_file.write_text(PLANTED + "\n")
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        "  - name: shop\n"
        "    change_feed:\n"
        f"      dsn: \"{dsn}\"\n"
        "      password: ${SHOP_PASSWORD}\n"
        f"      schema: {schema}\n"
        "      entities: [{name: Order, table: orders, key: id}]\n"
        "    profiling:\n"  # no profiling tables in that schema: errors are recorded
        f"      dsn: \"{dsn}\"\n"
        f"      password_file: {password_file}\n"
        f"      schema: {schema}\n"
        "      interval_seconds: 0.5\n"
        "  - name: streams\n"
        "    flink:\n"
        f"      rest_url: http://127.0.0.1:{flink_port}\n"
        "      basic_auth: {username: monitor, password: \"${SHOP_PASSWORD}\"}\n"
        "      interval_seconds: 0.5\n"
        "    schema_registry:\n"  # nothing listens there: connection errors are recorded
        f"      url: http://127.0.0.1:{free_port()}\n"
        "      basic_auth: {username: monitor, password: \"${SHOP_PASSWORD}\"}\n"
        "      interval_seconds: 0.5\n"
        f"exporter:\n  host: 127.0.0.1\n  port: {port}\n")
    return config


def _metrics(base: str) -> str:
    try:
        return _get(f"{base}/metrics")
    except OSError:
        return ""


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_a_planted_password_appears_in_no_output(postgres, pg_schema, tmp_path):
    role = f"{pg_schema}_app"[:63]
    run_async(_database(postgres.dsn, role, pg_schema))
    dsn = postgres.dsn.replace("postgres:@", f"{role}@", 1)  # the same socket, the role that needs the password
    flink = ThreadingHTTPServer(("127.0.0.1", 0), _Flink)
    threading.Thread(target=flink.serve_forever, daemon=True).start()
    port = free_port()
    config = _config(tmp_path, dsn, pg_schema, flink.server_address[1], port)
    env = {**os.environ, "SHOP_PASSWORD": PLANTED, "PYTHONPATH": str(REPO)}
    env.pop("PGPASSWORD", None)
    try:
        installed = subprocess.run([*PIPEWATCH, "change-feed", "install", "--config", str(config)], env=env, cwd=REPO,
                                   capture_output=True, text=True, timeout=60)
        assert installed.returncode == 0, installed.stderr  # as the role: the password reached PostgreSQL
        log = tmp_path / "agent.log"
        with log.open("w") as out:
            agent = subprocess.Popen([*PIPEWATCH, "--log-level", "DEBUG", "agent", "--config", str(config)], env=env,
                                     cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until(lambda: 'db_change_feed_backlog{pipeline="shop"}' in _metrics(base), 60, interval=0.25,
                       what="the change feed to start")
            run_async(_write_orders(dsn, pg_schema))  # after the start: delivered and counted

            def everything_seen() -> str | None:
                try:
                    state = _get(f"{base}/api/v1/state")
                    metrics = _get(f"{base}/metrics")
                except OSError:
                    return None
                missing = [part for part, text in (
                    ("sink:***@warehouse", state), ("missing_table", state), ("connection_refused", state),
                    ('db_change_events_total{pipeline="shop",entity="Order",event_type="insert"} 2.0', metrics))
                    if part not in text]
                assert not missing, f"not seen yet: {missing}"
                return state

            wait_until(everything_seen, 60, interval=0.25, what="the collectors to run and record their errors")
            pages = {path: _get(base + path) for path in (
                "/metrics", "/api/v1", "/api/v1/pipelines", "/api/v1/pipelines/shop", "/api/v1/pipelines/streams",
                "/api/v1/series", "/api/v1/series?pipeline=shop", "/api/v1/series?pipeline=streams",
                "/api/v1/events", "/api/v1/state")}
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=30)
        report = tmp_path / "report.html"
        reported = subprocess.run([*PIPEWATCH, "report", "--config", str(config), "--out", str(report),
                                   "--collect", "3s"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert reported.returncode == 0, reported.stderr
    finally:
        flink.shutdown()
        flink.server_close()
    pages["agent log"] = log.read_text()
    pages["report"] = report.read_text()
    pages["report output"] = reported.stdout + reported.stderr
    pages["install output"] = installed.stdout + installed.stderr
    # The surfaces did carry what the sources said: the redacted URL, the failures, the delivered changes.
    assert "jdbc:postgresql://sink:***@warehouse:5432/out" in pages["/api/v1/state"]
    assert "sink:***@warehouse" in pages["report"]
    assert "sink:***@warehouse" in pages["/api/v1/events"] + pages["/api/v1/state"]
    assert "/jobs/overview" in pages["agent log"]  # DEBUG: every request and its headers logged
    for surface, text in pages.items():
        for form in (PLANTED, quote(PLANTED), base64.b64encode(f"monitor:{PLANTED}".encode()).decode()):
            assert form not in text, f"the planted password shows in {surface}"


async def _write_orders(dsn: str, schema: str) -> None:
    connection = await asyncpg.connect(dsn, password=PLANTED)
    try:
        for key in (1, 2):
            await connection.execute(f'INSERT INTO "{schema}".orders VALUES ($1, $2)', key, f"order-{key}")
    finally:
        await connection.close()

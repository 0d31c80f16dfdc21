"""A real Prometheus scraping a real `pipewatch agent` (over TLS, with basic auth) fed by real sources, and every
PromQL expression of the Grafana dashboards and the alerting rules evaluated through Prometheus' HTTP API.

Sources: a Kafka-protocol broker with a lagging group, the session's Flink cluster (a steady job and one that
restarts every few seconds), PostgreSQL with profiling history and a change feed under live inserts, and the
schema-registry stand-in (no registry server can be installed here); plus a second pipeline whose Kafka and
registry do not exist, so the error and down paths have series too. A broken query, a renamed metric or a label
a rule expects but the agent does not export fails here.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

from collectors.aggregate.prometheus_query import PrometheusQueryCollector
from monitoring.config import PrometheusSource
from monitoring.store import Store
from pipewatch.local.broker import free_port
from pipewatch.samples.profiling import ProfilingSample
from tests.certs import make_certificates
from tests.kafka_util import commit, create_topic, produce
from tests.promql_sources import RULES, dashboard_expressions, rule_expressions
from tests.services import LocalPrometheus, run_async, wait_until

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "scrape-secret"


def _query(prometheus: LocalPrometheus, expr: str) -> list[dict]:
    response = httpx.get(f"{prometheus.url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


def _labels(result: list[dict]) -> list[dict[str, str]]:
    return [{k: v for k, v in series["metric"].items() if k not in ("instance", "job")} for series in result]


class _Inserts:
    """Rows inserted into the change feed's table every 50 ms until stopped, on a thread of their own."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn, self.schema = dsn, schema
        self.stop = threading.Event()
        self.count = 0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            while not self.stop.is_set():
                await connection.execute(f"INSERT INTO {self.schema}.orders (amount) VALUES ($1)", self.count)
                self.count += 1
                await asyncio.sleep(0.05)
        finally:
            await connection.close()


async def _profiling_history(dsn: str, schema: str) -> None:
    sample = ProfilingSample(dsn, schema, seed=11)
    connection = await asyncpg.connect(dsn)
    try:
        await sample.create_tables(connection)
        await sample.write_history(connection, 60, 2)
        await connection.execute(f"CREATE TABLE {schema}.orders (id bigserial PRIMARY KEY, amount int NOT NULL)")
    finally:
        await connection.close()


def _agent_config(tmp_path: Path, broker, flink, registry, dsn: str, schema: str, port: int, certs) -> Path:
    closed_kafka, closed_registry = free_port(), free_port()
    config = {
        "pipelines": [
            {"name": "orders",
             "kafka": {"bootstrap_servers": [broker.bootstrap], "cluster": "local", "interval_seconds": 1},
             "flink": {"rest_url": flink.cluster.rest_url, "cluster": "local", "interval_seconds": 1},
             "schema_registry": {"url": registry.url, "registry": "main", "interval_seconds": 1},
             "profiling": {"dsn": dsn, "schema": schema, "interval_seconds": 1},
             "change_feed": {"dsn": dsn, "schema": schema,
                             "entities": [{"name": "Order", "table": "orders", "schema": schema, "key": "id"}]}},
            {"name": "broken",
             "kafka": {"bootstrap_servers": [f"127.0.0.1:{closed_kafka}"], "cluster": "gone", "interval_seconds": 1,
                       "timeout_seconds": 2},
             "schema_registry": {"url": f"http://127.0.0.1:{closed_registry}", "registry": "gone",
                                 "interval_seconds": 1, "timeout_seconds": 2}},
        ],
        "exporter": {"host": "127.0.0.1", "port": port,
                     "basic_auth": {"username": "prometheus", "password": "${SCRAPE_PASSWORD}"},
                     "tls": {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)}},
        "runtime": {"max_backoff_seconds": 2},
    }
    path = tmp_path / "agent.yml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


def _prometheus_config(port: int, certs) -> str:
    return json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{
            "job_name": "pipewatch", "scheme": "https",
            "basic_auth": {"username": "prometheus", "password": PASSWORD},
            "tls_config": {"ca_file": str(certs.ca)},
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
        }],
    })


class _Agent:
    """`pipewatch agent` as a service runs it; stop() sends SIGTERM and expects a clean exit."""

    def __init__(self, environment: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as output:
            self.process = subprocess.Popen([sys.executable, "-m", "pipewatch.cli", "agent"], env=environment,
                                            cwd=REPO, stdout=output, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        assert self.process.returncode == 0, self.log.read_text()[-3000:]


@dataclass
class Scraped:
    prometheus: LocalPrometheus
    agent: _Agent


@pytest.fixture
def scraped_agent(tmp_path, broker, flink, registry, postgres, pg_schema):
    """Prometheus scraping an agent that watches every kind of source."""
    run_async(create_topic(broker.bootstrap, "orders.events", 3))
    run_async(produce(broker.bootstrap, "orders.events", {0: 12, 1: 5, 2: 3}))
    run_async(commit(broker.bootstrap, "loader", "orders.events", {0: 4, 1: 5, 2: 1}))
    registry.karapace = True
    registry.register("orders-value", '{"type":"record","name":"Order","fields":[]}')
    registry.register("customers-value", '{"type":"record","name":"Customer","fields":[]}')
    run_async(_profiling_history(postgres.dsn, pg_schema))
    certs = make_certificates(tmp_path)
    port = free_port()
    config = _agent_config(tmp_path, broker, flink, registry, postgres.dsn, pg_schema, port, certs)
    environment = {**os.environ, "PIPEWATCH_CONFIG": str(config), "SCRAPE_PASSWORD": PASSWORD}
    install = subprocess.run([sys.executable, "-m", "pipewatch.cli", "change-feed", "install"], env=environment,
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    assert install.returncode == 0, install.stderr
    inserts = _Inserts(postgres.dsn, pg_schema)
    inserts.thread.start()
    agent = _Agent(environment, tmp_path / "agent.log")
    (tmp_path / "prometheus").mkdir()
    prometheus = LocalPrometheus(tmp_path / "prometheus", _prometheus_config(port, certs))
    try:
        yield Scraped(prometheus.start(), agent)
    finally:
        prometheus.stop()
        agent.stop()
        inserts.stop.set()
        inserts.thread.join(timeout=10)


def test_every_dashboard_and_rule_expression_against_a_real_prometheus(scraped_agent):
    prometheus = scraped_agent.prometheus

    # Prometheus scrapes the agent over TLS with basic auth, and the agent's sources are all up but the broken ones.
    wait_until(lambda: _labels(_query(prometheus, 'up{job="pipewatch"} == 1')), 30, interval=0.5,
               what="prometheus to scrape the agent")
    expected_up = {("orders", collector) for collector in
                   ("kafka", "flink", "schema_registry", "profiling", "change_feed")}
    wait_until(lambda: {(s["pipeline"], s["collector"]) for s in
                        _labels(_query(prometheus, "pipewatch_collector_up == 1"))} == expected_up,
               90, interval=0.5, what=f"collectors {sorted(expected_up)} up in prometheus")

    # Every dashboard query returns series: none is broken, none names a metric or label the agent does not export.
    dashboards = dashboard_expressions()
    assert len(dashboards) > 90

    def empty_queries() -> list[str]:
        return [f"{where}: {expr}" for where, expr in dashboards if not _query(prometheus, expr)]

    def all_answered() -> bool:
        missing = empty_queries()
        assert not missing, f"{len(missing)} dashboard queries return nothing:\n" + "\n".join(missing)
        return True

    wait_until(all_answered, 120, interval=1.0, what="every dashboard query to return series")

    # Every rule evaluates without error, and Prometheus loaded every one of them.
    for _where, expr in rule_expressions():
        _query(prometheus, expr)
    rules = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {rule["name"]: rule for group in rules for rule in group["rules"]}
    assert set(loaded) == {where.rsplit("/", 1)[1] for where, _ in rule_expressions()}
    assert {name: rule.get("lastError", "") for name, rule in loaded.items() if rule["health"] != "ok"} == {}

    alerts = {where.rsplit("/", 1)[1]: expr for where, expr in rule_expressions()}
    # The broken pipeline's Kafka and registry are down: the down alerts hold for them and only for them.
    # (Waited for: on a loaded machine a healthy collector can miss a run now and then, and that is reported too.)
    wait_until(lambda: sorted((s["pipeline"], s["collector"]) for s in
                              _labels(_query(prometheus, alerts["PipewatchCollectorDown"]))) == [
        ("broken", "kafka"), ("broken", "schema_registry")], 30, interval=0.5, what="only the broken collectors down")
    registry_down = _labels(_query(prometheus, alerts["PipewatchSchemaRegistryDown"]))
    assert [(s["pipeline"], s["registry"]) for s in registry_down] == [("broken", "gone")]
    # The agent is up and the healthy registry is writable.
    for quiet in ("PipewatchAgentDown", "PipewatchAgentMissing", "PipewatchSchemaRegistryReadOnly"):
        assert _query(prometheus, alerts[quiet]) == [], quiet
    # The steady job checkpoints every 2 s; the failing one never completes one between its restarts.
    late = _labels(_query(prometheus, alerts["PipewatchFlinkCheckpointTooOld"]))
    assert {s["job_name"] for s in late} <= {"pipewatch failing job"}
    # The failing Flink job restarts every few seconds: the restart alert's condition comes true for it alone.
    def restarting() -> list[dict[str, str]]:
        found = _labels(_query(prometheus, alerts["PipewatchFlinkJobRestarting"]))
        assert found, _query(prometheus, "flink_jobmanager_job_numRestarts[1m]")
        return found

    restarting = wait_until(restarting, 60, interval=1.0, what="the restart alert's condition")
    assert [s["job_name"] for s in restarting] == ["pipewatch failing job"]

    # The aggregate page's read-back: every pipeline of the agent, as Prometheus has it.
    source = PrometheusSource(url=prometheus.url, selector='job="pipewatch"', interval_seconds=1)
    snapshot = run_async(_read_back(source))
    rows = {row.pipeline: row for row in snapshot.rows}
    assert set(rows) == {"orders", "broken"}
    orders, broken = rows["orders"], rows["broken"]
    assert (orders.health, orders.reason, orders.collectors_down) == ("ok", "every source up", ())
    assert orders.collectors == ("change_feed", "flink", "kafka", "profiling", "schema_registry")
    assert orders.lag_messages == 10  # (12 - 4) + (5 - 5) + (3 - 1), committed by loader
    assert orders.registry_up == 1
    assert orders.flink_jobs >= 2 and orders.flink_running >= 1  # the steady job runs; the failing one comes and goes
    assert orders.change_rate > 0  # the inserts go on
    assert (broken.health, broken.reason) == ("down", "down: kafka, schema_registry")
    assert math.isnan(broken.lag_messages) and math.isnan(broken.flink_jobs)  # unknown, not 0
    assert broken.registry_up == 0  # served while down: it is the measure of that
    (agent,) = snapshot.agents
    assert (agent.job, agent.up, agent.pipelines) == ("pipewatch", True, ("broken", "orders"))

    # The agent stops: its pipelines stay listed, marked agent down, their measures unknown.
    scraped_agent.agent.stop()
    wait_until(lambda: _query(prometheus, 'up{job="pipewatch"} == 0'), 30, interval=0.5, what="prometheus to see it")
    snapshot = run_async(_read_back(source))
    assert {(row.pipeline, row.health) for row in snapshot.rows} == {("orders", "agent down"), ("broken", "agent down")}
    assert all(row.reason == f"Prometheus cannot scrape the agent at {agent.instance} (up = 0)"
               for row in snapshot.rows)
    assert all(math.isnan(row.lag_messages) for row in snapshot.rows)
    assert [a.up for a in snapshot.agents] == [False]


async def _read_back(source: PrometheusSource):
    collector = PrometheusQueryCollector(source)
    store = Store()
    try:
        assert await collector.collect(store) == len(collector.queries)
    finally:
        await collector.close()
    return store.snapshot(collector.source)[1]

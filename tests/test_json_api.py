"""The JSON API (/api/v1) of a real `pipewatch agent` process fed by a real broker, and the remote-agents
collector reading it: exact lag, series deltas after a sequence number, errors, the agent going down and back."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from collectors.aggregate.remote_agents import RemoteAgentCollector
from monitoring.config import BasicAuth, RemoteAgent
from monitoring.health import State
from monitoring.runtime import Supervisor
from monitoring.store import Store
from pipewatch.local.broker import free_port, port_open
from tests.kafka_util import commit, create_topic, produce
from tests.services import async_wait_until, run_async, wait_until

REPO = Path(__file__).resolve().parent.parent
AUTH = ("reader", "api-secret")


class Agent:
    """`pipewatch agent` in a subprocess, on a fixed port so it can be stopped and started again."""

    def __init__(self, tmp_path: Path, config_text: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.config = tmp_path / f"agent-{self.port}.yml"
        self.config.write_text(config_text.replace("{PORT}", str(self.port)), encoding="utf-8")
        self.log = tmp_path / f"agent-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Agent:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "pipewatch.cli", "agent", "--config",
                                             str(self.config)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "API_PASSWORD": AUTH[1]})

        def listening() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"agent exited: {self.log.read_text()[-2000:]}")
            return port_open(self.port)

        wait_until(listening, 30, interval=0.1, what=f"the agent on {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None


def _agent_config(bootstrap: str, pipeline: str, group: str, auth: bool = True) -> str:
    return (f"pipelines:\n  - name: {pipeline}\n    kafka: {{bootstrap_servers: ['{bootstrap}'], cluster: local, "
            f"interval_seconds: 0.5, consumer_groups: [{group}]}}\n"
            "exporter: {host: 127.0.0.1, port: {PORT}"
            + (", basic_auth: {username: reader, password: '${API_PASSWORD}'}" if auth else "") + "}\n"
            "runtime: {max_backoff_seconds: 1}\n")


@pytest.fixture
def lagging(broker):
    """payments: 10, 7 and 5 records; billing committed 4 and 7 (lag 6 + 0; partition 2 has no commit)."""
    run_async(create_topic(broker.bootstrap, "payments", 3))
    run_async(produce(broker.bootstrap, "payments", {0: 10, 1: 7, 2: 5}))
    run_async(commit(broker.bootstrap, "billing", "payments", {0: 4, 1: 7}))
    return broker


def _get(agent: Agent, path: str, **params) -> httpx.Response:
    return httpx.get(agent.url + path, params=params, auth=AUTH, timeout=10)


def _orders(agent: Agent) -> dict:
    body = _get(agent, "/api/v1/pipelines").json()
    (orders,) = body["pipelines"]
    return orders


def test_json_api_of_a_real_agent(lagging, tmp_path):
    agent = Agent(tmp_path, _agent_config(lagging.bootstrap, "orders", "billing")).start()
    try:
        wait_until(lambda: _orders(agent)["lag_messages"] == 6 and _orders(agent)["health"] == "ok", 30,
                   what="orders with lag 6 in /api/v1/pipelines")
        started = time.time()

        # Same protection as /metrics: basic auth.
        anonymous = httpx.get(f"{agent.url}/api/v1/pipelines", timeout=10)
        assert anonymous.status_code == 401 and "lag" not in anonymous.text
        assert httpx.get(f"{agent.url}/api/v1/pipelines", auth=("reader", "wrong"), timeout=10).status_code == 401

        response = _get(agent, "/api/v1/pipelines")
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["agent"]["version"] == "0.1.0" and body["agent"]["host"] == socket.gethostname()
        assert body["agent"]["started_at"] < started <= body["measured_at"] + 5
        (orders,) = body["pipelines"]
        assert {k: orders[k] for k in ("job", "pipeline", "health", "reason", "collectors", "collectors_down",
                                       "lag_messages", "flink_jobs", "registry_up", "change_rate")} == {
            "job": "local", "pipeline": "orders", "health": "ok", "reason": "every source up", "collectors": ["kafka"],
            "collectors_down": [], "lag_messages": 6, "flink_jobs": None, "registry_up": None, "change_rate": None}
        (kafka,) = orders["collector_health"]
        assert (kafka["collector"], kafka["state"], kafka["reason"]) == ("kafka", "up", "ok")
        assert kafka["last_success"] > started - 5
        assert "NaN" not in response.text

        # One pipeline: its summary, health, latency percentiles and series with their sequence numbers.
        detail = _get(agent, "/api/v1/pipelines/orders").json()
        assert (detail["pipeline"], detail["lag_messages"], detail["collector_health"][0]["state"]) == (
            "orders", 6, "up")
        assert {m["measure"] for m in detail["latency"]} <= {"consumer_lag", "watermark_lag", "change_feed_delay"}
        for latency in detail["latency"]:
            assert set(latency["quantiles"]) == {"0.5", "0.95", "0.99"} and latency["samples"] > 0
        listed = {(s["name"], tuple(s["labels"].values())): s for s in detail["series"]}
        assert detail["series_total"] == len(detail["series"]) and detail["truncated"] is False
        lag = listed[("kafka_consumergroup_lag", ("orders", "local", "billing", "payments", "0"))]
        assert (lag["value"], lag["collector"]) == (6, "kafka") and lag["count"] >= 1
        assert listed[("kafka_consumergroup_lag", ("orders", "local", "billing", "payments", "1"))]["value"] == 0
        assert listed[("pipewatch_pipeline_lag", ("orders",))]["collector"] == "evaluation"

        # Series: every point after a sequence number, exactly.
        def pipeline_lag(**params) -> dict:
            response = _get(agent, "/api/v1/series", pipeline="orders", name="pipewatch_pipeline_lag", **params)
            assert response.status_code == 200, response.text
            (series,) = response.json()["series"]
            return series

        first = pipeline_lag(since=0)
        assert first["complete"] and first["missed"] == 0 and len(first["points"]) == first["count"] >= 1
        assert first["points"][-1][1] == 6 and all(v in (6, None) for _, v in first["points"])
        run_async(produce(lagging.bootstrap, "payments", {0: 5}))  # billing's lag becomes 11
        wait_until(lambda: pipeline_lag(since=first["count"])["points"][-1:][0][1] == 11
                   if pipeline_lag(since=first["count"])["points"] else False, 30, what="lag 11 in the series")
        full = pipeline_lag(since=0)
        middle = max(0, first["count"] - 2)
        after = pipeline_lag(since=middle)
        grown = after["count"]  # the evaluator writes every second: compare with a read at least as new
        assert len(after["points"]) == grown - middle and after["since"] == middle
        assert after["points"][:first["count"] - middle] == first["points"][middle:]
        assert full["points"][middle:first["count"]] == first["points"][middle:]
        by_cursor = _get(agent, "/api/v1/series", pipeline="orders", name="pipewatch_pipeline_lag",
                         cursor=f"{after['id']}:{middle}").json()["series"][0]
        assert by_cursor["points"][:len(after["points"])] == after["points"]
        nothing_new = pipeline_lag(since=10**9)  # a cursor from before a restart: read again from the start
        assert nothing_new["reset"] is True and nothing_new["points"][: first["count"]] == first["points"]
        one = _get(agent, "/api/v1/series", pipeline="orders", name="pipewatch_pipeline_lag", since=middle,
                   limit=1).json()
        assert one["truncated"] is True and one["limits"]["max_points"] == 1
        assert (one["series"][0]["count"], one["series"][0]["complete"]) == (middle + 1, False)
        assert one["series"][0]["points"] == first["points"][middle:middle + 1]
        # Label filters narrow the series of one metric.
        partition = _get(agent, "/api/v1/series", pipeline="orders", name="kafka_consumergroup_lag", partition="0",
                         since=0).json()["series"]
        assert [(s["labels"]["partition"], s["points"][-1][1]) for s in partition] == [("0", 11)]

        # Errors: 400 naming the parameter, 404 naming what is missing.
        for params, parameter in (({"since": "-1"}, "since"), ({"since": "soon"}, "since"), ({"limit": "0"}, "limit"),
                                  ({"cursor": "nope"}, "cursor"), ({"name": "no_such_metric"}, "name"),
                                  ({"name": "kafka_consumergroup_lag", "colour": "red"}, "colour"),
                                  ({"partition": "0"}, "partition"), ({"since": ["1", "2"]}, "since")):
            response = _get(agent, "/api/v1/series", **params)
            assert response.status_code == 400, (params, response.text)
            assert response.json()["parameter"] == parameter and response.json()["error"].startswith(parameter)
        missing = _get(agent, "/api/v1/pipelines/billing")
        assert (missing.status_code, missing.json()["error"]) == (
            404, "no pipeline 'billing' on this agent; it watches: orders")
        missing = _get(agent, "/api/v1/series", pipeline="billing")
        assert (missing.status_code, missing.json()["parameter"]) == (404, "pipeline")
        assert _get(agent, "/api/v1/nothing").status_code == 404
        assert _get(agent, "/api/v1/pipelines", extra="1").status_code == 400

        # Events after a sequence number: the broker stops, the collector's down event arrives.
        before = _get(agent, "/api/v1/events", since=0).json()
        lagging.stop()

        def down_event() -> list[dict]:
            events = _get(agent, "/api/v1/events", since=before["next"]).json()["events"]
            return [e for e in events if e["severity"] == "error"]

        (event,) = wait_until(down_event, 30, what="the kafka down event")
        assert event["seq"] > before["next"] and (event["pipeline"], event["collector"]) == ("orders", "kafka")
        assert "kafka collector for" in event["message"] and "is down" in event["message"]
        wait_until(lambda: _orders(agent)["health"] == "down", 30, what="orders down")
        down = _orders(agent)
        assert down["lag_messages"] is None and down["collector_health"][0]["state"] == "down"
        assert down["reason"].startswith("kafka down: ")
    finally:
        agent.stop()


def test_remote_agents_collector_reads_an_agent_marks_it_down_and_recovers(lagging, tmp_path):
    agent = Agent(tmp_path, _agent_config(lagging.bootstrap, "orders", "billing")).start()
    try:
        run_async(_remote_scenario(agent))
    finally:
        agent.stop()


async def _remote_scenario(agent: Agent) -> None:
    """One event loop for the whole scenario, as the supervisor runs the collector (its client belongs to it)."""
    config = RemoteAgent(url=agent.url, basic_auth=BasicAuth(username=AUTH[0], password=SecretStr(AUTH[1])),
                         interval_seconds=0.5, timeout_seconds=2)
    collector = RemoteAgentCollector(config)
    store = Store()
    supervisor = Supervisor(store, [collector], max_backoff=1)

    async def cycle():
        await supervisor.run_once(collector)
        return store.health()[collector.source], store.snapshot(collector.source)[1]

    def ok_with_lag(lag: float):
        async def check():
            health, snapshot = await cycle()
            rows = {row.pipeline: row for row in snapshot.rows}
            return health.state is State.UP and "orders" in rows and rows["orders"].lag_messages == lag and snapshot
        return check

    try:
        snapshot = await async_wait_until(ok_with_lag(6), 30, interval=0.2, what="orders with lag 6 from the agent")
        (row,) = snapshot.rows
        assert (row.job, row.instance, row.pipeline, row.health, row.collectors) == (
            "remote", agent.url, "orders", "ok", ("kafka",))
        assert snapshot.up and snapshot.agent["host"] == socket.gethostname()
        assert collector.source == ("_aggregate", f"remote:127.0.0.1:{agent.port}")
        history = snapshot.history["orders"]
        assert history.count == len(history.times) >= 1 and history.values[-1] == 6

        async def grown():
            return (await cycle())[1].history["orders"].count > history.count

        await async_wait_until(grown, 10, interval=0.2, what="new lag points")
        (cursor,) = collector._cursors.values()  # the next cycle asks for the points after this one only
        assert cursor == store.snapshot(collector.source)[1].history["orders"].count

        await asyncio.to_thread(agent.stop)
        health, snapshot = await cycle()
        assert health.state is State.DOWN and health.error_category == "connection_refused"
        (row,) = snapshot.rows
        assert (row.pipeline, row.health, row.collectors_down) == ("orders", "agent down", ("kafka",))
        assert row.reason.startswith(f"agent at {agent.url} not answering: connection_refused: GET /api/v1/")
        assert math.isnan(row.lag_messages) and not snapshot.up
        assert snapshot.history["orders"].count >= history.count  # the history stays for the chart

        await asyncio.to_thread(agent.start)  # same port: the collector recovers by itself
        snapshot = await async_wait_until(ok_with_lag(6), 30, interval=0.2, what="orders back with lag 6")
        assert snapshot.up and snapshot.rows[0].health == "ok"
        assert store.health()[collector.source].state is State.UP
    finally:
        await supervisor.stop()


def test_remote_agent_with_wrong_credentials_is_down_with_auth(lagging, tmp_path):
    agent = Agent(tmp_path, _agent_config(lagging.bootstrap, "orders", "billing")).start()
    collector = RemoteAgentCollector(RemoteAgent(url=agent.url, basic_auth=BasicAuth(
        username="reader", password=SecretStr("wrong")), timeout_seconds=2))
    store = Store()
    supervisor = Supervisor(store, [collector])

    async def once() -> None:
        try:
            await supervisor.run_once(collector)
        finally:
            await supervisor.stop()

    try:
        run_async(once())
    finally:
        agent.stop()
    health = store.health()[collector.source]
    assert (health.state, health.error_category) == (State.DOWN, "auth")
    assert "HTTP 401" in health.last_error


def test_unknown_and_unbounded_values_ring_overflow_and_event_cursors_in_process():
    """What a live agent rarely shows on demand: NaN and +Inf values, points lost to the ring, events evicted
    from the log, and a cursor from before a restart."""
    import json

    from exporters.api import Api
    from monitoring.evaluation import Evaluator

    store = Store(points_per_series=4, events=3)
    store.set_health(_up_health(store, "orders"))
    for i, value in enumerate([1.0, float("nan"), float("inf"), 4.0, 5.0, 6.0]):
        store.append(("orders", "kafka"), "kafka_consumergroup_group_max_lag_seconds", ("orders", "local", "g"),
                     value, 1000.0 + i)
    Evaluator(store, ["orders"]).evaluate(now=time.time())
    api = Api(store, started_at=1.0, host="h", version="v")

    status, body = api.handle("/api/v1/series", "name=kafka_consumergroup_group_max_lag_seconds&since=1")
    assert status == 200 and b"NaN" not in body
    (series,) = json.loads(body)["series"]
    # 6 points ever, the ring holds the last 4: of the 5 after the cursor, the second (NaN) fell out of it.
    assert (series["count"], series["missed"], series["points"]) == (
        6, 1, [[1002.0, "Infinity"], [1003.0, 4.0], [1004.0, 5.0], [1005.0, 6.0]])
    status, body = api.handle("/api/v1/pipelines/orders", "")
    detail = json.loads(body)
    assert status == 200 and detail["lag_seconds"] == 6.0 and b"NaN" not in body

    for i in range(5):
        store.add_event("orders", "kafka", "info", f"event {i + 1}")
    events = json.loads(api.handle("/api/v1/events", "since=1")[1])
    assert ([e["seq"] for e in events["events"]], events["missed"], events["next"]) == ([3, 4, 5], 1, 5)
    limited = json.loads(api.handle("/api/v1/events", "since=3&limit=1")[1])
    assert ([e["seq"] for e in limited["events"]], limited["truncated"], limited["next"]) == ([4], True, 4)
    restarted = json.loads(api.handle("/api/v1/events", "since=99")[1])
    assert restarted["reset"] is True and [e["seq"] for e in restarted["events"]] == [3, 4, 5]
    other = json.loads(api.handle("/api/v1/events", "since=0&pipeline=billing")[1])
    assert (other["events"], other["next"]) == ([], 5)  # nothing for billing, and no need to look at these again


def _up_health(store: Store, pipeline: str):
    from monitoring.health import CollectorHealth

    return CollectorHealth(pipeline, "kafka", "k:1", 5.0, state=State.UP, last_success=time.time(), runs=1)

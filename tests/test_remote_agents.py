"""Remote agents are not trusted: an agent answering a malformed /api/v1/pipelines (wrong types, missing fields,
huge names, NaN, a list for an object) or a gzip bomb is marked down with the reason, keeps its last good rows
(marked down) and nothing of the bad answer; the agents beside it still show on the aggregate page. Each agent is
a real HTTP server on loopback: a real Api over a real store, or one answering what the test sets."""

from __future__ import annotations

import json
import math
import time

import pytest

from collectors.aggregate.remote_agents import MAX_REASON, MAX_TEXT, RemoteAgentCollector
from exporters.api import Api
from monitoring.aggregate import agent_down, combine
from monitoring.config import RemoteAgent
from monitoring.evaluation import Evaluator
from monitoring.health import State
from monitoring.runtime import Supervisor
from monitoring.sources import remote_agent_source
from tests.flow_fixtures import NOW, pipeline_store, write_series
from tests.hostile_server import HostileAgent, gzip_bomb

PIPELINES, SERIES = "/api/v1/pipelines", "/api/v1/series"


def _api() -> Api:
    store = pipeline_store()
    write_series(store, NOW)
    Evaluator(store, ["orders"]).evaluate(NOW)
    return Api(store, NOW - 100)


def _changed(api: Api, change):
    """The real answer to /api/v1/pipelines, changed by `change` (what a bad agent could send), as JSON text
    the way Python writes it (NaN included: pipewatch's API never writes it)."""
    answer = json.loads(api.handle(PIPELINES, "")[1])
    change(answer)
    return lambda query: (200, {}, json.dumps(answer).encode())


def _entry(answer: dict) -> dict:
    return answer["pipelines"][0]


MALFORMED = [
    (lambda a: _entry(a).update(lag_messages="many"), "pipelines[0].lag_messages: expected a number, got str"),
    (lambda a: _entry(a).update(lag_messages=True), "pipelines[0].lag_messages: expected a number, got bool"),
    (lambda a: _entry(a).update(lag_messages=math.nan), "pipelines[0].lag_messages: expected a number, got nan"),
    (lambda a: _entry(a).update(last_success="Infinity"), "pipelines[0].last_success: expected a number, got str"),
    (lambda a: _entry(a).pop("pipeline"), "pipelines[0].pipeline: missing"),
    (lambda a: _entry(a).update(pipeline="p" * 10_000),
     f"pipelines[0].pipeline: a name of 10,000 characters (at most {MAX_TEXT})"),
    (lambda a: _entry(a).update(collectors={"kafka": 1}),
     "pipelines[0].collectors: expected a list of at most 1000 names, got dict"),
    (lambda a: _entry(a).update(collectors=[["kafka"]]), "pipelines[0].collectors[0]: expected a name, got list"),
    (lambda a: a.update(pipelines=[list(_entry(a).items())]), "pipelines[0]: expected an object, got list"),
]


@pytest.mark.parametrize(("change", "problem"), MALFORMED)
async def test_a_malformed_summary_marks_only_that_agent_down_and_keeps_nothing_of_it(change, problem):
    api = _api()
    with HostileAgent() as good, HostileAgent() as bad:
        for agent in (good, bad):
            agent.serve_api(api, PIPELINES)
            agent.serve_api(api, SERIES)
        collectors = [RemoteAgentCollector(RemoteAgent(url=agent.url)) for agent in (good, bad)]
        store_ = pipeline_store()  # (this process's own pipelines beside the remote ones)
        supervisor = Supervisor(store_, collectors)
        try:
            for collector in collectors:
                await supervisor.run_once(collector)
            bad_collector = collectors[1]
            before = store_.snapshot(bad_collector.source)[1]
            assert before.up and [row.pipeline for row in before.rows] == ["orders"]
            state = (bad_collector._agent, bad_collector._cursors, bad_collector._rows)

            bad.answers[PIPELINES] = _changed(api, lambda a: (change(a), a["agent"].update(started_at=1.0)))
            for collector in collectors:
                await supervisor.run_once(collector)
        finally:
            await supervisor.stop()

        message = f"GET /api/v1/pipelines: a pipeline entry is malformed: {problem}"
        health = store_.health()
        assert (health[collectors[0].source].state, health[bad_collector.source].state) == (State.UP, State.DOWN)
        assert (health[bad_collector.source].error_category, health[bad_collector.source].last_error) == (
            "protocol", f"RemoteAgentError: {message}")
        reason = f"agent at {bad.url} answering wrongly: protocol: {message}"
        snapshot = store_.snapshot(bad_collector.source)[1]
        # The last good rows, marked down with the reason; nothing of the bad answer (its restart, its rows).
        assert (snapshot.up, snapshot.reason, snapshot.rows) == (False, reason, agent_down(before.rows, reason))
        assert (bad_collector._agent, bad_collector._cursors, bad_collector._rows) == state

        combined = combine(store_, [remote_agent_source(c.config) for c in collectors], frozenset(), time.time())
        rows = {(row.instance, row.pipeline): row for row in combined.rows}
        good_row = rows[(good.url, "orders")]
        assert (good_row.health, good_row.lag_messages) == ("ok", before.rows[0].lag_messages)
        assert rows[(bad.url, "orders")].health == "agent down"
        lines = {line.label: line for line in combined.agents}
        assert (lines[good.url].state, lines[bad.url].state, lines[bad.url].detail) == ("up", "down", reason)


async def test_a_gzip_bomb_is_refused_at_the_limit_and_long_texts_are_cut():
    api = _api()
    with HostileAgent() as agent:
        agent.serve_api(api, SERIES)
        agent.answers[PIPELINES] = _changed(api, lambda a: (_entry(a).update(reason="r" * 5000),
                                                            a["agent"].update(version="v" * 500)))
        collector = RemoteAgentCollector(RemoteAgent(url=agent.url, max_answer_bytes=2**20))
        store_ = pipeline_store()
        supervisor = Supervisor(store_, [collector])
        try:
            await supervisor.run_once(collector)
            snapshot = store_.snapshot(collector.source)[1]
            (row,) = snapshot.rows
            assert row.reason == "r" * (MAX_REASON - 1) + "…" and snapshot.agent["version"] == "v" * 199 + "…"

            agent.answers[PIPELINES] = lambda query: (200, {"Content-Encoding": "gzip"}, gzip_bomb(10 * 2**20))
            await supervisor.run_once(collector)
        finally:
            await supervisor.stop()
    health = store_.health()[collector.source]
    assert (health.state, health.error_category, health.last_error) == (
        State.DOWN, "too_large",
        f"RemoteAgentError: GET /api/v1/pipelines: the answer of the agent at {agent.url} is over 1 MiB "
        "decoded (max_answer_bytes): refused, nothing of it used")
    assert store_.snapshot(collector.source)[1].rows == agent_down((row,), store_.snapshot(collector.source)[1].reason)

"""Mirror mode: GET /api/v1/state and the MirrorCollector copying an agent's store exactly (in process, through
the real Api), then a real `pipewatch agent` on a real broker copied by a mirror Service: the same series, snapshot
and health; the agent stopping (the copy goes stale, the mirror down with the reason) and restarting (copied again
from scratch)."""

from __future__ import annotations

import json
import math
import time

import httpx
import numpy as np
import pytest

from collectors.aggregate.mirror import MIRROR_SOURCE, STATE_PATH, MirrorCollector
from collectors.aggregate.remote_agents import RemoteAgentError
from exporters.api import Api
from monitoring.config import Config, Mirror, load_config
from monitoring.evaluation import SUMMARY_SOURCE, Evaluator
from monitoring.health import State
from monitoring.store import Store
from pipewatch.service import Service
from tests.flow_fixtures import NOW, kafka_snapshot, pipeline_store, write_series
from tests.hostile_server import HostileAgent, gzip_bomb
from tests.services import wait_until


class _Agent:
    """An agent's store behind the real Api, reached through httpx's MockTransport."""

    def __init__(self, store: Store) -> None:
        self.store, self.api = store, Api(store, NOW - 100)
        self.requests: list[httpx.Request] = []
        self.broken = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.broken:
            return httpx.Response(200, json={"reset": False, "next": "x", "agent": {}, "health": [{"$": "os.system"}],
                                             "snapshots": [], "series": [], "series_ids": None, "events": [],
                                             "errors": None, "feeds": []})
        status, body = self.api.handle(request.url.path, request.url.query.decode())
        return httpx.Response(status, content=body, headers={"Content-Type": "application/json"})


def _mirror(agent: _Agent) -> MirrorCollector:
    collector = MirrorCollector(Mirror(url="http://agent:9108"))
    collector._client = httpx.AsyncClient(base_url="http://agent:9108", transport=httpx.MockTransport(
        lambda request: agent.handle(request)))
    return collector


def _assert_same_series(agent: Store, mirror: Store, skip: set = frozenset()) -> None:
    keys = set(agent.keys()) - set(skip)
    assert set(mirror.keys()) - set(skip) == keys
    for key in keys:
        a, m = agent.since(key, 0), mirror.since(key, 0)
        assert a.count == m.count, key
        np.testing.assert_array_equal(a.times, m.times, err_msg=str(key))
        np.testing.assert_array_equal(a.values, m.values, err_msg=str(key))  # (NaN equal to NaN)
        assert (mirror.series_info(lambda k, key=key: k == key)[0][1]
                == agent.series_info(lambda k, key=key: k == key)[0][1])


def _feed(store: Store, rows: list[tuple[str, str, float]], delivered_at: float) -> None:
    store.feed_append(("orders", "change_feed"), [(entity, "insert", key, {"id": key}, changed)
                                                  for entity, key, changed in rows], 3, 6, delivered_at)


async def test_state_is_copied_exactly_once_and_follows_removals_and_a_restart():
    source = pipeline_store()
    write_series(source, NOW)
    Evaluator(source, ["orders"]).evaluate(NOW)
    source.add_event("orders", "kafka", "error", "kafka collector for 127.0.0.1:9092 is down: boom", NOW - 5)
    source.record_error("orders", "kafka", "connection_refused", "[Errno 111] Connection refused", t=NOW - 5)
    _feed(source, [("Order", "o-1", NOW - 3), ("Order", "o-2", NOW - 2), ("Customer", "c-1", NOW - 2)], NOW - 1)
    agent = _Agent(source)
    mirror, collector = Store(), _mirror(agent)
    pushed = []
    mirror.on_feed(("orders", "change_feed"), lambda: pushed.append(mirror.feed_position(("orders", "change_feed"))))
    try:
        assert await collector.collect(mirror) == 1
        _assert_same_series(source, mirror)
        assert mirror.health() == {k: v for k, v in source.health().items()}
        for name in ("kafka", "flink", "schema_registry"):
            assert mirror.snapshot(("orders", name)) == source.snapshot(("orders", name))  # (time, snapshot)
        assert mirror.snapshot(SUMMARY_SOURCE) is None  # the mirror's own evaluator makes its summaries
        assert ([(e.time, e.message) for e in mirror.events_since(0)]
                == [(e.time, e.message) for e in source.events_since(0)])
        assert mirror.errors() == source.errors()
        rows = mirror.feed_since(("orders", "change_feed"), 0)
        assert [(r.key, r.changed_at, r.delivered_at) for r in rows] == [
            ("o-1", NOW - 3, NOW - 1), ("o-2", NOW - 2, NOW - 1), ("c-1", NOW - 2, NOW - 1)]
        assert pushed == [3]  # the feed's listeners fired, as for a local feed

        # Nothing new: nothing copied twice.
        await collector.collect(mirror)
        _assert_same_series(source, mirror)
        assert len(mirror.events_since(0)) == 1 and pushed == [3]

        # One cycle, then three cycles between two polls (more than the store's two marks per series: the
        # agent sends every point it holds and the mirror keeps only those it lacks).
        write_series(source, NOW + 1, 2.0)
        await collector.collect(mirror)
        _assert_same_series(source, mirror)
        for i in range(3):
            write_series(source, NOW + 2 + i, 3.0 + i)
        source.add_event("orders", "flink", "info", "flink collector recovered", NOW + 4)
        source.record_error("orders", "kafka", "connection_refused", "[Errno 111] Connection refused", t=NOW + 4)
        _feed(source, [("Order", "o-3", NOW + 4)], NOW + 4.5)
        await collector.collect(mirror)
        _assert_same_series(source, mirror)
        assert [e.message for e in mirror.events_since(0)][-1] == "flink collector recovered"
        (error,) = mirror.errors()
        assert error.count == 2 and error.last_seen == NOW + 4
        assert [r.key for r in mirror.feed_since(("orders", "change_feed"), 3)] == ["o-3"] and pushed == [3, 4]

        # A series the agent drops (a deleted group) goes here too.
        with source.cycle(("orders", "schema_registry"), NOW + 5):
            pass
        assert source.latest("schema_registry_up", ("orders", "main")) is None
        await collector.collect(mirror)
        _assert_same_series(source, mirror)
        assert mirror.latest("schema_registry_up", ("orders", "main")) is None

        # The agent restarts: another store. Everything of the old run goes; the new one is copied from scratch.
        restarted = Store()
        restarted.set_health(source.health()[("orders", "kafka")])
        restarted.publish_snapshot(("orders", "kafka"), kafka_snapshot(NOW + 60), NOW + 60)
        with restarted.cycle(("orders", "kafka"), NOW + 60) as cycle:
            cycle.set("kafka_consumergroup_group_sum_lag", ("local", "billing"), 77)
        _feed(restarted, [("Order", "o-9", NOW + 59)], NOW + 60)
        agent.store, agent.api = restarted, Api(restarted, NOW + 50)
        await collector.collect(mirror)
        assert collector.resets == 1
        _assert_same_series(restarted, mirror)
        assert mirror.snapshot(("orders", "flink")) is None and mirror.snapshot(("orders", "kafka"))[0] == NOW + 60
        assert [r.key for r in mirror.feed_since(("orders", "change_feed"), 0)] == ["o-9"]
        assert mirror.events_since(0)[-1].message == ("the agent at http://agent:9108 restarted: its state is copied "
                                                      "again from scratch")

        # A malformed answer changes nothing and names what is wrong.
        agent.broken = True
        before = mirror.stats()
        with pytest.raises(RemoteAgentError) as failure:
            await collector.collect(mirror)
        assert failure.value.category == "protocol"
        assert "'os.system' is not a class the wire carries" in str(failure.value)
        assert mirror.stats() == before
    finally:
        await collector.close()
    # Every request after the first carried the cursor of the answer before it.
    assert "cursor" not in agent.requests[0].url.params and all("cursor" in r.url.params for r in agent.requests[1:])


def test_state_endpoint_parameters():
    api = Api(Store(), NOW)
    status, body = api.handle("/api/v1/state", "cursor=nonsense")
    assert status == 400 and b'"parameter":"cursor"' in body
    status, body = api.handle("/api/v1/state", "since=3")
    assert status == 400 and b'"parameter":"since"' in body
    status, _ = api.handle("/api/v1/state", "")
    assert status == 200


def test_a_first_answer_too_large_keeps_every_series_newest_points():
    store = Store(points_per_series=50)
    for i in range(40):
        with store.cycle(("orders", "kafka"), NOW + i) as cycle:
            for g in range(10):
                cycle.set("kafka_consumergroup_group_sum_lag", ("local", f"g{g}"), i * 10 + g)
    changes = store.changes_since(0, max_points=100)
    assert changes.cut and len(changes.series) == 10
    for _key, _source, count, times, _values in changes.series:
        assert count == 40 and times == [NOW + i for i in range(30, 40)]  # the newest 10 of 40 each
    assert not store.changes_since(0, max_points=1000).cut


# -- an agent that cannot be trusted --------------------------------------------------------------------


def _full_state(api: Api, change) -> tuple:
    """The agent's whole state as a first answer, changed by `change`: what a bad agent could send."""
    answer = json.loads(api.handle(STATE_PATH, "")[1])
    change(answer)
    return 200, {}, json.dumps(answer).encode()


def _kafka_partition(answer: dict) -> dict:
    (kafka,) = [s for s in answer["snapshots"] if s["collector"] == "kafka"]
    return kafka["value"]["groups"]["$t"][0]["partitions"]["$t"][0]


def _oversized_feed(answer: dict) -> None:
    answer["feeds"][0].update(per_entity=10**9, capacity=10**12)


@pytest.mark.parametrize(("hostile", "category", "message"), [
    (lambda api: _full_state(api, lambda a: _kafka_partition(a).update(lag="10")), "protocol",
     "GET /api/v1/state: the answer is malformed: KafkaSnapshot.groups: GroupInfo.partitions: PartitionLag.lag: "
     "expected int | None, got str"),
    (lambda api: _full_state(api, lambda a: a["health"][0]["state"].update(v="exploded")), "protocol",
     "GET /api/v1/state: the answer is malformed: CollectorHealth.state: unknown State value 'exploded'"),
    (lambda api: _full_state(api, lambda a: a["feeds"][0]["rows"][0].update(seq="1")), "protocol",
     "GET /api/v1/state: the answer is malformed: FeedRow.seq: expected int, got str"),
    (lambda api: (200, {"Content-Encoding": "gzip"}, gzip_bomb(10 * 2**20)), "too_large",
     "GET /api/v1/state: the answer of the agent at {url} is over 1 MiB decoded (max_answer_bytes): refused, "
     "nothing of it used"),
])
async def test_a_hostile_answer_is_refused_whole_and_changes_nothing(hostile, category, message):
    source = pipeline_store()
    write_series(source, NOW)
    _feed(source, [("Order", "o-1", NOW - 3)], NOW - 1)
    api = Api(source, NOW - 100)
    with HostileAgent() as agent:
        agent.serve_api(api, STATE_PATH)
        collector, mirror = MirrorCollector(Mirror(url=agent.url, max_answer_bytes=2**20)), Store()
        try:
            await collector.collect(mirror)  # a good answer first, gzipped as the exporter sends it
            assert agent.requests[0][1]["Accept-Encoding"] == "gzip"
            _assert_same_series(source, mirror)
            before, cursor = (mirror.stats(), mirror.health(), mirror.snapshot(("orders", "kafka")),
                              mirror.feed_since(("orders", "change_feed"), 0)), collector._cursor
            write_series(source, NOW + 1, 2.0)  # (something new the bad answer could have brought)
            agent.answers[STATE_PATH] = lambda query: hostile(api)
            with pytest.raises(RemoteAgentError) as failure:
                await collector.collect(mirror)
            assert (failure.value.category, str(failure.value)) == (category, message.format(url=agent.url))
            assert (mirror.stats(), mirror.health(), mirror.snapshot(("orders", "kafka")),
                    mirror.feed_since(("orders", "change_feed"), 0)) == before
            assert collector._cursor == cursor  # the next request asks again from where the good answer left off
        finally:
            await collector.close()


def test_the_bomb_is_small_on_the_wire_and_large_inflated():
    import gzip

    bomb = gzip_bomb(10 * 2**20)
    assert len(bomb) < 20_000 and len(gzip.decompress(bomb)) == 10 * 2**20


async def test_sizes_from_the_agent_are_clamped_to_the_local_config():
    source = Store()
    _feed(source, [("Order", f"o-{i}", NOW + i) for i in range(5)], NOW + 5)
    api = Api(source, NOW - 100)
    local = Config.model_validate({"pipelines": [{"name": "orders", "change_feed": {
        "dsn": "postgresql://u@db/shop", "rows_per_entity": 2,
        "entities": [{"name": "Order", "table": "orders", "key": "id"}]}}]})
    with HostileAgent() as agent:
        agent.answers[STATE_PATH] = lambda query: _full_state(api, _oversized_feed)
        for config, sizes, kept in ((None, (100_000, 1_000_000), 5), (local, (2, 2), 2)):
            collector, mirror = MirrorCollector(Mirror(url=agent.url), config), Store()
            try:
                await collector.collect(mirror)
            finally:
                await collector.close()
            # (seq, rows per entity, rows): no ring as large as the agent asked for
            assert mirror.feeds()[("orders", "change_feed")] == (5, *sizes)
            assert [r.key for r in mirror.feed_since(("orders", "change_feed"), 0)] == [
                f"o-{i}" for i in range(5)][-kept:]


# -- a real agent ----------------------------------------------------------------------------------------


def test_a_mirror_of_a_real_agent_shows_its_exact_lag_goes_stale_when_it_stops_and_resyncs_after_a_restart(
        broker, tmp_path):
    from tests.kafka_util import commit, create_topic, produce
    from tests.services import run_async
    from tests.test_json_api import AUTH, Agent, _agent_config

    run_async(create_topic(broker.bootstrap, "payments", 3))
    run_async(produce(broker.bootstrap, "payments", {0: 10, 1: 7, 2: 5}))
    run_async(commit(broker.bootstrap, "billing", "payments", {0: 4, 1: 7}))
    # One config file for the agent and its mirror: the agent ignores `mirror:`.
    config_text = (_agent_config(broker.bootstrap, "orders", "billing")
                   + "mirror: {url: 'http://127.0.0.1:{PORT}', basic_auth: {username: reader, "
                     "password: '${API_PASSWORD}'}, interval_seconds: 0.5}\n")
    agent = Agent(tmp_path, config_text).start()
    service = Service(load_config(agent.config, environ={"API_PASSWORD": AUTH[1]}))
    assert service.mirror and [c.name for c in service.supervisor.collectors] == ["mirror"]
    assert [s.collector for s in service.sources] == ["kafka"]
    assert service.collectors == service.supervisor.collectors  # no collector of a source is built
    service.start_exporter()
    assert service.exporter is None  # the agent exports; the mirror does not
    store = service.store
    assert store.health()[("orders", "kafka")].state is State.STARTING
    service.start_in_thread()
    try:
        partitions = lambda: [(p.partition, p.committed, p.high_watermark, p.lag)  # noqa: E731
                              for g in store.snapshot(("orders", "kafka"))[1].groups for p in g.partitions]
        wait_until(lambda: store.snapshot(("orders", "kafka")) and partitions() == [
            (0, 4, 10, 6), (1, 7, 7, 0), (2, None, 5, None)], 30, what="the agent's snapshot in the mirror")
        assert store.health()[("orders", "kafka")].state is State.UP
        assert store.health()[MIRROR_SOURCE].state is State.UP
        lag_key = ("kafka_consumergroup_lag", ("orders", "local", "billing", "payments", "0"))
        assert store.latest(*lag_key)[1] == 6
        wait_until(lambda: (store.latest("pipewatch_pipeline_lag", ("orders",))
                            == _agent_point(agent, "pipewatch_pipeline_lag")),
                   10, what="the agent's pipeline lag series")

        # The same points as the agent's, with their own times, none twice.
        for name, labels in (lag_key, ("pipewatch_pipeline_lag", ("orders",))):
            answer = _agent_series(agent, name, labels)
            wait_until(lambda answer=answer, name=name, labels=labels: store.since((name, labels), 0).count
                       >= answer["count"], 10, what=f"{name} to catch up")
            mine = store.since((name, labels), 0)
            _assert_points(mine, answer)
            assert mine.count == len(mine.times)  # nothing missed, nothing doubled
        # The mirror's own evaluator summarises what it copied: the agent's numbers.
        wait_until(lambda: store.snapshot(SUMMARY_SOURCE) and store.snapshot(SUMMARY_SOURCE)[1][0].lag_messages == 6
                   and store.snapshot(SUMMARY_SOURCE)[1][0].health == "ok", 10, what="the mirror's summary")

        # The broker stops: the agent's kafka collector goes down, and the mirror shows its reason.
        broker.stop()
        wait_until(lambda: store.health()[("orders", "kafka")].state is State.DOWN, 30, what="kafka down")
        wait_until(lambda: store.health()[("orders", "kafka")].reason() == _agent_kafka_reason(agent), 10,
                   what="the agent's reason")
        broker.start()
        run_async(create_topic(broker.bootstrap, "payments", 3))
        run_async(produce(broker.bootstrap, "payments", {0: 3, 1: 3, 2: 3}))
        run_async(commit(broker.bootstrap, "billing", "payments", {0: 1, 1: 2, 2: 3}))
        wait_until(lambda: store.health()[("orders", "kafka")].state is State.UP and partitions() == [
            (0, 1, 3, 2), (1, 2, 3, 1), (2, 3, 3, 0)], 60, what="kafka back in the mirror")

        # The agent stops: the mirror is down with the reason, and the copied health ages into stale.
        agent.stop()
        # (A request in flight as it stops may fail as a cut connection first.)
        wait_until(lambda: store.health()[MIRROR_SOURCE].state is State.DOWN
                   and store.health()[MIRROR_SOURCE].error_category == "connection_refused", 20, what="the mirror down")
        assert "GET /api/v1/state" in store.health()[MIRROR_SOURCE].last_error
        kafka = store.health()[("orders", "kafka")]
        wait_until(lambda: kafka.effective_state() is State.STALE, kafka.stale_after + 5, interval=0.5,
                   what="the copied kafka health to go stale")
        assert "no successful run for" in kafka.reason()
        wait_until(lambda: store.snapshot(SUMMARY_SOURCE)[1][0].health == "down"
                   and math.isnan(store.snapshot(SUMMARY_SOURCE)[1][0].lag_messages), 5,
                   what="the mirror's summary to say so")

        # The agent comes back on the same port (a new run: its sequence numbers began again): copied afresh.
        restarted_at = time.time()
        agent.start()
        wait_until(lambda: store.health()[MIRROR_SOURCE].state is State.UP
                   and store.health()[("orders", "kafka")].effective_state() is State.UP, 30, what="the mirror back")
        assert service.supervisor.collectors[0].resets == 1
        answer = _agent_series(agent, *lag_key)
        wait_until(lambda: store.since(lag_key, 0).count >= answer["count"], 10, what="the new run's lag series")
        mine = store.since(lag_key, 0)
        _assert_points(mine, answer)
        assert mine.times[0] >= restarted_at  # the old run's points were dropped with it
    finally:
        service.stop_thread()
        agent.stop()


def _assert_points(mine, answer: dict) -> None:
    """The mirror's points begin with exactly the agent's (null is NaN on the wire)."""
    n = len(answer["points"])
    assert answer["complete"] and answer["missed"] == 0 and len(mine.times) >= n
    np.testing.assert_array_equal(mine.times[:n], [t for t, _ in answer["points"]])
    np.testing.assert_array_equal(mine.values[:n], [math.nan if v is None else v for _, v in answer["points"]])


def _agent_series(agent, name: str, labels: tuple[str, ...]) -> dict:
    from tests.test_json_api import AUTH

    body = httpx.get(f"{agent.url}/api/v1/series", params={"name": name, "since": 0}, auth=AUTH, timeout=10).json()
    (series,) = [s for s in body["series"] if tuple(s["labels"].values()) == labels]
    return series


def _agent_point(agent, name: str) -> tuple[float, float]:
    series = _agent_series(agent, name, ("orders",))
    return tuple(series["points"][-1])


def _agent_kafka_reason(agent) -> str:
    from tests.test_json_api import AUTH

    body = httpx.get(f"{agent.url}/api/v1/pipelines", auth=AUTH, timeout=10).json()
    (health,) = body["pipelines"][0]["collector_health"]
    return health["reason"]

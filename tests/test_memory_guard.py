"""Memory stays flat once the rings are full: many collection cycles against a real broker whose consumer groups and
topics come and go (series and caches keyed by names a source controls), and rounds of dashboard sessions of every
kind of page opened, shown live and closed (headless sessions of the Bokeh protocol, bench/viewers.py, as a browser
opens them). docs/memory.md lists the bounds this guards."""

from __future__ import annotations

import asyncio
import gc
import socket
import statistics
import sys
import threading
import types

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import DeleteGroupsRequest
from aiokafka.protocol.commit import OffsetCommitRequest
from aiokafka.protocol.coordination import FindCoordinatorRequest

from monitoring.config import Config
from monitoring.store import Store
from pipewatch.service import Service
from tests.kafka_util import create_topic, delete_topic, produce
from tests.services import async_wait_until

RING = 20
GROUPS_PER_ROUND = 100
WARM_UP_ROUNDS = 6
MEASURED_ROUNDS = 16
HELD_GROWTH_BOUND = 8_000
"""Bytes the store and the collectors may grow by over the measured rounds, in which 1,600 groups and 16 topics are
created and deleted. Measured after each round once the collector has forgotten it, so the figure is steady to a few
hundred bytes; each group's coordinator kept forever (the leak this guards) grew it by 26 kB, the store's column
cache holding removed series by up to 330 kB."""


async def _churn_groups(bootstrap: str, groups: list[str], topic: str) -> None:
    """Groups with one committed offset each (as a consumer that read one record would leave them), without joining."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        for group in groups:
            found = await client.send(client.get_random_node(), FindCoordinatorRequest(group, 0))
            answer = await client.send(found.coordinator_id, OffsetCommitRequest(
                group, -1, "", -1, [(topic, [(0, 1, "")])]))
            assert all(p[1] == 0 for t in answer.topics for p in t[1]), answer
    finally:
        await client.close()


async def _delete_groups(bootstrap: str, groups: list[str]) -> None:
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        found = await client.send(client.get_random_node(), FindCoordinatorRequest(groups[0], 0))
        answer = await client.send(found.coordinator_id, DeleteGroupsRequest(groups))
        assert all(result["error_code"] == 0 for result in answer.to_object()["results"]), answer
    finally:
        await client.close()


_NOT_HELD = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
             types.FrameType, types.CoroutineType, types.GeneratorType, asyncio.AbstractEventLoop, asyncio.Future,
             threading.Thread, socket.socket)
"""What the walk does not count or enter: code, running work and the event loop (they hold everything else)."""


def retained_bytes(*roots: object) -> int:
    """sys.getsizeof of every object reachable from the roots: what the structures they hold cost."""
    seen: set[int] = set()
    stack = list(roots)
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen or isinstance(item, _NOT_HELD):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        stack.extend(gc.get_referents(item))
    return total


def _groups(store: Store) -> set[str]:
    return {labels[2] for _, labels in store.keys("kafka_consumergroup_status")}


async def _cycles(store: Store, n: int) -> None:
    """Wait for n more Kafka collection cycles."""
    def count() -> int:
        return store.health()[("guard", "kafka")].runs

    start = count()
    await async_wait_until(lambda: count() >= start + n, timeout=30, what=f"{n} more collection cycles")


async def _held(service: Service) -> int:
    """retained_bytes of the store and the collectors, measured on the collectors' loop between two of its steps
    (no cycle is half written then)."""
    async def measure() -> int:
        return retained_bytes(service.store, *service.collectors)

    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(measure(), service._loop))


async def test_collection_cycles_with_churning_groups_and_topics_stay_flat(broker):
    await create_topic(broker.bootstrap, "orders", 6)
    await produce(broker.bootstrap, "orders", {p: 3 for p in range(6)})
    config = Config.model_validate({
        "pipelines": [{"name": "guard", "kafka": {"bootstrap_servers": [broker.bootstrap], "interval_seconds": 0.05,
                                                  "rate_window_seconds": 1, "consumer_groups": [".*"]}}],
        "store": {"points_per_series": RING},
    })
    service = Service(config)
    store = service.store
    service.start_in_thread()
    held: list[int] = []
    try:
        for round_ in range(WARM_UP_ROUNDS + MEASURED_ROUNDS):
            topic = f"passing-{round_}"
            await create_topic(broker.bootstrap, topic, 2)
            groups = [f"ephemeral-{round_}-{i}" for i in range(GROUPS_PER_ROUND)]
            await _churn_groups(broker.bootstrap, groups, topic)
            listed = set(groups)
            await async_wait_until(lambda listed=listed: listed <= _groups(store), timeout=30,
                                   what=f"round {round_}'s groups collected")
            await _delete_groups(broker.bootstrap, groups)
            await delete_topic(broker.bootstrap, topic)
            await async_wait_until(lambda listed=listed, topic=topic: not any(
                topic in k[1] or listed & set(k[1]) for k in store.keys()), timeout=30,
                what=f"round {round_}'s groups and topic gone from the store")
            if round_ == WARM_UP_ROUNDS - 1:
                # Rings full (RING points at 20 cycles a second are a second's worth): from here nothing may grow.
                assert store.stats()["points"] >= RING * 6
            if round_ >= WARM_UP_ROUNDS - 1:
                await _cycles(store, 25)  # the rate window's samples (1 s at 20 cycles a second) hold no round's groups
                held.append(await _held(service))
    finally:
        service.stop_thread()
    growth = statistics.median(held[-4:]) - statistics.median(held[:4])
    assert growth < HELD_GROWTH_BOUND, (
        f"the store and the collectors grew by {growth} bytes over {MEASURED_ROUNDS} rounds of "
        f"{GROUPS_PER_ROUND} groups and a topic created and deleted (after each round: {held})")


SESSION_PAGES = (({"page": "pipeline", "pipeline": "guard"}, True),
                 ({"page": "pipeline", "pipeline": "guard", "section": "kafka"}, True),
                 ({"page": "overview"}, True), ({"page": "aggregate"}, True),
                 ({"page": "errors"}, False))
"""The page kinds opened in turn, each with whether it updates every second (the errors page changes only when a
source fails, and none does here)."""
SESSIONS_PER_ROUND = 10
SESSION_ROUNDS = 5
SESSION_GROWTH_BOUND_MB = 25.0
"""What the server's resident memory may grow by from the second round of sessions to the last, each round's sessions
opened, shown live, closed and destroyed. A session's document costs the server several MB (docs/benchmarks.md,
sessions): sessions kept alive after closing (a view left subscribed to the store or a shared update) would grow
it by tens of MB a round."""


async def test_sessions_opened_and_closed_are_freed(broker, tmp_path):
    from bench.viewers import BokehViewer, rss_mb
    from pipewatch.local.broker import free_port
    from tests.services import PanelServer

    await create_topic(broker.bootstrap, "orders", 6)
    await produce(broker.bootstrap, "orders", {p: 3 for p in range(6)})
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        "  - name: guard\n"
        "    kafka:\n"
        f"      bootstrap_servers: [\"{broker.bootstrap}\"]\n"
        "      interval_seconds: 1\n"
        "exporter:\n"
        f"  port: {free_port()}\n", encoding="utf-8")
    server = PanelServer(tmp_path, config, env={"PANEL_LOG_LEVEL": "info"})  # logs each session destroyed
    server.start()
    try:
        after_round: list[float] = []
        for round_ in range(SESSION_ROUNDS):
            stop = asyncio.Event()
            pages = [SESSION_PAGES[i % len(SESSION_PAGES)] for i in range(SESSIONS_PER_ROUND)]
            viewers = [BokehViewer(server.port, arguments=arguments) for arguments, _ in pages]
            tasks = [asyncio.create_task(viewer.run(stop)) for viewer in viewers]

            def live(viewers=viewers, pages=pages) -> bool:
                """Every session got its document, and the live pages updates after it."""
                return all(v.pulled.is_set() and (v.patches or not updates)
                           for v, (_, updates) in zip(viewers, pages, strict=True))

            try:
                await async_wait_until(live, timeout=120, what=f"round {round_}'s {SESSIONS_PER_ROUND} sessions live")
            except AssertionError as error:
                state = [(arguments, v.pulled.is_set(), v.patches)
                         for v, (arguments, _) in zip(viewers, pages, strict=True)]
                raise AssertionError(f"{error}: (page, document received, updates received) {state}") from None
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            opened = (round_ + 1) * SESSIONS_PER_ROUND
            await async_wait_until(lambda opened=opened: server.log_path.read_text().count(" destroyed") >= opened,
                                   timeout=60, what=f"the {opened} sessions opened so far destroyed")
            after_round.append(rss_mb(server.proc.pid))
    finally:
        server.stop()
    growth = after_round[-1] - after_round[1]
    assert growth < SESSION_GROWTH_BOUND_MB, (
        f"the dashboard grew by {growth:.1f} MB over {SESSION_ROUNDS - 2} rounds of {SESSIONS_PER_ROUND} sessions "
        f"opened and closed (RSS after each round, MB: {[round(r, 1) for r in after_round]})")

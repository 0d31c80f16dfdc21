"""Memory stays flat once the rings are full: many collection cycles against a real broker whose consumer groups and
topics come and go (series and caches keyed by names a source controls), and many dashboard sessions opened and
closed in a real browser. docs/memory.md lists the bounds this guards."""

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

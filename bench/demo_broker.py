"""Where the demo's broker CPU goes: its clients vs pipewatch's Kafka collector, variant by variant.

    .venv/bin/python bench/demo_broker.py [--seconds 30] [--rounds 2]

Each variant gets a fresh local broker (Tansu, in-memory storage, as `make demo` runs it), the demo's topic, and
the demo's producer and two consumer groups at the demo's base rate (50 messages/s); variants with a collector
also run pipewatch's Kafka collector in-process with the given settings. After a warm-up, the broker's CPU (% of
one core) is read over the window. Variants run in turn, round after round, so that on a shared machine they share
the same conditions. Results go in docs/benchmarks.md (the demo's section).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from monitoring.config import Config  # noqa: E402
from monitoring.traffic import parse_pattern  # noqa: E402
from pipewatch import demo  # noqa: E402
from pipewatch.local.broker import LocalBroker  # noqa: E402
from pipewatch.service import Service  # noqa: E402

WARMUP_SECONDS = 10.0
VARIANTS: dict[str, dict] = {
    "clients only (no collector)": {},
    "clients only, retention.ms 60 s": {"topic_configs": {"retention.ms": "60000"}},
    "clients only, consumers commit every 5 s": {"commit_every_seconds": 5.0},
    "clients only, consumers fetch_min_bytes 64 kB": {"consumer": {"fetch_min_bytes": 65536}},
    "collector, 1 s, timestamp lookups on (demo before)": {"kafka": {"interval_seconds": 1}},
    "collector, 2 s, timestamp lookups on (demo after)": {"kafka": {"interval_seconds": 2}},
    "collector, 1 s, timestamp lookups off": {"kafka": {"interval_seconds": 1, "record_timestamp_lookups": 0}},
    "collector, 5 s, timestamp lookups on (default)": {"kafka": {"interval_seconds": 5}},
}


async def _run(bootstrap: str, kafka: dict | None, seconds: float, broker_pid: int, windows: int,
               topic_configs: dict[str, str]) -> list[float]:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(demo.TOPIC, demo.PARTITIONS, 1, topic_configs=topic_configs)])
    finally:
        await admin.close()
    pattern = parse_pattern("base=50/s")
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(demo._produce(bootstrap, pattern, time.time(), stop)),
        asyncio.create_task(demo._consume(bootstrap, demo.LAGGING_GROUP, pattern.base_rate * demo.LAGGING_CAPACITY,
                                          stop)),
        asyncio.create_task(demo._consume(bootstrap, demo.KEEPING_UP_GROUP,
                                          pattern.base_rate * demo.KEEPING_UP_CAPACITY, stop)),
    ]
    service = None
    if kafka is not None:
        config = Config.model_validate({"pipelines": [{"name": "orders", "kafka": {
            "bootstrap_servers": [bootstrap], "cluster": "demo", "consumer_groups": [".*"], **kafka}}],
            "exporter": {"enabled": False}})
        service = Service(config, mirror=False)
        service.supervisor.start()
    broker = psutil.Process(broker_pid)
    await asyncio.sleep(WARMUP_SECONDS)  # the clients and the collector settle (groups join, first cycles)
    percents = []
    for _ in range(windows):  # consecutive windows: how the cost grows as the broker's log does
        before, started = broker.cpu_times(), time.monotonic()
        await asyncio.sleep(seconds)  # the measurement window
        after, elapsed = broker.cpu_times(), time.monotonic() - started
        percents.append(100 * ((after.user + after.system) - (before.user + before.system)) / elapsed)
    stop.set()
    if service is not None:
        await service.supervisor.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    return percents


def measure(variant: dict | None, seconds: float, windows: int) -> list[float]:
    variant = dict(variant or {})
    topic_configs = variant.pop("topic_configs", {})
    kafka = variant.pop("kafka", None)
    demo.CONSUMER_SETTINGS = variant.pop("consumer", {})
    demo.COMMIT_EVERY_SECONDS = variant.pop("commit_every_seconds", 1.0)
    with tempfile.TemporaryDirectory(prefix="pipewatch-bench-broker-") as workdir:
        broker = LocalBroker(Path(workdir))
        broker.start()
        try:
            return asyncio.run(_run(broker.bootstrap, kafka, seconds, broker.proc.pid, windows, topic_configs))
        finally:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--windows", type=int, default=1, help="consecutive windows per broker (default 1)")
    parser.add_argument("--only", action="append", help="variant names containing this text")
    args = parser.parse_args()
    variants = {n: k for n, k in VARIANTS.items() if not args.only or any(o in n for o in args.only)}
    results: dict[str, list[list[float]]] = {name: [] for name in variants}
    for round_number in range(args.rounds):
        for name, kafka in variants.items():
            percents = measure(kafka, args.seconds, args.windows)
            results[name].append(percents)
            print(f"round {round_number + 1}  {name:55s} broker {' '.join(f'{p:5.1f}' for p in percents)} %",
                  flush=True)
    print(f"\nbroker CPU (% of one core), {args.rounds} rounds of {args.windows} x {args.seconds:g} s, variants "
          f"alternating; median per window")
    for name, rounds in results.items():
        medians = [statistics.median(window) for window in zip(*rounds, strict=True)]
        print(f"{name:55s} {' '.join(f'{m:5.1f}' for m in medians)} %")


if __name__ == "__main__":
    main()

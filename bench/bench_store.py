"""Store benchmark: append throughput, delta-read throughput and bytes per stored point.

Compared in the same run with a named baseline, "naive baseline: per-series Python list of
(t, value) tuples with re-slicing on every read" (NaiveStore below), which keeps the store's
contract: one lock per access, bounded per-series history, a running count so a reader asks for
the points after the n-th one, and copies handed to readers.

Workload, per series count N:
- writes: one point per series per tick (a collector cycle), through `append` (the hot path that
  `CycleWriter.set` calls), N series under the kafka_consumergroup_lag metric with realistic labels;
- delta reads: after every tick, a live view asks every series for its new points with
  `since(key, seen)` and remembers the returned count, as apps/live.py does; each read returns the
  one point written since the previous tick;
- bytes per stored point: Store.stats()["bytes"] / Store.stats()["points"] after the run (the
  store preallocates each series' whole ring, so this falls as the ring fills); for the baseline
  the deep size of its lists, tuples and floats (shared float objects counted once);
- full ring: a smaller set of series written past its capacity (steady state of a long-running
  process), then appends into the full ring, full-history reads (`since(key, 0)`, what a chart does
  when it first opens) and bytes per point at capacity.

Both implementations live side by side and get every tick in turn (which goes first alternates),
with the garbage collector paused while timing; a rate is the series count divided by the median
tick's seconds, so a burst of other work on the machine moves neither much.

Run alone: .venv/bin/python bench/bench_store.py [--quick]
"""

from __future__ import annotations

import gc
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from monitoring.config import StoreSettings  # noqa: E402
from monitoring.metrics import CATALOGUE  # noqa: E402
from monitoring.store import Store  # noqa: E402

BASELINE_NAME = "naive baseline: per-series Python list of (t, value) tuples with re-slicing on every read"
STORE_NAME = "pipewatch Store (numpy ring per series)"

METRIC = "kafka_consumergroup_lag"
SOURCE = ("bench", "kafka")
CAPACITY = StoreSettings().points_per_series  # the default ring: one hour at 1 sample/s (3,600)


class NaiveStore:
    """The named baseline: per-series list of (t, value) tuples, re-sliced on every read.

    Same contract as Store for what is measured here: a lock around every access, catalogue
    checks when a series is created, at most `capacity` points kept per series (oldest dropped),
    a running count per series, and `since(key, seen)` returning a new list of the points after the
    `seen`-th one.
    """

    def __init__(self, points_per_series: int = CAPACITY) -> None:
        self.capacity = points_per_series
        self._lock = threading.Lock()
        self._series: dict[tuple[str, tuple[str, ...]], list] = {}  # key -> [count, points]

    def append(self, source, name: str, labels: tuple[str, ...], value: float, t: float) -> None:
        key = (name, labels)
        with self._lock:
            entry = self._series.get(key)
            if entry is None:
                if name not in CATALOGUE:
                    raise KeyError(name)
                entry = self._series[key] = [0, []]
            points = entry[1]
            points.append((t, value))
            entry[0] += 1
            if len(points) > self.capacity:
                del points[: len(points) - self.capacity]

    def since(self, key, seen: int = 0) -> tuple[int, list[tuple[float, float]]] | None:
        with self._lock:
            entry = self._series.get(key)
            if entry is None:
                return None
            count, points = entry
            new = min(count - max(seen, 0), len(points))
            if new <= 0:
                return count, []
            return count, points[len(points) - new:]

    def stats(self) -> dict[str, int]:
        """Points held and their deep size in bytes (lists, tuples, floats; shared objects once)."""
        with self._lock:
            seen_ids: set[int] = set()
            total = sys.getsizeof(self._series)
            points_held = 0
            for entry in self._series.values():
                points = entry[1]
                points_held += len(points)
                total += sys.getsizeof(entry) + sys.getsizeof(points)
                for point in points:
                    total += sys.getsizeof(point)
                    for number in point:
                        if id(number) not in seen_ids:
                            seen_ids.add(id(number))
                            total += sys.getsizeof(number)
            return {"points": points_held, "bytes": total}


def _keys(n: int) -> list[tuple[str, ...]]:
    """Label tuples of n consumer-lag series: groups of 10 topics x 100 partitions."""
    return [
        ("bench", "local", f"group-{i // 1000:03d}", f"topic-{(i // 100) % 10:02d}", str(i % 100))
        for i in range(n)
    ]


@dataclass
class Row:
    scenario: str
    implementation: str
    series: int
    points_per_series: int
    append_pts_per_s: float
    read_label: str
    read_pts_per_s: float
    reads_per_s: float
    bytes_per_point: float


def _write_tick(impl, label_sets: list[tuple[str, ...]], tick: int) -> float:
    """One collector cycle: one point to every series; returns the seconds it took."""
    append, t = impl.append, 1_700_000_000.0 + tick
    start = time.perf_counter()
    for i, labels in enumerate(label_sets):
        append(SOURCE, METRIC, labels, float(tick * 7 + i), t)
    return time.perf_counter() - start


def _read_tick(impl, keys: list, seen: dict) -> tuple[float, int]:
    """One live-view tick: every series' new points after `seen`; returns (seconds, points read)."""
    since, points_read = impl.since, 0
    start = time.perf_counter()
    if isinstance(impl, Store):
        for key in keys:
            delta = since(key, seen[key])
            seen[key] = delta.count
            points_read += len(delta.values)
    else:
        for key in keys:
            count, points = since(key, seen[key])
            seen[key] = count
            points_read += len(points)
    return time.perf_counter() - start, points_read


def _full_read(impl, keys: list) -> tuple[float, int]:
    """Whole history of every series (since(key, 0)); returns (seconds, points read)."""
    since, points_read = impl.since, 0
    start = time.perf_counter()
    if isinstance(impl, Store):
        for key in keys:
            points_read += len(since(key, 0).values)
    else:
        for key in keys:
            points_read += len(since(key, 0)[1])
    return time.perf_counter() - start, points_read


def _bytes_per_point(impl) -> float:
    stats = impl.stats()
    return stats["bytes"] / stats["points"] if stats["points"] else float("nan")


def _implementations(n: int) -> dict:
    return {STORE_NAME: Store(points_per_series=CAPACITY, max_series=10 * n), BASELINE_NAME: NaiveStore(CAPACITY)}


def _measure_live(n: int, ticks: int) -> list[Row]:
    """Both implementations get the same ticks, alternating which goes first, so interference from
    other work on the machine hits both alike; rates come from the median tick."""
    label_sets = _keys(n)
    keys = [(METRIC, labels) for labels in label_sets]
    impls = _implementations(n)
    seen = {name: dict.fromkeys(keys, 0) for name in impls}
    writes: dict[str, list[float]] = {name: [] for name in impls}
    reads: dict[str, list[float]] = {name: [] for name in impls}
    for name, impl in impls.items():  # one untimed tick creates the series (allocation happens once)
        _write_tick(impl, label_sets, 0)
        _read_tick(impl, keys, seen[name])
    gc.collect()
    gc.disable()
    try:
        for tick in range(1, ticks + 1):
            order = list(impls.items()) if tick % 2 else list(reversed(impls.items()))
            for name, impl in order:
                writes[name].append(_write_tick(impl, label_sets, tick))
            for name, impl in order:
                seconds, points_read = _read_tick(impl, keys, seen[name])
                assert points_read == n, (name, points_read)
                reads[name].append(seconds)
    finally:
        gc.enable()
    rows = []
    for name, impl in impls.items():
        write_s, read_s = statistics.median(writes[name]), statistics.median(reads[name])
        rows.append(Row(
            scenario=f"{n:,} series x {ticks + 1} ticks", implementation=name, series=n,
            points_per_series=ticks + 1, append_pts_per_s=n / write_s,
            read_label="delta read (1 new point)", read_pts_per_s=n / read_s,
            reads_per_s=n / read_s, bytes_per_point=_bytes_per_point(impl),
        ))
    del impls
    gc.collect()
    return rows


def _measure_full_ring(n: int, wrapped_ticks: int, full_reads: int) -> list[Row]:
    """Series filled past capacity: appends into the full ring, whole-history reads, bytes/point."""
    label_sets = _keys(n)
    keys = [(METRIC, labels) for labels in label_sets]
    impls = _implementations(n)
    for impl in impls.values():  # fill, untimed
        for tick in range(CAPACITY):
            _write_tick(impl, label_sets, tick)
    writes: dict[str, list[float]] = {name: [] for name in impls}
    reads: dict[str, list[float]] = {name: [] for name in impls}
    gc.collect()
    gc.disable()
    try:
        for tick in range(CAPACITY, CAPACITY + wrapped_ticks):
            order = list(impls.items()) if tick % 2 else list(reversed(impls.items()))
            for name, impl in order:
                writes[name].append(_write_tick(impl, label_sets, tick))
        for round_ in range(full_reads):
            order = list(impls.items()) if round_ % 2 else list(reversed(impls.items()))
            for name, impl in order:
                seconds, points_read = _full_read(impl, keys)
                assert points_read == n * CAPACITY, (name, points_read)
                reads[name].append(seconds)
    finally:
        gc.enable()
    rows = []
    for name, impl in impls.items():
        write_s, read_s = statistics.median(writes[name]), statistics.median(reads[name])
        rows.append(Row(
            scenario=f"{n:,} series, full {CAPACITY:,}-point ring", implementation=name, series=n,
            points_per_series=CAPACITY, append_pts_per_s=n / write_s,
            read_label=f"full-history read ({CAPACITY:,} points)", read_pts_per_s=n * CAPACITY / read_s,
            reads_per_s=n / read_s, bytes_per_point=_bytes_per_point(impl),
        ))
    del impls
    gc.collect()
    return rows


def run(quick: bool = False) -> dict:
    # Ticks per series count: enough points for stable rates, bounded run time (10k series x 60
    # ticks is 600k appends and 600k delta reads per implementation).
    ticks = {1_000: 30, 10_000: 10} if quick else {1_000: 120, 10_000: 60}
    full_series = 50 if quick else 100
    started = time.perf_counter()
    rows: list[Row] = []
    for n, n_ticks in ticks.items():
        rows += _measure_live(n, n_ticks)
    rows += _measure_full_ring(full_series, wrapped_ticks=120 if quick else 600, full_reads=3 if quick else 10)
    return {
        "rows": rows,
        "ticks": ticks,
        "capacity": CAPACITY,
        "seconds": time.perf_counter() - started,
        "store_name": STORE_NAME,
        "baseline_name": BASELINE_NAME,
    }


def table(result: dict) -> tuple[list[str], list[list[str]]]:
    header = ["scenario", "implementation", "append (points/s)", "read kind", "read (points/s)",
              "reads/s", "bytes/stored point"]
    body = []
    for r in result["rows"]:
        impl = "Store" if r.implementation == STORE_NAME else "naive baseline"
        body.append([r.scenario, impl, f"{r.append_pts_per_s:,.0f}", r.read_label, f"{r.read_pts_per_s:,.0f}",
                     f"{r.reads_per_s:,.0f}", f"{r.bytes_per_point:,.1f}"])
    return header, body


if __name__ == "__main__":
    from run import print_table  # noqa: E402  (bench/ is sys.path[0] when run as a script)

    res = run(quick="--quick" in sys.argv)
    print_table(*table(res))
    print(f"({res['seconds']:.1f} s)")

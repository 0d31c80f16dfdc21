"""What the profiling collector has read so far, and the cursors of its incremental reads: rows are applied here,
each once, late ones included, and the state is kept bounded (the history window, the newest runs and events,
the ids still awaited). No I/O: collector.py reads the rows (docs/profiling-collector.md)."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from datetime import datetime

import asyncpg

from collectors.profiling import decode
from monitoring.config import ProfilingSource
from monitoring.models.profiling import ColumnMetric, DriftEvent, Run, RunKey, TableState

MAX_GAPS = 10_000
_KEY_SEPARATOR = "\x1f"

HistoryPoint = tuple[str, str, str, float, float]
"""(dataset, column, metric, time, value): one numeric column metric for the history charts."""


def run_order(run: Run) -> tuple[float, str, str]:
    return (run.profiled_at, run.run_id, run.dataset)


def run_key_text(run_id: str, dataset: str) -> str:
    """A run's key as the SQL of the incremental read writes it (`run_id || chr(31) || dataset_name`)."""
    return f"{run_id}{_KEY_SEPARATOR}{dataset}"


class ProfilingHistory:
    """Runs, drift events, column metrics and table state read so far, with totals over all of history."""

    def __init__(self, config: ProfilingSource) -> None:
        self._config = config
        self.runs: dict[RunKey, Run] = {}
        self.run_cursor: datetime | None = None
        self.recent_runs: dict[str, float] = {}
        """Keys of the runs within the late window -> their time: excluded from the next read."""
        self.run_totals: Counter[tuple[str, str]] = Counter()
        self.latest_run: dict[str, Run] = {}
        """Dataset -> its newest run over all of history (not only the window)."""
        self.result_cursor = 0
        self.result_gaps: dict[int, float] = {}
        """Ids skipped over -> when first missed: asked for again until they appear or expire."""
        self.metrics_by_run: OrderedDict[RunKey, list[ColumnMetric]] = OrderedDict()
        self.events: dict[str, DriftEvent] = {}
        self.event_cursor: datetime | None = None
        self.recent_events: dict[str, float] = {}
        self.event_totals: Counter[tuple[str, str]] = Counter()
        self.state: dict[tuple[str, str], TableState] = {}
        self.state_cursor: datetime | None = None

    def add_runs(self, rows: Iterable[asyncpg.Record], count: bool) -> None:
        """Runs read; `count`: new ones (the incremental read) also move the totals, the latest run and the
        cursor."""
        for row in rows:
            run = decode.run(row)
            if count:
                if run.key in self.runs:
                    continue
                self.run_totals[(run.dataset, run.status)] += 1
                latest = self.latest_run.get(run.dataset)
                if latest is None or run.profiled_at >= latest.profiled_at:
                    self.latest_run[run.dataset] = run
                self.recent_runs[run_key_text(run.run_id, run.dataset)] = run.profiled_at
                at = decode.naive_utc(row["profiled_at"])
                self.run_cursor = max(self.run_cursor or at, at)
            self.runs[run.key] = run

    def add_events(self, rows: Iterable[asyncpg.Record], count: bool) -> None:
        for row in rows:
            event = decode.drift_event(row)
            if count:
                if event.event_id in self.events:
                    continue
                self.event_totals[(event.table or "", event.severity)] += 1
                self.recent_events[event.event_id] = event.time
                at = decode.naive_utc(row["timestamp"])
                self.event_cursor = max(self.event_cursor or at, at)
            self.events[event.event_id] = event

    def add_results(self, rows: Iterable[asyncpg.Record], track_gaps: bool = False,
                    detail_for: set[RunKey] | None = None) -> list[HistoryPoint]:
        """Keep the rows' metrics for the run detail (only of the runs in `detail_for`, when given);
        return the numeric ones as history points."""
        points = []
        epochs: dict[datetime, float] = {}  # the rows of one run share their time
        for row in rows:
            identifier = row["id"]
            if track_gaps:
                if identifier in self.result_gaps:
                    del self.result_gaps[identifier]
                elif identifier > self.result_cursor:
                    self._remember_gaps(self.result_cursor + 1, identifier)
                    self.result_cursor = identifier
                else:
                    continue  # already had it (a re-asked gap can only come back once)
            key = (row["run_id"], row["dataset_name"])
            if detail_for is None or key in detail_for:
                metrics = self.metrics_by_run.get(key)
                if metrics is None:
                    metrics = self.metrics_by_run[key] = []
                metrics.append(decode.column_metric(row))
            point = decode.metric_point(row)
            if point is not None:
                at = row["profiled_at"]
                t = epochs.get(at)
                if t is None:
                    t = epochs[at] = decode.epoch(at)
                points.append((row["dataset_name"], row["column_name"], point[0], t, point[1]))
        return points

    def set_table_state(self, rows: Iterable[asyncpg.Record], full: bool) -> None:
        """Table state rows read (all of them when `full`, else those profiled since the cursor)."""
        if full:
            self.state = {}
        for row in rows:
            state = decode.table_state(row)
            self.state[(state.schema, state.table)] = state
            if row["last_profiled_at"] is not None:
                seen = decode.naive_utc(row["last_profiled_at"])
                self.state_cursor = max(self.state_cursor or seen, seen)

    def _remember_gaps(self, first: int, past_last: int) -> None:
        if past_last - first > MAX_GAPS:
            first = past_last - MAX_GAPS  # a huge jump (sequence cache, big rollback): keep the nearest ids
        now = time.monotonic()
        for identifier in range(first, past_last):
            self.result_gaps[identifier] = now
        while len(self.result_gaps) > MAX_GAPS:
            del self.result_gaps[next(iter(self.result_gaps))]

    def expire_gaps(self) -> None:
        """Ids awaited for longer than late_rows_seconds are not coming (rolled back)."""
        deadline = time.monotonic() - self._config.late_rows_seconds
        for identifier in [i for i, first in self.result_gaps.items() if first < deadline]:
            del self.result_gaps[identifier]

    def trim(self) -> None:
        """Keep memory bounded: the history window, the newest runs and events, recent keys only."""
        config = self._config
        cut = time.time() - config.history_days * 86_400
        if len(self.runs) > config.max_runs or any(r.profiled_at < cut for r in self.runs.values()):
            newest = sorted((r for r in self.runs.values() if r.profiled_at >= cut), key=run_order)
            self.runs = {r.key: r for r in newest[-config.max_runs:]}
        if len(self.events) > config.max_drift_events or any(e.time < cut for e in self.events.values()):
            newest = sorted((e for e in self.events.values() if e.time >= cut), key=lambda e: (e.time, e.event_id))
            self.events = {e.event_id: e for e in newest[-config.max_drift_events:]}
        while len(self.metrics_by_run) > config.runs_with_metrics:
            self.metrics_by_run.popitem(last=False)
        late = config.late_rows_seconds
        for recent, cursor in ((self.recent_runs, self.run_cursor), (self.recent_events, self.event_cursor)):
            if cursor is not None:
                floor = decode.epoch(cursor) - late
                for key in [k for k, at in recent.items() if at < floor]:
                    del recent[key]

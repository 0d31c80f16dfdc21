"""The series a profiling cycle writes (docs/metrics.md lists every series). The column metrics' history is
appended with its own times (CycleResult.appended), so the cycle keeps those series rather than writing them."""

from __future__ import annotations

from collections import Counter

from collectors.profiling.history import ProfilingHistory
from monitoring.models.profiling import ProfilingSnapshot
from monitoring.store import CycleWriter


def write_snapshot(cycle: CycleWriter, history: ProfilingHistory, snapshot: ProfilingSnapshot, now: float) -> None:
    cycle.retain(lambda key: key[0] == "profiling_column_metric")
    for (dataset, status), count in history.run_totals.items():
        cycle.set("profiling_runs_total", (dataset, status), count)
    for (table_name, severity), count in history.event_totals.items():
        cycle.set("profiling_drift_events_total", (table_name, severity), count)
    for dataset, run in history.latest_run.items():
        cycle.set("profiling_last_run_timestamp_seconds", (dataset,), run.profiled_at)
        if run.row_count is not None:
            cycle.set("profiling_dataset_rows", (dataset,), run.row_count)
    for fresh in snapshot.freshness:
        labels = (fresh.schema or "", fresh.table)
        if fresh.last_profiled_at is not None:
            cycle.set("profiling_table_staleness_seconds", labels, max(0.0, now - fresh.last_profiled_at))
    counts = Counter("never" if f.last_profiled_at is None else "fresh" if f.fresh else "stale"
                     for f in snapshot.freshness)
    for state in ("fresh", "stale", "never"):
        cycle.set("profiling_tables", (state,), counts[state])
    for state in snapshot.table_state or ():
        labels = (state.schema, state.table)
        if state.decision:
            cycle.set("profiling_table_decision", (*labels, state.decision), 1)
        if state.staleness_score is not None:
            cycle.set("profiling_table_staleness_score", labels, state.staleness_score)
    failure = next(k for k in snapshot.kpis if k.name == "failure rate")
    if failure.value is not None:
        cycle.set("profiling_run_failure_ratio", (), failure.value)

"""What the profiling collector publishes: runs, drift events, table state and measures derived
from them. Every number here is computed from rows read from the profiler's tables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RunKey = tuple[str, str]
"""(run_id, dataset_name): the runs table's primary key."""


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    dataset: str
    schema: str | None
    profiled_at: float
    environment: str | None
    status: str
    row_count: int | None
    column_count: int | None

    @property
    def key(self) -> RunKey:
        return (self.run_id, self.dataset)

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass(frozen=True, slots=True)
class ColumnMetric:
    column: str
    column_type: str | None
    metric: str
    """As the profiler wrote it (null_ratio, or null_percent from the seed's sample generator)."""
    value: str | None
    """As stored: numbers and JSON (histograms) are text."""


@dataclass(frozen=True, slots=True)
class DriftEvent:
    event_id: str
    table: str | None
    column: str | None
    metric: str | None
    baseline: float | None
    current: float | None
    change_percent: float | None
    severity: str
    time: float


@dataclass(frozen=True, slots=True)
class TableState:
    schema: str
    table: str
    decision: str | None
    reason: str | None
    last_profiled_at: float | None
    staleness_score: int | None
    row_count: int | None
    bytes_scanned: int | None
    snapshot_id: str | None
    last_run_id: str | None


@dataclass(frozen=True, slots=True)
class Freshness:
    """A table's (or, without table_state, a dataset's) freshness against the expectation."""

    schema: str | None
    table: str
    last_profiled_at: float | None
    fresh: bool


@dataclass(frozen=True, slots=True)
class Kpi:
    name: str
    value: float | None
    previous: float | None
    """The same measure over the period before; None when nothing is known for it."""
    unit: str = ""
    over_period: bool = True
    """False for a measure of now (stale tables): it has no earlier period to compare with."""

    @property
    def change(self) -> float | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous


@dataclass(frozen=True, slots=True)
class ProfilingSnapshot:
    runs: tuple[Run, ...]
    """Oldest first, the newest `max_runs` within the history window."""
    metrics_by_run: Mapping[RunKey, tuple[ColumnMetric, ...]]
    """Column metrics of the newest runs (`runs_with_metrics`)."""
    drift_events: tuple[DriftEvent, ...]
    table_state: tuple[TableState, ...] | None
    """None when the profiler has no table_state table (versions before incremental profiling)."""
    freshness: tuple[Freshness, ...]
    runs_per_day: Mapping[tuple[str, str], int]
    """(UTC day, status) -> runs."""
    drift_per_day: Mapping[tuple[str, str], int]
    """(UTC day, severity) -> drift events."""
    top_drifting_tables: tuple[tuple[str, int], ...]
    top_drifting_columns: tuple[tuple[str, str, int], ...]
    kpis: tuple[Kpi, ...]
    kpi_period_seconds: float
    total_runs: int
    total_drift_events: int
    measured_at: float
    notes: tuple[str, ...] = ()

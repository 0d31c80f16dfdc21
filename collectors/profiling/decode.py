"""The profiler's rows read into the model (monitoring.models.profiling). Its TIMESTAMP columns are naive and
hold UTC; statuses and severities come in any case; metric values are text (numbers, JSON, dates)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import asyncpg

from monitoring.models.profiling import ColumnMetric, DriftEvent, Run, TableState

_PERCENT_METRICS = {"null_percent": "null_ratio", "distinct_percent": "unique_ratio"}
"""The seed's sample generator writes percentages where the profiler writes ratios."""


def run(row: asyncpg.Record) -> Run:
    return Run(run_id=row["run_id"], dataset=row["dataset_name"], schema=row["schema_name"],
               profiled_at=epoch(row["profiled_at"]), environment=row["environment"],
               status=lower_or_unknown(row["status"]), row_count=row["row_count"], column_count=row["column_count"])


def drift_event(row: asyncpg.Record) -> DriftEvent:
    return DriftEvent(
        event_id=row["event_id"], table=row["table_name"], column=row["column_name"],
        metric=row["metric_name"], baseline=row["baseline_value"], current=row["current_value"],
        change_percent=row["change_percent"], severity=lower_or_unknown(row["drift_severity"]),
        time=epoch(row["timestamp"]))


def table_state(row: asyncpg.Record) -> TableState:
    return TableState(
        schema=row["schema_name"], table=row["table_name"], decision=row["decision"],
        reason=row["decision_reason"], last_profiled_at=epoch(row["last_profiled_at"]),
        staleness_score=row["staleness_score"], row_count=row["row_count"], bytes_scanned=row["bytes_scanned"],
        snapshot_id=row["snapshot_id"], last_run_id=row["last_run_id"])


def column_metric(row: asyncpg.Record) -> ColumnMetric:
    return ColumnMetric(row["column_name"], row["column_type"], row["metric_name"], row["metric_value"])


def metric_point(row: asyncpg.Record) -> tuple[str, float] | None:
    """(metric, value) of a numeric column metric, percentages as ratios; None for the others."""
    value = number(row["metric_value"])
    if value is None:
        return None
    metric = row["metric_name"]
    if metric in _PERCENT_METRICS:
        return _PERCENT_METRICS[metric], value / 100.0
    return metric, value


def lower_or_unknown(value: str | None) -> str:
    """A run's status or a drift event's severity, as the pages and series name it."""
    return (value or "unknown").lower()


def naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def number(text: Any) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None  # JSON (histograms), dates, text
    return value if math.isfinite(value) else None

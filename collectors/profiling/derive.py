"""The profiling snapshot worked out from what has been read: KPIs over the last period against the one before
(when the history reaches back that far), freshness per table, drift counts per day and the tables and columns
that drift most."""

from __future__ import annotations

from collections import Counter

from collectors.profiling import decode
from collectors.profiling.history import ProfilingHistory, run_order
from monitoring.models.profiling import Freshness, Kpi, ProfilingSnapshot, Run

KPI_PERIOD_SECONDS = 86_400.0


def snapshot(history: ProfilingHistory, now: float, history_days: float, fresh_within_seconds: float,
             table_state: str, has_table_state: bool) -> ProfilingSnapshot:
    """`table_state`: the name of the table_state table; without one (`has_table_state` false), freshness comes
    from each dataset's newest run."""
    runs = tuple(sorted(history.runs.values(), key=run_order))
    events = tuple(sorted(history.events.values(), key=lambda e: (e.time, e.event_id)))
    fresh = freshness(history, now, fresh_within_seconds, has_table_state)
    period = KPI_PERIOD_SECONDS
    current = [r for r in runs if now - period < r.profiled_at <= now]
    previous = [r for r in runs if now - 2 * period < r.profiled_at <= now - period]
    history_covers_previous = now - 2 * period >= now - history_days * 86_400

    def failure_ratio(selected: list[Run]) -> float | None:
        return sum(r.failed for r in selected) / len(selected) if selected else None

    kpis = (
        Kpi("runs", float(len(current)), float(len(previous)) if history_covers_previous else None),
        Kpi("failure rate", failure_ratio(current), failure_ratio(previous), unit="ratio"),
        Kpi("drift events", float(sum(1 for e in events if now - period < e.time <= now)),
            float(sum(1 for e in events if now - 2 * period < e.time <= now - period))
            if history_covers_previous else None),
        Kpi("high-severity drift",
            float(sum(1 for e in events if now - period < e.time <= now and e.severity == "high")),
            float(sum(1 for e in events if now - 2 * period < e.time <= now - period and e.severity == "high"))
            if history_covers_previous else None),
        Kpi("datasets profiled", float(len({r.dataset for r in current if not r.failed})),
            float(len({r.dataset for r in previous if not r.failed})) if history_covers_previous else None),
        Kpi("stale tables", float(sum(1 for f in fresh if not f.fresh)), None, over_period=False),
    )
    tables = Counter(e.table or "" for e in events)
    columns = Counter((e.table or "", e.column or "") for e in events)
    return ProfilingSnapshot(
        runs=runs,
        metrics_by_run={key: tuple(metrics) for key, metrics in history.metrics_by_run.items()},
        drift_events=events,
        table_state=tuple(sorted(history.state.values(), key=lambda s: (s.schema, s.table)))
        if has_table_state else None,
        freshness=fresh,
        runs_per_day=Counter((decode.day(r.profiled_at), r.status) for r in runs),
        drift_per_day=Counter((decode.day(e.time), e.severity) for e in events),
        top_drifting_tables=tuple(tables.most_common(10)),
        top_drifting_columns=tuple((t, c, n) for (t, c), n in columns.most_common(10)),
        kpis=kpis, kpi_period_seconds=period,
        total_runs=sum(history.run_totals.values()), total_drift_events=sum(history.event_totals.values()),
        measured_at=now,
        notes=() if has_table_state else (f"no {table_state} table: freshness comes from each dataset's newest run",),
    )


def freshness(history: ProfilingHistory, now: float, limit: float, has_table_state: bool) -> tuple[Freshness, ...]:
    """Per table: when it was last profiled, and whether that is within `limit` seconds."""
    if has_table_state:
        return tuple(Freshness(s.schema, s.table, s.last_profiled_at,
                               s.last_profiled_at is not None and now - s.last_profiled_at <= limit)
                     for s in sorted(history.state.values(), key=lambda s: (s.schema, s.table)))
    return tuple(Freshness(r.schema, r.dataset, r.profiled_at, now - r.profiled_at <= limit)
                 for r in sorted(history.latest_run.values(), key=lambda r: r.dataset))

"""Profiling and drift: the ProfileMesh / baselinr tables in PostgreSQL, read incrementally.

The first cycle loads the history window in one REPEATABLE READ transaction (totals by group, the
newest runs, drift events, table state, the newest column metrics), so counts and cursors agree.
Every later cycle reads only rows it has not seen:

- runs and drift events carry a time but no sequence. A profile that runs long writes its row at
  the end with the time it started, so a row can commit after newer ones were read. Each cycle
  asks for rows from `late_rows_seconds` before the newest time seen and excludes, in SQL, the
  keys it already has from that window: only new rows come back, late ones included, none twice.
- column metrics have a SERIAL id, assigned at insert and visible at commit: ids skipped over
  (a transaction still open, or rolled back) are remembered and asked for again until they
  appear or `late_rows_seconds` has passed.
- table state rows change in place: rows profiled since the newest time seen are read every cycle,
  the whole table every `table_state_refresh_seconds` (decisions like skip and defer, deletions).

Reads come in batches of at most `_BATCH` rows. After a dropped connection or a database restart
the cursors are where they were: nothing is lost or counted twice.
"""

from __future__ import annotations

import functools
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from collectors.postgres import DATABASE_ERRORS, DatabaseError, classified
from collectors.profiling.schema import REQUIRED, TABLES, table
from monitoring.config import ProfilingSource
from monitoring.cycle import Appended, CycleResult
from monitoring.models.profiling import (
    ColumnMetric,
    DriftEvent,
    Freshness,
    Kpi,
    ProfilingSnapshot,
    Run,
    RunKey,
    TableState,
)
from monitoring.runtime import Collector
from monitoring.sources import PROFILING, collector_name
from monitoring.store import CycleWriter

DRIFT_EVENT = "DataDriftDetected"
KPI_PERIOD_SECONDS = 86_400.0
_BATCH = 10_000
_INITIAL_METRIC_ROWS = 500_000
"""The newest column-metric rows loaded into the history charts at start."""
_MAX_GAPS = 10_000
_PERCENT_METRICS = {"null_percent": "null_ratio", "distinct_percent": "unique_ratio"}
"""The seed's sample generator writes percentages where the profiler writes ratios."""
_KEY_SEPARATOR = "\x1f"
_EPOCH = datetime(1970, 1, 1)
"""The cursor before any row was seen."""


class ProfilingCollector(Collector):
    name = collector_name(PROFILING)

    def __init__(self, pipeline: str, config: ProfilingSource) -> None:
        super().__init__(pipeline, config.target, config.interval_seconds, config.timeout_seconds)
        self.config = config
        self._tables = {kind: table(config.db_schema, config.table_prefix, kind) for kind in TABLES}
        self._pool: asyncpg.Pool | None = None
        self._loaded = False
        self._queries = 0
        self.rows_read = 0
        """Rows the last cycle received from the database."""
        self._has_table_state: bool | None = None
        self._forget()

    def _forget(self) -> None:
        """Back to knowing nothing (also when a first load failed half way and starts over)."""
        self._runs: dict[RunKey, Run] = {}
        self._run_cursor: datetime | None = None
        self._recent_runs: dict[str, float] = {}
        """Keys of the runs within the late window -> their time: excluded from the next read."""
        self._run_totals: Counter[tuple[str, str]] = Counter()
        self._latest_run: dict[str, Run] = {}
        """Dataset -> its newest run over all of history (not only the window)."""
        self._result_cursor = 0
        self._result_gaps: dict[int, float] = {}
        """Ids skipped over -> when first missed: asked for again until they appear or expire."""
        self._metrics_by_run: OrderedDict[RunKey, list[ColumnMetric]] = OrderedDict()
        self._events: dict[str, DriftEvent] = {}
        self._event_cursor: datetime | None = None
        self._recent_events: dict[str, float] = {}
        self._event_totals: Counter[tuple[str, str]] = Counter()
        self._state: dict[tuple[str, str], TableState] = {}
        self._state_cursor: datetime | None = None
        self._state_read_at = -math.inf

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def fetch(self) -> CycleResult:
        self._queries, self.rows_read = 0, 0
        pool = await self._connect()
        try:
            async with pool.acquire() as connection:
                points = await (self._incremental(connection) if self._loaded else self._load(connection))
        except DATABASE_ERRORS as exc:
            raise self._failure(exc) from None
        self._loaded = True
        now = time.time()
        snapshot = self._snapshot(now)
        points.sort(key=lambda point: point[3])  # charts read the history in time order
        history = Appended("profiling_column_metric", [((self.pipeline, dataset, column, metric), t, value)
                                                       for dataset, column, metric, t, value in points])
        return CycleResult(measured_at=now, requests=self._queries, snapshot=snapshot, appended=(history,),
                           write=functools.partial(self._write, snapshot=snapshot, now=now))

    # -- reading ---------------------------------------------------------------------------------

    async def _connect(self) -> asyncpg.Pool:
        if self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    **self.config.connect_arguments(), min_size=1, max_size=2,
                    command_timeout=self.config.timeout_seconds,
                    # Naive TIMESTAMP columns hold UTC (the profiler writes utcnow()); comparing them
                    # with now() needs the session in UTC too.
                    server_settings={"application_name": "pipewatch", "timezone": "UTC",
                                     "default_transaction_read_only": "on"})
            except DATABASE_ERRORS as exc:
                raise self._failure(exc) from None
        return self._pool

    def _failure(self, exc: BaseException) -> DatabaseError:
        return classified(exc, f"expected tables {', '.join(self._tables.values())}",
                          "the role needs SELECT on the profiler's tables")

    async def _fetch(self, connection, query: str, *args) -> list[asyncpg.Record]:
        self._queries += 1
        rows = await connection.fetch(query, *args)
        self.rows_read += len(rows)
        return rows

    async def _load(self, connection) -> list[tuple[str, str, str, float, float]]:
        """The first cycle: everything in the history window, from one consistent snapshot."""
        self._forget()
        await self._check_tables(connection)
        t, history, late = self._tables, self.config.history_days * 86_400, self.config.late_rows_seconds
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            for row in await self._fetch(connection, f"SELECT dataset_name, status, count(*) AS n FROM {t['runs']} "
                                                     f"GROUP BY dataset_name, status"):
                self._run_totals[(row["dataset_name"], _status(row["status"]))] = row["n"]
            rows = await self._fetch(connection, f"""
                SELECT run_id, dataset_name, schema_name, profiled_at, environment, status, row_count, column_count
                FROM {t['runs']} WHERE profiled_at > (now() AT TIME ZONE 'UTC') - make_interval(secs => $1)
                ORDER BY profiled_at DESC LIMIT $2""", history, self.config.max_runs)
            self._add_runs(rows, count=False)
            for row in await self._fetch(connection, f"""
                    SELECT DISTINCT ON (dataset_name) run_id, dataset_name, schema_name, profiled_at, environment,
                           status, row_count, column_count
                    FROM {t['runs']} ORDER BY dataset_name, profiled_at DESC"""):
                self._latest_run[row["dataset_name"]] = _run(row)
            newest = (await self._fetch(connection, f"SELECT max(profiled_at) AS t FROM {t['runs']}"))[0]["t"]
            if newest is not None:
                self._run_cursor = _naive_utc(newest)
                for row in await self._fetch(connection, f"""
                        SELECT run_id, dataset_name, profiled_at FROM {t['runs']}
                        WHERE profiled_at >= $1::timestamp - make_interval(secs => $2)""", self._run_cursor, late):
                    self._recent_runs[_run_key_text(row["run_id"], row["dataset_name"])] = _epoch(row["profiled_at"])

            for row in await self._fetch(connection, f"""
                    SELECT coalesce(table_name, '') AS table_name, drift_severity, count(*) AS n FROM {t['events']}
                    WHERE event_type = $1 GROUP BY 1, 2""", DRIFT_EVENT):
                self._event_totals[(row["table_name"], _severity(row["drift_severity"]))] = row["n"]
            rows = await self._fetch(connection, f"""
                SELECT event_id, table_name, column_name, metric_name, baseline_value, current_value, change_percent,
                       drift_severity, timestamp FROM {t['events']}
                WHERE event_type = $1 AND timestamp > (now() AT TIME ZONE 'UTC') - make_interval(secs => $2)
                ORDER BY timestamp DESC LIMIT $3""", DRIFT_EVENT, history, self.config.max_drift_events)
            self._add_events(rows, count=False)
            newest = (await self._fetch(connection,
                                        f"SELECT max(timestamp) AS t FROM {t['events']} WHERE event_type = $1",
                                        DRIFT_EVENT))[0]["t"]
            if newest is not None:
                self._event_cursor = _naive_utc(newest)
                for row in await self._fetch(connection, f"""
                        SELECT event_id, timestamp FROM {t['events']}
                        WHERE event_type = $1 AND timestamp >= $2::timestamp - make_interval(secs => $3)""",
                                             DRIFT_EVENT, self._event_cursor, late):
                    self._recent_events[row["event_id"]] = _epoch(row["timestamp"])

            latest = await self._fetch(connection, f"SELECT coalesce(max(id), 0) AS id FROM {t['results']}")
            self._result_cursor = latest[0]["id"]
            rows = await self._fetch(connection, f"""
                SELECT id, run_id, dataset_name, column_name, column_type, metric_name, metric_value, profiled_at
                FROM {t['results']} WHERE id <= $1
                  AND profiled_at > (now() AT TIME ZONE 'UTC') - make_interval(secs => $2)
                ORDER BY id DESC LIMIT $3""", self._result_cursor, history, _INITIAL_METRIC_ROWS)
            newest = sorted(self._runs.values(), key=_run_order)[-self.config.runs_with_metrics:]
            points = self._add_results(reversed(rows), detail_for={run.key for run in newest})
            if self._has_table_state:
                await self._read_table_state(connection, full=True)
        self._trim()
        return points

    async def _incremental(self, connection) -> list[tuple[str, str, str, float, float]]:
        t, late = self._tables, self.config.late_rows_seconds
        while True:
            rows = await self._fetch(connection, f"""
                SELECT run_id, dataset_name, schema_name, profiled_at, environment, status, row_count, column_count
                FROM {t['runs']}
                WHERE profiled_at >= $1::timestamp - make_interval(secs => $2)
                  AND NOT (run_id || chr(31) || dataset_name = ANY($3::text[]))
                ORDER BY profiled_at, run_id, dataset_name LIMIT $4""",
                                     self._run_cursor or _EPOCH, late, list(self._recent_runs), _BATCH)
            self._add_runs(rows, count=True)
            if len(rows) < _BATCH:
                break
        while True:
            rows = await self._fetch(connection, f"""
                SELECT event_id, table_name, column_name, metric_name, baseline_value, current_value, change_percent,
                       drift_severity, timestamp FROM {t['events']}
                WHERE event_type = $1 AND timestamp >= $2::timestamp - make_interval(secs => $3)
                  AND NOT (event_id = ANY($4::text[]))
                ORDER BY timestamp, event_id LIMIT $5""",
                                     DRIFT_EVENT, self._event_cursor or _EPOCH, late, list(self._recent_events),
                                     _BATCH)
            self._add_events(rows, count=True)
            if len(rows) < _BATCH:
                break
        points = []
        self._expire_gaps()
        while True:
            rows = await self._fetch(connection, f"""
                SELECT id, run_id, dataset_name, column_name, column_type, metric_name, metric_value, profiled_at
                FROM {t['results']} WHERE id > $1 OR id = ANY($2::int[]) ORDER BY id LIMIT $3""",
                                     self._result_cursor, list(self._result_gaps), _BATCH)
            points += self._add_results(rows, track_gaps=True)
            if len(rows) < _BATCH:
                break
        if self._has_table_state:
            full = time.monotonic() - self._state_read_at >= self.config.table_state_refresh_seconds
            await self._read_table_state(connection, full=full)
        self._trim()
        return points

    async def _check_tables(self, connection) -> None:
        """A missing table (often a wrong table_prefix or schema) is named, not a bare SQL error."""
        found = {}
        for kind in TABLES:
            self._queries += 1
            found[kind] = await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", self._tables[kind])
        missing = [self._tables[kind] for kind in REQUIRED if not found[kind]]
        if missing:
            raise DatabaseError("missing_table", f"table {', '.join(missing)} does not exist (schema "
                                 f"{self.config.db_schema!r}, table_prefix {self.config.table_prefix!r}): check "
                                 f"table_prefix (profilemesh or baselinr) and schema")
        self._has_table_state = found["table_state"]

    async def _read_table_state(self, connection, full: bool) -> None:
        query = f"""SELECT schema_name, table_name, last_run_id, snapshot_id, decision, decision_reason,
                           last_profiled_at, staleness_score, row_count, bytes_scanned
                    FROM {self._tables['table_state']}"""
        if full or self._state_cursor is None:
            rows = await self._fetch(connection, query)
            self._state = {}
            self._state_read_at = time.monotonic()
        else:
            rows = await self._fetch(connection, query + " WHERE last_profiled_at > $1::timestamp", self._state_cursor)
        for row in rows:
            state = TableState(
                schema=row["schema_name"], table=row["table_name"], decision=row["decision"],
                reason=row["decision_reason"], last_profiled_at=_epoch(row["last_profiled_at"]),
                staleness_score=row["staleness_score"], row_count=row["row_count"], bytes_scanned=row["bytes_scanned"],
                snapshot_id=row["snapshot_id"], last_run_id=row["last_run_id"])
            self._state[(state.schema, state.table)] = state
            if row["last_profiled_at"] is not None:
                seen = _naive_utc(row["last_profiled_at"])
                self._state_cursor = max(self._state_cursor or seen, seen)

    # -- applying rows ---------------------------------------------------------------------------

    def _add_runs(self, rows: Iterable[asyncpg.Record], count: bool) -> None:
        for row in rows:
            run = _run(row)
            if count:
                if run.key in self._runs:
                    continue
                self._run_totals[(run.dataset, run.status)] += 1
                latest = self._latest_run.get(run.dataset)
                if latest is None or run.profiled_at >= latest.profiled_at:
                    self._latest_run[run.dataset] = run
                self._recent_runs[_run_key_text(run.run_id, run.dataset)] = run.profiled_at
                at = _naive_utc(row["profiled_at"])
                self._run_cursor = max(self._run_cursor or at, at)
            self._runs[run.key] = run

    def _add_events(self, rows: Iterable[asyncpg.Record], count: bool) -> None:
        for row in rows:
            event = DriftEvent(
                event_id=row["event_id"], table=row["table_name"], column=row["column_name"],
                metric=row["metric_name"], baseline=row["baseline_value"], current=row["current_value"],
                change_percent=row["change_percent"], severity=_severity(row["drift_severity"]),
                time=_epoch(row["timestamp"]))
            if count:
                if event.event_id in self._events:
                    continue
                self._event_totals[(event.table or "", event.severity)] += 1
                self._recent_events[event.event_id] = event.time
                at = _naive_utc(row["timestamp"])
                self._event_cursor = max(self._event_cursor or at, at)
            self._events[event.event_id] = event

    def _add_results(self, rows: Iterable[asyncpg.Record], track_gaps: bool = False,
                     detail_for: set[RunKey] | None = None):
        """Keep the rows' metrics for the run detail (only of the runs in `detail_for`, when given);
        return the numeric ones as history points."""
        points = []
        epochs: dict[datetime, float] = {}  # the rows of one run share their time
        for row in rows:
            identifier = row["id"]
            if track_gaps:
                if identifier in self._result_gaps:
                    del self._result_gaps[identifier]
                elif identifier > self._result_cursor:
                    self._remember_gaps(self._result_cursor + 1, identifier)
                    self._result_cursor = identifier
                else:
                    continue  # already had it (a re-asked gap can only come back once)
            key = (row["run_id"], row["dataset_name"])
            if detail_for is None or key in detail_for:
                metrics = self._metrics_by_run.get(key)
                if metrics is None:
                    metrics = self._metrics_by_run[key] = []
                metrics.append(ColumnMetric(row["column_name"], row["column_type"], row["metric_name"],
                                            row["metric_value"]))
            value = _number(row["metric_value"])
            if value is not None:
                metric = row["metric_name"]
                if metric in _PERCENT_METRICS:
                    metric, value = _PERCENT_METRICS[metric], value / 100.0
                at = row["profiled_at"]
                t = epochs.get(at)
                if t is None:
                    t = epochs[at] = _epoch(at)
                points.append((row["dataset_name"], row["column_name"], metric, t, value))
        return points

    def _remember_gaps(self, first: int, past_last: int) -> None:
        if past_last - first > _MAX_GAPS:
            first = past_last - _MAX_GAPS  # a huge jump (sequence cache, big rollback): keep the nearest ids
        now = time.monotonic()
        for identifier in range(first, past_last):
            self._result_gaps[identifier] = now
        while len(self._result_gaps) > _MAX_GAPS:
            del self._result_gaps[next(iter(self._result_gaps))]

    def _expire_gaps(self) -> None:
        deadline = time.monotonic() - self.config.late_rows_seconds
        for identifier in [i for i, first in self._result_gaps.items() if first < deadline]:
            del self._result_gaps[identifier]

    def _trim(self) -> None:
        """Keep memory bounded: the history window, the newest runs and events, recent keys only."""
        cut = time.time() - self.config.history_days * 86_400
        if len(self._runs) > self.config.max_runs or any(r.profiled_at < cut for r in self._runs.values()):
            newest = sorted((r for r in self._runs.values() if r.profiled_at >= cut), key=_run_order)
            self._runs = {r.key: r for r in newest[-self.config.max_runs:]}
        if len(self._events) > self.config.max_drift_events or any(e.time < cut for e in self._events.values()):
            newest = sorted((e for e in self._events.values() if e.time >= cut), key=lambda e: (e.time, e.event_id))
            self._events = {e.event_id: e for e in newest[-self.config.max_drift_events:]}
        while len(self._metrics_by_run) > self.config.runs_with_metrics:
            self._metrics_by_run.popitem(last=False)
        late = self.config.late_rows_seconds
        for recent, cursor in ((self._recent_runs, self._run_cursor), (self._recent_events, self._event_cursor)):
            if cursor is not None:
                floor = _epoch(cursor) - late
                for key in [k for k, at in recent.items() if at < floor]:
                    del recent[key]

    # -- derived measures ------------------------------------------------------------------------

    def _snapshot(self, now: float) -> ProfilingSnapshot:
        runs = tuple(sorted(self._runs.values(), key=_run_order))
        events = tuple(sorted(self._events.values(), key=lambda e: (e.time, e.event_id)))
        freshness = self._freshness(now)
        period = KPI_PERIOD_SECONDS
        current = [r for r in runs if now - period < r.profiled_at <= now]
        previous = [r for r in runs if now - 2 * period < r.profiled_at <= now - period]
        history_covers_previous = now - 2 * period >= now - self.config.history_days * 86_400

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
            Kpi("stale tables", float(sum(1 for f in freshness if not f.fresh)), None, over_period=False),
        )
        tables = Counter(e.table or "" for e in events)
        columns = Counter((e.table or "", e.column or "") for e in events)
        notes = () if self._has_table_state else (
            f"no {self._tables['table_state']} table: freshness comes from each dataset's newest run",)
        return ProfilingSnapshot(
            runs=runs,
            metrics_by_run={key: tuple(metrics) for key, metrics in self._metrics_by_run.items()},
            drift_events=events,
            table_state=tuple(sorted(self._state.values(), key=lambda s: (s.schema, s.table)))
            if self._has_table_state else None,
            freshness=freshness,
            runs_per_day=Counter((_day(r.profiled_at), r.status) for r in runs),
            drift_per_day=Counter((_day(e.time), e.severity) for e in events),
            top_drifting_tables=tuple(tables.most_common(10)),
            top_drifting_columns=tuple((t, c, n) for (t, c), n in columns.most_common(10)),
            kpis=kpis, kpi_period_seconds=period,
            total_runs=sum(self._run_totals.values()), total_drift_events=sum(self._event_totals.values()),
            measured_at=now, notes=notes,
        )

    def _freshness(self, now: float) -> tuple[Freshness, ...]:
        limit = self.config.fresh_within_seconds
        if self._has_table_state:
            return tuple(Freshness(s.schema, s.table, s.last_profiled_at,
                                   s.last_profiled_at is not None and now - s.last_profiled_at <= limit)
                         for s in sorted(self._state.values(), key=lambda s: (s.schema, s.table)))
        return tuple(Freshness(r.schema, r.dataset, r.profiled_at, now - r.profiled_at <= limit)
                     for r in sorted(self._latest_run.values(), key=lambda r: r.dataset))

    def _write(self, cycle: CycleWriter, snapshot: ProfilingSnapshot, now: float) -> None:
        # The column metrics' history is appended with its own times (CycleResult.appended), not by the cycle.
        cycle.retain(lambda key: key[0] == "profiling_column_metric")
        for (dataset, status), count in self._run_totals.items():
            cycle.set("profiling_runs_total", (dataset, status), count)
        for (table_name, severity), count in self._event_totals.items():
            cycle.set("profiling_drift_events_total", (table_name, severity), count)
        for dataset, run in self._latest_run.items():
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


def _run(row: asyncpg.Record) -> Run:
    return Run(run_id=row["run_id"], dataset=row["dataset_name"], schema=row["schema_name"],
               profiled_at=_epoch(row["profiled_at"]), environment=row["environment"], status=_status(row["status"]),
               row_count=row["row_count"], column_count=row["column_count"])


def _run_order(run: Run) -> tuple[float, str, str]:
    return (run.profiled_at, run.run_id, run.dataset)


def _run_key_text(run_id: str, dataset: str) -> str:
    return f"{run_id}{_KEY_SEPARATOR}{dataset}"


def _status(value: str | None) -> str:
    return (value or "unknown").lower()


def _severity(value: str | None) -> str:
    return (value or "unknown").lower()


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def _number(text: Any) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None  # JSON (histograms), dates, text
    return value if math.isfinite(value) else None

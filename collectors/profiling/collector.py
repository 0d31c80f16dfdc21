"""The profiling cycle: the first load of the history window from one consistent snapshot, then incremental reads
of only the rows not seen yet, late ones included (docs/profiling-collector.md says how). What has been read is
kept in history.py, the snapshot worked out in derive.py, the series written in write.py."""

from __future__ import annotations

import functools
import math
import time
from datetime import datetime

import asyncpg

from collectors.postgres import DATABASE_ERRORS, DatabaseError, classified
from collectors.profiling import decode, derive
from collectors.profiling.history import HistoryPoint, ProfilingHistory, run_key_text, run_order
from collectors.profiling.schema import REQUIRED, TABLES, table
from collectors.profiling.write import write_snapshot
from monitoring.config import ProfilingSource
from monitoring.cycle import Appended, CycleResult
from monitoring.runtime import Collector
from monitoring.sources import PROFILING, collector_name

DRIFT_EVENT = "DataDriftDetected"
_BATCH = 10_000
_INITIAL_METRIC_ROWS = 500_000
"""The newest column-metric rows loaded into the history charts at start."""
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
        self._history = ProfilingHistory(self.config)
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
        snapshot = derive.snapshot(self._history, now, self.config.history_days, self.config.fresh_within_seconds,
                                   self._tables["table_state"], bool(self._has_table_state))
        points.sort(key=lambda point: point[3])  # charts read the history in time order
        history = Appended("profiling_column_metric", [((self.pipeline, dataset, column, metric), t, value)
                                                       for dataset, column, metric, t, value in points])
        return CycleResult(measured_at=now, requests=self._queries, snapshot=snapshot, appended=(history,),
                           write=functools.partial(write_snapshot, history=self._history, snapshot=snapshot, now=now))

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

    async def _load(self, connection) -> list[HistoryPoint]:
        """The first cycle: everything in the history window, from one consistent snapshot."""
        self._forget()
        h = self._history
        await self._check_tables(connection)
        t, history, late = self._tables, self.config.history_days * 86_400, self.config.late_rows_seconds
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            for row in await self._fetch(connection, f"SELECT dataset_name, status, count(*) AS n FROM {t['runs']} "
                                                     f"GROUP BY dataset_name, status"):
                h.run_totals[(row["dataset_name"], decode.lower_or_unknown(row["status"]))] = row["n"]
            rows = await self._fetch(connection, f"""
                SELECT run_id, dataset_name, schema_name, profiled_at, environment, status, row_count, column_count
                FROM {t['runs']} WHERE profiled_at > (now() AT TIME ZONE 'UTC') - make_interval(secs => $1)
                ORDER BY profiled_at DESC LIMIT $2""", history, self.config.max_runs)
            h.add_runs(rows, count=False)
            for row in await self._fetch(connection, f"""
                    SELECT DISTINCT ON (dataset_name) run_id, dataset_name, schema_name, profiled_at, environment,
                           status, row_count, column_count
                    FROM {t['runs']} ORDER BY dataset_name, profiled_at DESC"""):
                h.latest_run[row["dataset_name"]] = decode.run(row)
            newest = (await self._fetch(connection, f"SELECT max(profiled_at) AS t FROM {t['runs']}"))[0]["t"]
            if newest is not None:
                h.run_cursor = decode.naive_utc(newest)
                for row in await self._fetch(connection, f"""
                        SELECT run_id, dataset_name, profiled_at FROM {t['runs']}
                        WHERE profiled_at >= $1::timestamp - make_interval(secs => $2)""", h.run_cursor, late):
                    h.recent_runs[run_key_text(row["run_id"], row["dataset_name"])] = decode.epoch(row["profiled_at"])

            for row in await self._fetch(connection, f"""
                    SELECT coalesce(table_name, '') AS table_name, drift_severity, count(*) AS n FROM {t['events']}
                    WHERE event_type = $1 GROUP BY 1, 2""", DRIFT_EVENT):
                h.event_totals[(row["table_name"], decode.lower_or_unknown(row["drift_severity"]))] = row["n"]
            rows = await self._fetch(connection, f"""
                SELECT event_id, table_name, column_name, metric_name, baseline_value, current_value, change_percent,
                       drift_severity, timestamp FROM {t['events']}
                WHERE event_type = $1 AND timestamp > (now() AT TIME ZONE 'UTC') - make_interval(secs => $2)
                ORDER BY timestamp DESC LIMIT $3""", DRIFT_EVENT, history, self.config.max_drift_events)
            h.add_events(rows, count=False)
            newest = (await self._fetch(connection,
                                        f"SELECT max(timestamp) AS t FROM {t['events']} WHERE event_type = $1",
                                        DRIFT_EVENT))[0]["t"]
            if newest is not None:
                h.event_cursor = decode.naive_utc(newest)
                for row in await self._fetch(connection, f"""
                        SELECT event_id, timestamp FROM {t['events']}
                        WHERE event_type = $1 AND timestamp >= $2::timestamp - make_interval(secs => $3)""",
                                             DRIFT_EVENT, h.event_cursor, late):
                    h.recent_events[row["event_id"]] = decode.epoch(row["timestamp"])

            latest = await self._fetch(connection, f"SELECT coalesce(max(id), 0) AS id FROM {t['results']}")
            h.result_cursor = latest[0]["id"]
            rows = await self._fetch(connection, f"""
                SELECT id, run_id, dataset_name, column_name, column_type, metric_name, metric_value, profiled_at
                FROM {t['results']} WHERE id <= $1
                  AND profiled_at > (now() AT TIME ZONE 'UTC') - make_interval(secs => $2)
                ORDER BY id DESC LIMIT $3""", h.result_cursor, history, _INITIAL_METRIC_ROWS)
            newest = sorted(h.runs.values(), key=run_order)[-self.config.runs_with_metrics:]
            points = h.add_results(reversed(rows), detail_for={run.key for run in newest})
            if self._has_table_state:
                await self._read_table_state(connection, full=True)
        h.trim()
        return points

    async def _incremental(self, connection) -> list[HistoryPoint]:
        t, late = self._tables, self.config.late_rows_seconds
        h = self._history
        while True:
            rows = await self._fetch(connection, f"""
                SELECT run_id, dataset_name, schema_name, profiled_at, environment, status, row_count, column_count
                FROM {t['runs']}
                WHERE profiled_at >= $1::timestamp - make_interval(secs => $2)
                  AND NOT (run_id || chr(31) || dataset_name = ANY($3::text[]))
                ORDER BY profiled_at, run_id, dataset_name LIMIT $4""",
                                     h.run_cursor or _EPOCH, late, list(h.recent_runs), _BATCH)
            h.add_runs(rows, count=True)
            if len(rows) < _BATCH:
                break
        while True:
            rows = await self._fetch(connection, f"""
                SELECT event_id, table_name, column_name, metric_name, baseline_value, current_value, change_percent,
                       drift_severity, timestamp FROM {t['events']}
                WHERE event_type = $1 AND timestamp >= $2::timestamp - make_interval(secs => $3)
                  AND NOT (event_id = ANY($4::text[]))
                ORDER BY timestamp, event_id LIMIT $5""",
                                     DRIFT_EVENT, h.event_cursor or _EPOCH, late, list(h.recent_events),
                                     _BATCH)
            h.add_events(rows, count=True)
            if len(rows) < _BATCH:
                break
        points = []
        h.expire_gaps()
        while True:
            rows = await self._fetch(connection, f"""
                SELECT id, run_id, dataset_name, column_name, column_type, metric_name, metric_value, profiled_at
                FROM {t['results']} WHERE id > $1 OR id = ANY($2::int[]) ORDER BY id LIMIT $3""",
                                     h.result_cursor, list(h.result_gaps), _BATCH)
            points += h.add_results(rows, track_gaps=True)
            if len(rows) < _BATCH:
                break
        if self._has_table_state:
            full = time.monotonic() - self._state_read_at >= self.config.table_state_refresh_seconds
            await self._read_table_state(connection, full=full)
        h.trim()
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
        """All of table_state when `full` (decisions and deletions change rows in place), else the rows profiled
        since the newest time seen."""
        query = f"""SELECT schema_name, table_name, last_run_id, snapshot_id, decision, decision_reason,
                           last_profiled_at, staleness_score, row_count, bytes_scanned
                    FROM {self._tables['table_state']}"""
        full = full or self._history.state_cursor is None
        if full:
            rows = await self._fetch(connection, query)
            self._state_read_at = time.monotonic()
        else:
            rows = await self._fetch(connection, query + " WHERE last_profiled_at > $1::timestamp",
                                     self._history.state_cursor)
        self._history.set_table_state(rows, full)

"""Writing known profiler rows into a real PostgreSQL, as ProfileMesh / baselinr would."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import asyncpg

from collectors.profiling.schema import ddl, table

_ids = itertools.count(1)


def utc(hours_ago: float = 0.0) -> datetime:
    """A naive UTC time, as the profiler writes TIMESTAMP columns."""
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).replace(tzinfo=None)


class ProfilerTables:
    def __init__(self, connection: asyncpg.Connection, schema: str, prefix: str = "profilemesh") -> None:
        self.connection, self.schema, self.prefix = connection, schema, prefix

    def name(self, kind: str) -> str:
        return table(self.schema, self.prefix, kind)

    async def create(self, with_table_state: bool = True) -> ProfilerTables:
        await self.connection.execute(f"DROP SCHEMA IF EXISTS \"{self.schema}\" CASCADE")
        for statement in ddl(self.schema, self.prefix):
            if with_table_state or "_table_state" not in statement:
                await self.connection.execute(statement)
        return self

    async def run(self, dataset: str, at: datetime, status: str = "completed", rows: int | None = 1000,
                  columns: int = 3, environment: str = "prod", run_id: str | None = None) -> str:
        run_id = run_id or f"run-{next(_ids):06d}"
        await self.connection.execute(
            f"INSERT INTO {self.name('runs')} (run_id, dataset_name, schema_name, profiled_at, environment, status, "
            f"row_count, column_count) VALUES ($1, $2, 'public', $3, $4, $5, $6, $7)",
            run_id, dataset, at, environment, status, rows, columns)
        return run_id

    async def metric(self, run_id: str, dataset: str, column: str, metric: str, value: str, at: datetime,
                     column_type: str = "numeric", connection: asyncpg.Connection | None = None) -> int:
        return await (connection or self.connection).fetchval(
            f"INSERT INTO {self.name('results')} (run_id, dataset_name, schema_name, column_name, column_type, "
            f"metric_name, metric_value, profiled_at) VALUES ($1, $2, 'public', $3, $4, $5, $6, $7) RETURNING id",
            run_id, dataset, column, column_type, metric, value, at)

    async def drift(self, table_name: str, column: str, metric: str, baseline: float, current: float, severity: str,
                    at: datetime, event_type: str = "DataDriftDetected") -> str:
        event_id = f"ev-{next(_ids):06d}"
        change = (current - baseline) / baseline * 100 if baseline else None
        await self.connection.execute(
            f"INSERT INTO {self.name('events')} (event_id, event_type, table_name, column_name, metric_name, "
            f"baseline_value, current_value, change_percent, drift_severity, timestamp, metadata) "
            f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '{{}}')",
            event_id, event_type, table_name, column, metric, baseline, current, change, severity, at)
        return event_id

    async def state(self, table_name: str, decision: str, last_profiled_at: datetime | None, reason: str = "",
                    score: int | None = 0, rows: int | None = None, bytes_scanned: int | None = None) -> None:
        await self.connection.execute(
            f"INSERT INTO {self.name('table_state')} (schema_name, table_name, decision, decision_reason, "
            f"last_profiled_at, staleness_score, row_count, bytes_scanned, snapshot_id) "
            f"VALUES ('public', $1, $2, $3, $4, $5, $6, $7, 'snap-1') ON CONFLICT (schema_name, table_name) DO UPDATE "
            f"SET decision = excluded.decision, decision_reason = excluded.decision_reason, "
            f"last_profiled_at = excluded.last_profiled_at, staleness_score = excluded.staleness_score, "
            f"row_count = excluded.row_count, bytes_scanned = excluded.bytes_scanned",
            table_name, decision, reason, last_profiled_at, score, rows, bytes_scanned)

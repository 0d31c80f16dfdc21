"""Realistic ProfileMesh / baselinr rows for the demo and for trying pipewatch on an empty database.

`pipewatch sample-profiling --dsn ...` creates the profiler's tables if they are missing (the same
DDL the profiler uses) and writes runs, column metrics, drift events and table state that satisfy
the schema's keys and NOT NULLs: each run profiles every column of its dataset, metrics drift
slowly with occasional jumps, a jump beyond the thresholds becomes a drift event with a severity,
and the table state records the incremental planner's decision. With --follow it keeps writing a
run every few seconds, which is what the demo does so the page moves.
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg

from collectors.profiling.schema import ddl, table

_DATASETS: dict[str, list[tuple[str, str]]] = {
    "orders": [("order_key", "bigint"), ("customer_key", "bigint"), ("total_price", "numeric"),
               ("order_status", "varchar"), ("order_date", "date"), ("comment", "varchar")],
    "customers": [("customer_key", "bigint"), ("name", "varchar"), ("account_balance", "numeric"),
                  ("market_segment", "varchar"), ("email", "varchar")],
    "line_items": [("order_key", "bigint"), ("part_key", "bigint"), ("quantity", "integer"),
                   ("extended_price", "numeric"), ("discount", "numeric"), ("ship_mode", "varchar")],
    "parts": [("part_key", "bigint"), ("name", "varchar"), ("brand", "varchar"), ("retail_price", "numeric")],
}
_THRESHOLDS = ((30.0, "high"), (15.0, "medium"), (5.0, "low"))
"""Change percent at or above which a metric's drift gets this severity."""


@dataclass
class _Column:
    name: str
    type: str
    null_ratio: float
    unique_ratio: float
    mean: float
    spread: float


@dataclass
class _Dataset:
    name: str
    rows: int
    columns: list[_Column] = field(default_factory=list)
    last_profiled_at: datetime | None = None
    snapshot: int = 0


class ProfilingSample:
    """Writes one run at a time; keeps each dataset's state so successive runs look like history."""

    def __init__(self, dsn: str, schema: str = "public", prefix: str = "profilemesh", seed: int | None = None) -> None:
        self.dsn, self.schema, self.prefix = dsn, schema, prefix
        self.random = random.Random(seed)
        self.datasets = [
            _Dataset(name, self.random.randint(10_000, 2_000_000), [
                _Column(column, kind, self.random.uniform(0, 0.05), self.random.uniform(0.2, 1.0),
                        self.random.uniform(10, 1000), self.random.uniform(1, 100))
                for column, kind in columns])
            for name, columns in _DATASETS.items()
        ]

    def _name(self, kind: str) -> str:
        return table(self.schema, self.prefix, kind)

    async def create_tables(self, connection: asyncpg.Connection) -> None:
        for statement in ddl(self.schema, self.prefix):
            await connection.execute(statement)

    async def write_history(self, connection: asyncpg.Connection, runs: int, days: float) -> None:
        """`runs` runs spread evenly over the last `days` days, oldest first."""
        now = datetime.now(UTC).replace(tzinfo=None)
        for index in range(runs):
            at = now - timedelta(days=days) + timedelta(days=days) * (index + 1) / runs
            await self.write_run(connection, at)

    async def write_run(self, connection: asyncpg.Connection, at: datetime | None = None) -> str:
        """One run of one dataset, with its column metrics, drift events and table state, in one transaction."""
        at = at or datetime.now(UTC).replace(tzinfo=None)
        dataset = self.random.choice(self.datasets)
        run_id = str(uuid.uuid4())
        decision = self.random.choices(["full", "partial", "sample", "skip", "defer"], [50, 20, 10, 15, 5])[0]
        failed = decision in ("full", "partial", "sample") and self.random.random() < 0.06
        profiled = decision in ("full", "partial", "sample") and not failed
        async with connection.transaction():
            if decision in ("skip", "defer"):
                reason = ("no change since snapshot" if decision == "skip"
                          else "cost guardrail: estimated rows above max_rows_scanned")
                await self._state(connection, dataset, run_id, decision, reason, at, profiled=False)
                return run_id
            dataset.rows = max(0, int(dataset.rows * self.random.uniform(0.995, 1.03)))
            await connection.execute(
                f"INSERT INTO {self._name('runs')} (run_id, dataset_name, schema_name, profiled_at, environment, "
                f"status, row_count, column_count) VALUES ($1, $2, 'public', $3, $4, $5, $6, $7)",
                run_id, dataset.name, at, self.random.choice(["prod", "prod", "prod", "staging"]),
                "failed" if failed else "completed", None if failed else dataset.rows, len(dataset.columns))
            if profiled:
                await self._metrics(connection, dataset, run_id, at)
                await self._state(connection, dataset, run_id, decision,
                                  {"full": "snapshot changed", "partial": "changed partitions only",
                                   "sample": "over the scan budget: sampled 5%"}[decision], at, profiled=True)
        return run_id

    async def _metrics(self, connection: asyncpg.Connection, dataset: _Dataset, run_id: str, at: datetime) -> None:
        rows, drift = [], []
        for column in dataset.columns:
            jump = self.random.random() < 0.04
            before = (column.null_ratio, column.unique_ratio, column.mean)
            column.null_ratio = min(1.0, max(0.0, column.null_ratio * self.random.uniform(0.97, 1.03)
                                             + (self.random.uniform(0.001, 0.02) if jump else 0)))
            column.unique_ratio = min(1.0, max(0.0, column.unique_ratio * self.random.uniform(0.99, 1.01)))
            column.mean *= self.random.uniform(1.06, 1.5) if jump else self.random.uniform(0.98, 1.02)
            count = dataset.rows
            nulls = round(count * column.null_ratio)
            metrics = {"count": count, "null_count": nulls, "null_ratio": round(column.null_ratio, 6),
                       "distinct_count": round((count - nulls) * column.unique_ratio),
                       "unique_ratio": round(column.unique_ratio, 6), "data_type_inferred": column.type}
            if column.type in ("bigint", "integer", "numeric"):
                low = column.mean - 3 * column.spread
                metrics |= {"min": round(low, 4), "max": round(column.mean + 3 * column.spread, 4),
                            "mean": round(column.mean, 4), "stddev": round(column.spread, 4),
                            "histogram": json.dumps([{"bin": round(low + i * column.spread, 2),
                                                      "count": self.random.randint(0, count // 10 + 1)}
                                                     for i in range(6)])}
            else:
                length = self.random.randint(5, 40)
                metrics |= {"min_length": 1, "avg_length": length, "max_length": length * 3}
            rows += [(run_id, dataset.name, column.name, column.type, name, str(value), at)
                     for name, value in metrics.items()]
            for name, old, new in (("null_ratio", before[0], column.null_ratio), ("mean", before[2], column.mean)):
                change = (new - old) / old * 100 if old else 0.0
                severity = next((label for limit, label in _THRESHOLDS if abs(change) >= limit), None)
                if severity is not None:
                    drift.append((str(uuid.uuid4()), "DataDriftDetected", dataset.name, column.name, name, old, new,
                                  change, severity, at, json.dumps({"run_id": run_id})))
        await connection.executemany(
            f"INSERT INTO {self._name('results')} (run_id, dataset_name, schema_name, column_name, column_type, "
            f"metric_name, metric_value, profiled_at) VALUES ($1, $2, 'public', $3, $4, $5, $6, $7)", rows)
        if drift:
            await connection.executemany(
                f"INSERT INTO {self._name('events')} (event_id, event_type, table_name, column_name, metric_name, "
                f"baseline_value, current_value, change_percent, drift_severity, timestamp, metadata) "
                f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", drift)

    async def _state(self, connection: asyncpg.Connection, dataset: _Dataset, run_id: str, decision: str, reason: str,
                     at: datetime, profiled: bool) -> None:
        if profiled:
            dataset.last_profiled_at, dataset.snapshot = at, dataset.snapshot + 1
        age_days = (at - dataset.last_profiled_at).total_seconds() / 86_400 if dataset.last_profiled_at else None
        score = 0 if profiled else (10 if age_days is None else min(10, int(age_days * 2) + 1))
        await connection.execute(
            f"INSERT INTO {self._name('table_state')} AS current (schema_name, table_name, last_run_id, snapshot_id, "
            f"change_token, decision, decision_reason, last_profiled_at, staleness_score, row_count, bytes_scanned, "
            f"metadata) VALUES ('public', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '{{}}') "
            f"ON CONFLICT (schema_name, table_name) DO UPDATE SET "
            f"last_run_id = coalesce(excluded.last_run_id, current.last_run_id), "
            f"snapshot_id = excluded.snapshot_id, change_token = excluded.change_token, decision = excluded.decision, "
            f"decision_reason = excluded.decision_reason, last_profiled_at = excluded.last_profiled_at, "
            f"staleness_score = excluded.staleness_score, row_count = excluded.row_count, "
            f"bytes_scanned = excluded.bytes_scanned",
            dataset.name, run_id if profiled else None, f"snap-{dataset.snapshot}", f"tok-{dataset.snapshot}",
            decision, reason, dataset.last_profiled_at, score, dataset.rows,
            dataset.rows * 48 if profiled else 0)


async def run_sample(dsn: str, schema: str, prefix: str, runs: int, days: float, follow: float | None,
                     seed: int | None = None) -> None:
    sample = ProfilingSample(dsn, schema, prefix, seed)
    connection = await asyncpg.connect(dsn)
    try:
        await sample.create_tables(connection)
        await sample.write_history(connection, runs, days)
        print(f"wrote {runs} runs over {days:g} days into {schema}.{prefix}_*", flush=True)
        while follow:
            await asyncio.sleep(follow)
            await sample.write_run(connection)
    finally:
        await connection.close()

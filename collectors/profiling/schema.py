"""The ProfileMesh / baselinr v1 storage schema: table names and the DDL the profiler creates.

The collector only reads these tables; the DDL is here for `pipewatch sample-profiling`, the demo
and the tests, which create them exactly as the profiler does (same columns, keys and NOT NULLs).
Identifiers come from validated configuration and are still quoted, never pasted raw.
"""

from __future__ import annotations

TABLES = ("runs", "results", "events", "table_state")
REQUIRED = ("runs", "results", "events")
"""table_state came later (incremental profiling); without it freshness comes from the runs."""


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def table(schema: str, prefix: str, kind: str) -> str:
    return f"{quote(schema)}.{quote(f'{prefix}_{kind}')}"


def ddl(schema: str, prefix: str) -> list[str]:
    runs, results, events, state = (table(schema, prefix, kind) for kind in TABLES)
    return [
        f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}",
        f"""CREATE TABLE IF NOT EXISTS {runs} (
            run_id VARCHAR(36) NOT NULL,
            dataset_name VARCHAR(255) NOT NULL,
            schema_name VARCHAR(255),
            profiled_at TIMESTAMP NOT NULL,
            environment VARCHAR(50),
            status VARCHAR(20),
            row_count INTEGER,
            column_count INTEGER,
            PRIMARY KEY (run_id, dataset_name))""",
        f"""CREATE TABLE IF NOT EXISTS {results} (
            id SERIAL PRIMARY KEY,
            run_id VARCHAR(36) NOT NULL,
            dataset_name VARCHAR(255) NOT NULL,
            schema_name VARCHAR(255),
            column_name VARCHAR(255) NOT NULL,
            column_type VARCHAR(100),
            metric_name VARCHAR(100) NOT NULL,
            metric_value TEXT,
            profiled_at TIMESTAMP NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {events} (
            event_id VARCHAR(36) PRIMARY KEY,
            event_type VARCHAR(100) NOT NULL,
            table_name VARCHAR(255),
            column_name VARCHAR(255),
            metric_name VARCHAR(100),
            baseline_value DOUBLE PRECISION,
            current_value DOUBLE PRECISION,
            change_percent DOUBLE PRECISION,
            drift_severity VARCHAR(20),
            timestamp TIMESTAMP NOT NULL,
            metadata TEXT,
            created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)""",
        f"""CREATE TABLE IF NOT EXISTS {state} (
            schema_name VARCHAR(255) NOT NULL,
            table_name VARCHAR(255) NOT NULL,
            last_run_id VARCHAR(36),
            snapshot_id VARCHAR(255),
            change_token VARCHAR(255),
            decision VARCHAR(50),
            decision_reason TEXT,
            last_profiled_at TIMESTAMP,
            staleness_score INTEGER,
            row_count BIGINT,
            bytes_scanned BIGINT,
            metadata TEXT,
            PRIMARY KEY (schema_name, table_name))""",
        f"CREATE INDEX IF NOT EXISTS {quote(f'{prefix}_runs_profiled_at')} ON {runs} (profiled_at)",
        f"CREATE INDEX IF NOT EXISTS {quote(f'{prefix}_results_run')} ON {results} (run_id, dataset_name)",
        f"CREATE INDEX IF NOT EXISTS {quote(f'{prefix}_events_timestamp')} ON {events} (timestamp)",
    ]


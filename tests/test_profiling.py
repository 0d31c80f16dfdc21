"""The profiling collector against a real PostgreSQL holding known ProfileMesh / baselinr rows."""

from __future__ import annotations

import subprocess
import sys
import time

import asyncpg
import httpx
import pytest

from collectors.postgres import DatabaseError
from collectors.profiling.collector import ProfilingCollector
from exporters.server import start_exporter
from monitoring.config import ProfilingSource
from monitoring.health import State
from monitoring.models.profiling import ProfilingSnapshot
from monitoring.runtime import Supervisor
from monitoring.store import Store
from pipewatch.local.postgres import LocalPostgres
from tests.profiling_util import ProfilerTables, utc
from tests.test_exporter import PROMTOOL, _samples

PIPELINE = "warehouse"


def _collector(dsn: str, schema: str, **settings) -> ProfilingCollector:
    config = ProfilingSource.model_validate({"dsn": dsn, "schema": schema, "interval_seconds": 10,
                                             "fresh_within_seconds": 86_400, **settings})
    return ProfilingCollector(PIPELINE, config)


def _value(store: Store, name: str, *labels: str) -> float | None:
    point = store.latest(name, (PIPELINE, *labels))
    return None if point is None else point[1]


def _snapshot(store: Store) -> ProfilingSnapshot:
    entry = store.snapshot((PIPELINE, "profiling"))
    assert entry is not None
    return entry[1]


async def _seed(tables: ProfilerTables) -> dict[str, str]:
    """Known rows: 4 runs in the last 24 h (1 failed), 2 in the 24 h before, 3 drift events, 3 tables."""
    runs = {
        "o1": await tables.run("orders", utc(1), rows=1200),
        "o2": await tables.run("orders", utc(2), rows=1100),
        "o3": await tables.run("orders", utc(3), status="failed", rows=None),
        "o4": await tables.run("orders", utc(30), rows=900),
        "c1": await tables.run("customers", utc(5), rows=300),
        "c2": await tables.run("customers", utc(26), status="success", rows=280),
    }
    await tables.metric(runs["o1"], "orders", "amount", "null_ratio", "0.1", utc(1))
    await tables.metric(runs["o1"], "orders", "amount", "mean", "50.5", utc(1))
    await tables.metric(runs["o1"], "orders", "amount", "histogram", '[{"bin": 0, "count": 3}]', utc(1))
    await tables.metric(runs["o2"], "orders", "amount", "null_percent", "12.5", utc(2))  # the seed's naming
    await tables.drift("orders", "amount", "mean", 40.0, 50.5, "high", utc(1))
    await tables.drift("orders", "amount", "null_ratio", 0.08, 0.1, "medium", utc(2))
    await tables.drift("customers", "email", "unique_ratio", 0.99, 0.95, "low", utc(27))
    await tables.drift("orders", None, None, 0, 0, "none", utc(1), event_type="profile_skipped_no_change")
    await tables.state("orders", "full", utc(1), "snapshot changed", score=0, rows=1200, bytes_scanned=4096)
    await tables.state("customers", "skip", utc(26), "no change since snapshot snap-1", score=3, rows=300)
    await tables.state("products", "defer", None, "cost guardrail: 2e9 rows over max_rows_scanned", score=9)
    return runs


async def test_history_totals_kpis_freshness_and_trends(postgres, pg_schema):
    connection = await asyncpg.connect(postgres.dsn)
    try:
        tables = await ProfilerTables(connection, pg_schema).create()
        await _seed(tables)
    finally:
        await connection.close()
    store = Store()
    collector = _collector(postgres.dsn, pg_schema)
    try:
        await collector.collect(store)
    finally:
        await collector.close()

    assert _value(store, "profiling_runs_total", "orders", "completed") == 3
    assert _value(store, "profiling_runs_total", "orders", "failed") == 1
    assert _value(store, "profiling_runs_total", "customers", "completed") == 1
    assert _value(store, "profiling_runs_total", "customers", "success") == 1
    assert _value(store, "profiling_drift_events_total", "orders", "high") == 1
    assert _value(store, "profiling_drift_events_total", "orders", "medium") == 1
    assert _value(store, "profiling_drift_events_total", "customers", "low") == 1
    assert store.keys("profiling_drift_events_total", where=lambda k: k[1][2] == "none") == []
    assert _value(store, "profiling_tables", "fresh") == 1
    assert _value(store, "profiling_tables", "stale") == 1
    assert _value(store, "profiling_tables", "never") == 1
    assert _value(store, "profiling_table_decision", "public", "products", "defer") == 1
    assert _value(store, "profiling_table_decision", "public", "customers", "skip") == 1
    assert _value(store, "profiling_table_staleness_score", "public", "products") == 9
    assert 3600 - 60 < _value(store, "profiling_table_staleness_seconds", "public", "orders") < 3600 + 60
    assert 26 * 3600 - 60 < _value(store, "profiling_table_staleness_seconds", "public", "customers") < 26 * 3600 + 60
    assert store.latest("profiling_table_staleness_seconds", (PIPELINE, "public", "products")) is None  # never
    assert _value(store, "profiling_dataset_rows", "orders") == 1200  # its newest run
    assert _value(store, "profiling_run_failure_ratio") == 0.25

    snapshot = _snapshot(store)
    kpis = {k.name: (k.value, k.previous) for k in snapshot.kpis}
    assert kpis["runs"] == (4, 2)
    assert kpis["failure rate"] == (0.25, 0.0)
    assert kpis["drift events"] == (2, 1)
    assert kpis["high-severity drift"] == (1, 0)
    assert kpis["datasets profiled"] == (2, 2)
    assert kpis["stale tables"] == (2, None)  # customers (26 h) and products (never)
    assert snapshot.top_drifting_tables == (("orders", 2), ("customers", 1))
    assert snapshot.top_drifting_columns[0] == ("orders", "amount", 2)
    assert [r.dataset for r in snapshot.runs] == ["orders", "customers", "customers", "orders", "orders", "orders"]
    assert sum(snapshot.runs_per_day.values()) == 6 and snapshot.total_runs == 6 and snapshot.total_drift_events == 3

    history = store.since(("profiling_column_metric", (PIPELINE, "orders", "amount", "null_ratio")))
    assert list(history.values) == [0.125, 0.1]  # null_percent 12.5 read as the ratio 0.125, oldest first
    assert store.keys("profiling_column_metric", where=lambda k: k[1][3] == "histogram") == []  # not a number
    detail = {m.metric: m.value for m in next(v for k, v in snapshot.metrics_by_run.items() if k[1] == "orders"
                                              and len(v) == 3)}
    assert detail == {"null_ratio": "0.1", "mean": "50.5", "histogram": '[{"bin": 0, "count": 3}]'}


async def test_later_cycles_read_only_new_rows_late_ones_included_once(postgres, pg_schema):
    connection = await asyncpg.connect(postgres.dsn)
    collector = _collector(postgres.dsn, pg_schema)
    try:
        tables = await ProfilerTables(connection, pg_schema).create()
        await _seed(tables)
        store = Store()
        await collector.collect(store)
        assert collector.rows_read > 0

        assert await collector.collect(store) == 4  # runs, drift events, column metrics, table state
        assert collector.rows_read == 0

        # A new run, and a late one: a long profile that started 20 minutes ago and commits now.
        new = await tables.run("orders", utc(0), rows=1300)
        await tables.run("customers", utc(1 / 3), rows=310)
        await tables.drift("orders", "amount", "mean", 50.5, 80.0, "high", utc(0.5))
        await collector.collect(store)
        assert collector.rows_read == 3
        assert _value(store, "profiling_runs_total", "orders", "completed") == 4
        assert _value(store, "profiling_runs_total", "customers", "completed") == 2
        assert _value(store, "profiling_drift_events_total", "orders", "high") == 2
        assert _value(store, "profiling_dataset_rows", "orders") == 1300

        # Metric ids: one taken by a transaction still open, the next one committed first.
        slow = await asyncpg.connect(postgres.dsn)
        try:
            transaction = slow.transaction()
            await transaction.start()
            open_id = await tables.metric(new, "orders", "amount", "mean", "60", utc(0), connection=slow)
            later_id = await tables.metric(new, "orders", "amount", "null_ratio", "0.2", utc(0))
            assert later_id == open_id + 1
            await collector.collect(store)
            assert collector.rows_read == 1
            await transaction.commit()
        finally:
            await slow.close()
        await collector.collect(store)
        assert collector.rows_read == 1  # the late id, once
        await collector.collect(store)
        assert collector.rows_read == 0
        means = store.since(("profiling_column_metric", (PIPELINE, "orders", "amount", "mean")))
        assert list(means.values) == [50.5, 60.0]
    finally:
        await connection.close()
        await collector.close()


async def test_baselinr_prefix_and_a_wrong_prefix_named(postgres, pg_schema):
    connection = await asyncpg.connect(postgres.dsn)
    try:
        tables = await ProfilerTables(connection, pg_schema, prefix="baselinr").create(with_table_state=False)
        await tables.run("orders", utc(1), rows=10)
    finally:
        await connection.close()
    store = Store()
    collector = _collector(postgres.dsn, pg_schema, table_prefix="baselinr")
    try:
        await collector.collect(store)
    finally:
        await collector.close()
    assert _value(store, "profiling_runs_total", "orders", "completed") == 1
    snapshot = _snapshot(store)
    assert snapshot.table_state is None
    assert snapshot.notes == (f'no "{pg_schema}"."baselinr_table_state" table: freshness comes from each '
                              f"dataset's newest run",)
    assert [(f.table, f.fresh) for f in snapshot.freshness] == [("orders", True)]

    wrong = _collector(postgres.dsn, pg_schema)  # prefix profilemesh, but the tables are baselinr_*
    try:
        with pytest.raises(DatabaseError) as info:
            await wrong.collect(Store())
    finally:
        await wrong.close()
    assert info.value.category == "missing_table"
    assert str(info.value) == (f'table "{pg_schema}"."profilemesh_runs", "{pg_schema}"."profilemesh_results", '
                               f'"{pg_schema}"."profilemesh_events" does not exist (schema \'{pg_schema}\', '
                               f"table_prefix 'profilemesh'): check table_prefix (profilemesh or baselinr) and schema")


async def test_dropped_connection_and_restart_lose_and_double_count_nothing(tmp_path, pg_schema):
    server = LocalPostgres(tmp_path).start()
    try:
        connection = await asyncpg.connect(server.dsn)
        tables = await ProfilerTables(connection, pg_schema).create()
        await tables.run("orders", utc(1))
        store = Store()
        collector = _collector(server.dsn, pg_schema, interval_seconds=0.2)
        supervisor = Supervisor(store, [collector], max_backoff=0.5)

        async def cycle() -> State:
            await supervisor.run_once(collector)
            return store.health()[collector.source].state

        assert await cycle() is State.UP
        # Every other connection is cut (what a failover or an admin does); one run arrives meanwhile.
        await connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE pid <> pg_backend_pid() AND datname = current_database()")
        await tables.run("orders", utc(0.5))
        states = [await cycle(), await cycle()]
        assert states[-1] is State.UP, store.health()[collector.source]
        assert _value(store, "profiling_runs_total", "orders", "completed") == 2
        await connection.close()

        server.stop()
        assert await cycle() is State.DOWN
        health = store.health()[collector.source]
        assert health.error_category in ("connection", "connection_refused"), health
        server.start()
        connection = await asyncpg.connect(server.dsn)
        tables = ProfilerTables(connection, pg_schema)
        await tables.run("orders", utc(0.1))
        await connection.close()
        deadline = time.monotonic() + 20
        while await cycle() is not State.UP:
            assert time.monotonic() < deadline, store.health()[collector.source]
        assert _value(store, "profiling_runs_total", "orders", "completed") == 3
        await collector.close()
    finally:
        server.close()


async def test_exporter_serves_profiling_series_but_not_the_metric_history(postgres, pg_schema):
    connection = await asyncpg.connect(postgres.dsn)
    try:
        await _seed(await ProfilerTables(connection, pg_schema).create())
    finally:
        await connection.close()
    store = Store()
    collector = _collector(postgres.dsn, pg_schema)
    Supervisor(store, [collector])
    await Supervisor(store, []).run_once(collector)
    await collector.close()
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        text = httpx.get(exporter.url, timeout=10).text
    finally:
        exporter.stop()
    samples = _samples(text)
    assert samples[("profiling_runs_total", frozenset({("pipeline", PIPELINE), ("dataset", "orders"),
                                                       ("status", "completed")}))] == 3
    assert samples[("profiling_drift_events_total", frozenset({("pipeline", PIPELINE), ("table", "orders"),
                                                               ("severity", "high")}))] == 1
    assert samples[("profiling_table_decision", frozenset({("pipeline", PIPELINE), ("schema", "public"),
                                                           ("table", "orders"), ("decision", "full")}))] == 1
    assert samples[("profiling_dataset_rows", frozenset({("pipeline", PIPELINE), ("dataset", "orders")}))] == 1200
    assert "profiling_column_metric" not in text
    lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


async def test_sample_command_writes_rows_the_collector_reads(postgres, pg_schema):
    done = subprocess.run([sys.executable, "-m", "pipewatch.cli", "sample-profiling", "--dsn", postgres.dsn,
                           "--schema", pg_schema, "--prefix", "baselinr", "--runs", "120", "--days", "3"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote 120 runs over 3 days into {pg_schema}.baselinr_*"
    connection = await asyncpg.connect(postgres.dsn)
    try:
        runs = await connection.fetch(f'SELECT dataset_name, status, count(*) AS n FROM "{pg_schema}".baselinr_runs '
                                      f"GROUP BY 1, 2")
        drift = await connection.fetchval(f'SELECT count(*) FROM "{pg_schema}".baselinr_events')
        states = await connection.fetchval(f'SELECT count(*) FROM "{pg_schema}".baselinr_table_state')
    finally:
        await connection.close()
    store = Store()
    collector = _collector(postgres.dsn, pg_schema, table_prefix="baselinr")
    try:
        await collector.collect(store)
    finally:
        await collector.close()
    assert runs and states == 4
    for row in runs:
        assert _value(store, "profiling_runs_total", row["dataset_name"], row["status"]) == row["n"]
    assert _snapshot(store).total_drift_events == drift
    assert len(_snapshot(store).table_state) == 4

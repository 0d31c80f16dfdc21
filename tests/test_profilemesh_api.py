"""ProfileMesh's dashboard API on the agent's endpoint, from a real PostgreSQL holding known profiler rows."""

from __future__ import annotations

import csv
import io
import ssl
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from collectors.profiling.collector import ProfilingCollector
from exporters.server import start_exporter
from monitoring.config import BasicAuth, ExporterTls, ProfilingSource
from monitoring.runtime import Supervisor
from monitoring.store import Store
from tests.certs import make_certificates
from tests.profiling_util import ProfilerTables, utc
from tests.services import run_async

PIPELINE = "warehouse"
AUTH = ("reader", "secret")
HOSTILE = '=HYPERLINK("http://evil.example")'


def _iso(at: datetime) -> str:
    return at.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


async def _seed(tables: ProfilerTables) -> dict[str, datetime]:
    """6 runs of 2 datasets (1 failed, 1 on staging), column metrics of 2 runs, 4 drift events (1 hostile)."""
    at = {"o1": utc(1), "o2": utc(2), "o3": utc(3), "o4": utc(30), "c1": utc(5), "c2": utc(26), "h": utc(4)}
    await tables.run("orders", at["o1"], rows=1200, run_id="r-o1")
    await tables.run("orders", at["o2"], rows=1100, environment="staging", run_id="r-o2")
    await tables.run("orders", at["o3"], status="failed", rows=None, run_id="r-o3")
    await tables.run("orders", at["o4"], rows=900, run_id="r-o4")
    await tables.run("customers", at["c1"], rows=300, run_id="r-c1")
    await tables.run("customers", at["c2"], status="success", rows=280, run_id="r-c2")
    for metric, value in (("null_ratio", "0.1"), ("null_count", "120"), ("unique_ratio", "0.25"),
                          ("distinct_count", "80"), ("min", "1"), ("max", "99.5"), ("mean", "50.5"),
                          ("stddev", "2.5"), ("histogram", '[{"bin": 0, "count": 3}]')):
        await tables.metric("r-o1", "orders", "amount", metric, value, at["o1"])
    await tables.metric("r-o1", "orders", "state", "null_percent", "0", at["o1"], column_type="text")
    await tables.metric("r-o1", "orders", "state", "min", "=cmd", at["o1"], column_type="text")
    await tables.metric("r-o2", "orders", "amount", "null_percent", "12.5", at["o2"])
    await tables.drift("orders", "amount", "mean", 40.0, 50.5, "high", at["o1"])
    await tables.drift("orders", "amount", "null_ratio", 0.08, 0.1, "medium", at["o2"])
    await tables.drift("customers", "email", "unique_ratio", 0.99, 0.95, "low", utc(27))
    await tables.drift(HOSTILE, "x", "mean", 1.0, 2.0, "low", at["h"])
    await tables.drift("orders", None, None, 0, 0, "none", at["o1"], event_type="profile_skipped_no_change")
    return at


def _collected(postgres, pg_schema) -> tuple[Store, dict[str, datetime]]:
    """A store after one profiling collection of the known rows."""

    async def prepare():
        connection = await asyncpg.connect(postgres.dsn)
        try:
            at = await _seed(await ProfilerTables(connection, pg_schema).create())
        finally:
            await connection.close()
        config = ProfilingSource.model_validate({"dsn": postgres.dsn, "schema": pg_schema,
                                                 "fresh_within_seconds": 86_400})
        collector = ProfilingCollector(PIPELINE, config)
        store = Store()
        supervisor = Supervisor(store, [collector])
        await supervisor.run_once(collector)
        await collector.close()
        return store, at

    return run_async(prepare())


@pytest.fixture
def served(postgres, pg_schema):
    store, at = _collected(postgres, pg_schema)
    exporter = start_exporter(store, "127.0.0.1", 0, basic_auth=BasicAuth(username=AUTH[0], password=AUTH[1]))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{exporter.port}/profilemesh/{PIPELINE}", auth=AUTH,
                          timeout=10) as client:
            yield client, at
    finally:
        exporter.stop()


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [row["run_id"] for row in response.json()]


def test_runs_filters_pages_and_detail(served):
    client, at = served
    runs = client.get("/api/runs")
    assert runs.headers["content-type"] == "application/json"
    assert runs.headers["x-pipewatch-source-state"] == "up"
    assert _ids(runs) == ["r-o1", "r-o2", "r-o3", "r-c1", "r-c2", "r-o4"]
    assert runs.json()[0] == {"run_id": "r-o1", "dataset_name": "orders", "schema_name": "public",
                              "warehouse_type": None, "profiled_at": _iso(at["o1"]), "status": "completed",
                              "row_count": 1200, "column_count": 3, "duration_seconds": None, "has_drift": None,
                              "environment": "prod"}
    assert _ids(client.get("/api/runs", params={"limit": 2, "offset": 1})) == ["r-o2", "r-o3"]
    assert _ids(client.get("/api/runs", params={"dataset": "orders", "status": "completed"})) == [
        "r-o1", "r-o2", "r-o4"]
    assert _ids(client.get("/api/runs", params={"table": "customers"})) == ["r-c1", "r-c2"]
    assert _ids(client.get("/api/runs", params={"environment": "staging"})) == ["r-o2"]
    assert _ids(client.get("/api/runs", params={"status": "failed,success"})) == ["r-o3", "r-c2"]
    assert _ids(client.get("/api/runs", params={"since": _iso(utc(4))})) == ["r-o1", "r-o2", "r-o3"]
    assert _ids(client.get("/api/runs", params={"since": utc(4).date().isoformat()})) != []
    assert _ids(client.get("/api/runs", params={"since": str(at["c1"].replace(tzinfo=UTC).timestamp())})) == [
        "r-o1", "r-o2", "r-o3", "r-c1"]
    assert _ids(client.get("/api/runs", params={"days": 1})) == ["r-o1", "r-o2", "r-o3", "r-c1"]
    assert _ids(client.get("/api/runs", params={"warehouse": "postgres"})) == []  # the warehouse is not known

    detail = client.get("/api/runs/r-o1")
    assert detail.status_code == 200
    body = detail.json()
    assert {k: body[k] for k in ("run_id", "dataset_name", "schema_name", "warehouse_type", "profiled_at",
                                 "environment", "row_count", "column_count", "metadata")} == {
        "run_id": "r-o1", "dataset_name": "orders", "schema_name": "public", "warehouse_type": None,
        "profiled_at": _iso(at["o1"]), "environment": "prod", "row_count": 1200, "column_count": 3,
        "metadata": {"column_metrics_held": True, "datasets_with_this_run_id": ["orders"]}}
    assert body["columns"] == [
        {"column_name": "amount", "column_type": "numeric", "null_count": 120, "null_percent": 10.0,
         "distinct_count": 80, "distinct_percent": 25.0, "min_value": 1.0, "max_value": 99.5, "mean": 50.5,
         "stddev": 2.5, "histogram": [{"bin": 0, "count": 3}]},
        {"column_name": "state", "column_type": "text", "null_count": None, "null_percent": 0.0,
         "distinct_count": None, "distinct_percent": None, "min_value": "=cmd", "max_value": None, "mean": None,
         "stddev": None, "histogram": None}]
    held_without_metrics = client.get("/api/runs/r-c1").json()
    assert held_without_metrics["columns"] == [] and held_without_metrics["metadata"]["column_metrics_held"] is False

    unknown = client.get("/api/runs/no-such-run")
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "Run no-such-run not found among the 6 runs this agent holds"


def test_drift_tables_dashboard_and_warehouses(served):
    client, at = served
    drift = client.get("/api/drift", params={"severity": "high"})
    assert drift.status_code == 200
    assert drift.json() == [{"event_id": drift.json()[0]["event_id"], "run_id": None, "table_name": "orders",
                             "column_name": "amount", "metric_name": "mean", "baseline_value": 40.0,
                             "current_value": 50.5, "change_percent": 26.25, "severity": "high",
                             "timestamp": _iso(at["o1"]), "warehouse_type": None}]
    assert [e["metric_name"] for e in client.get("/api/drift", params={"table": "orders"}).json()] == [
        "mean", "null_ratio"]
    assert [e["table_name"] for e in client.get("/api/drift").json()] == ["orders", "orders", HOSTILE, "customers"]
    assert [e["table_name"] for e in client.get("/api/drift", params={"since": _iso(utc(3))}).json()] == [
        "orders", "orders"]
    assert len(client.get("/api/drift", params={"limit": 1, "offset": 3}).json()) == 1

    table = client.get("/api/tables/orders/metrics").json()
    assert {k: v for k, v in table.items() if k != "columns"} == {
        "table_name": "orders", "schema_name": "public", "warehouse_type": None, "last_profiled": _iso(at["o1"]),
        "row_count": 1200, "column_count": 3, "total_runs": 4, "drift_count": 2,
        "row_count_trend": [{"timestamp": _iso(at["o4"]), "value": 900}, {"timestamp": _iso(at["o2"]), "value": 1100},
                            {"timestamp": _iso(at["o1"]), "value": 1200}],
        "null_percent_trend": [{"timestamp": _iso(at["o2"]), "value": 12.5},
                               {"timestamp": _iso(at["o1"]), "value": 5.0}]}
    assert [c["column_name"] for c in table["columns"]] == ["amount", "state"]
    missing = client.get("/api/tables/nosuch/metrics")
    assert missing.status_code == 404 and missing.json()["detail"] == "Table nosuch not found"

    dashboard = client.get("/api/dashboard/metrics").json()
    assert {k: dashboard[k] for k in ("total_runs", "total_tables", "total_drift_events", "avg_row_count",
                                      "warehouse_breakdown")} == {
        "total_runs": 6, "total_tables": 2, "total_drift_events": 4, "avg_row_count": 756.0,
        "warehouse_breakdown": {}}
    kpis = {k["name"]: k for k in dashboard["kpis"]}
    assert kpis["runs"] == {"name": "runs", "value": 4.0, "change_percent": 100.0, "trend": "up"}
    assert kpis["drift events"] == {"name": "drift events", "value": 3.0, "change_percent": 200.0, "trend": "up"}
    assert kpis["stale tables"]["trend"] is None and kpis["stale tables"]["change_percent"] is None
    assert sum(day["value"] for day in dashboard["run_trend"]) == 6
    assert sum(day["value"] for day in dashboard["drift_trend"]) == 4
    assert [r["run_id"] for r in dashboard["recent_runs"]] == ["r-o1", "r-o2", "r-o3", "r-c1", "r-c2", "r-o4"]
    last_day = client.get("/api/dashboard/metrics", params={"days": 1}).json()
    assert (last_day["total_runs"], last_day["total_tables"], last_day["total_drift_events"]) == (4, 2, 3)
    assert last_day["avg_row_count"] == (1200 + 1100 + 300) / 3

    assert client.get("/api/warehouses").json() == {"warehouses": []}


def test_exports_json_and_csv_with_formulas_made_text(served):
    client, at = served
    runs_json = client.get("/api/export/runs", params={"format": "json"})
    assert runs_json.headers["content-disposition"] == 'attachment; filename="runs.json"'
    assert [r["run_id"] for r in runs_json.json()] == ["r-o1", "r-o2", "r-o3", "r-c1", "r-c2", "r-o4"]

    runs_csv = client.get("/api/export/runs", params={"format": "csv", "dataset": "orders"})
    assert runs_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert runs_csv.headers["content-disposition"] == 'attachment; filename="profilemesh_runs.csv"'
    rows = list(csv.reader(io.StringIO(runs_csv.text)))
    assert rows[0] == ["run_id", "dataset_name", "schema_name", "warehouse_type", "profiled_at", "status",
                       "row_count", "column_count", "duration_seconds", "has_drift"]
    assert rows[1:] == [["r-o1", "orders", "public", "", _iso(at["o1"]), "completed", "1200", "3", "", ""],
                        ["r-o2", "orders", "public", "", _iso(at["o2"]), "completed", "1100", "3", "", ""],
                        ["r-o3", "orders", "public", "", _iso(at["o3"]), "failed", "", "3", "", ""],
                        ["r-o4", "orders", "public", "", _iso(at["o4"]), "completed", "900", "3", "", ""]]

    drift_csv = list(csv.reader(io.StringIO(client.get("/api/export/drift", params={"format": "csv"}).text)))
    assert [row[2] for row in drift_csv] == ["table_name", "orders", "orders", "'" + HOSTILE, "customers"]
    assert drift_csv[3][5:8] == ["1.0", "2.0", "100.0"]
    assert len(client.get("/api/export/drift").json()) == 4  # json by default


def test_bad_parameters_unknown_names_and_protection(served):
    client, _ = served
    for path, params, parameter in (
            ("/api/runs", {"limit": 0}, "limit"), ("/api/runs", {"limit": "ten"}, "limit"),
            ("/api/runs", {"offset": "-1"}, "offset"), ("/api/runs", {"since": "yesterday"}, "since"),
            ("/api/runs", {"sort_by": "row_count"}, "sort_by"), ("/api/runs", {"days": 0}, "days"),
            ("/api/drift", {"severity": "critical"}, "severity"),
            ("/api/export/runs", {"format": "xlsx"}, "format"), ("/api/runs", {"status": ["a", "b"]}, "status")):
        response = client.get(path, params=params)
        assert response.status_code == 400, (path, params, response.text)
        body = response.json()
        assert body["parameter"] == parameter and body["error"].startswith(parameter), body
        assert body["detail"] == body["error"]
    assert client.get("/api/nothing").status_code == 404
    base = str(client.base_url).rsplit("/profilemesh/", 1)[0]
    other = httpx.get(f"{base}/profilemesh/nosuch/api/runs", auth=AUTH, timeout=10)
    assert other.status_code == 404
    assert other.json()["error"] == "no pipeline 'nosuch' with profiling on this agent; pipelines with profiling: " \
                                    "warehouse"
    assert httpx.get(f"{base}/profilemesh/{PIPELINE}/api/runs", timeout=10).status_code == 401
    assert httpx.get(f"{base}/profilemesh/{PIPELINE}/api/runs", auth=AUTH, headers={"Host": "evil.example"},
                     timeout=10).status_code == 421


def test_tls_and_the_api_credential(postgres, pg_schema, tmp_path):
    certs = make_certificates(tmp_path)
    store, _ = _collected(postgres, pg_schema)
    exporter = start_exporter(store, "127.0.0.1", 0, basic_auth=BasicAuth(username=AUTH[0], password=AUTH[1]),
                              api_auth=BasicAuth(username="mirror", password="api-secret"),
                              tls=ExporterTls(cert_file=certs.server_cert, key_file=certs.server_key))
    url = f"https://127.0.0.1:{exporter.port}/profilemesh/{PIPELINE}/api/runs"
    trusted = ssl.create_default_context(cafile=str(certs.ca))
    try:
        for auth in (AUTH, ("mirror", "api-secret")):
            response = httpx.get(url, params={"limit": 1}, auth=auth, verify=trusted, timeout=10)
            assert response.status_code == 200 and [r["run_id"] for r in response.json()] == ["r-o1"]
        assert httpx.get(url, auth=("mirror", "wrong"), verify=trusted, timeout=10).status_code == 401
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port
            httpx.get(url.replace("https:", "http:"), auth=AUTH, timeout=10)
    finally:
        exporter.stop()


def test_not_read_yet_is_503_not_an_empty_answer(postgres, pg_schema):
    store = Store()
    config = ProfilingSource.model_validate({"dsn": postgres.dsn, "schema": pg_schema})
    Supervisor(store, [ProfilingCollector(PIPELINE, config)])  # registered, no run yet
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        response = httpx.get(f"http://127.0.0.1:{exporter.port}/profilemesh/{PIPELINE}/api/runs", timeout=10)
    finally:
        exporter.stop()
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.headers["x-pipewatch-source-state"] == "starting"
    assert response.json()["error"].startswith("the profiling tables of 'warehouse' have not been read yet")

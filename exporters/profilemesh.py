"""ProfileMesh's dashboard API (/profilemesh/<pipeline>/api/...), answered from the profiling collector's snapshot.

ProfileMesh (baselinr) users call its dashboard backend from scripts; the same calls keep working against the
agent, per pipeline with profiling, without a database query per request. Shapes, parameters and what our data
cannot fill: docs/profilemesh-api.md.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus

from exporters.api import MAX_BODY_BYTES, MAX_NAME, ApiError, _shown, parse_query
from exporters.api import _decode as decode_segment
from exporters.api import _one as one_value
from exporters.api import _only as only_params
from exporters.api import _whole as whole_number
from monitoring.models.profiling import ColumnMetric, DriftEvent, ProfilingSnapshot, Run
from monitoring.sources import PROFILING, collector_name
from monitoring.spreadsheet import spreadsheet_cell
from monitoring.store import Store

PREFIX = "/profilemesh"
ENDPOINTS = ("/api/runs", "/api/runs/{run_id}", "/api/drift", "/api/tables/{table}/metrics",
             "/api/dashboard/metrics", "/api/warehouses", "/api/export/runs", "/api/export/drift")
MAX_LIMIT = 1000
"""Rows per /api/runs or /api/drift answer (ProfileMesh's default page is 100)."""
DEFAULT_LIMIT = 100
RECENT = 10
"""Runs and drift events in the dashboard's recent_runs and recent_drift."""
TREND_RUNS = 30
"""Runs in a table's row_count_trend and null_percent_trend (the newest, as ProfileMesh)."""
SEVERITIES = ("low", "medium", "high")
FORMATS = ("json", "csv")
RUN_FIELDS = ("run_id", "dataset_name", "schema_name", "warehouse_type", "profiled_at", "status", "row_count",
              "column_count", "duration_seconds", "has_drift")
DRIFT_FIELDS = ("event_id", "run_id", "table_name", "column_name", "metric_name", "baseline_value", "current_value",
                "change_percent", "severity", "timestamp", "warehouse_type")
_SOURCE = collector_name(PROFILING)
_MAX_DAYS = 36_500
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?(Z|[+-]\d{2}:\d{2})?$")


@dataclass(frozen=True, slots=True)
class Answer:
    status: HTTPStatus
    body: bytes
    content_type: str
    headers: dict[str, str]


class ProfileMeshApi:
    """The answers for GETs under PREFIX: `handle(path, query)`; the server applies auth, TLS and limits."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def pipelines(self) -> list[str]:
        """The pipelines with a profiling collector, in name order."""
        return sorted(p for p, c in self.store.health() if c == _SOURCE)

    def handle(self, path: str, query: str) -> Answer:
        headers: dict[str, str] = {}
        try:
            pipeline, route = self._split(path)
            params = parse_query(query)
            snapshot = self._snapshot(pipeline, headers)
            payload, csv_rows = self._route(pipeline, route, params, snapshot)
        except ApiError as error:
            payload = {**error.payload(), "detail": error.message}  # FastAPI's key, which ProfileMesh scripts read
            return _json(error.status, payload, headers)
        if csv_rows is not None:
            name, fields, rows = csv_rows
            body = _csv(fields, rows)
            headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
            return _sized(Answer(HTTPStatus.OK, body, "text/csv; charset=utf-8", headers))
        if route.startswith("/api/export/"):
            headers["Content-Disposition"] = f'attachment; filename="{route.rsplit("/", 1)[1]}.json"'
        return _json(HTTPStatus.OK, payload, headers)

    # -- routing --------------------------------------------------------------------------------------

    def _split(self, path: str) -> tuple[str, str]:
        rest = path[len(PREFIX) + 1:] if path.startswith(PREFIX + "/") else ""
        raw, _, route = rest.partition("/")
        if not raw:
            raise ApiError(HTTPStatus.NOT_FOUND, f"give a pipeline: {PREFIX}/<pipeline>/api/runs; pipelines with "
                                                 f"profiling: {', '.join(self.pipelines()) or 'none'}")
        pipeline = decode_segment(raw, "pipeline")
        if len(pipeline) > MAX_NAME:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"pipeline: a pipeline's name has at most {MAX_NAME} characters, "
                                                   f"got {len(pipeline):,}", "pipeline")
        if pipeline not in self.pipelines():
            raise ApiError(HTTPStatus.NOT_FOUND, f"no pipeline {_shown(pipeline)!r} with profiling on this agent; "
                                                 f"pipelines with profiling: {', '.join(self.pipelines()) or 'none'}")
        return pipeline, "/" + route.rstrip("/")

    def _snapshot(self, pipeline: str, headers: dict[str, str]) -> ProfilingSnapshot:
        health = self.store.health().get((pipeline, _SOURCE))
        entry = self.store.snapshot((pipeline, _SOURCE))
        now = time.time()
        if health is not None:
            headers["X-Pipewatch-Source-State"] = health.effective_state(now).value
        if entry is None:
            reason = health.reason(now) if health is not None else "not measured yet"
            headers["Retry-After"] = "5"
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, f"the profiling tables of {pipeline!r} have not been read "
                                                           f"yet: {reason}")
        headers["X-Pipewatch-Measured-At"] = f"{entry[0]:.3f}"
        return entry[1]

    def _route(self, pipeline: str, route: str, params: dict[str, list[str]], snapshot: ProfilingSnapshot):
        if route == "/api/runs":
            only_params(params, ("limit", "offset", "dataset", "table", "schema", "status", "environment", "since",
                                 "days", "warehouse"))
            return _page(params, [_run_json(r, snapshot) for r in self._runs(params, snapshot)]), None
        if route.startswith("/api/runs/"):
            only_params(params, ("dataset",))
            run_id = decode_segment(route[len("/api/runs/"):], "run_id")
            return self._run_detail(run_id, _text(params, "dataset"), snapshot), None
        if route == "/api/drift":
            only_params(params, ("limit", "offset", "severity", "table", "since", "days", "warehouse"))
            return _page(params, [_drift_json(e) for e in self._drift(params, snapshot)]), None
        if route.startswith("/api/tables/") and route.endswith("/metrics") and route.count("/") == 4:
            only_params(params, ("schema", "warehouse"))
            table = decode_segment(route[len("/api/tables/"):-len("/metrics")], "table")
            return self._table(pipeline, table, _text(params, "schema"), params, snapshot), None
        if route == "/api/dashboard/metrics":
            only_params(params, ("since", "days", "warehouse"))
            return self._dashboard(pipeline, params, snapshot), None
        if route == "/api/warehouses":
            only_params(params, ())
            return {"warehouses": []}, None
        if route in ("/api/export/runs", "/api/export/drift"):
            runs = route == "/api/export/runs"
            only_params(params, ("format", "since", "days", "warehouse")
                        + (("dataset", "table", "schema", "status", "environment") if runs else ("severity", "table")))
            form = _choice(params, "format", FORMATS, "json")
            rows = ([_run_json(r, snapshot) for r in self._runs(params, snapshot)] if runs
                    else [_drift_json(e) for e in self._drift(params, snapshot)])
            if form == "csv":
                return None, (f"profilemesh_{route.rsplit('/', 1)[1]}", RUN_FIELDS if runs else DRIFT_FIELDS, rows)
            return rows, None
        raise ApiError(HTTPStatus.NOT_FOUND, f"no such endpoint {_shown(route)!r}: try {', '.join(ENDPOINTS)}")

    # -- endpoints ------------------------------------------------------------------------------------

    def _runs(self, params: dict[str, list[str]], snapshot: ProfilingSnapshot) -> list[Run]:
        """Newest first, filtered."""
        dataset = _text(params, "dataset")
        table = _text(params, "table")
        if dataset is not None and table is not None and dataset != table:
            raise ApiError(HTTPStatus.BAD_REQUEST, "table: `table` is another name for `dataset`: give one", "table")
        dataset = dataset if dataset is not None else table
        schema = _text(params, "schema")
        statuses = _statuses(params)
        environment = _text(params, "environment")
        since = _since(params)
        warehouse = _text(params, "warehouse")
        return [r for r in reversed(snapshot.runs)
                if (dataset is None or r.dataset == dataset) and (schema is None or r.schema == schema)
                and (statuses is None or r.status in statuses)
                and (environment is None or r.environment == environment)
                and (since is None or r.profiled_at >= since) and warehouse is None]

    def _drift(self, params: dict[str, list[str]], snapshot: ProfilingSnapshot) -> list[DriftEvent]:
        severity = _choice(params, "severity", SEVERITIES, None)
        table = _text(params, "table")
        since = _since(params)
        warehouse = _text(params, "warehouse")
        return [e for e in reversed(snapshot.drift_events)
                if (severity is None or e.severity == severity) and (table is None or e.table == table)
                and (since is None or e.time >= since) and warehouse is None]

    def _run_detail(self, run_id: str, dataset: str | None, snapshot: ProfilingSnapshot) -> dict[str, object]:
        matches = [r for r in reversed(snapshot.runs)
                   if r.run_id == run_id and (dataset is None or r.dataset == dataset)]
        if not matches:
            raise ApiError(HTTPStatus.NOT_FOUND, f"Run {_shown(run_id)} not found" + (
                f" for dataset {_shown(dataset)!r}" if dataset is not None else "")
                + f" among the {len(snapshot.runs):,} runs this agent holds")
        run = matches[0]
        metrics = snapshot.metrics_by_run.get(run.key)
        return {"run_id": run.run_id, "dataset_name": run.dataset, "schema_name": run.schema, "warehouse_type": None,
                "profiled_at": _iso(run.profiled_at), "environment": run.environment, "status": run.status,
                "row_count": run.row_count, "column_count": run.column_count,
                "columns": _columns(metrics or ()),
                "metadata": {"column_metrics_held": metrics is not None,
                             "datasets_with_this_run_id": sorted(r.dataset for r in snapshot.runs
                                                                 if r.run_id == run_id)}}

    def _table(self, pipeline: str, table: str, schema: str | None, params: dict[str, list[str]],
               snapshot: ProfilingSnapshot) -> dict[str, object]:
        if _text(params, "warehouse") is not None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no table {_shown(table)!r} in that warehouse: pipewatch does not "
                                                 f"know the profiled warehouse's type")
        runs = [r for r in snapshot.runs if r.dataset == table and (schema is None or r.schema == schema)]
        if not runs:
            raise ApiError(HTTPStatus.NOT_FOUND, f"Table {_shown(table)} not found"
                                                 + (f" in schema {_shown(schema)!r}" if schema is not None else ""))
        latest = runs[-1]
        mine = lambda labels: labels[1] == table  # noqa: E731 - (pipeline, dataset or table, ...)
        with_metrics = [r for r in runs if r.key in snapshot.metrics_by_run]
        trend = runs[-TREND_RUNS:]
        null_trend = []
        for run in with_metrics[-TREND_RUNS:]:
            percents = [p for p in (_null_percent(m) for m in snapshot.metrics_by_run[run.key]) if p is not None]
            if percents:
                null_trend.append({"timestamp": _iso(run.profiled_at), "value": math.fsum(percents) / len(percents)})
        return {"table_name": table, "schema_name": latest.schema, "warehouse_type": None,
                "last_profiled": _iso(latest.profiled_at), "row_count": latest.row_count,
                "column_count": latest.column_count,
                "total_runs": int(self._total(pipeline, "profiling_runs_total", mine)),
                "drift_count": int(self._total(pipeline, "profiling_drift_events_total", mine)),
                "row_count_trend": [{"timestamp": _iso(r.profiled_at), "value": r.row_count} for r in trend
                                    if r.row_count is not None],
                "null_percent_trend": null_trend,
                "columns": _columns(snapshot.metrics_by_run[with_metrics[-1].key]) if with_metrics else []}

    def _dashboard(self, pipeline: str, params: dict[str, list[str]], snapshot: ProfilingSnapshot) -> dict[str, object]:
        since = _since(params)
        warehouse = _text(params, "warehouse")
        runs = [r for r in snapshot.runs if (since is None or r.profiled_at >= since) and warehouse is None]
        events = [e for e in snapshot.drift_events if (since is None or e.time >= since) and warehouse is None]
        if since is None and warehouse is None:  # everything the profiler ever wrote, from the collector's counts
            total_runs = int(self._total(pipeline, "profiling_runs_total"))
            total_tables = len({labels[1] for labels in self._labels(pipeline, "profiling_runs_total")})
            total_drift = int(self._total(pipeline, "profiling_drift_events_total"))
        else:
            total_runs, total_tables, total_drift = len(runs), len({r.dataset for r in runs}), len(events)
        rows = [r.row_count for r in runs if r.row_count is not None]
        return {"total_runs": total_runs, "total_tables": total_tables, "total_drift_events": total_drift,
                "avg_row_count": math.fsum(rows) / len(rows) if rows else None,
                "kpis": [_kpi(k.name, k.value, k.previous) for k in snapshot.kpis],
                "run_trend": _per_day(r.profiled_at for r in runs),
                "drift_trend": _per_day(e.time for e in events),
                "warehouse_breakdown": {},
                "recent_runs": [_run_json(r, snapshot) for r in reversed(runs[-RECENT:])],
                "recent_drift": [_drift_json(e) for e in reversed(events[-RECENT:])]}

    def _labels(self, pipeline: str, name: str) -> list[tuple[str, ...]]:
        """The labels of the pipeline's series of `name` (the pipeline first, as in the store)."""
        return [labels for _, labels in self.store.keys(name, where=lambda key: key[1][0] == pipeline)]

    def _total(self, pipeline: str, name: str,
               where: Callable[[tuple[str, ...]], bool] = lambda labels: True) -> float:
        """The newest values of the pipeline's series of `name` whose labels pass `where`, summed."""
        return math.fsum(point[1] for labels in self._labels(pipeline, name) if where(labels)
                         for point in [self.store.latest(name, labels)] if point is not None)


def _page(params: dict[str, list[str]], rows: list) -> list:
    limit = whole_number(params, "limit", DEFAULT_LIMIT)
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"limit: between 1 and {MAX_LIMIT}, got {limit}", "limit")
    offset = whole_number(params, "offset", 0)
    return rows[offset:offset + limit]


def _text(params: dict[str, list[str]], key: str) -> str | None:
    return one_value(params, key) if key in params else None


def _choice(params: dict[str, list[str]], key: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    if key not in params:
        return default
    value = one_value(params, key)
    if value not in allowed:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{key}: one of {', '.join(allowed)}, got {_shown(value)!r}", key)
    return value


def _statuses(params: dict[str, list[str]]) -> set[str] | None:
    """`status`, comma-separated for several (as ProfileMesh takes it); the collector lowercases statuses."""
    if "status" not in params:
        return None
    return {part.strip().lower() for part in one_value(params, "status").split(",") if part.strip()}


def _since(params: dict[str, list[str]]) -> float | None:
    """The later of `since` (ISO 8601, naive = UTC, or Unix seconds) and now minus `days`."""
    bounds = []
    if "since" in params:
        bounds.append(_time(one_value(params, "since")))
    if "days" in params:
        days = whole_number(params, "days", 0)
        if not 1 <= days <= _MAX_DAYS:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"days: between 1 and {_MAX_DAYS}, got {days}", "days")
        bounds.append(time.time() - days * 86_400)
    return max(bounds) if bounds else None


def _time(text: str) -> float:
    bad = ApiError(HTTPStatus.BAD_REQUEST, f"since: an ISO 8601 date or time (2024-05-01, 2024-05-01T12:00:00Z; "
                                           f"without a zone: UTC) or Unix seconds, got {_shown(text)!r}", "since")
    if text.isascii() and re.fullmatch(r"\d{1,12}(\.\d{1,9})?", text):
        return float(text)
    if not _ISO_DATE.match(text):
        raise bad
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _run_json(run: Run, snapshot: ProfilingSnapshot) -> dict[str, object]:
    return {"run_id": run.run_id, "dataset_name": run.dataset, "schema_name": run.schema, "warehouse_type": None,
            "profiled_at": _iso(run.profiled_at), "status": run.status, "row_count": run.row_count,
            "column_count": run.column_count, "duration_seconds": None, "has_drift": None,
            "environment": run.environment}


def _drift_json(event: DriftEvent) -> dict[str, object]:
    return {"event_id": event.event_id, "run_id": None, "table_name": event.table, "column_name": event.column,
            "metric_name": event.metric, "baseline_value": _finite(event.baseline),
            "current_value": _finite(event.current), "change_percent": _finite(event.change_percent),
            "severity": event.severity, "timestamp": _iso(event.time), "warehouse_type": None}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


_NUMBER_METRICS = {"null_count": "null_count", "distinct_count": "distinct_count", "mean": "mean", "stddev": "stddev"}
_PERCENTS = {"null_percent": ("null_percent", 1.0), "null_ratio": ("null_percent", 100.0),
             "distinct_percent": ("distinct_percent", 1.0), "unique_ratio": ("distinct_percent", 100.0)}


def _columns(metrics: Iterable[ColumnMetric]) -> list[dict[str, object]]:
    """ProfileMesh's ColumnMetrics per column, in the order the columns first appear; the profiler's ratios
    (null_ratio, unique_ratio) as the percentages the shape names."""
    columns: dict[str, dict[str, object]] = {}
    for metric in metrics:
        column = columns.get(metric.column)
        if column is None:
            column = columns[metric.column] = {
                "column_name": metric.column, "column_type": metric.column_type, "null_count": None,
                "null_percent": None, "distinct_count": None, "distinct_percent": None, "min_value": None,
                "max_value": None, "mean": None, "stddev": None, "histogram": None}
        name = metric.metric
        if name in _NUMBER_METRICS:
            value = _number(metric.value)
            column[_NUMBER_METRICS[name]] = int(value) if value is not None and name.endswith("_count") \
                and value.is_integer() else value
        elif name in _PERCENTS:
            field, scale = _PERCENTS[name]
            value = _number(metric.value)
            if value is not None and (column[field] is None or scale == 1.0):  # the profiler's percent wins
                column[field] = value * scale
        elif name in ("min", "max"):
            number = _number(metric.value)
            column[f"{name}_value"] = number if number is not None else metric.value
        elif name == "histogram":
            column["histogram"] = _histogram(metric.value)
    return list(columns.values())


def _null_percent(metric: ColumnMetric) -> float | None:
    if metric.metric not in ("null_percent", "null_ratio"):
        return None
    value = _number(metric.value)
    return None if value is None else value * _PERCENTS[metric.metric][1]


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _histogram(text: str | None) -> object:
    if text is None:
        return None
    try:
        value = json.loads(text, parse_constant=lambda _: None)  # NaN and Infinity are not JSON
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, (list, dict)) else None


def _kpi(name: str, value: float | None, previous: float | None) -> dict[str, object]:
    """ProfileMesh's KPI: the change against the period before, when both are known."""
    if value is None or previous is None:
        trend, change = None, None
    else:
        trend = "up" if value > previous else "down" if value < previous else "stable"
        change = (value - previous) / previous * 100 if previous else None
    return {"name": name, "value": value, "change_percent": change, "trend": trend}


def _per_day(times: Iterable[float]) -> list[dict[str, object]]:
    days = Counter(datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d") for t in times)
    return [{"timestamp": f"{day}T00:00:00Z", "value": days[day]} for day in sorted(days)]


def _json(status: HTTPStatus, payload: object, headers: dict[str, str]) -> Answer:
    body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode() + b"\n"
    return _sized(Answer(status, body, "application/json", headers))


def _sized(answer: Answer) -> Answer:
    if len(answer.body) <= MAX_BODY_BYTES:
        return answer
    message = (f"the answer would be {len(answer.body):,} bytes, more than the {MAX_BODY_BYTES:,} allowed: narrow it "
               f"with since or days")
    return Answer(HTTPStatus.INTERNAL_SERVER_ERROR,
                  json.dumps({"status": "error", "error": message, "detail": message}).encode() + b"\n",
                  "application/json", {})


def _csv(fields: tuple[str, ...], rows: list[dict[str, object]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow(["" if row[f] is None else spreadsheet_cell(row[f]) for f in fields])
    return out.getvalue().encode()

"""The OpenAPI 3 document of the JSON API, served at /api/v1/openapi.json (exporters/api.py).

Built in Python from the same limits the API enforces, so the two cannot drift apart; tests/test_api_fuzz.py
checks real answers of a running agent against it. Security requirements follow the agent's configuration:
which of the scrape credential (exporter.basic_auth) and the API credential (exporter.api_auth) it asks for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitoring.metrics import CATALOGUE

_NUMBER = {"oneOf": [{"type": "number"}, {"type": "string", "enum": ["Infinity", "-Infinity"]}],
           "nullable": True, "description": "null when unknown; unbounded values as the string Infinity"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}, **extra}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}
    if headers:
        out["headers"] = headers
    return out


def _query(name: str, schema: dict[str, Any], description: str, many: bool = False) -> dict[str, Any]:
    if many:
        schema = {"type": "array", "items": schema}
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema,
            "style": "form", "explode": True}



def _schemas() -> dict[str, Any]:
    event = _object({"seq": {"type": "integer"}, "time": {"type": "number"}, "pipeline": {"type": "string"},
                     "collector": {"type": "string"}, "severity": {"type": "string"}, "message": {"type": "string"}})
    health = _object({"collector": {"type": "string"}, "target": {"type": "string"},
                      "state": {"type": "string", "enum": ["starting", "up", "down", "stale"]},
                      "reason": {"type": "string"}, "last_success": {"type": "number", "nullable": True},
                      "last_attempt": {"type": "number", "nullable": True},
                      "error_category": {"type": "string", "nullable": True},
                      "consecutive_failures": {"type": "integer"}})
    summary = _object({"job": {"type": "string"}, "instance": {"type": "string"}, "pipeline": {"type": "string"},
                       "health": {"type": "string"}, "reason": {"type": "string"},
                       "collectors": {"type": "array", "items": {"type": "string"}},
                       "collectors_down": {"type": "array", "items": {"type": "string"}},
                       "last_success": {"type": "number", "nullable": True},
                       **{name: _NUMBER for name in ("lag_messages", "max_lag_messages", "lag_seconds", "worst_status",
                                                     "produce_rate", "consume_rate", "flink_jobs", "flink_running",
                                                     "checkpoint_age", "registry_up", "change_rate",
                                                     "dead_letter_rate", "invalid_ratio")},
                       "collector_health": {"type": "array", "items": _ref("CollectorHealth")}})
    series_row = _object({"id": {"type": "string", "pattern": "^[0-9a-f]{16}$"}, "name": {"type": "string"},
                          "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                          "collector": {"type": "string"}, "count": {"type": "integer"},
                          "time": _NUMBER, "value": _NUMBER})
    point = {"type": "array", "minItems": 2, "maxItems": 2, "items": _NUMBER}
    series_delta = _object({"id": {"type": "string"}, "name": {"type": "string"},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "collector": {"type": "string"}, "since": {"type": "integer"},
                            "count": {"type": "integer"}, "complete": {"type": "boolean"},
                            "missed": {"type": "integer"}, "points": {"type": "array", "items": point}},
                           {"reset": {"type": "boolean", "enum": [True]}})
    agent = _object({"version": {"type": "string"}, "host": {"type": "string"}, "started_at": {"type": "number"},
                     "api": {"type": "string", "enum": ["v1"]}})
    wire = {"description": "a value in the codec of monitoring/wire.py"}
    alert = _object({"fingerprint": {"type": "string"}, "rule": {"type": "string"},
                     "state": {"type": "string", "enum": ["pending", "firing", "source_down", "resolved"]},
                     "severity": {"type": "string"},
                     "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                     "summary": {"type": "string"}, "description": {"type": "string"}, "value": _NUMBER,
                     "active_since": {"type": "number"}, "fired_at": {"type": "number", "nullable": True},
                     "resolved_at": {"type": "number", "nullable": True}, "reason": {"type": "string"},
                     "silenced_by": {"type": "string", "nullable": True}})
    return {
        "Error": _object({"status": {"type": "string", "enum": ["error"]}, "error": {"type": "string"}},
                         {"parameter": {"type": "string", "description": "the parameter that is wrong"},
                          "detail": {"type": "string", "description": "/profilemesh only: `error` again, under "
                                                                      "the key ProfileMesh's (FastAPI's) errors use"}}),
        "Agent": agent,
        "CollectorHealth": health,
        "Event": event,
        "PipelineSummary": summary,
        "Index": _object({"agent": _ref("Agent"), "endpoints": {"type": "array", "items": {"type": "string"}}}),
        "Pipelines": _object({"agent": _ref("Agent"), "measured_at": {"type": "number", "nullable": True},
                              "pipelines": {"type": "array", "items": _ref("PipelineSummary")}}),
        "Pipeline": {"allOf": [_ref("PipelineSummary"), _object({
            "agent": _ref("Agent"), "measured_at": {"type": "number", "nullable": True},
            "latency": {"type": "array", "items": _object({
                "measure": {"type": "string"}, "description": {"type": "string"}, "samples": {"type": "integer"},
                "quantiles": {"type": "object", "additionalProperties": _NUMBER}})},
            "series_total": {"type": "integer"}, "series": {"type": "array", "items": series_row},
            "truncated": {"type": "boolean"}})]},
        "Series": _object({"measured_at": {"type": "number"},
                           "limits": _object({"max_series": {"type": "integer"}, "max_points": {"type": "integer"}}),
                           "series_total": {"type": "integer"}, "truncated": {"type": "boolean"},
                           "series": {"type": "array", "items": series_delta}}),
        "Events": _object({"since": {"type": "integer"}, "next": {"type": "integer"}, "reset": {"type": "boolean"},
                           "missed": {"type": "integer"}, "truncated": {"type": "boolean"},
                           "limits": _object({"max_events": {"type": "integer"}}),
                           "events": {"type": "array", "items": event}}),
        "Alerts": _object({
            "agent": _ref("Agent"), "evaluated_at": {"type": "number", "nullable": True},
            "active": {"type": "array", "items": alert, "description": "firing and source_down first, then pending"},
            "history": {"type": "array", "items": alert, "description": "resolved alerts, the newest first"},
            "rules": {"type": "array", "items": _object({
                "name": {"type": "string"}, "state": {"type": "string", "enum": ["inactive", "pending", "firing"]},
                "severity": {"type": "string"}, "for_seconds": {"type": "number"}, "builtin": {"type": "boolean"},
                "firing": {"type": "integer"}, "pending": {"type": "integer"}})},
            "silences": {"type": "array", "items": _object({
                "id": {"type": "string"}, "rule": {"type": "string"},
                "fingerprint": {"type": "string", "nullable": True}, "pipeline": {"type": "string", "nullable": True},
                "starts_at": {"type": "number"}, "ends_at": {"type": "number"}, "created_by": {"type": "string"},
                "comment": {"type": "string"}, "description": {"type": "string"}})}}),
        "State": _object({
            "agent": _ref("Agent"), "measured_at": {"type": "number"}, "reset": {"type": "boolean"},
            "next": {"type": "string", "description": "the cursor of the next call"},
            "health": {"type": "array", "items": wire},
            "snapshots": {"type": "array", "items": _object({"pipeline": {"type": "string"},
                                                             "collector": {"type": "string"},
                                                             "time": {"type": "number"}, "value": wire})},
            "unencodable": {"type": "array", "items": _object({"pipeline": {"type": "string"},
                                                               "collector": {"type": "string"},
                                                               "error": {"type": "string"}})},
            "series": {"type": "array", "items": _object({
                "name": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}},
                "pipeline": {"type": "string"}, "collector": {"type": "string"}, "count": {"type": "integer"},
                "times": {"type": "array", "items": {"type": "number"}},
                "values": {"type": "array", "items": _NUMBER}})},
            "series_cut": {"type": "boolean"},
            "series_ids": {"type": "array", "items": {"type": "string"}, "nullable": True},
            "events": {"type": "array", "items": event},
            "errors": {"type": "array", "items": wire, "nullable": True},
            "feeds": {"type": "array", "items": _object({
                "pipeline": {"type": "string"}, "collector": {"type": "string"}, "per_entity": {"type": "integer"},
                "capacity": {"type": "integer"}, "rows": {"type": "array", "items": wire}},
                description="change-feed rows: user data, behind exporter.api_auth")}}),
    }


def _profilemesh_schemas() -> dict[str, Any]:
    """ProfileMesh's dashboard models (docs/profilemesh-api.md): null where pipewatch's data cannot fill a field."""
    text, whole, number, time = ({"type": "string"}, {"type": "integer"}, {"type": "number"},
                                 {"type": "string", "format": "date-time"})
    maybe = lambda schema: {**schema, "nullable": True}  # noqa: E731
    trend = _object({"timestamp": time, "value": number})
    value = {"nullable": True, "description": "a number, or the profiler's text when it is not one"}
    column = _object({"column_name": text, "column_type": maybe(text), "null_count": maybe(whole),
                      "null_percent": maybe(number), "distinct_count": maybe(whole), "distinct_percent": maybe(number),
                      "min_value": value, "max_value": value, "mean": maybe(number), "stddev": maybe(number),
                      "histogram": {"nullable": True, "description": "the profiler's histogram (JSON)"}})
    run = _object({"run_id": text, "dataset_name": text, "schema_name": maybe(text), "warehouse_type": maybe(text),
                   "profiled_at": time, "status": text, "row_count": maybe(whole), "column_count": maybe(whole),
                   "duration_seconds": maybe(number), "has_drift": maybe({"type": "boolean"}),
                   "environment": maybe(text)})
    drift = _object({"event_id": text, "run_id": maybe(text), "table_name": maybe(text), "column_name": maybe(text),
                     "metric_name": maybe(text), "baseline_value": maybe(number), "current_value": maybe(number),
                     "change_percent": maybe(number), "severity": text, "timestamp": time,
                     "warehouse_type": maybe(text)})
    return {
        "PmRunHistory": run,
        "PmRuns": {"type": "array", "items": _ref("PmRunHistory")},
        "PmColumnMetrics": column,
        "PmProfilingResult": _object({
            "run_id": text, "dataset_name": text, "schema_name": maybe(text), "warehouse_type": maybe(text),
            "profiled_at": time, "environment": maybe(text), "status": text, "row_count": maybe(whole),
            "column_count": maybe(whole), "columns": {"type": "array", "items": _ref("PmColumnMetrics")},
            "metadata": _object({"column_metrics_held": {"type": "boolean"},
                                 "datasets_with_this_run_id": {"type": "array", "items": text}})}),
        "PmDriftAlert": drift,
        "PmDriftAlerts": {"type": "array", "items": _ref("PmDriftAlert")},
        "PmTableMetrics": _object({
            "table_name": text, "schema_name": maybe(text), "warehouse_type": maybe(text), "last_profiled": time,
            "row_count": maybe(whole), "column_count": maybe(whole), "total_runs": whole, "drift_count": whole,
            "row_count_trend": {"type": "array", "items": trend},
            "null_percent_trend": {"type": "array", "items": trend},
            "columns": {"type": "array", "items": _ref("PmColumnMetrics")}}),
        "PmMetricsDashboard": _object({
            "total_runs": whole, "total_tables": whole, "total_drift_events": whole, "avg_row_count": maybe(number),
            "kpis": {"type": "array", "items": _object({
                "name": text, "value": maybe(number), "change_percent": maybe(number),
                "trend": {"type": "string", "enum": ["up", "down", "stable"], "nullable": True}})},
            "run_trend": {"type": "array", "items": trend}, "drift_trend": {"type": "array", "items": trend},
            "warehouse_breakdown": {"type": "object", "additionalProperties": whole},
            "recent_runs": {"type": "array", "items": _ref("PmRunHistory")},
            "recent_drift": {"type": "array", "items": _ref("PmDriftAlert")}}),
        "PmWarehouses": _object({"warehouses": {"type": "array", "items": text}}),
    }


def _profilemesh_paths(pipelines: Sequence[str], security: list, common: dict[str, Any]) -> dict[str, Any]:
    """The paths under /profilemesh/{pipeline}/api (exporters/profilemesh.py)."""
    from exporters.api import MAX_DIGITS, MAX_NAME, MAX_VALUE
    from exporters.profilemesh import _ISO_DATE, _MAX_DAYS, FORMATS, MAX_LIMIT, PREFIX, SEVERITIES

    pipeline: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": MAX_NAME}
    if pipelines:
        pipeline = {"type": "string", "enum": list(pipelines)}
    path_pipeline = {"name": "pipeline", "in": "path", "required": True, "schema": pipeline,
                     "description": "A pipeline with profiling on this agent."}
    word = {"type": "string", "maxLength": MAX_VALUE}
    since_pattern = r"^\d{1,12}(\.\d{1,9})?$|" + _ISO_DATE.pattern
    window = [_query("since", {"type": "string", "pattern": since_pattern},
                     "Only rows from this time on: ISO 8601 (without a zone: UTC) or Unix seconds."),
              _query("days", {"type": "integer", "minimum": 1, "maximum": _MAX_DAYS}, "Only the last this many days."),
              _query("warehouse", word, "ProfileMesh's warehouse filter: pipewatch does not know the warehouse, so "
                                        "any value selects nothing.")]
    page = [_query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "Rows at most (default 100)."),
            _query("offset", {"type": "integer", "minimum": 0, "maximum": 10**MAX_DIGITS - 1}, "Rows skipped.")]
    runs_filter = [_query("dataset", word, "Only this dataset (table)."),
                   _query("table", word, "Another name for dataset (ProfileMesh's)."),
                   _query("schema", word, "Only this schema."),
                   _query("status", word, "Only these statuses, comma-separated."),
                   _query("environment", word, "Only this environment.")]
    drift_filter = [_query("severity", {"type": "string", "enum": list(SEVERITIES)}, "Only this severity."),
                    _query("table", word, "Only this table.")]
    retry = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    errors = {**common, "404": _error("no such pipeline with profiling, run, table or endpoint"),
              "503": _error("the profiling tables have not been read yet, or too many connections at once", retry)}

    def get(summary: str, schema: str, parameters: list, csv: bool = False) -> dict[str, Any]:
        content: dict[str, Any] = {"application/json": {"schema": _ref(schema)}}
        if csv:
            content["text/csv"] = {"schema": {"type": "string"}}
        return {"get": {"summary": summary, "operationId": "profilemesh" + schema[2:] + ("Export" if csv else ""),
                        "parameters": [path_pipeline, *parameters], "security": security,
                        "responses": {"200": {"description": "OK", "content": content}, **errors}}}

    form = _query("format", {"type": "string", "enum": list(FORMATS)}, "json (default) or csv.")
    base = f"{PREFIX}/{{pipeline}}/api"
    return {
        f"{base}/runs": get("ProfileMesh: profiling runs, newest first.", "PmRuns", [*page, *runs_filter, *window]),
        f"{base}/runs/{{run_id}}": get(
            "ProfileMesh: one run with its column metrics.", "PmProfilingResult",
            [{"name": "run_id", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}},
             _query("dataset", word, "The run's dataset, when one run id covers several.")]),
        f"{base}/drift": get("ProfileMesh: drift alerts, newest first.", "PmDriftAlerts",
                             [*page, *drift_filter, *window]),
        f"{base}/tables/{{table}}/metrics": get(
            "ProfileMesh: one table's metrics and trends.", "PmTableMetrics",
            [{"name": "table", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}},
             _query("schema", word, "The table's schema."), window[2]]),
        f"{base}/dashboard/metrics": get("ProfileMesh: the dashboard's totals, KPIs and trends.",
                                         "PmMetricsDashboard", window),
        f"{base}/warehouses": get("ProfileMesh: the warehouses (pipewatch knows none).", "PmWarehouses", []),
        f"{base}/export/runs": get("ProfileMesh: every held run, as JSON or CSV.", "PmRuns",
                                   [form, *runs_filter, *window], csv=True),
        f"{base}/export/drift": get("ProfileMesh: every held drift alert, as JSON or CSV.", "PmDriftAlerts",
                                    [form, *drift_filter, *window], csv=True),
    }


def openapi_document(*, scrape_auth: bool, api_auth: bool, profiling_pipelines: Sequence[str] = ()) -> dict[str, Any]:
    """The document for an agent that asks for these credentials (none: the API is open) and has these pipelines
    with profiling (the /profilemesh paths' `pipeline`)."""
    # The limits the API enforces (imported here: exporters/api.py imports this module).
    from exporters.api import MAX_DIGITS, MAX_EVENTS, MAX_NAME, MAX_POINTS, MAX_STATE_CURSOR, MAX_VALUE, PREFIX

    since = _query("since", {"type": "integer", "minimum": 0, "maximum": 10**MAX_DIGITS - 1},
                   "A sequence number or count an earlier answer gave; 0 (default) for everything held.")
    scrape = ([{"scrapeAuth": []}] if scrape_auth else []) + ([{"apiAuth": []}] if api_auth else [])
    if not scrape_auth:
        scrape = [{}]  # open
    state = [{"apiAuth": []}] if api_auth else [{"scrapeAuth": []}] if scrape_auth else [{}]
    retry = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    common = {
        "400": _error("a parameter is wrong: `parameter` names it, `error` says what is wrong"),
        "401": _error("credentials missing or wrong",
                      {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Basic realm=\"pipewatch\""}}),
        "421": _error("the Host header is not a name this agent answers to (exporter.allowed_hosts)"),
        "503": _error("too many connections at once: try again after Retry-After", retry),
    }

    def operation(summary: str, schema: str, parameters: list[dict[str, Any]], security: list,
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"get": {"summary": summary, "operationId": schema[0].lower() + schema[1:], "parameters": parameters,
                        "security": security,
                        "responses": {"200": {"description": "OK", "content": {"application/json": {
                            "schema": _ref(schema)}}}, **common, **(extra or {})}}}

    not_found = {"404": _error("no such pipeline on this agent")}
    pipeline_param = _query("pipeline", {"type": "string", "maxLength": MAX_NAME}, "Only this pipeline.")
    series = operation(
        "Points of series after given counts (the delta model): a reader passes back the count it got.", "Series",
        [_query("name", {"type": "string", "enum": sorted(CATALOGUE)}, "Metric names (docs/metrics.md).", many=True),
         pipeline_param, since,
         _query("cursor", {"type": "string", "pattern": "^[0-9a-f]{16}:[0-9]{1,18}$"},
                "Per-series cursors ID:COUNT (a series' id and the count an earlier answer gave).", many=True),
         _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_POINTS}, "Points per answer at most."),
         {"name": "labels", "in": "query", "required": False, "style": "form", "explode": True,
          "description": "Label filters (label=value), only with exactly one `name`: the labels of that metric.",
          "schema": {"type": "object", "additionalProperties": {"type": "string", "maxLength": MAX_VALUE}}}],
        scrape, not_found)
    state_op = operation(
        "Everything that changed since the cursor, change-feed rows included: what a mirror copies.", "State",
        [_query("cursor", {"type": "string", "minLength": 1, "maxLength": MAX_STATE_CURSOR},
                "`next` of an earlier answer; none: everything held.")], state)
    state_op["get"]["responses"]["503"] = _error(
        "too many connections, or too many state answers being built at once: try again after Retry-After", retry)
    return {
        "openapi": "3.0.3",
        "info": {"title": "pipewatch agent JSON API", "version": "v1",
                 "description": "What a pipewatch agent watches. Every answer is bounded and says when it was cut; "
                                "unknown values are null, unbounded ones the string Infinity."},
        "paths": {
            PREFIX: operation("The agent and the API's endpoints.", "Index", [], scrape),
            f"{PREFIX}/pipelines": operation("Every local pipeline's summary with its collectors' health.",
                                             "Pipelines", [], scrape),
            f"{PREFIX}/pipelines/{{name}}": operation(
                "One pipeline: summary, health, latency percentiles and its series.", "Pipeline",
                [{"name": "name", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1,
                                                                             "maxLength": MAX_NAME}}],
                scrape, not_found),
            f"{PREFIX}/series": series,
            f"{PREFIX}/events": operation("The event log after a sequence number.", "Events",
                                          [since,
                                           _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_EVENTS},
                                                  "Events per answer at most."),
                                           pipeline_param], scrape),
            f"{PREFIX}/state": state_op,
            f"{PREFIX}/alerts": operation(
                "Active alerts, recent history, the rules' states and the silences (docs/alerts.md).", "Alerts", [],
                state, {"404": _error("alerts are not evaluated in this process")}),
            f"{PREFIX}/openapi.json": {"get": {"summary": "This document.", "operationId": "openapi",
                                               "security": scrape, "responses": {
                                                   "200": {"description": "OpenAPI 3", "content": {
                                                       "application/json": {"schema": {"type": "object"}}}},
                                                   **common}}},
            **_profilemesh_paths(profiling_pipelines, scrape, common),
        },
        "components": {
            "schemas": {**_schemas(), **_profilemesh_schemas()},
            "securitySchemes": {
                "scrapeAuth": {"type": "http", "scheme": "basic",
                               "description": "exporter.basic_auth: /metrics and the API except /api/v1/state and "
                                              "/api/v1/alerts "
                                              "(where exporter.api_auth is set)"},
                "apiAuth": {"type": "http", "scheme": "basic",
                            "description": "exporter.api_auth: /api/v1/state (change-feed rows) and "
                                           "/api/v1/alerts; also accepted wherever the scrape credential is"},
            },
        },
    }

"""The JSON API (/api/v1): what this agent watches, as the pages see it, for programs and other agents.

Details: docs/internals.md, "The JSON API's module"."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from importlib import metadata
from urllib.parse import unquote_to_bytes

from exporters.openapi import openapi_document
from monitoring.alerts.engine import Alert, AlertEngine
from monitoring.evaluation import LATENCY_SOURCE, SUMMARY_SOURCE, pipeline_latencies
from monitoring.health import CollectorHealth
from monitoring.json_numbers import to_json
from monitoring.metrics import CATALOGUE
from monitoring.store import SeriesKey, Store
from monitoring.summary import PipelineSummary
from monitoring.wire import WireError, encode, series_id

PREFIX = "/api/v1"
MAX_SERIES = 1000
"""Series per /api/v1/series answer (the rest are counted in `series_total`: narrow the selection)."""
MAX_POINTS = 10_000
"""Points per /api/v1/series answer, unless `limit` asks for fewer; a series cut short says `complete: false`."""
MAX_LISTED_SERIES = 10_000
"""Series listed by /api/v1/pipelines/{name} (the rest are counted in `series_total`)."""
MAX_EVENTS = 1000
MAX_BODY_BYTES = 16 * 1024 * 1024
"""A last guard: an answer larger than this is refused with a message instead of sent."""
MAX_STATE_POINTS = 200_000
"""Series points per /api/v1/state answer beyond the newest of each series (the first answer holds everything
the store keeps only when it fits: otherwise each series' newest points, as many as fit)."""
MAX_STATE_BODY_BYTES = 256 * 1024 * 1024
"""The last guard of /api/v1/state, whose first answer holds every snapshot and series."""
ENDPOINTS = (f"{PREFIX}/pipelines", f"{PREFIX}/pipelines/{{name}}", f"{PREFIX}/series", f"{PREFIX}/events",
             f"{PREFIX}/state", f"{PREFIX}/alerts", f"{PREFIX}/openapi.json")
STATE_PATH = f"{PREFIX}/state"
ALERTS_PATH = f"{PREFIX}/alerts"
PROTECTED_PATHS = (STATE_PATH, ALERTS_PATH)
"""Paths that take the API credential (exporter.api_auth) when one is configured: user data and who silenced."""
MAX_NAME = 100
"""Parameter names and pipeline names (a config's pipelines[].name is at most 100 characters too)."""
MAX_VALUE = 1000
"""Characters of a parameter's value, except a /api/v1/state cursor."""
MAX_STATE_CURSOR = 32 * 1024
"""A state cursor grows by ~180 characters per change feed: room for ~180 feeds."""
MAX_DIGITS = 18
"""Whole numbers (since, limit, counts) fit a signed 64-bit integer."""
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.parameter = status, message, parameter

    def payload(self) -> dict[str, object]:
        out: dict[str, object] = {"status": "error", "error": self.message}
        if self.parameter is not None:
            out["parameter"] = self.parameter
        return out


def _points(times: Iterable[float], values: Iterable[float]) -> list[list[object]]:
    return [[t, v if v == v and v not in (math.inf, -math.inf) else to_json(v)]
            for t, v in zip(times, values, strict=True)]


def _labels(key: SeriesKey) -> dict[str, str]:
    name, values = key
    spec = CATALOGUE[name]
    names = (*spec.labels, "bucket") if spec.type == "histogram" else spec.labels
    return dict(zip(names, values, strict=True))


def health_json(health: CollectorHealth, now: float) -> dict[str, object]:
    state = health.effective_state(now)
    return {"collector": health.collector, "target": health.target, "state": state.value,
            "reason": health.reason(now), "last_success": health.last_success, "last_attempt": health.last_attempt,
            "error_category": health.error_category, "consecutive_failures": health.consecutive_failures}


@dataclass
class Api:
    store: Store
    started_at: float
    host: str = ""
    version: str = ""
    scrape_auth: bool = False
    api_auth: bool = False
    """Which credentials the server asks for: the OpenAPI document declares them."""
    alerts: AlertEngine | None = None
    """The process's alert engine (None: alerts are not evaluated here, e.g. a mirror)."""

    def __post_init__(self) -> None:
        self._encoded: dict[tuple[str, str], tuple[object, object]] = {}
        """source -> (snapshot, its encoding): each published snapshot is encoded once for every mirror."""
        self._ids: dict[SeriesKey, str] = {}
        self.host = self.host or socket.gethostname()
        if not self.version:
            try:
                self.version = metadata.version("pipewatch")
            except metadata.PackageNotFoundError:
                self.version = "unknown"

    def handle(self, path: str, query: str) -> tuple[HTTPStatus, bytes]:
        """The status and JSON body for a GET of `path` (under PREFIX) with its query string."""
        try:
            payload = self._route(path.rstrip("/"), parse_query(query))
            status = HTTPStatus.OK
        except ApiError as error:
            status, payload = error.status, error.payload()
        body = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode() + b"\n"
        limit = MAX_STATE_BODY_BYTES if path.rstrip("/") == f"{PREFIX}/state" else MAX_BODY_BYTES
        if len(body) > limit:
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            body = json.dumps(ApiError(status, f"the answer would be {len(body):,} bytes, more than the "
                                               f"{limit:,} allowed: narrow the selection").payload()).encode()
        return status, body

    def _route(self, path: str, params: dict[str, list[str]]) -> dict[str, object]:
        if path == PREFIX:
            _only(params, ())
            return {"agent": self.agent(), "endpoints": list(ENDPOINTS)}
        if path == f"{PREFIX}/pipelines":
            _only(params, ())
            return self.pipelines()
        if path.startswith(f"{PREFIX}/pipelines/"):
            _only(params, ())
            name = _decode(path[len(PREFIX) + len("/pipelines/"):], "name")
            if len(name) > MAX_NAME:
                raise ApiError(HTTPStatus.BAD_REQUEST, f"name: a pipeline's name has at most {MAX_NAME} characters, "
                                                       f"got {len(name):,}", "name")
            return self.pipeline(name)
        if path == f"{PREFIX}/series":
            return self.series(params)
        if path == f"{PREFIX}/events":
            return self.events(params)
        if path == STATE_PATH:
            return self.state(params)
        if path == ALERTS_PATH:
            _only(params, ())
            return self.alerts_json()
        if path == f"{PREFIX}/openapi.json":
            _only(params, ())
            return openapi_document(scrape_auth=self.scrape_auth, api_auth=self.api_auth,
                                    profiling_pipelines=sorted(p for p, c in self.store.health() if c == "profiling"))
        raise ApiError(HTTPStatus.NOT_FOUND, f"no such endpoint {_shown(path)!r}: try {', '.join(ENDPOINTS)}")

    # -- endpoints -------------------------------------------------------------------------------------

    def alerts_json(self) -> dict[str, object]:
        """Active alerts (firing and source_down first, then pending), recent history, rules and silences."""
        if self.alerts is None:
            raise ApiError(HTTPStatus.NOT_FOUND, "alerts are not evaluated in this process")
        state = self.alerts.state()
        return {"agent": self.agent(), "evaluated_at": state.evaluated_at,
                "active": [alert_json(a) for a in state.active],
                "history": [alert_json(a) for a in state.history],
                "rules": [{"name": r.rule.name, "state": r.state, "severity": r.rule.severity,
                           "for_seconds": r.rule.for_seconds, "builtin": r.rule.builtin, "firing": r.firing,
                           "pending": r.pending} for r in state.rules],
                "silences": [{"id": s.id, "rule": s.rule, "fingerprint": s.fingerprint, "pipeline": s.pipeline,
                              "starts_at": s.starts_at, "ends_at": s.ends_at, "created_by": s.created_by,
                              "comment": s.comment, "description": s.description} for s in state.silences]}

    def agent(self) -> dict[str, object]:
        return {"version": self.version, "host": self.host, "started_at": self.started_at, "api": "v1"}

    def _summaries(self) -> tuple[float | None, list[PipelineSummary]]:
        entry = self.store.snapshot(SUMMARY_SOURCE)
        return (None, []) if entry is None else (entry[0], list(entry[1]))

    def pipelines(self) -> dict[str, object]:
        now = time.time()
        measured_at, summaries = self._summaries()
        health = self.store.health()
        return {"agent": self.agent(), "measured_at": measured_at,
                "pipelines": [self._pipeline_json(summary, health, now) for summary in summaries]}

    def _pipeline_json(self, summary: PipelineSummary, health: dict, now: float) -> dict[str, object]:
        out = summary.to_json()
        out["collector_health"] = [health_json(h, now) for (p, _), h in sorted(health.items()) if p == summary.pipeline]
        return out

    def pipeline(self, name: str) -> dict[str, object]:
        now = time.time()
        measured_at, summaries = self._summaries()
        summary = next((s for s in summaries if s.pipeline == name), None)
        if summary is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no pipeline {name!r} on this agent; it watches: "
                                                 f"{', '.join(s.pipeline for s in summaries) or 'none yet'}")
        out = {"agent": self.agent(), "measured_at": measured_at,
               **self._pipeline_json(summary, self.store.health(), now)}
        out["latency"] = [{"measure": latency.measure, "description": latency.description, "samples": latency.samples,
                           "quantiles": {f"{q:g}": to_json(v) for q, v in latency.quantiles.items()}}
                          for latency in self._latencies(name, now)]
        rows = sorted(self.store.series_info(lambda key: key[1][:1] == (name,)), key=lambda row: row[0])
        out["series_total"] = len(rows)
        out["series"] = [{"id": series_id(key), "name": key[0], "labels": _labels(key), "collector": source[1],
                          "count": count, "time": to_json(t), "value": to_json(value)}
                         for key, source, count, t, value in rows[:MAX_LISTED_SERIES]]
        out["truncated"] = len(rows) > MAX_LISTED_SERIES
        return out

    def _latencies(self, name: str, now: float) -> list:
        """As the evaluator published them (once a second, for every reader), else computed now."""
        entry = self.store.snapshot(LATENCY_SOURCE)
        if entry is not None and name in entry[1]:
            return entry[1][name]
        return pipeline_latencies(self.store, name, now)

    def series(self, params: dict[str, list[str]]) -> dict[str, object]:
        names = params.get("name", [])
        for name in names:
            if name not in CATALOGUE:
                raise ApiError(HTTPStatus.BAD_REQUEST, f"name: no metric {_shown(name)!r} (docs/metrics.md lists them)",
                               "name")
        labels = {label for name in names for label in CATALOGUE[name].labels if label != "pipeline"}
        filters = {}
        for key, _values in params.items():
            if key in ("pipeline", "name", "since", "cursor", "limit"):
                continue
            if len(names) != 1 or key not in labels:
                hint = (f"labels of {names[0]}: {', '.join(sorted(labels))}" if len(names) == 1
                        else "label filters need exactly one name=")
                raise ApiError(HTTPStatus.BAD_REQUEST, f"{key}: unknown parameter ({hint})", key)
            filters[CATALOGUE[names[0]].labels.index(key)] = _one(params, key)
        pipeline = _pipeline(params)
        if pipeline is not None and pipeline not in {s.pipeline for s in self._summaries()[1]}:
            raise ApiError(HTTPStatus.NOT_FOUND, f"pipeline: no pipeline {pipeline!r} on this agent", "pipeline")
        since = _whole(params, "since", 0)
        limit = _whole(params, "limit", MAX_POINTS)
        if not 1 <= limit <= MAX_POINTS:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"limit: between 1 and {MAX_POINTS}, got {limit}", "limit")
        cursors: dict[str, int] = {}
        for cursor in params.get("cursor", []):
            ident, sep, count = cursor.partition(":")
            if (not sep or len(ident) != 16 or ident.strip("0123456789abcdef") or not _digits(count)
                    or len(count) > MAX_DIGITS):
                raise ApiError(HTTPStatus.BAD_REQUEST, f"cursor: {_shown(cursor)!r} is not ID:COUNT (a series' id and "
                                                       f"the count an earlier answer gave for it)", "cursor")
            cursors[ident] = int(count)
        wanted = set(names)

        def select(key: SeriesKey) -> bool:
            return ((not wanted or key[0] in wanted) and (pipeline is None or key[1][0] == pipeline)
                    and all(key[1][i] == v for i, v in filters.items()))

        rows = sorted(self.store.series_info(select), key=lambda row: row[0])
        budget = limit
        out = []
        for key, source, _count, _t, _v in rows[:MAX_SERIES]:
            ident = series_id(key)
            seen = cursors.get(ident, since)
            delta = self.store.since(key, seen)
            if delta is None:  # removed since it was listed
                continue
            entry: dict[str, object] = {"id": ident, "name": key[0], "labels": _labels(key), "collector": source[1],
                                        "since": seen}
            if seen > delta.count:  # a cursor from before this agent restarted: start again from its first point
                entry["reset"] = True
                seen = 0
                delta = self.store.since(key, 0)
                if delta is None:
                    continue
            held = len(delta.times)
            missed = delta.count - seen - held  # fell out of the ring before this read
            take = min(held, budget)
            budget -= take
            entry.update(count=delta.count - (held - take), complete=take == held, missed=max(0, missed),
                         points=_points(delta.times[:take].tolist(), delta.values[:take].tolist()))
            out.append(entry)
        return {"measured_at": time.time(), "limits": {"max_series": MAX_SERIES, "max_points": limit},
                "series_total": len(rows),
                "truncated": len(rows) > MAX_SERIES or any(not e["complete"] for e in out), "series": out}

    def events(self, params: dict[str, list[str]]) -> dict[str, object]:
        _only(params, ("since", "limit", "pipeline"))
        since = _whole(params, "since", 0)
        limit = _whole(params, "limit", MAX_EVENTS)
        if not 1 <= limit <= MAX_EVENTS:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"limit: between 1 and {MAX_EVENTS}, got {limit}", "limit")
        pipeline = _pipeline(params)
        held = self.store.events_since(0)
        last = held[-1].seq if held else 0
        reset = since > last
        if reset:  # a cursor from before this agent restarted
            since = 0
        after = [event for event in held if event.seq > since]
        missed = max(0, after[0].seq - since - 1) if after else 0
        chosen = [event for event in after if pipeline is None or event.pipeline == pipeline]
        truncated = len(chosen) > limit
        chosen = chosen[:limit]
        # Where to go on from: past the last event returned, or past every event looked at.
        next_seq = chosen[-1].seq if truncated else (after[-1].seq if after else since)
        return {"since": since, "next": next_seq, "reset": reset, "missed": missed, "truncated": truncated,
                "limits": {"max_events": limit},
                "events": [{"seq": e.seq, "time": e.time, "pipeline": e.pipeline, "collector": e.collector,
                            "severity": e.severity, "message": e.message} for e in chosen]}


    def state(self, params: dict[str, list[str]]) -> dict[str, object]:
        """What changed since the cursor (none: everything held). `next` is the cursor for the next call; `reset`
        says the cursor came from another run of this agent (it restarted), so this answer starts from scratch."""
        _only(params, ("cursor",))
        store = self.store
        given = _state_cursor(_one(params, "cursor")) if "cursor" in params else None
        reset = given is not None and given["i"] != store.instance
        cursor = given if given is not None and not reset else {"i": store.instance, "c": 0, "e": 0, "g": None,
                                                                 "s": None, "f": []}
        now = time.time()
        health = [encode(h) for _, h in sorted(store.health().items())]
        changes = store.changes_since(cursor["c"], MAX_STATE_POINTS)
        series = [{"name": key[0], "labels": list(key[1]), "pipeline": source[0], "collector": source[1],
                   "count": count, "times": times,
                   "values": [v if v == v and v not in (math.inf, -math.inf) else to_json(v) for v in values]}
                  for key, source, count, times, values in changes.series]
        ids = None
        if changes.series_generation != cursor["s"]:  # series appeared or went: the whole list, to drop the gone
            known, self._ids = self._ids, {}
            for key, _source in store.series_keys():
                self._ids[key] = known.get(key) or series_id(key)
            ids = list(self._ids.values())
        snapshots, unencodable = [], []
        for source, t, snapshot in changes.snapshots:
            cached = self._encoded.get(source)
            if cached is None or cached[0] is not snapshot:
                try:
                    cached = self._encoded[source] = (snapshot, encode(snapshot))
                except WireError as exc:
                    unencodable.append({"pipeline": source[0], "collector": source[1], "error": str(exc)})
                    continue
            snapshots.append({"pipeline": source[0], "collector": source[1], "time": t, "value": cached[1]})
        events = store.events_since(cursor["e"])
        errors_generation = store.errors_generation
        errors = [encode(e) for e in store.errors()] if errors_generation != cursor["g"] else None
        feeds, feed_cursor = [], []
        seen = {(p, c): seq for p, c, seq in cursor["f"]}
        for source, (_, per_entity, capacity) in sorted(store.feeds().items()):
            rows = store.feed_held_since(source, seen.get(source, 0))
            last = rows[-1].seq if rows else seen.get(source, 0)
            feed_cursor.append([source[0], source[1], last])
            if rows:
                feeds.append({"pipeline": source[0], "collector": source[1], "per_entity": per_entity,
                              "capacity": capacity, "rows": [encode(row) for row in rows]})
        following = {"i": store.instance, "c": changes.commit, "e": events[-1].seq if events else cursor["e"],
                     "g": errors_generation, "s": changes.series_generation, "f": feed_cursor}
        return {"agent": self.agent(), "measured_at": now, "reset": reset, "next": _encode_cursor(following),
                "health": health, "snapshots": snapshots, "unencodable": unencodable, "series": series,
                "series_cut": changes.cut, "series_ids": ids,
                "events": [{"seq": e.seq, "time": e.time, "pipeline": e.pipeline, "collector": e.collector,
                            "severity": e.severity, "message": e.message} for e in events],
                "errors": errors, "feeds": feeds}


def alert_json(alert: Alert) -> dict[str, object]:
    return {"fingerprint": alert.fingerprint, "rule": alert.rule, "state": alert.state, "severity": alert.severity,
            "labels": dict(alert.labels), "summary": alert.summary, "description": alert.description,
            "value": to_json(alert.value), "active_since": alert.active_since, "fired_at": alert.fired_at,
            "resolved_at": alert.resolved_at, "reason": alert.reason, "silenced_by": alert.silenced_by}


def _encode_cursor(cursor: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(cursor, separators=(",", ":")).encode()).decode().rstrip("=")


def _state_cursor(text: str) -> dict:
    """A cursor /api/v1/state gave (checked field by field: it comes from the caller)."""
    bad = ApiError(HTTPStatus.BAD_REQUEST, "cursor: not a cursor an earlier /api/v1/state answer gave (`next`)",
                   "cursor")
    try:
        cursor = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error, RecursionError):  # (a cursor of nested brackets exhausts the decoder)
        raise bad from None
    whole = lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= 0  # noqa: E731
    if not (isinstance(cursor, dict) and set(cursor) == {"i", "c", "e", "g", "s", "f"} and isinstance(cursor["i"], str)
            and whole(cursor["c"]) and whole(cursor["e"]) and whole(cursor["g"]) and whole(cursor["s"])
            and isinstance(cursor["f"], list)
            and all(isinstance(f, list) and len(f) == 3 and isinstance(f[0], str) and isinstance(f[1], str)
                    and whole(f[2]) for f in cursor["f"])):
        raise bad
    cursor["f"] = [tuple(f) for f in cursor["f"]]
    return cursor


def parse_query(query: str) -> dict[str, list[str]]:
    """name -> values, strictly: a bad escape, non-UTF-8, an overlong name or value is a 400 naming the parameter."""
    params: dict[str, list[str]] = {}
    for pair in query.split("&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition("=")
        key = _decode(raw_key, _shown(raw_key))
        if len(key) > MAX_NAME:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"{_shown(key)}: unknown parameter (a name has at most {MAX_NAME} "
                                                   f"characters, got {len(key):,})", _shown(key))
        value = _decode(raw_value, key)
        limit = MAX_STATE_CURSOR if key == "cursor" else MAX_VALUE
        if len(value) > limit:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"{key}: at most {limit:,} characters, got {len(value):,}", key)
        params.setdefault(key, []).append(value)
    return params


def _decode(text: str, parameter: str) -> str:
    if not text.isascii():  # http.server decodes the request line as Latin-1: raw bytes >= 0x80 arrive as such
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{parameter}: characters outside ASCII must be percent-encoded",
                       parameter)
    if _BAD_ESCAPE.search(text):
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{parameter}: bad percent-encoding ('%' must be followed by two hex "
                                               f"digits)", parameter)
    try:
        return unquote_to_bytes(text.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{parameter}: percent-encoded bytes are not UTF-8", parameter) from None


def _shown(value: str, width: int = 60) -> str:
    """A caller's value as quoted back in an error: cut, so an answer never echoes a 60 kB name."""
    return value if len(value) <= width else value[:width] + "..."


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()  # str.isdigit alone takes '²', which int() refuses


def _pipeline(params: dict[str, list[str]]) -> str | None:
    if "pipeline" not in params:
        return None
    name = _one(params, "pipeline")
    if len(name) > MAX_NAME:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"pipeline: a pipeline's name has at most {MAX_NAME} characters, "
                                               f"got {len(name):,}", "pipeline")
    return name


def _only(params: dict[str, list[str]], allowed: tuple[str, ...]) -> None:
    for key in params:
        if key not in allowed:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"{_shown(key)}: unknown parameter"
                                                   + (f" (this endpoint takes {', '.join(allowed)})" if allowed
                                                      else " (this endpoint takes none)"), _shown(key))


def _one(params: dict[str, list[str]], key: str) -> str:
    values = params[key]
    if len(values) != 1:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{key}: given {len(values)} times, takes one value", key)
    return values[0]


def _whole(params: dict[str, list[str]], key: str, default: int) -> int:
    if key not in params:
        return default
    value = _one(params, key)
    if not _digits(value) or len(value) > MAX_DIGITS:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"{key}: must be a whole number >= 0 in ASCII digits, at most "
                                               f"{MAX_DIGITS} of them, got {_shown(value)!r}", key)
    return int(value)

"""Schema registry health: reachability, latency, inventory, compatibility and mode, errors.

Speaks the Confluent-compatible REST API (Confluent, Karapace, Redpanda, Apicurio under its
`/apis/ccompat/v7` prefix). Every cycle: GET / (liveness), GET /subjects (live and soft-deleted),
GET /config and GET /mode, with the latency of the first two. Each subject's details (versions, latest schema, its own
compatibility and mode) cost four requests, so they are read for new subjects at once (up to 100 a cycle)
and otherwise refreshed once per `inventory_refresh_seconds`, a slice of the subjects each cycle,
with at most `max_concurrent_requests` in flight: the load stays flat however many subjects there are.
Karapace's /_health is read when the registry has one (asked once; a 404 means it has none).

Every failed request (what schema_registry_errors_total counts) is an occurrence in the store's error
registry: a warning when the cycle went on without it (a subject's details), while the failure that
ends a cycle is left to the supervisor, which records every failed run, so none is counted twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import time
from collections import Counter
from typing import Any
from urllib.parse import quote

import httpx

from collectors.http import TRANSPORT_FAILURES, HttpSourceError, build_client, checked, fetch_json
from monitoring.config import SchemaRegistrySource
from monitoring.cycle import Appended, CycleEvent, CycleResult, Point, SourceFailure
from monitoring.health import describe
from monitoring.metrics import COMPATIBILITY_LEVELS, REGISTRY_MODES
from monitoring.models.schema_registry import KarapaceHealth, RegistrySnapshot, Subject
from monitoring.runtime import Collector
from monitoring.sources import SCHEMA_REGISTRY, collector_name
from monitoring.store import CycleWriter

_ACCEPT = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; q=0.9, application/json; q=0.5"
_RISKY_MODES = {"READONLY": "no new schemas can be registered", "READONLY_OVERRIDE": "no new schemas can be registered",
                "IMPORT": "schemas are being imported with fixed ids; producers cannot register"}
_NEW_SUBJECTS_PER_CYCLE = 100


class RegistryError(HttpSourceError):
    """A request that got no usable answer, with what the error counter labels it by."""

    @property
    def http_status(self) -> str:
        """The HTTP status, or the category when no answer came (timeout, connection_refused, tls, connection)."""
        return self.category if self.status is None else str(self.status)

    @property
    def error_code(self) -> str:
        return self.code


class SchemaRegistryCollector(Collector):
    def __init__(self, pipeline: str, config: SchemaRegistrySource, distinct_name: bool = False) -> None:
        # A request may take timeout_seconds; a cycle of many (subject reads) gets four times that.
        super().__init__(pipeline, config.base_url, config.interval_seconds, config.timeout_seconds * 4)
        self.name = collector_name(SCHEMA_REGISTRY, config.registry_label if distinct_name else None)
        self.config = config
        self.registry = config.registry_label
        self._client: httpx.AsyncClient | None = None
        self._limit = asyncio.Semaphore(config.max_concurrent_requests)
        self._requests = 0
        self._requests_total = 0
        self._errors: Counter[tuple[str, str]] = Counter()
        """(http_status, error_code) -> failed requests since start."""
        self._cycle_failures: list[tuple[RegistryError, float]] = []
        """This cycle's failed requests and when they failed, for the store's error registry."""
        self._subjects: dict[str, Subject] = {}
        self._deleted: tuple[str, ...] | None = None
        self._cursor = 0
        """Where the rolling refresh of subject details goes on next cycle (index in name order)."""
        self._has_health_endpoint: bool | None = None
        self._compatibility: str | None = None
        self._mode: str | None = None
        self._first = True

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def fetch(self) -> CycleResult:
        self._requests = 0
        self._cycle_failures = []
        snapshot, changes = await self._collect()
        failures = self._failures()
        return CycleResult(
            measured_at=snapshot.measured_at, requests=self._requests, snapshot=snapshot, failures=failures,
            write=functools.partial(self._write_cycle, snapshot),
            events=tuple(CycleEvent(severity, f"{self.registry}: {message}") for severity, message in changes))

    def on_failure(self, exc: BaseException) -> CycleResult:
        # Availability is what matters while a registry is down: `up` says 0 and the error counters keep
        # counting, appended to their series (no cycle: the collector's other series are kept as they were).
        # The failure that ended the cycle is the supervisor's to record, so it is not counted twice.
        now = time.time()
        points: dict[str, list[Point]] = {"schema_registry_up": [(self._labels(), now, 0.0)]}
        self._write_counters(lambda name, labels, value: points.setdefault(name, []).append(
            ((self.pipeline, *labels), now, value)))
        return CycleResult(measured_at=now, requests=self._requests, failures=self._failures(ending=exc),
                           appended=tuple(Appended(name, rows) for name, rows in points.items()))

    def _write_cycle(self, snapshot: RegistrySnapshot, cycle: CycleWriter) -> None:
        cycle.set("schema_registry_up", (self.registry,), 1.0)
        self._write_counters(lambda name, labels, value: cycle.set(name, labels, value))
        self._write(cycle, snapshot)

    # -- one cycle -------------------------------------------------------------------------------

    async def _collect(self) -> tuple[RegistrySnapshot, list[tuple[str, str]]]:
        client = self._connect()
        latency: dict[str, float] = {}
        _, latency["/"] = await self._get(client, "/")
        names, latency["/subjects"] = await self._get(client, "/subjects")
        listed = sorted(_strings(names, "/subjects"))
        global_compatibility = await self._global_setting(client, "/config", "compatibilityLevel", COMPATIBILITY_LEVELS)
        global_mode = await self._global_setting(client, "/mode", "mode", REGISTRY_MODES)
        karapace = await self._karapace_health(client)

        detailed = listed[: self.config.max_subjects]
        previous = self._subjects
        due = self._due(detailed, previous)
        fresh = await self._read_subjects(client, due, global_compatibility, global_mode)
        subjects: dict[str, Subject] = {}
        for name in detailed:
            subject = fresh.get(name) or previous.get(name) or Subject(name)
            if name not in fresh and subject.read_at is not None:
                # Inherited settings follow a global change at once, without re-reading the subject.
                subject = dataclasses.replace(
                    subject,
                    compatibility=subject.compatibility if subject.compatibility_own else global_compatibility,
                    mode=subject.mode if subject.mode_own else global_mode)
            if name not in fresh or fresh[name] is not None:
                subjects[name] = subject
        # Gone from the list, or deleted between the list and the read of its details.
        vanished = (set(previous) - set(listed)) | {name for name, read in fresh.items()
                                                    if read is None and name in previous}
        self._deleted = await self._soft_deleted(client, set(listed))

        now = time.time()
        changes = [] if self._first else self._changes(previous, subjects, vanished, global_compatibility, global_mode)
        self._first = False
        self._subjects, self._compatibility, self._mode = subjects, global_compatibility, global_mode
        return RegistrySnapshot(
            registry=self.registry, url=self.config.base_url, latency=latency, compatibility=global_compatibility,
            mode=global_mode, subject_count=len(listed), subjects=tuple(subjects.values()),
            deleted_subjects=self._deleted, karapace=karapace,
            warnings=tuple(self._warnings(global_compatibility, global_mode, subjects, len(listed), karapace)),
            measured_at=now,
        ), changes

    def _due(self, detailed: list[str], previous: dict[str, Subject]) -> list[str]:
        """Subjects to read this cycle: new ones first, then the next slice of the rolling refresh.

        A slice is the share of all subjects that keeps every one refreshed once per inventory
        period; new subjects may use up to `_NEW_SUBJECTS_PER_CYCLE` (or the slice, if larger), so
        a registry with thousands of subjects is read in over one period instead of in one burst.
        """
        share = math.ceil(len(detailed) * self.config.interval_seconds / self.config.inventory_refresh_seconds)
        budget = max(share, _NEW_SUBJECTS_PER_CYCLE)
        new = [name for name in detailed if name not in previous or previous[name].read_at is None][:budget]
        known = [name for name in detailed if name in previous and previous[name].read_at is not None]
        refresh = min(share, budget - len(new), len(known))
        if refresh <= 0:
            return new
        start = self._cursor % len(known)
        self._cursor = start + refresh
        return new + (known[start:] + known[:start])[:refresh]

    async def _read_subjects(self, client: httpx.AsyncClient, names: list[str], global_compatibility: str | None,
                             global_mode: str | None) -> dict[str, Subject | None]:
        """Details of each subject; None for a subject deleted since the list was read."""
        results = await asyncio.gather(
            *(self._read_subject(client, name, global_compatibility, global_mode) for name in names),
            return_exceptions=True)
        out: dict[str, Subject | None] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, RegistryError):
                if result.category in TRANSPORT_FAILURES:
                    raise result  # the registry itself went away mid-cycle
                old = self._subjects.get(name, Subject(name))
                out[name] = dataclasses.replace(old, error=str(result))
            elif isinstance(result, BaseException):
                raise result
            else:
                out[name] = result
        return out

    async def _read_subject(self, client: httpx.AsyncClient, name: str, global_compatibility: str | None,
                            global_mode: str | None) -> Subject | None:
        path = "/subjects/" + quote(name, safe="")
        versions = await self._get_optional(client, path + "/versions")
        if versions is None:
            return None  # deleted between the list and this read
        latest = await self._get_optional(client, path + "/versions/latest")
        if latest is None:
            return None
        own_compatibility = await self._get_optional(client, "/config/" + quote(name, safe=""))
        own_mode = await self._get_optional(client, "/mode/" + quote(name, safe=""))
        compatibility = _setting(own_compatibility, "compatibilityLevel", COMPATIBILITY_LEVELS)
        mode = _setting(own_mode, "mode", REGISTRY_MODES)
        return Subject(
            name=name,
            versions=tuple(sorted(int(v) for v in versions)) if isinstance(versions, list) else None,
            latest_id=_int(latest.get("id")) if isinstance(latest, dict) else None,
            schema_type=(latest.get("schemaType") or "AVRO") if isinstance(latest, dict) else None,
            compatibility=compatibility or global_compatibility, compatibility_own=compatibility is not None,
            mode=mode or global_mode, mode_own=mode is not None, read_at=time.time(),
        )

    async def _global_setting(self, client: httpx.AsyncClient, path: str, key: str,
                              known: tuple[str, ...]) -> str | None:
        body = await self._get_optional(client, path)  # 404: this registry does not have the setting
        return _setting(body, key, known)

    async def _soft_deleted(self, client: httpx.AsyncClient, listed: set[str]) -> tuple[str, ...] | None:
        try:
            names = await self._get_optional(client, "/subjects", params={"deleted": "true"})
        except RegistryError as exc:
            if exc.category in TRANSPORT_FAILURES:
                raise
            return None  # a registry without soft deletes: unknown, not zero
        if names is None:
            return None
        return tuple(sorted(set(_strings(names, "/subjects?deleted=true")) - listed))

    async def _karapace_health(self, client: httpx.AsyncClient) -> KarapaceHealth | None:
        if self._has_health_endpoint is False:
            return None
        try:
            body = await self._get_optional(client, "/_health", unhealthy_ok=True)
        except RegistryError as exc:
            if exc.category in TRANSPORT_FAILURES:
                raise
            self._has_health_endpoint = False
            return None
        if not isinstance(body, dict) or "healthy" not in body and "status" not in body:
            self._has_health_endpoint = False  # 404, or some other service's /_health
            return None
        self._has_health_endpoint = True
        status = body.get("status") if isinstance(body.get("status"), dict) else {}

        def field(name: str) -> Any:  # Karapace prefixes each key with schema_registry_
            return status.get(f"schema_registry_{name}", status.get(name))

        current, highest = _int(field("reader_current_offset")), _int(field("reader_highest_offset"))
        ready, primary = field("ready"), field("is_primary")
        return KarapaceHealth(
            healthy=bool(body.get("healthy")), ready=ready if isinstance(ready, bool) else None,
            reader_lag=max(0, highest - current) if current is not None and highest is not None else None,
            is_primary=primary if isinstance(primary, bool) else None,
        )

    # -- requests --------------------------------------------------------------------------------

    def _connect(self) -> httpx.AsyncClient:
        if self._client is None:
            config = self.config
            self._client = build_client(config.base_url, config.basic_auth, config.tls, config.timeout_seconds,
                                        config.max_concurrent_requests, {"Accept": _ACCEPT})
        return self._client

    async def _get(self, client: httpx.AsyncClient, path: str, params: dict[str, str] | None = None,
                   optional: bool = False, unhealthy_ok: bool = False) -> tuple[Any, float]:
        """The decoded JSON body of a 2xx answer and the seconds it took, or RegistryError.

        optional: a 404 (no such subject, setting or endpoint) answers None and is no error.
        unhealthy_ok: a 503 with a JSON body is an answer too (Karapace's /_health when not ready).
        """
        async with self._limit:
            self._requests += 1
            self._requests_total += 1
            started = time.monotonic()
            try:
                answer = await fetch_json(client, path, params=params, error=RegistryError, what="the registry")
            except RegistryError as exc:
                raise self._failed(exc) from None
            elapsed = time.monotonic() - started
        if optional and answer.status == 404:
            return None, elapsed
        if unhealthy_ok and answer.status == 503 and answer.body is not None:
            return answer.body, elapsed
        try:
            return checked(answer, path, error=RegistryError, detail=_registry_error), elapsed
        except RegistryError as exc:
            raise self._failed(exc) from None

    async def _get_optional(self, client: httpx.AsyncClient, path: str, params: dict[str, str] | None = None,
                            unhealthy_ok: bool = False) -> Any:
        return (await self._get(client, path, params, optional=True, unhealthy_ok=unhealthy_ok))[0]

    def _failed(self, error: RegistryError) -> RegistryError:
        self._errors[(error.http_status, error.error_code)] += 1
        self._cycle_failures.append((error, time.time()))
        return error

    def _failures(self, ending: BaseException | None = None) -> tuple[SourceFailure, ...]:
        """This cycle's failed requests for the error registry, but the one that ended the cycle."""
        failures = tuple(SourceFailure(error.category, describe(error), t=t)
                         for error, t in self._cycle_failures if error is not ending)
        self._cycle_failures = []
        return failures

    # -- results ---------------------------------------------------------------------------------

    def _labels(self) -> tuple[str, ...]:
        return (self.pipeline, self.registry)

    def _write_counters(self, write) -> None:
        write("schema_registry_requests_total", (self.registry,), float(self._requests_total))
        for (http_status, error_code), count in sorted(self._errors.items()):
            write("schema_registry_errors_total", (self.registry, http_status, error_code), float(count))

    def _write(self, cycle, snapshot: RegistrySnapshot) -> None:
        registry = (self.registry,)
        for endpoint, seconds in snapshot.latency.items():
            cycle.set("schema_registry_request_duration_seconds", (*registry, endpoint), seconds)
        cycle.set("schema_registry_subjects", registry, snapshot.subject_count)
        if snapshot.deleted_subjects is not None:
            cycle.set("schema_registry_deleted_subjects", registry, len(snapshot.deleted_subjects))
        read = [s for s in snapshot.subjects if s.versions is not None]
        if read:
            cycle.set("schema_registry_schema_versions", registry, sum(len(s.versions) for s in read))
        ids = [s.latest_id for s in read if s.latest_id is not None]
        if ids:
            cycle.set("schema_registry_max_schema_id", registry, max(ids))
        if snapshot.compatibility is not None:
            cycle.set("schema_registry_compatibility", registry, _code(snapshot.compatibility, COMPATIBILITY_LEVELS))
        if snapshot.mode is not None:
            cycle.set("schema_registry_mode", registry, _code(snapshot.mode, REGISTRY_MODES))
        for subject in read:
            labels = (*registry, subject.name)
            cycle.set("schema_registry_subject_versions", labels, len(subject.versions))
            cycle.set("schema_registry_subject_latest_version", labels, subject.latest_version)
            cycle.set("schema_registry_subject_latest_schema_id", labels, subject.latest_id)
            if subject.compatibility is not None:
                cycle.set("schema_registry_subject_compatibility", labels,
                          _code(subject.compatibility, COMPATIBILITY_LEVELS))
            if subject.mode is not None:
                cycle.set("schema_registry_subject_mode", labels, _code(subject.mode, REGISTRY_MODES))
        if snapshot.karapace is not None:
            if snapshot.karapace.ready is not None:
                cycle.set("schema_registry_ready", registry, float(snapshot.karapace.ready))
            if snapshot.karapace.reader_lag is not None:
                cycle.set("schema_registry_reader_lag", registry, snapshot.karapace.reader_lag)

    def _changes(self, before: dict[str, Subject], after: dict[str, Subject], vanished: set[str],
                 compatibility: str | None, mode: str | None) -> list[tuple[str, str]]:
        """Changes since the last cycle become events in the store."""
        events: list[tuple[str, str]] = []
        if compatibility != self._compatibility:
            events.append(("warning" if compatibility == "NONE" else "info",
                           f"global compatibility changed from {self._compatibility or 'unknown'} to "
                           f"{compatibility or 'unknown'}"))
        if mode != self._mode:
            events.append(("warning" if mode in _RISKY_MODES else "info",
                           f"global mode changed from {self._mode or 'unknown'} to {mode or 'unknown'}"))
        for name, subject in after.items():
            old = before.get(name)
            if subject.versions is None:
                continue
            if old is None or old.versions is None:
                if old is None:
                    events.append(("info", f"subject {name} registered: version {subject.latest_version} "
                                           f"(schema id {subject.latest_id}, {subject.schema_type})"))
                continue
            for version in sorted(set(subject.versions) - set(old.versions)):
                latest = f" (schema id {subject.latest_id})" if version == subject.latest_version else ""
                events.append(("info", f"subject {name}: version {version} registered{latest}"))
            for version in sorted(set(old.versions) - set(subject.versions)):
                events.append(("info", f"subject {name}: version {version} deleted"))
            if subject.compatibility_own and old.compatibility_own and subject.compatibility != old.compatibility \
                    or subject.compatibility_own != old.compatibility_own:
                events.append(("warning" if subject.compatibility == "NONE" else "info",
                               f"subject {name}: compatibility changed from {old.compatibility or 'unknown'} to "
                               f"{subject.compatibility or 'unknown'}"))
            if subject.mode_own != old.mode_own or subject.mode_own and subject.mode != old.mode:
                events.append(("warning" if subject.mode in _RISKY_MODES else "info",
                               f"subject {name}: mode changed from {old.mode or 'unknown'} "
                               f"to {subject.mode or 'unknown'}"))
        soft = set(self._deleted or ())
        for name in sorted(vanished):
            how = "soft-deleted: still listed with ?deleted=true" if name in soft else "no longer listed"
            events.append(("info", f"subject {name} deleted ({how})"))
        return events

    def _warnings(self, compatibility: str | None, mode: str | None, subjects: dict[str, Subject], listed: int,
                  karapace: KarapaceHealth | None) -> list[str]:
        warnings = []
        if mode in _RISKY_MODES:
            warnings.append(f"registry is in {mode} mode: {_RISKY_MODES[mode]}")
        if compatibility == "NONE":
            warnings.append("global compatibility is NONE: any schema change is accepted, including breaking ones")
        for label, matching in (
            ("in READONLY, READONLY_OVERRIDE or IMPORT mode", [s.name for s in subjects.values()
                                                              if s.mode_own and s.mode in _RISKY_MODES]),
            ("with compatibility NONE", [s.name for s in subjects.values()
                                         if s.compatibility_own and s.compatibility == "NONE"]),
        ):
            if matching:
                shown = ", ".join(matching[:5]) + (f" and {len(matching) - 5} more" if len(matching) > 5 else "")
                warnings.append(f"{len(matching)} subject(s) {label}: {shown}")
        if listed > self.config.max_subjects:
            warnings.append(f"{listed:,} subjects: only the first {self.config.max_subjects:,} (by name) are read "
                            f"in detail (max_subjects)")
        if karapace is not None and (not karapace.healthy or karapace.ready is False):
            warnings.append("Karapace reports itself " + ("not ready" if karapace.ready is False else "unhealthy"))
        return warnings


def _registry_error(body: Any) -> tuple[str, str | None]:
    """The registry's error_code and message from an error answer's body ({"error_code": 40401, "message": ...})."""
    if not isinstance(body, dict):
        return "", None
    message = body.get("message")
    return str(body.get("error_code", "")), str(message)[:200] if message else None


def _strings(body: Any, what: str) -> list[str]:
    if not isinstance(body, list) or not all(isinstance(item, str) for item in body):
        raise RegistryError("protocol", f"GET {what}: expected a list of subject names", 200)
    return body


def _setting(body: Any, key: str, known: tuple[str, ...]) -> str | None:
    if not isinstance(body, dict):
        return None
    value = body.get(key)
    if isinstance(value, str) and value.upper() in known:
        return value.upper()
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _code(value: str, known: tuple[str, ...]) -> int:
    return known.index(value) if value in known else 0

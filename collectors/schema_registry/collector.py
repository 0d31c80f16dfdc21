"""The schema-registry cycle: what is read every cycle, which subjects' details are read (derive.py's rolling
refresh), and what is written while the registry is down (`up 0` and the error counters). Requests are in
client.py, answers read in decode.py, series written in write.py; docs/schema-registry-collector.md describes the
cycle."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from urllib.parse import quote

from collectors.http import TRANSPORT_FAILURES
from collectors.schema_registry import decode, derive
from collectors.schema_registry.client import RegistryError, RegistryRequests
from collectors.schema_registry.write import write_counters, write_snapshot
from monitoring.config import SchemaRegistrySource
from monitoring.cycle import Appended, CycleEvent, CycleResult, Point
from monitoring.metrics import COMPATIBILITY_LEVELS, REGISTRY_MODES
from monitoring.models.schema_registry import KarapaceHealth, RegistrySnapshot, Subject
from monitoring.runtime import Collector
from monitoring.sources import SCHEMA_REGISTRY, collector_name
from monitoring.store import CycleWriter


class SchemaRegistryCollector(Collector):
    def __init__(self, pipeline: str, config: SchemaRegistrySource, distinct_name: bool = False) -> None:
        # A request may take timeout_seconds; a cycle of many (subject reads) gets four times that.
        super().__init__(pipeline, config.base_url, config.interval_seconds, config.timeout_seconds * 4)
        self.name = collector_name(SCHEMA_REGISTRY, config.registry_label if distinct_name else None)
        self.config = config
        self.registry = config.registry_label
        self._api = RegistryRequests(config)
        self._subjects: dict[str, Subject] = {}
        self._deleted: tuple[str, ...] | None = None
        self._cursor = 0
        """Where the rolling refresh of subject details goes on next cycle (index in name order)."""
        self._has_health_endpoint: bool | None = None
        self._compatibility: str | None = None
        self._mode: str | None = None
        self._first = True

    async def close(self) -> None:
        await self._api.close()

    async def fetch(self) -> CycleResult:
        self._api.next_cycle()
        snapshot, changes = await self._collect()
        return CycleResult(
            measured_at=snapshot.measured_at, requests=self._api.requests, snapshot=snapshot,
            failures=self._api.failures(), write=functools.partial(self._write_cycle, snapshot),
            events=tuple(CycleEvent(severity, f"{self.registry}: {message}") for severity, message in changes))

    def on_failure(self, exc: BaseException) -> CycleResult:
        # Availability is what matters while a registry is down: `up` says 0 and the error counters keep
        # counting, appended to their series (no cycle: the collector's other series are kept as they were).
        # The failure that ended the cycle is the supervisor's to record, so it is not counted twice.
        now = time.time()
        points: dict[str, list[Point]] = {"schema_registry_up": [((self.pipeline, self.registry), now, 0.0)]}
        write_counters(lambda name, labels, value: points.setdefault(name, []).append(
            ((self.pipeline, *labels), now, value)), self.registry, self._api.requests_total, self._api.errors)
        return CycleResult(measured_at=now, requests=self._api.requests, failures=self._api.failures(ending=exc),
                           appended=tuple(Appended(name, rows) for name, rows in points.items()))

    def _write_cycle(self, snapshot: RegistrySnapshot, cycle: CycleWriter) -> None:
        cycle.set("schema_registry_up", (self.registry,), 1.0)
        write_counters(cycle.set, self.registry, self._api.requests_total, self._api.errors)
        write_snapshot(cycle, snapshot)

    async def _collect(self) -> tuple[RegistrySnapshot, list[tuple[str, str]]]:
        api = self._api
        latency: dict[str, float] = {}
        _, latency["/"] = await api.get("/")
        names, latency["/subjects"] = await api.get("/subjects")
        listed = sorted(decode.subject_names(names, "/subjects"))
        global_compatibility = decode.setting(await api.get_optional("/config"), "compatibilityLevel",
                                              COMPATIBILITY_LEVELS)  # a 404: the registry has no such setting
        global_mode = decode.setting(await api.get_optional("/mode"), "mode", REGISTRY_MODES)
        karapace = await self._karapace_health()

        detailed = listed[: self.config.max_subjects]
        previous = self._subjects
        fresh = await self._read_subjects(self._due(detailed, previous), global_compatibility, global_mode)
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
        self._deleted = await self._soft_deleted(set(listed))

        now = time.time()
        changes = [] if self._first else derive.changes(
            previous, subjects, vanished, set(self._deleted or ()), self._compatibility, global_compatibility,
            self._mode, global_mode)
        self._first = False
        self._subjects, self._compatibility, self._mode = subjects, global_compatibility, global_mode
        return RegistrySnapshot(
            registry=self.registry, url=self.config.base_url, latency=latency, compatibility=global_compatibility,
            mode=global_mode, subject_count=len(listed), subjects=tuple(subjects.values()),
            deleted_subjects=self._deleted, karapace=karapace,
            warnings=tuple(derive.warnings(global_compatibility, global_mode, subjects, len(listed),
                                           self.config.max_subjects, karapace)),
            measured_at=now,
        ), changes

    def _due(self, detailed: list[str], previous: dict[str, Subject]) -> list[str]:
        """Subjects whose details are read this cycle (derive.due_subjects: new ones, then the rolling refresh)."""
        due, self._cursor = derive.due_subjects(detailed, previous, self._cursor, self.config.interval_seconds,
                                                self.config.inventory_refresh_seconds)
        return due

    async def _read_subjects(self, names: list[str], global_compatibility: str | None,
                             global_mode: str | None) -> dict[str, Subject | None]:
        """Details of each subject; None for a subject deleted since the list was read."""
        results = await asyncio.gather(
            *(self._read_subject(name, global_compatibility, global_mode) for name in names),
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

    async def _read_subject(self, name: str, global_compatibility: str | None,
                            global_mode: str | None) -> Subject | None:
        api = self._api
        path = "/subjects/" + quote(name, safe="")
        versions = await api.get_optional(path + "/versions")
        if versions is None:
            return None  # deleted between the list and this read
        latest = await api.get_optional(path + "/versions/latest")
        if latest is None:
            return None
        own_compatibility = await api.get_optional("/config/" + quote(name, safe=""))
        own_mode = await api.get_optional("/mode/" + quote(name, safe=""))
        return decode.subject(name, versions, latest,
                              decode.setting(own_compatibility, "compatibilityLevel", COMPATIBILITY_LEVELS),
                              decode.setting(own_mode, "mode", REGISTRY_MODES), global_compatibility, global_mode)

    async def _soft_deleted(self, listed: set[str]) -> tuple[str, ...] | None:
        try:
            names = await self._api.get_optional("/subjects", params={"deleted": "true"})
        except RegistryError as exc:
            if exc.category in TRANSPORT_FAILURES:
                raise
            return None  # a registry without soft deletes: unknown, not zero
        if names is None:
            return None
        return tuple(sorted(set(decode.subject_names(names, "/subjects?deleted=true")) - listed))

    async def _karapace_health(self) -> KarapaceHealth | None:
        """Karapace's /_health, when the registry has one (asked once: a 404 means it has none)."""
        if self._has_health_endpoint is False:
            return None
        try:
            body = await self._api.get_optional("/_health", unhealthy_ok=True)
        except RegistryError as exc:
            if exc.category in TRANSPORT_FAILURES:
                raise
            self._has_health_endpoint = False
            return None
        health = decode.karapace_health(body)
        self._has_health_endpoint = health is not None
        return health

"""The series a registry cycle writes (docs/metrics.md lists every series). The request and error counters are
written by a cycle, and appended on their own while the registry is down, so both go through one writer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from monitoring.metrics import COMPATIBILITY_LEVELS, REGISTRY_MODES
from monitoring.models.schema_registry import RegistrySnapshot
from monitoring.store import CycleWriter

Write = Callable[[str, tuple[str, ...], float], None]
"""(metric, labels without the pipeline, value)."""


def write_counters(write: Write, registry: str, requests_total: int, errors: Counter[tuple[str, str]]) -> None:
    write("schema_registry_requests_total", (registry,), float(requests_total))
    for (http_status, error_code), count in sorted(errors.items()):
        write("schema_registry_errors_total", (registry, http_status, error_code), float(count))


def write_snapshot(cycle: CycleWriter, snapshot: RegistrySnapshot) -> None:
    registry = (snapshot.registry,)
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


def _code(value: str, known: tuple[str, ...]) -> int:
    return known.index(value) if value in known else 0

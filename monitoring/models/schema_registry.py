"""The snapshot the schema-registry collector publishes: what one registry looks like right now."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Subject:
    name: str
    versions: tuple[int, ...] | None = None
    """Registered (not deleted) version numbers; None until the subject has been read."""
    latest_id: int | None = None
    schema_type: str | None = None
    """AVRO, JSON or PROTOBUF (the API leaves schemaType out for AVRO)."""
    compatibility: str | None = None
    """Level in force for the subject: its own, else the global one; None while unknown."""
    compatibility_own: bool = False
    """True when the subject sets its own level instead of inheriting the global one."""
    mode: str | None = None
    mode_own: bool = False
    read_at: float | None = None
    """When its details were last read (they are refreshed once per inventory period)."""
    error: str | None = None
    """Why the last read of its details failed; the values shown are from the read before."""

    @property
    def latest_version(self) -> int | None:
        return max(self.versions) if self.versions else None


@dataclass(frozen=True, slots=True)
class KarapaceHealth:
    """Karapace's GET /_health: readiness and how far its reader trails the schemas topic."""

    healthy: bool
    ready: bool | None
    reader_lag: int | None
    is_primary: bool | None


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    registry: str
    url: str
    latency: dict[str, float]
    """Seconds taken by this cycle's GET / and GET /subjects."""
    compatibility: str | None
    """Global compatibility level; None when the registry does not say."""
    mode: str | None
    subject_count: int
    subjects: tuple[Subject, ...]
    """In name order, at most max_subjects of them; subjects not read yet have only a name."""
    deleted_subjects: tuple[str, ...] | None
    """Soft-deleted subjects; None until the registry has been asked."""
    karapace: KarapaceHealth | None
    warnings: tuple[str, ...]
    measured_at: float

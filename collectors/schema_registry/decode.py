"""The registry's answers read into the model (monitoring.models.schema_registry): subject lists, settings that a
registry may not have (None, not a default), a subject's details, and Karapace's /_health."""

from __future__ import annotations

import time
from typing import Any

from collectors.schema_registry.client import RegistryError
from monitoring.models.schema_registry import KarapaceHealth, Subject


def subject_names(body: Any, what: str) -> list[str]:
    if not isinstance(body, list) or not all(isinstance(item, str) for item in body):
        raise RegistryError("protocol", f"GET {what}: expected a list of subject names", 200)
    return body


def setting(body: Any, key: str, known: tuple[str, ...]) -> str | None:
    """A compatibility level or mode from a /config or /mode answer; None when absent or not one of `known`."""
    if not isinstance(body, dict):
        return None
    value = body.get(key)
    if isinstance(value, str) and value.upper() in known:
        return value.upper()
    return None


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def subject(name: str, versions: Any, latest: Any, compatibility: str | None, mode: str | None,
            global_compatibility: str | None, global_mode: str | None) -> Subject:
    """A subject from its versions, its latest schema and its own settings (None: it inherits the global one)."""
    return Subject(
        name=name,
        versions=tuple(sorted(int(v) for v in versions)) if isinstance(versions, list) else None,
        latest_id=integer(latest.get("id")) if isinstance(latest, dict) else None,
        schema_type=(latest.get("schemaType") or "AVRO") if isinstance(latest, dict) else None,
        compatibility=compatibility or global_compatibility, compatibility_own=compatibility is not None,
        mode=mode or global_mode, mode_own=mode is not None, read_at=time.time(),
    )


def karapace_health(body: Any) -> KarapaceHealth | None:
    """Karapace's /_health; None when the answer is not Karapace's (a 404, or some other service's /_health)."""
    if not isinstance(body, dict) or "healthy" not in body and "status" not in body:
        return None
    status = body.get("status") if isinstance(body.get("status"), dict) else {}

    def field(name: str) -> Any:  # Karapace prefixes each key with schema_registry_
        return status.get(f"schema_registry_{name}", status.get(name))

    current, highest = integer(field("reader_current_offset")), integer(field("reader_highest_offset"))
    ready, primary = field("ready"), field("is_primary")
    return KarapaceHealth(
        healthy=bool(body.get("healthy")), ready=ready if isinstance(ready, bool) else None,
        reader_lag=max(0, highest - current) if current is not None and highest is not None else None,
        is_primary=primary if isinstance(primary, bool) else None,
    )

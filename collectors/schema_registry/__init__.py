"""Schema registries (Confluent-compatible API): availability, subjects, compatibility and modes."""

from collectors.schema_registry import hints  # noqa: F401  (registers the source's error hints with the core)

"""Schema registries (Confluent-compatible API): availability, subjects, compatibility and modes."""

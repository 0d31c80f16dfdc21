"""Profiling and drift from the tables ProfileMesh (baselinr) writes into PostgreSQL."""

from collectors.profiling import hints  # noqa: F401  (registers the source's error hints with the core)

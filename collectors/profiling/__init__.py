"""Profiling and drift from the tables ProfileMesh (baselinr) writes into PostgreSQL."""

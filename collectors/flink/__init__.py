"""Flink: cluster, taskmanagers, jobs, vertices, checkpoints and exceptions, from the REST API."""

from collectors.flink import hints  # noqa: F401  (registers the source's error hints with the core)

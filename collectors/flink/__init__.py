"""Flink: cluster, taskmanagers, jobs, vertices, checkpoints and exceptions, from the REST API."""

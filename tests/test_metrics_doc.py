"""docs/metrics.md is the catalogue's own rendering, and the catalogue follows Prometheus' naming conventions."""

from __future__ import annotations

import re

from monitoring.metrics import CATALOGUE, LABELS
from pipewatch import metrics_doc


def test_the_page_is_generated_from_the_catalogue():
    assert metrics_doc.PAGE.read_text(encoding="utf-8") == metrics_doc.render(), (
        "docs/metrics.md is out of date: run `.venv/bin/python -m pipewatch.metrics_doc`")


def test_every_label_is_documented_with_its_bound():
    used = {label for spec in CATALOGUE.values() for label in (*spec.labels, spec.code_label if spec.codes else "")}
    assert used - {""} - set(LABELS) == set()
    assert set(LABELS) - used - {"le"} == set()  # nothing documented that no metric has


def _flink_reporter_name(name: str) -> bool:
    """Flink's reporter names have capitals (numRestarts, Status_JVM_...) and keep Flink's units (ms, bytes): they
    are kept as Flink writes them, so Flink's dashboards work. pipewatch's own names are lower case."""
    return name.startswith("flink_") and (name != name.lower() or name in _FLINK_LOWER_CASE)


_FLINK_LOWER_CASE = {"flink_jobmanager_job_uptime", "flink_jobmanager_job_downtime"}
"""Flink reporter names that happen to have no capital (their unit is milliseconds, as in Flink)."""


def test_names_follow_prometheus_conventions():
    problems = []
    for spec in CATALOGUE.values():
        if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", spec.name):
            problems.append(f"{spec.name}: not a valid metric name")
        if (spec.type == "counter") != spec.name.endswith("_total"):
            problems.append(f"{spec.name}: counters, and only counters, end in _total")
        if _flink_reporter_name(spec.name):
            continue
        if spec.unit == "seconds" and not spec.name.endswith("_seconds"):
            problems.append(f"{spec.name}: a time in seconds ends in _seconds")
        if spec.unit == "bytes" and not spec.name.endswith("_bytes"):
            problems.append(f"{spec.name}: a size in bytes ends in _bytes")
        if spec.unit in ("milliseconds", "ms per second"):
            problems.append(f"{spec.name}: use base units (seconds)")
        if spec.type != "histogram" and re.search(r"_(bucket|count|sum)$", spec.name):
            problems.append(f"{spec.name}: _bucket, _count and _sum are the suffixes of histograms")
    assert problems == []

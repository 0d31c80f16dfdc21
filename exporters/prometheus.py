"""The store in the Prometheus text format (0.0.4), written straight from its newest points.

A scrape only reads memory; it never triggers collection. Series written by a collector that is
not UP right now (down, stale, or not yet started) are left out, so Prometheus sees them disappear
instead of flat-lining at a stale value; `pipewatch_collector_up` and
`pipewatch_collector_last_success_timestamp_seconds` say why (and `while_down` metrics, which
describe the source's availability, stay).

Why not prometheus_client's metric families: they build a Sample object and escape every label
value again on every scrape, about 25 µs a series. Here each series' text up to its value
(`name{labels} `) is kept between scrapes, so a scrape costs a dictionary lookup and a float's
repr per series. prometheus_client still renders the process, platform and GC metrics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, generate_latest

from monitoring.health import CollectorHealth, State
from monitoring.metrics import CATALOGUE, bucket_label
from monitoring.store import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_HEALTH_METRICS = (
    "pipewatch_collector_up", "pipewatch_collector_last_success_timestamp_seconds",
    "pipewatch_collector_run_duration_seconds", "pipewatch_collector_runs_total",
    "pipewatch_collector_errors_total", "pipewatch_collector_requests",
)


class Exposition:
    """Renders one store; keeps each series' sample prefix between scrapes (only for live series)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._prefixes: dict[tuple[str, tuple[str, ...]], str] = {}
        self._process = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._process)
        PlatformCollector(registry=self._process)
        GCCollector(registry=self._process)

    def render(self) -> bytes:
        now = time.time()
        health = self.store.health()
        fresh = {source for source, h in health.items() if h.effective_state(now) is State.UP}
        old_prefixes, prefixes = self._prefixes, {}
        samples: dict[str, list[str]] = {}
        histograms: dict[tuple[str, tuple[str, ...]], dict[str, float]] = {}
        for key, source, _t, value in self.store.latest_values():
            name = key[0]
            spec = CATALOGUE[name]
            if not spec.exported or value != value or (  # NaN: unknown
                    source not in fresh and source in health and not spec.while_down):
                continue
            if spec.type == "histogram":
                histograms.setdefault((name, key[1][:-1]), {})[key[1][-1]] = value
                continue
            prefix = old_prefixes.get(key)
            if prefix is None:
                prefix = _prefix(name, spec.labels, key[1])
            prefixes[key] = prefix
            lines = samples.get(name)
            if lines is None:
                lines = samples[name] = []
            lines.append(prefix + _number(value))
            if spec.codes and value.is_integer() and 0 <= value < len(spec.codes):
                code = spec.codes[int(value)]
                info_key = (name + "_info", (*key[1], code))
                prefix = old_prefixes.get(info_key)
                if prefix is None:
                    prefix = _prefix(info_key[0], (*spec.labels, spec.code_label), info_key[1])
                prefixes[info_key] = prefix
                samples.setdefault(info_key[0], []).append(prefix + "1.0")
        self._prefixes = prefixes  # series gone since the last scrape leave the cache with it
        out: list[str] = []
        for name, lines in samples.items():
            if name.endswith("_info") and name not in CATALOGUE:
                spec = CATALOGUE[name.removesuffix("_info")]
                out.append(_header(name, f"1 for the current {spec.code_label} of {spec.name}, by name.", "gauge"))
            else:
                out.append(_header(name, CATALOGUE[name].help, CATALOGUE[name].type))
            out.append("\n".join(lines))
            out.append("\n")
        out.extend(_histograms(histograms))
        out.extend(_health(health, now))
        return "".join(out).encode() + generate_latest(self._process)


def _header(name: str, help_text: str, metric_type: str) -> str:
    escaped = help_text.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {escaped}\n# TYPE {name} {metric_type}\n"


def _prefix(name: str, label_names: Iterable[str], label_values: Iterable[str]) -> str:
    pairs = ",".join(f'{label}="{_escape(value)}"' for label, value in zip(label_names, label_values, strict=True))
    return f"{name}{{{pairs}}} "


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    return repr(value)


def _histograms(parts: dict[tuple[str, tuple[str, ...]], dict[str, float]]) -> Iterable[str]:
    """Histograms from their store series: one per bucket ("le=<bound>", cumulative) and "sum"."""
    by_name: dict[str, list[tuple[tuple[str, ...], dict[str, float]]]] = {}
    for (name, labels), values in sorted(parts.items()):
        by_name.setdefault(name, []).append((labels, values))
    for name, members in by_name.items():
        spec = CATALOGUE[name]
        yield _header(name, spec.help, "histogram")
        for labels, values in members:
            count = values.get(bucket_label(math.inf))
            for bound in (*spec.buckets, math.inf):
                if (label := bucket_label(bound)) in values:
                    le = label.removeprefix("le=")
                    yield _prefix(name + "_bucket", (*spec.labels, "le"), (*labels, le)) + _number(values[label]) + "\n"
            if count is not None:
                yield _prefix(name + "_count", spec.labels, labels) + _number(count) + "\n"
            yield _prefix(name + "_sum", spec.labels, labels) + _number(values.get("sum", 0.0)) + "\n"


def _health(health: dict[tuple[str, str], CollectorHealth], now: float) -> Iterable[str]:
    rows: dict[str, list[str]] = {name: [] for name in _HEALTH_METRICS}
    for (pipeline, collector), h in sorted(health.items()):
        labels = (pipeline, collector)

        def add(name: str, value: float, *extra: str, labels: tuple[str, str] = labels) -> None:
            rows[name].append(_prefix(name, CATALOGUE[name].labels, (*labels, *extra)) + _number(float(value)))

        add("pipewatch_collector_up", 1.0 if h.effective_state(now) is State.UP else 0.0)
        add("pipewatch_collector_runs_total", h.runs)
        if h.last_success is not None:
            add("pipewatch_collector_last_success_timestamp_seconds", h.last_success)
        if h.last_duration is not None:
            add("pipewatch_collector_run_duration_seconds", h.last_duration)
        if h.requests is not None:
            add("pipewatch_collector_requests", h.requests)
        for category, count in sorted(h.errors_by_category.items()):
            add("pipewatch_collector_errors_total", count, category)
    for name, lines in rows.items():
        spec = CATALOGUE[name]
        yield _header(name, spec.help, spec.type)
        if lines:
            yield "\n".join(lines) + "\n"

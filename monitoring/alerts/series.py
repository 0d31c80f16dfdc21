"""The series an alert rule sees: exactly those /metrics serves right now (exporters/prometheus.py), under the
names and labels it serves them with, plus each one's recent history for the range conditions.

A series of a collector that is not up is left out here as it is on /metrics; its `source` tells the evaluator
which collector wrote it, so an alert on it turns source_down instead of resolving."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import numpy as np

from monitoring.health import State
from monitoring.metrics import CATALOGUE, MetricSpec, bucket_label
from monitoring.store import SeriesKey, Source, Store

HEALTH_METRICS = (
    "pipewatch_collector_up", "pipewatch_collector_last_success_timestamp_seconds",
    "pipewatch_collector_run_duration_seconds", "pipewatch_collector_runs_total",
    "pipewatch_collector_errors_total", "pipewatch_collector_requests",
)
"""Served from the collectors' health, not from series of the store."""


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    """The name /metrics serves it under (e.g. schema_registry_mode_info, db_change_feed_delay_seconds_bucket)."""
    labels: tuple[tuple[str, str], ...]
    """(label, value) in the metric's label order, as /metrics writes them."""
    value: float
    source: Source | None
    """The collector whose series it is (None: pipewatch's own health)."""
    key: SeriesKey | None = None
    """The store series behind it, for its history (None for samples made from health)."""

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def exposed_names(spec: MetricSpec) -> dict[str, tuple[str, ...]]:
    """The sample names a metric appears under on /metrics, with their label names."""
    if spec.type == "histogram":
        return {f"{spec.name}_bucket": (*spec.labels, "le"), f"{spec.name}_sum": spec.labels,
                f"{spec.name}_count": spec.labels}
    if spec.codes:
        return {spec.name: spec.labels, f"{spec.name}_info": (*spec.labels, spec.code_label)}
    return {spec.name: spec.labels}


@cache
def exported_labels() -> dict[str, tuple[str, ...]]:
    """Every sample name /metrics can serve (prometheus_client's own process metrics aside) -> its label names."""
    return {name: labels for spec in CATALOGUE.values() if spec.exported
            for name, labels in exposed_names(spec).items()}


@cache
def _base_names() -> dict[str, str]:
    return {name: spec.name for spec in CATALOGUE.values() if spec.exported for name in exposed_names(spec)}


class Memory:
    """What some sample names were served as over the last `keep` seconds, for `offset`: a change list per name
    (an entry only when a name's samples changed), so a quiet hour costs a few entries."""

    def __init__(self, keep: dict[str, float]) -> None:
        self.keep = keep
        self._entries: dict[str, deque[tuple[float, tuple[Sample, ...]]]] = {name: deque() for name in keep}

    def record(self, view: ExportedView) -> None:
        for name, seconds in self.keep.items():
            entries = self._entries[name]
            samples = tuple(Sample(s.name, s.labels, s.value, s.source) for s in view.instant(name))
            if not entries or entries[-1][1] != samples:
                entries.append((view.now, samples))
            # The newest entry older than the window stays: it says what held at the window's start.
            while len(entries) > 1 and entries[1][0] <= view.now - seconds - LOOKBACK_SECONDS:
                entries.popleft()

    def at(self, name: str, t: float) -> list[Sample]:
        held: tuple[Sample, ...] = ()
        for when, samples in self._entries.get(name, ()):
            if when > t:
                break
            held = samples
        return list(held)


LOOKBACK_SECONDS = 300.0


class ExportedView:
    """What /metrics serves at `now`, for the sample names asked for at construction (one pass over the store)."""

    def __init__(self, store: Store, names: Iterable[str], now: float, memory: Memory | None = None) -> None:
        self.store, self.now, self.memory = store, now, memory
        bases = _base_names()
        wanted = {name for name in names if name in bases}
        self._samples: dict[str, list[Sample]] = {name: [] for name in wanted}
        self.health = store.health()
        fresh = {source for source, h in self.health.items() if h.effective_state(now) is State.UP}
        self.down = {source: h for source, h in self.health.items() if source not in fresh}
        base_names = {bases[name] for name in wanted} - set(HEALTH_METRICS)
        histograms: dict[tuple[str, tuple[str, ...]], dict[str, tuple[float, Source, SeriesKey]]] = {}
        for key, source, _t, value in store.latest_values(base_names):
            spec = CATALOGUE[key[0]]
            if value != value or (source not in fresh and source in self.health and not spec.while_down):
                continue
            if spec.type == "histogram":
                histograms.setdefault((key[0], key[1][:-1]), {})[key[1][-1]] = (value, source, key)
                continue
            labels = tuple(zip(spec.labels, key[1], strict=True))
            self._add(spec.name, Sample(spec.name, labels, value, source, key))
            if spec.codes and value.is_integer() and 0 <= value < len(spec.codes):
                info = (*labels, (spec.code_label, spec.codes[int(value)]))
                self._add(spec.name + "_info", Sample(spec.name + "_info", info, 1.0, source, key))
        for (name, label_values), parts in histograms.items():
            spec = CATALOGUE[name]
            labels = tuple(zip(spec.labels, label_values, strict=True))
            source = next(iter(parts.values()))[1]
            for bound in (*spec.buckets, math.inf):
                if (label := bucket_label(bound)) in parts:
                    value, _, key = parts[label]
                    bucket = (*labels, ("le", label.removeprefix("le=")))
                    self._add(name + "_bucket", Sample(name + "_bucket", bucket, value, source, key))
            if (count := parts.get(bucket_label(math.inf))) is not None:
                self._add(name + "_count", Sample(name + "_count", labels, count[0], source, count[2]))
            total = parts.get("sum")
            value, key = (total[0], total[2]) if total else (0.0, None)
            self._add(name + "_sum", Sample(name + "_sum", labels, value, source, key))
        if wanted & set(HEALTH_METRICS):
            self._health_samples(now)

    def _add(self, name: str, sample: Sample) -> None:
        samples = self._samples.get(name)
        if samples is not None:
            samples.append(sample)

    def _health_samples(self, now: float) -> None:
        for (pipeline, collector), h in sorted(self.health.items()):
            labels = (("pipeline", pipeline), ("collector", collector))
            source = (pipeline, collector)

            def add(name: str, value: float | None, *extra: tuple[str, str], labels: tuple = labels,
                    source: Source = source) -> None:
                if value is not None:
                    self._add(name, Sample(name, (*labels, *extra), float(value), source))

            add("pipewatch_collector_up", 1.0 if h.effective_state(now) is State.UP else 0.0)
            add("pipewatch_collector_runs_total", h.runs)
            add("pipewatch_collector_last_success_timestamp_seconds", h.last_success)
            add("pipewatch_collector_run_duration_seconds", h.last_duration)
            add("pipewatch_collector_requests", h.requests)
            for category, count in sorted(h.errors_by_category.items()):
                add("pipewatch_collector_errors_total", count, ("category", category))

    def instant(self, name: str) -> list[Sample]:
        return self._samples.get(name, [])

    def instant_at(self, name: str, t: float) -> list[Sample]:
        return [] if self.memory is None else self.memory.at(name, t)

    def history(self, sample: Sample, window: float) -> tuple[np.ndarray, np.ndarray]:
        """The sample's series' points in [now - window, now] (inclusive, as Prometheus 2 selects a range)."""
        if sample.key is None:
            return np.empty(0), np.empty(0)
        delta = self.store.since(sample.key, 0)
        if delta is None:
            return np.empty(0), np.empty(0)
        keep = (delta.times >= self.now - window) & (delta.times <= self.now) & ~np.isnan(delta.values)
        return delta.times[keep], delta.values[keep]

"""Prometheus exporter: metric families yielded from the store's current state.

A scrape only reads memory; it never triggers collection. Series written by a collector that is
not UP right now (down, stale, or not yet started) are left out of /metrics, so Prometheus sees
them disappear instead of flat-lining at a stale value; `pipewatch_collector_up` and
`pipewatch_collector_last_success_timestamp_seconds` say why.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector as _PromCollector

from monitoring.health import State
from monitoring.metrics import CATALOGUE, bucket_label
from monitoring.store import Store

log = logging.getLogger(__name__)


class StoreCollector(_PromCollector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> list[Metric]:
        return []  # registration must not read the store

    def collect(self) -> Iterator[Metric]:
        now = time.time()
        health = self.store.health()
        fresh = {source for source, h in health.items() if h.effective_state(now) is State.UP}
        families: dict[str, Metric] = {}
        histograms: dict[tuple[str, tuple[str, ...]], dict[str, float]] = {}
        for (name, labels), source, _t, value in self.store.latest_values():
            spec = CATALOGUE[name]
            if not spec.exported or (source not in fresh and not spec.while_down) or math.isnan(value):
                continue
            if spec.type == "histogram":
                histograms.setdefault((name, labels[:-1]), {})[labels[-1]] = value
                continue
            family = families.get(name)
            if family is None:
                family = families[name] = _family(name)
            family.add_metric(labels, value)
            if spec.codes and value.is_integer() and 0 <= value < len(spec.codes):
                info = families.get(name + "_info")
                if info is None:
                    info = families[name + "_info"] = GaugeMetricFamily(
                        name + "_info", f"1 for the current {spec.code_label} of {name}, by name.",
                        labels=(*spec.labels, spec.code_label))
                info.add_metric((*labels, spec.codes[int(value)]), 1.0)
        yield from families.values()
        yield from _histogram_families(histograms)
        yield from _health_families(health, now)


def _family(name: str) -> Metric:
    spec = CATALOGUE[name]
    if spec.type == "counter":
        return CounterMetricFamily(name.removesuffix("_total"), spec.help, labels=spec.labels)
    return GaugeMetricFamily(name, spec.help, labels=spec.labels)


def _histogram_families(parts: dict[tuple[str, tuple[str, ...]], dict[str, float]]) -> Iterator[Metric]:
    """Histograms from their store series: one per bucket ("le=<bound>", cumulative) and "sum"."""
    families: dict[str, HistogramMetricFamily] = {}
    for (name, labels), values in sorted(parts.items()):
        spec = CATALOGUE[name]
        family = families.get(name)
        if family is None:
            family = families[name] = HistogramMetricFamily(name, spec.help, labels=spec.labels)
        buckets = [(label.removeprefix("le="), values[label]) for label in
                   (bucket_label(bound) for bound in (*spec.buckets, math.inf)) if label in values]
        family.add_metric(labels, buckets, sum_value=values.get("sum", 0.0))
    yield from families.values()


def _health_families(health: dict, now: float) -> Iterator[Metric]:
    up = _family("pipewatch_collector_up")
    last_success = _family("pipewatch_collector_last_success_timestamp_seconds")
    duration = _family("pipewatch_collector_run_duration_seconds")
    runs = _family("pipewatch_collector_runs_total")
    errors = _family("pipewatch_collector_errors_total")
    requests = _family("pipewatch_collector_requests")
    for (pipeline, collector), h in sorted(health.items()):
        labels = (pipeline, collector)
        up.add_metric(labels, 1.0 if h.effective_state(now) is State.UP else 0.0)
        runs.add_metric(labels, h.runs)
        if h.last_success is not None:
            last_success.add_metric(labels, h.last_success)
        if h.last_duration is not None:
            duration.add_metric(labels, h.last_duration)
        if h.requests is not None:
            requests.add_metric(labels, h.requests)
        for category, count in sorted(h.errors_by_category.items()):
            errors.add_metric((*labels, category), count)
    yield from (up, last_success, duration, runs, errors, requests)


def build_registry(store: Store) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


@dataclass
class ExporterServer:
    """The /metrics HTTP server, on its own threads so a slow scrape never stalls the event loop."""

    host: str
    port: int
    _server: object
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        self._server.shutdown()  # type: ignore[attr-defined]
        self._server.server_close()  # type: ignore[attr-defined]
        self._thread.join(timeout=5)


def start_exporter(store: Store, host: str, port: int) -> ExporterServer:
    """Serve the store on http://host:port/metrics; port 0 picks a free port."""
    try:
        server, thread = start_http_server(port, addr=host, registry=build_registry(store))
    except OSError as exc:
        raise OSError(exc.errno, f"exporter cannot listen on {host}:{port}: {exc.strerror}") from None
    actual_port = server.server_address[1]
    log.info("exporter serving http://%s:%d/metrics", host, actual_port)
    return ExporterServer(host, actual_port, server, thread)

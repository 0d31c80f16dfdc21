"""Per-pipeline evaluation: summaries and latency percentiles computed once a second from the store (never a
source) and published as a snapshot, so every session, the JSON API and reports share one computation. What each
latency measures is in docs/internals.md."""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from monitoring.health import State
from monitoring.store import Store
from monitoring.summary import PipelineSummary, local_summaries

log = logging.getLogger(__name__)

SUMMARY_SOURCE = ("_pipewatch", "evaluation")
"""Where the evaluator publishes the list of local pipeline summaries (a snapshot)."""
LATENCY_SOURCE = ("_pipewatch", "latency")
"""Where it publishes {pipeline: [Latency, ...]} (a snapshot)."""
EVALUATION = "evaluation"
"""The `collector` part of the source of every pipeline-level series."""
QUANTILES = (0.5, 0.95, 0.99)
FEED_WINDOW_SECONDS = 60.0
MEASURES = {
    "consumer_lag": ("kafka_consumergroup_lag_seconds",
                     "Kafka consumer lag in seconds, over every partition of every consumer group"),
    "watermark_lag": ("flink_task_watermark_lag_seconds",
                      "Flink watermark lag: how far each vertex's input watermark trails the clock"),
    "change_feed_delay": (None, "Change feed delay: database change to delivery, changes of the last minute"),
}


@dataclass(frozen=True, slots=True)
class Latency:
    measure: str
    description: str
    samples: int
    quantiles: dict[float, float]
    """quantile -> seconds; +Inf where a sample is unbounded (e.g. a partition that never caught up)."""


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """The q-quantile (0 < q <= 1) of values sorted in ascending order, by nearest rank: the smallest of them with
    at least a share q of all at or below it, so always a value that was measured. The one definition of a
    percentile in pipewatch (the latency percentiles, the change feed's p95 delay on its page)."""
    return float(ordered[max(0, math.ceil(q * len(ordered)) - 1)])


@dataclass(frozen=True)
class DeliveryDelay:
    """How long a change feed's changes took from the database's commit to their delivery here."""

    changes: int
    median: float
    p95: float


def delivery_delay(rows: Sequence) -> DeliveryDelay | None:
    """The delay from change to delivery over these change feed rows (monitoring.store.FeedRow); None without rows."""
    delays = sorted(r.delivered_at - r.changed_at for r in rows)
    if not delays:
        return None
    middle = len(delays) // 2
    median = delays[middle] if len(delays) % 2 else (delays[middle - 1] + delays[middle]) / 2
    return DeliveryDelay(len(delays), median, nearest_rank(delays, 0.95))


def percentiles(values: Iterable[float]) -> dict[float, float]:
    """Nearest-rank percentiles (each one a measured value, +Inf kept as it is)."""
    data = np.sort(np.fromiter((v for v in values if not math.isnan(v)), dtype=np.float64))
    if not len(data):
        return {}
    return {q: nearest_rank(data, q) for q in QUANTILES}


def pipeline_latencies(store: Store, pipeline: str, now: float | None = None) -> list[Latency]:
    """The latency measures of one pipeline that have samples now (from sources that are up)."""
    now = time.time() if now is None else now
    health = store.health()
    fresh = {source for source, h in health.items() if source[0] == pipeline and h.effective_state(now) is State.UP}
    samples: dict[str, list[float]] = {}
    names = {name: measure for measure, (name, _) in MEASURES.items() if name}
    for key, source, _t, value in store.latest_values(set(names)):
        if source in fresh:
            samples.setdefault(names[key[0]], []).append(value)
    for source in fresh:
        if source[1] == "change_feed":
            rows = store.feed_since(source, 0)
            delays = [r.delivered_at - r.changed_at for r in rows if r.delivered_at >= now - FEED_WINDOW_SECONDS]
            if delays:
                samples.setdefault("change_feed_delay", []).extend(delays)
    out = []
    for measure, (_, description) in MEASURES.items():
        quantiles = percentiles(samples.get(measure, ()))
        if quantiles:
            count = sum(1 for v in samples[measure] if not math.isnan(v))
            out.append(Latency(measure, description, count, quantiles))
    return out


class Evaluator:
    """Runs on the collectors' event loop; a failure is logged and retried next second, never fatal."""

    def __init__(self, store: Store, pipelines: list[str], interval: float = 1.0,
                 instance: str | None = None, write_series: bool = True) -> None:
        self.store = store
        self.write_series = write_series
        """False in a mirror (collectors/aggregate/mirror.py): the pipeline-level series are copied from the agent."""
        self.pipelines = pipelines
        self.interval = interval
        self.instance = instance or socket.gethostname()

    def evaluate(self, now: float | None = None) -> list[PipelineSummary]:
        now = time.time() if now is None else now
        summaries = local_summaries(self.store, self.pipelines, self.instance, now)
        latencies: dict[str, list[Latency]] = {}
        # Pipelines that declare dead-letter topics: their Kafka collectors write this series (even while unknown).
        dead_letters = {labels[0] for _, labels in self.store.keys("kafka_dead_letter_rate")} if self.write_series \
            else set()
        for summary in summaries:
            latencies[summary.pipeline] = pipeline_latencies(self.store, summary.pipeline, now)
            if not self.write_series:
                continue
            with self.store.cycle((summary.pipeline, EVALUATION), now) as cycle:
                if summary.watches("kafka"):
                    cycle.set("pipewatch_pipeline_throughput", ("produce",), _known(summary.produce_rate))
                    cycle.set("pipewatch_pipeline_throughput", ("consume",), _known(summary.consume_rate))
                    cycle.set("pipewatch_pipeline_lag", (), _known(summary.lag_messages))
                if summary.pipeline in dead_letters:
                    cycle.set("pipewatch_pipeline_dead_letter_rate", (), _known(summary.dead_letter_rate))
                    cycle.set("pipewatch_pipeline_invalid_ratio", (), _known(summary.invalid_ratio))
                for latency in latencies[summary.pipeline]:
                    for q, seconds in latency.quantiles.items():
                        cycle.set("pipewatch_pipeline_latency_seconds", (latency.measure, f"{q:g}"), seconds)
        self.store.publish_snapshot(LATENCY_SOURCE, latencies, now)
        self.store.publish_snapshot(SUMMARY_SOURCE, summaries, now)
        return summaries

    async def run(self) -> None:
        while True:
            try:
                self.evaluate()
            except Exception:  # a bug here must not stop the summaries for good
                log.exception("pipeline evaluation failed")
            await asyncio.sleep(self.interval)


def _known(value: float) -> float | None:
    return None if math.isnan(value) else value

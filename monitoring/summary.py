"""One line per pipeline: its health and headline measures, the same for the tiles, the aggregate table, the JSON
API and reports; a down or stale source contributes unknowns, never its last value (docs/internals.md)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from monitoring.health import CollectorHealth, State
from monitoring.json_numbers import to_json
from monitoring.metrics import CATALOGUE, JOB_STATES
from monitoring.store import Store
from monitoring.wire import ADDED_LATER

_RUNNING = float(JOB_STATES.index("RUNNING"))


@dataclass(frozen=True, slots=True)
class PipelineSummary:
    """One pipeline of one agent. A measure the pipeline does not have, or that is not known now, is NaN."""

    job: str
    instance: str
    """Who watches it: for the Prometheus read-back the agent's scrape job and target; for this process
    "local" and its host; for a remote agent "remote" and its URL."""
    pipeline: str
    health: str
    """ok, degraded (some sources not up), down (none up), starting (no run finished yet) or agent down."""
    reason: str
    collectors: tuple[str, ...]
    collectors_down: tuple[str, ...]
    last_success: float | None
    """Newest successful collection of any of its sources (Unix time)."""
    lag_messages: float
    """Sum of every consumer group's lag."""
    max_lag_messages: float
    """Largest lag of one partition for one group (kafka_consumergroup_group_max_lag)."""
    lag_seconds: float
    """Largest consumer-group lag in seconds."""
    worst_status: float
    """Worst consumer-group lag status code (kafka_consumergroup_status)."""
    produce_rate: float
    consume_rate: float
    flink_jobs: float
    flink_running: float
    checkpoint_age: float
    """Oldest time since a running job's last completed checkpoint."""
    registry_up: float
    """1 when every schema registry of the pipeline answers, 0 when one does not."""
    change_rate: float
    dead_letter_rate: float = field(default=math.nan, metadata={ADDED_LATER: True})
    """Records per second sent to dead-letter topics; NaN when none are declared or it is not known now."""
    invalid_ratio: float = field(default=math.nan, metadata={ADDED_LATER: True})
    """The dead-letter rate's share of the input (docs/dead-letters.md); NaN as dead_letter_rate, or with no input."""

    def watches(self, kind: str) -> bool:
        """Whether the pipeline has a source of this kind (kafka, flink, schema_registry, change_feed, ...)."""
        return any(is_kind(c, kind) for c in self.collectors)

    def to_json(self) -> dict[str, object]:
        """JSON-safe: NaN (unknown) becomes null, +Inf ("unbounded") the string "Infinity"."""
        return {key: _json_number(value) for key, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> PipelineSummary:
        values = {}
        for name in cls.__dataclass_fields__:
            value = data.get(name)
            if name in ("collectors", "collectors_down"):
                value = tuple(value or ())
            elif name in ("job", "instance", "pipeline", "health", "reason"):
                value = str(value if value is not None else "")
            elif name == "last_success":
                value = None if value is None else float(value)
            else:
                value = math.nan if value is None else float(value)
            values[name] = value
        return cls(**values)


def _json_number(value: object) -> object:
    if isinstance(value, float):
        return to_json(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def health_of(healths: Iterable[CollectorHealth], now: float) -> tuple[str, str, tuple[str, ...]]:
    """(health, reason, sources not up) of a pipeline: the worst of its sources, with the reason of each."""
    healths = sorted(healths, key=lambda h: h.collector)
    if not healths:
        return "unknown", "no sources configured", ()
    states = {h.collector: h.effective_state(now) for h in healths}
    not_up = tuple(c for c, s in states.items() if s is not State.UP)
    if not not_up:
        return "ok", "every source up", ()
    if all(s is State.STARTING for s in states.values()):
        return "starting", "first collection not finished yet", not_up
    reasons = "; ".join(f"{h.collector} {states[h.collector].value}: {h.reason(now)}" for h in healths
                        if h.collector in not_up)
    return ("down" if len(not_up) == len(healths) else "degraded"), reasons, not_up


class _Latest:
    """The newest values of one pipeline's series from sources that are up."""

    def __init__(self, rows: list[tuple[tuple[str, tuple[str, ...]], float]]) -> None:
        self._by_name: dict[str, list[float]] = {}
        for (name, _labels), value in rows:
            self._by_name.setdefault(name, []).append(value)

    def values(self, name: str) -> list[float]:
        return self._by_name.get(name, [])

    def total(self, name: str) -> float:
        """Sum, unknown if any part is unknown (a partial sum must not pass for the whole)."""
        values = self.values(name)
        return math.fsum(values) if values and not any(math.isnan(v) for v in values) else math.nan

    def largest(self, name: str) -> float:
        known = [v for v in self.values(name) if not math.isnan(v)]
        return max(known) if known else math.nan


def local_summaries(store: Store, pipelines: Iterable[str], instance: str, now: float | None = None,
                    job: str = "local") -> list[PipelineSummary]:
    """The summary of each named pipeline from this process's store."""
    now = time.time() if now is None else now
    health = store.health()
    fresh = {source for source, h in health.items() if h.effective_state(now) is State.UP}
    latest: dict[str, list] = {}
    for key, source, _t, value in store.latest_values(_SUMMARY_METRICS):
        if source in fresh or CATALOGUE[key[0]].while_down:  # as /metrics serves them
            latest.setdefault(source[0], []).append((key, value))
    out = []
    for pipeline in pipelines:
        mine = [h for (p, _), h in health.items() if p == pipeline]
        state, reason, down = health_of(mine, now)
        values = _Latest(latest.get(pipeline, []))
        successes = [h.last_success for h in mine if h.last_success is not None]
        collectors = tuple(sorted(h.collector for h in mine))
        has = {kind: any(is_kind(c, kind) for c in collectors) for kind in ("kafka", "flink", "schema_registry")}
        kafka_up, flink_up = (has[kind] and all(h.effective_state(now) is State.UP for h in mine
                                                if is_kind(h.collector, kind)) for kind in ("kafka", "flink"))
        job_states = values.values("flink_jobmanager_job_state")
        registries = values.values("schema_registry_up")
        out.append(PipelineSummary(
            job=job, instance=instance, pipeline=pipeline, health=state, reason=reason, collectors=collectors,
            collectors_down=down, last_success=max(successes) if successes else None,
            # No group or topic at all is a known zero only while Kafka answers.
            lag_messages=values.total("kafka_consumergroup_group_sum_lag") if values.values(
                "kafka_consumergroup_group_sum_lag") else (0.0 if kafka_up else math.nan),
            max_lag_messages=values.largest("kafka_consumergroup_group_max_lag"),
            lag_seconds=values.largest("kafka_consumergroup_group_max_lag_seconds"),
            worst_status=values.largest("kafka_consumergroup_status"),
            produce_rate=values.total("kafka_topic_produce_rate"),
            consume_rate=values.total("kafka_consumergroup_consume_rate"),
            flink_jobs=float(len(job_states)) if flink_up else math.nan,
            flink_running=float(sum(v == _RUNNING for v in job_states)) if flink_up else math.nan,
            checkpoint_age=values.largest("flink_jobmanager_job_checkpoint_age_seconds"),
            registry_up=(min(registries) if registries else math.nan) if has["schema_registry"] else math.nan,
            change_rate=values.total("db_change_feed_rate"),
            **_dead_letters(values),
        ))
    return out


def _dead_letters(values: _Latest) -> dict[str, float]:
    dead, into = values.total("kafka_dead_letter_rate"), values.total("kafka_dead_letter_input_rate")
    ratio = dead / into if not math.isnan(dead) and not math.isnan(into) and into > 0 else math.nan
    return {"dead_letter_rate": dead, "invalid_ratio": ratio}


def is_kind(collector: str, kind: str) -> bool:
    """A collector name is its kind, or `kind:<label>` when a pipeline has several of that kind."""
    return collector == kind or collector.startswith(kind + ":")


_SUMMARY_METRICS = {
    "kafka_consumergroup_group_sum_lag", "kafka_consumergroup_group_max_lag",
    "kafka_consumergroup_group_max_lag_seconds", "kafka_consumergroup_status",
    "kafka_topic_produce_rate", "kafka_consumergroup_consume_rate", "flink_jobmanager_job_state",
    "flink_jobmanager_job_checkpoint_age_seconds", "schema_registry_up", "db_change_feed_rate",
    "kafka_dead_letter_rate", "kafka_dead_letter_input_rate",
}

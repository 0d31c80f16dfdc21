"""What the Kafka collector publishes each cycle: an immutable snapshot of the cluster as measured.

Unknown stays unknown: None for offsets and counts, NaN for lag seconds, never 0 or -1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

from monitoring.wire import ADDED_LATER


class Status(IntEnum):
    """Burrow's numbering, exported as ``kafka_consumergroup_status``."""

    NOTFOUND = 0
    OK = 1
    WARN = 2
    ERR = 3
    STOP = 4
    STALL = 5
    REWIND = 6


@dataclass(frozen=True, slots=True, order=True)
class Broker:
    node_id: int
    host: str
    port: int
    error: str | None = None
    """Why the broker did not answer this cycle; None when it did."""

    @property
    def reachable(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class PartitionMeta:
    leader: int
    """-1 when the partition has no leader (offline)."""
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...]

    @property
    def offline(self) -> bool:
        return self.leader < 0

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    client_id: str
    client_host: str
    assignment: tuple[tuple[str, int], ...]
    """(topic, partition) pairs assigned to the member; empty when the group does not say."""

    @property
    def label(self) -> str:
        who = self.client_id or self.member_id
        return f"{who}@{self.client_host.lstrip('/')}" if self.client_host else who


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    """None: the group has no commit for this partition (lag unknown, not 0)."""
    high_watermark: int | None
    """None: the partition has no leader or its offsets could not be read."""
    lag: int | None
    log_start: int | None = None
    lag_seconds: float = math.nan
    lag_seconds_method: str = "unknown"
    """record_timestamp (exact), caught_up, interpolated, extrapolated, lower_bound or unknown."""
    status: Status = Status.NOTFOUND
    status_reason: str = ""
    owner: str | None = None
    """The member the partition is assigned to, as client-id@host, when the group says."""

    @property
    def retention_margin(self) -> int | None:
        """Messages between the log start and the committed offset; negative: already deleted."""
        if self.committed is None or self.log_start is None:
            return None
        return self.committed - self.log_start


@dataclass(frozen=True, slots=True)
class GroupInfo:
    group_id: str
    state: str
    protocol_type: str
    members: tuple[Member, ...] | None
    """None when the group could not be described this cycle."""
    coordinator: int | None
    partitions: tuple[PartitionLag, ...]
    status: Status = Status.NOTFOUND
    status_reason: str = ""
    error: str | None = None
    """Why this group's offsets are missing this cycle; the other groups are unaffected."""

    @property
    def member_count(self) -> int | None:
        return None if self.members is None else len(self.members)

    @property
    def lag_sum(self) -> int | None:
        lags = [p.lag for p in self.partitions if p.lag is not None]
        return sum(lags) if lags else None

    @property
    def max_lag(self) -> int | None:
        lags = [p.lag for p in self.partitions if p.lag is not None]
        return max(lags) if lags else None

    @property
    def max_lag_seconds(self) -> float:
        known = [p.lag_seconds for p in self.partitions if not math.isnan(p.lag_seconds)]
        return max(known) if known else math.nan


@dataclass(frozen=True, slots=True)
class TopicInfo:
    name: str
    partitions: dict[int, PartitionMeta]
    high_watermarks: dict[int, int]
    log_start_offsets: dict[int, int]
    produce_rate: float | None

    @property
    def under_replicated(self) -> int:
        return sum(meta.under_replicated for meta in self.partitions.values())

    @property
    def offline(self) -> int:
        return sum(meta.offline for meta in self.partitions.values())


@dataclass(frozen=True, slots=True)
class GroupTopic:
    """A consumer group's progress on one topic: rates, catch-up and retention risk."""

    group_id: str
    topic: str
    lag: int | None
    max_lag_seconds: float
    """Largest partition lag in seconds on the topic; NaN when none is known."""
    consume_rate: float | None
    catch_up_seconds: float
    """Lag / (consume rate - produce rate); inf when not catching up; NaN when rates are unknown."""
    retention_margin: int | None
    """Smallest distance, in messages, between a committed offset and its partition's log start."""
    retention_risk_seconds: float
    """Time until the log start overtakes the slowest committed offset at current rates; inf: no
    risk at current rates; 0: already overtaken (data deleted before it was consumed); NaN: unknown."""


@dataclass(frozen=True, slots=True)
class DeadLetters:
    """Records produced to the pipeline's dead-letter topics and to its input topics over one rate window
    (docs/dead-letters.md). Counts are None when not measurable yet (no earlier sample, partitions changed)."""

    topics: tuple[str, ...]
    """The cluster's topics that match `dead_letter_topics`."""
    input_topics: tuple[str, ...]
    window_seconds: float | None
    records: int | None
    input_records: int | None

    @property
    def rate(self) -> float | None:
        return None if self.records is None or not self.window_seconds else self.records / self.window_seconds

    @property
    def input_rate(self) -> float | None:
        if self.input_records is None or not self.window_seconds or not self.input_topics:
            return None
        return self.input_records / self.window_seconds


@dataclass(frozen=True, slots=True)
class KafkaSnapshot:
    cluster: str
    cluster_id: str | None
    brokers: tuple[Broker, ...]
    topics: dict[str, TopicInfo]
    groups: tuple[GroupInfo, ...]
    group_topics: dict[tuple[str, str], GroupTopic]
    unmatched_patterns: tuple[str, ...]
    """Configured group patterns that matched no group on the cluster."""
    requests: int
    collected_at: float
    dead_letters: DeadLetters | None = field(default=None, metadata={ADDED_LATER: True})
    """None when the pipeline declares no dead-letter topics (`dead_letter_topics`)."""

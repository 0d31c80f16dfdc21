"""Values derived from what a cycle's requests returned: rates, per group-topic lag, catch-up time
and retention risk. Pure functions over the models; the state they need (earlier samples) is
passed in."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from monitoring.models.kafka import GroupTopic, PartitionLag


@dataclass(frozen=True, slots=True)
class OffsetSums:
    """Offsets summed per topic (high watermarks), per ("log_start", topic) and per (group, topic)
    (commits) at one time, with how many partitions each sum covers: all a rate needs, at a
    fraction of the memory."""

    t: float
    sums: dict[str | tuple[str, str], tuple[int, int]]

    @classmethod
    def of(cls, t: float, high_watermarks: dict[tuple[str, int], int], log_starts: dict[tuple[str, int], int],
           committed: dict[str, dict[tuple[str, int], int]]) -> OffsetSums:
        sums: dict[str | tuple[str, str], tuple[int, int]] = {}
        for (topic, _), offset in high_watermarks.items():
            total, count = sums.get(topic, (0, 0))
            sums[topic] = (total + offset, count + 1)
        for (topic, _), offset in log_starts.items():
            total, count = sums.get(("log_start", topic), (0, 0))
            sums[("log_start", topic)] = (total + offset, count + 1)
        for group_id, offsets in committed.items():
            for (topic, _), offset in offsets.items():
                total, count = sums.get((group_id, topic), (0, 0))
                sums[(group_id, topic)] = (total + offset, count + 1)
        return cls(t, sums)


def reference_sample(samples: Sequence[OffsetSums], now: float, window: float) -> OffsetSums | None:
    """The newest sample at least one rate window old, else the oldest one kept."""
    old_enough = [sample for sample in samples if now - sample.t >= window]
    return old_enough[-1] if old_enough else (samples[0] if samples else None)


def rate(reference: OffsetSums | None, current: OffsetSums, key: str | tuple[str, str]) -> float | None:
    """Offset advance per second since the reference sample; None when not measurable: no
    reference yet, partitions added or removed in between, or offsets gone backwards (topic
    recreated, group reset). Never a negative or made-up rate."""
    if reference is None or key not in reference.sums or key not in current.sums:
        return None
    (before, count_before), (after, count_after) = reference.sums[key], current.sums[key]
    dt = current.t - reference.t
    if dt <= 0 or count_before != count_after or after < before:
        return None
    return (after - before) / dt


def produced(reference: OffsetSums | None, current: OffsetSums, topics: Sequence[str]) -> int | None:
    """Records produced to these topics since the reference sample: their high watermarks' advance. A topic
    created since then counts all its records (all were produced in between); None when not measurable: no
    reference yet, partitions added or removed, or offsets gone backwards (a topic recreated)."""
    if reference is None:
        return None
    total = 0
    for topic in topics:
        after, count_after = current.sums.get(topic, (0, 0))
        before, count_before = reference.sums.get(topic, (0, 0))
        if topic in reference.sums and (count_before != count_after or after < before):
            return None
        total += after - before
    return total


def group_topic(group_id: str, topic: str, partitions: list[PartitionLag], consume_rate: float | None,
                produce_rate: float | None, log_start_rate: float | None,
                retention_seconds: float | None = None) -> GroupTopic:
    """A group's progress on one topic: summed lag, catch-up time and retention risk."""
    lags = [p.lag for p in partitions if p.lag is not None]
    lag = sum(lags) if lags else None
    if lag == 0:
        catch_up = 0.0
    elif lag is None or consume_rate is None or produce_rate is None:
        catch_up = math.nan
    elif consume_rate > produce_rate:
        catch_up = lag / (consume_rate - produce_rate)
    else:
        catch_up = math.inf
    margins = [p.retention_margin for p in partitions if p.retention_margin is not None]
    margin = min(margins) if margins else None
    seconds = [p.lag_seconds for p in partitions if not math.isnan(p.lag_seconds)]
    max_lag_seconds = max(seconds) if seconds else math.nan
    if margin is not None and margin < 0:
        risk = 0.0  # the log start already passed a committed offset: records were lost
    elif retention_seconds is not None and seconds:
        risk = _time_retention_risk(retention_seconds, max_lag_seconds, lag, consume_rate, produce_rate)
    else:
        risk = _log_start_retention_risk(margin, len(margins), consume_rate, log_start_rate)
    return GroupTopic(group_id, topic, lag, max_lag_seconds, consume_rate, catch_up, margin, risk)


def _time_retention_risk(retention: float, lag_seconds: float, lag: int | None, consume_rate: float | None,
                         produce_rate: float | None) -> float:
    """Time until the oldest unconsumed record is older than the topic's retention.

    Its age (the lag in seconds) grows by 1 - consume/produce seconds per second: fully when the
    group is stopped, not at all when it keeps up.
    """
    left = retention - lag_seconds
    if left <= 0:
        return 0.0
    if not lag:
        return math.inf
    if consume_rate is None or produce_rate is None:
        return math.nan
    if produce_rate <= 0:
        return math.inf if consume_rate > 0 else left
    growth = 1.0 - consume_rate / produce_rate
    return left / growth if growth > 0 else math.inf


def _log_start_retention_risk(margin: int | None, partitions: int, consume_rate: float | None,
                              log_start_rate: float | None) -> float:
    """Without a known retention time: when the log start, advancing faster than the group
    consumes, reaches the slowest committed offset (per partition, on average)."""
    if margin is None or log_start_rate is None or consume_rate is None:
        return math.nan
    closing = (log_start_rate - consume_rate) / max(1, partitions)
    return margin / closing if closing > 0 else math.inf


class LabelledEvaluation:
    """A partition's evaluation for group_status, its reason prefixed with the partition: formatted
    only when read (group_status reads the worst partition's), not for each of thousands."""

    __slots__ = ("status", "_partition")

    def __init__(self, partition: PartitionLag) -> None:
        self.status = partition.status
        self._partition = partition

    @property
    def reason(self) -> str:
        p = self._partition
        return f"{p.topic}[{p.partition}]: {p.status_reason}"

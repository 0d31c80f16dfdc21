"""A cycle's KafkaSnapshot, built from what its requests returned and what earlier cycles saw.

Earlier cycles matter three ways: high-watermark tables give lag in seconds (lag_time.py), commit
histories give each partition's status (status.py), and offset sums give rates (derive.py). Their
memory follows the cluster: partitions and groups that are gone are dropped.
"""

from __future__ import annotations

import math
import re
from collections import deque
from typing import Any

from collectors.kafka.derive import LabelledEvaluation, OffsetSums, group_topic, produced, rate, reference_sample
from collectors.kafka.lag_time import LagTime, OffsetTimeTable
from collectors.kafka.requests import Metadata, members
from collectors.kafka.status import PartitionHistory, Status, evaluate, group_status
from monitoring.config import KafkaSource
from monitoring.models.kafka import DeadLetters, GroupInfo, KafkaSnapshot, PartitionLag, TopicInfo


class SnapshotBuilder:
    """Builds each cycle's snapshot of one cluster, keeping what the next cycle's needs."""

    def __init__(self, config: KafkaSource) -> None:
        self.config = config
        self._tables: dict[tuple[str, int], OffsetTimeTable] = {}
        """High-watermark history per partition, for lag in seconds."""
        self._histories: dict[tuple[str, str, int], PartitionHistory] = {}
        """Observed commits per (group, topic, partition), for the status evaluation."""
        self._samples: deque[OffsetSums] = deque(
            maxlen=min(1000, math.ceil(config.rate_window_seconds / config.interval_seconds) + 2))

    def build(
        self,
        metadata: Metadata,
        groups: dict[str, str],
        descriptions: dict[str, dict[str, Any]],
        committed: dict[str, dict[tuple[str, int], int]],
        group_errors: dict[str, str],
        high_watermarks: dict[tuple[str, int], int],
        log_starts: dict[tuple[str, int], int],
        t: float,
        timestamps: dict[tuple[str, int, int], float] | None,
        *,
        retention: dict[str, float | None],
        coordinators: dict[str, int],
        requests: int,
    ) -> KafkaSnapshot:
        sums = OffsetSums.of(t, high_watermarks, log_starts, committed)
        reference = reference_sample(self._samples, t, self.config.rate_window_seconds)
        self._track_watermarks(high_watermarks, t)
        topics = {
            name: TopicInfo(
                name, metadata.layout[name],
                {p: high_watermarks[(name, p)] for p in ids if (name, p) in high_watermarks},
                {p: log_starts[(name, p)] for p in ids if (name, p) in log_starts},
                rate(reference, sums, name),
            )
            for name, ids in metadata.partitions.items()
        }
        group_infos, group_topics = [], {}
        seen_histories: set[tuple[str, str, int]] = set()
        timestamps = timestamps or {}
        for group_id in sorted(groups):
            description = descriptions.get(group_id)
            group_members = members(description) if description else None
            has_members = bool(group_members) if group_members is not None else None
            owners = {tp: m.label for m in group_members or () for tp in m.assignment}
            offsets = committed.get(group_id, {})
            # Every partition of a topic the group has committed to, so an uncommitted partition
            # shows as unknown instead of vanishing.
            group_topic_names = sorted({topic for topic, _ in offsets if topic in metadata.partitions})
            partitions: list[PartitionLag] = []
            for topic in group_topic_names:
                on_topic = []
                for partition in metadata.partitions[topic]:
                    key, tp = (group_id, topic, partition), (topic, partition)
                    seen_histories.add(key)
                    on_topic.append(self._partition_lag(
                        key, offsets.get(tp), high_watermarks.get(tp), log_starts.get(tp), owners.get(tp),
                        has_members, t, timestamps))
                partitions += on_topic
                group_topics[(group_id, topic)] = group_topic(
                    group_id, topic, on_topic, rate(reference, sums, (group_id, topic)), topics[topic].produce_rate,
                    rate(reference, sums, ("log_start", topic)), retention.get(topic))
            evaluation = group_status([LabelledEvaluation(p) for p in partitions])
            group_infos.append(GroupInfo(
                group_id=group_id,
                state=description["state"] if description else "Unknown",
                protocol_type=groups[group_id],
                members=group_members,
                coordinator=coordinators.get(group_id),
                partitions=tuple(partitions),
                status=evaluation.status if partitions else Status.NOTFOUND,
                status_reason=evaluation.reason if partitions else "no committed offsets",
                error=group_errors.get(group_id),
            ))
        # Histories of groups and partitions that are gone are dropped: memory follows the cluster.
        for key in [k for k in self._histories if k not in seen_histories]:
            del self._histories[key]
        unmatched = tuple(
            pattern for pattern in self.config.consumer_groups
            if not any(re.fullmatch(pattern, g) for g in groups)
        )
        self._samples.append(sums)
        return KafkaSnapshot(
            cluster=self.config.cluster_label, cluster_id=metadata.cluster_id, brokers=metadata.brokers,
            topics=topics, groups=tuple(group_infos), group_topics=group_topics,
            unmatched_patterns=unmatched, requests=requests, collected_at=t,
            dead_letters=self._dead_letters(reference, sums, metadata.partitions, group_topics)
            if self.config.dead_letter_topics else None,
        )

    def _dead_letters(self, reference: OffsetSums | None, sums: OffsetSums, partitions: dict[str, Any],
                      group_topics: dict[tuple[str, str], Any]) -> DeadLetters:
        config = self.config
        dead = sorted(topic for topic in partitions if config.is_dead_letter_topic(topic))
        if config.input_topics is None:
            candidates = {topic for _, topic in group_topics}
        else:
            candidates = {topic for topic in partitions if any(re.fullmatch(p, topic) for p in config.input_topics)}
        inputs = sorted(t for t in candidates if t in partitions and not t.startswith("__")
                        and not config.is_dead_letter_topic(t))
        window = sums.t - reference.t if reference is not None else None
        return DeadLetters(tuple(dead), tuple(inputs), window, produced(reference, sums, dead),
                           produced(reference, sums, inputs))

    def _track_watermarks(self, high_watermarks: dict[tuple[str, int], int], t: float) -> None:
        for key, offset in high_watermarks.items():
            table = self._tables.get(key)
            if table is None:
                table = self._tables[key] = OffsetTimeTable()
            table.add(offset, t)
        for key in [k for k in self._tables if k not in high_watermarks]:
            del self._tables[key]

    def _partition_lag(self, key: tuple[str, str, int], offset: int | None, hw: int | None, log_start: int | None,
                       owner: str | None, has_members: bool | None, t: float,
                       timestamps: dict[tuple[str, int, int], float]) -> PartitionLag:
        _, topic, partition = key
        lag = max(0, hw - offset) if offset is not None and hw is not None else None
        if offset is None or hw is None:
            return PartitionLag(topic, partition, offset, hw, lag, log_start, owner=owner,
                                status_reason="no committed offset" if offset is None else "no watermark")
        stamp = timestamps.get((topic, partition, offset)) if hw > offset else None
        if stamp is not None:
            lag_time = LagTime(max(0.0, t - stamp), "record_timestamp",
                               "timestamp of the record at the committed offset")
        else:
            lag_time = self._tables[(topic, partition)].lag_time(offset, t)
        history = self._histories.get(key)
        if history is None:
            history = self._histories[key] = PartitionHistory(size=self.config.status_window)
        history.observe(t, offset, hw)
        evaluation = evaluate(history, t, has_members, allowed_lag=self.config.allowed_lag,
                              stall_after=self.config.stall_after_seconds)
        return PartitionLag(topic, partition, offset, hw, lag, log_start, lag_time.seconds, lag_time.method,
                            evaluation.status, evaluation.reason, owner)

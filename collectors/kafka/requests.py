"""The requests of a Kafka cycle, and what they learn about the cluster between cycles (coordinators, broker
capabilities, committed topics, retention). A base class of KafkaCollector so the cycle reads as a sequence of
steps that tests can wrap (docs/kafka-collector.md)."""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import IncompatibleBrokerVersion, KafkaConnectionError, KafkaError, for_code
from aiokafka.protocol.admin import DescribeConfigsRequest, ListGroupsRequest
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.memory_records import MemoryRecords

from collectors.kafka.client import (
    COORDINATOR_MOVED,
    GROUP_COORDINATOR,
    TOPIC_RESOURCE,
    AllTopicsMetadataRequest,
    CappedDescribeGroupsRequest,
    FastListOffsetsRequest,
    FastOffsetFetchRequest,
    any_node,
    connect,
    field_positions,
)
from collectors.kafka.decode import LastAnswer
from collectors.kafka.encode import EncodedRequests
from monitoring.config import KafkaSource
from monitoring.health import categorize, describe
from monitoring.models.kafka import Broker, Member, PartitionMeta

log = logging.getLogger(__name__)

_FETCH_PARTITION_BYTES = 64 * 1024
"""Bytes asked per partition when reading a record's timestamp; Kafka still returns one whole batch."""


@dataclass(slots=True)
class Metadata:
    """What a cycle uses of the Metadata answer."""

    cluster_id: str | None
    brokers: tuple[Broker, ...]
    leaders: dict[tuple[str, int], int]
    """(topic, partition) -> leader broker id; partitions without a leader are absent."""
    partitions: dict[str, list[int]]
    layout: dict[str, dict[int, PartitionMeta]]


class KafkaRequests:
    """Requests to one cluster, with the connection and what earlier cycles learned about it."""

    def __init__(self, config: KafkaSource) -> None:
        self.config = config
        self._client: AIOKafkaClient | None = None
        self._coordinators: dict[str, int] = {}
        self._limit = asyncio.Semaphore(config.max_concurrent_requests)
        self._requests = 0
        """Requests sent in this cycle."""
        self._cycle_errors: list[tuple[str, str]] = []
        """(category, message) of the parts of this cycle that failed while the cycle went on."""
        self._encoded = EncodedRequests()
        """Bytes of the ListOffsets and OffsetFetch requests, reused while their content is the same."""
        self._metadata_answers = LastAnswer()
        self._last_metadata: tuple[Any, Metadata] | None = None
        """The last decoded Metadata answer and what was read from it."""
        self._fetch_all_committed: bool | None = None
        """OffsetFetch with a null partition list (all of a group's commits) is what real Kafka
        answers since 0.10.2; brokers that cannot answer it get explicit partition lists instead.
        None until the first group's answer tells which kind of broker this is."""
        self._committed_topics: dict[str, set[str]] = {}
        """Only when partitions are listed explicitly: group -> topics its answers last showed
        commits on, so each group is asked for those rather than for every partition of the cluster."""
        self._rediscovery_cursor: tuple[str, str] | None = None
        """The last (group, topic) pair of the rolling walk over pairs not known to have commits."""
        self._protocol_types: dict[str, str] = {}
        """Groups of the last cycle -> protocol type, to keep groups whose coordinator is unreachable."""
        self._retention: dict[str, float | None] = {}
        """Topic -> time-based retention in seconds; None when unlimited, compacted or unknown."""
        self._retention_read_at: float | None = None
        self._describe_configs: bool | None = None
        """Whether the cluster answers DescribeConfigs; None until it has been asked once."""

    async def _connect(self) -> AIOKafkaClient:
        if self._client is None:
            self._client = await connect(self.config)
        return self._client

    async def _send(self, client: AIOKafkaClient, node_id: int, request: Any) -> Any:
        async with self._limit:
            self._requests += 1
            return await client.send(node_id, request)

    def _part_failed(self, exc: BaseException, prefix: str = "") -> None:
        self._cycle_errors.append((categorize(exc), prefix + describe(exc)))

    async def _metadata(self, client: AIOKafkaClient) -> Metadata:
        response = await self._send(client, any_node(client), AllTopicsMetadataRequest(self._metadata_answers))
        if self._last_metadata is not None and response is self._last_metadata[0]:
            # A copy: collect() sets this cycle's broker errors on it.
            return dataclasses.replace(self._last_metadata[1])
        # The client sends to brokers by id: it learns their addresses (and changes of them) here.
        client.cluster.update_metadata(response)
        b = field_positions(response.SCHEMA, "brokers")
        brokers = tuple(sorted(Broker(entry[b["node_id"]], entry[b["host"]], entry[b["port"]])
                               for entry in response.brokers))
        t = field_positions(response.SCHEMA, "topics")
        p = field_positions(response.SCHEMA, "topics", "partitions")
        # Fields by position (named from the response's schema), not to_object(): at many
        # partitions building its dicts costs as much as decoding the answer.
        p_id, p_leader, p_replicas, p_isr = p["partition"], p["leader"], p["replicas"], p["isr"]
        p_offline = p.get("offline_replicas")
        leaders: dict[tuple[str, int], int] = {}
        partitions: dict[str, list[int]] = {}
        layout: dict[str, dict[int, PartitionMeta]] = {}
        for entry in response.topics:
            name = entry[t["topic"]]
            if entry[t["error_code"]] or ("is_internal" in t and entry[t["is_internal"]]) or name.startswith("__"):
                continue
            metas = {}
            for partition in entry[t["partitions"]]:
                leader = partition[p_leader]
                metas[partition[p_id]] = PartitionMeta(
                    leader, tuple(partition[p_replicas]), tuple(partition[p_isr]),
                    tuple(partition[p_offline] or ()) if p_offline is not None else ())
                if leader >= 0:
                    leaders[(name, partition[p_id])] = leader
            partitions[name] = sorted(metas)
            layout[name] = dict(sorted(metas.items()))
        metadata = Metadata(getattr(response, "cluster_id", None), brokers, leaders, partitions, layout)
        self._last_metadata = (response, metadata)
        return dataclasses.replace(metadata)

    async def _list_groups(self, client: AIOKafkaClient, metadata: Metadata) -> tuple[dict[str, str], dict[int, str]]:
        """Matched group id -> protocol type, from ListGroups on every broker; and the brokers that
        did not answer, with why. Only when no broker answers is the cycle lost."""
        responses = await asyncio.gather(
            *(self._send(client, broker.node_id, ListGroupsRequest()) for broker in metadata.brokers),
            return_exceptions=True,
        )
        groups: dict[str, str] = {}
        unreachable: dict[int, str] = {}
        for broker, response in zip(metadata.brokers, responses, strict=True):
            if isinstance(response, BaseException):
                if not isinstance(response, (KafkaError, OSError, asyncio.TimeoutError)):
                    raise response
                unreachable[broker.node_id] = describe(response)
                self._part_failed(response, f"broker {broker.node_id} ({broker.host}:{broker.port}): ")
                continue
            body = response.to_object()
            if body["error_code"]:
                error = for_code(body["error_code"])("ListGroups failed")
                unreachable[broker.node_id] = describe(error)
                self._part_failed(error, f"broker {broker.node_id} ({broker.host}:{broker.port}): ")
                continue
            for group in body["groups"]:
                if self.config.matches_group(group["group"]):
                    groups[group["group"]] = group["protocol_type"]
        if metadata.brokers and len(unreachable) == len(metadata.brokers):
            raise KafkaConnectionError(f"no broker answered ListGroups; first: {next(iter(unreachable.values()))}")
        return groups, unreachable

    def _with_unreachable_groups(self, listed: dict[str, str], unreachable: dict[int, str],
                                 group_errors: dict[str, str]) -> dict[str, str]:
        """The listed groups, and those of the last cycle whose coordinator did not answer (they are
        not listed): kept, with an error in `group_errors`, rather than let vanish as if deleted."""
        groups = dict(listed)
        for group_id, node in self._coordinators.items():
            if node in unreachable and group_id not in listed and group_id in self._protocol_types:
                groups[group_id] = self._protocol_types[group_id]
                group_errors[group_id] = f"coordinator {node} unreachable: {unreachable[node]}"
        self._protocol_types = groups
        # Only groups of this cycle keep their coordinator: group ids come and go (one per console consumer or job).
        self._coordinators = {g: node for g, node in self._coordinators.items() if g in groups}
        return groups

    async def _coordinator(self, client: AIOKafkaClient, group_id: str) -> int:
        if group_id not in self._coordinators:
            response = await self._send(client, any_node(client), FindCoordinatorRequest(group_id, GROUP_COORDINATOR))
            body = response.to_object()
            if body["error_code"]:
                raise for_code(body["error_code"])(f"FindCoordinator for group {group_id!r}")
            self._coordinators[group_id] = body["coordinator_id"]
        return self._coordinators[group_id]

    async def _describe_groups(self, client: AIOKafkaClient, group_ids: list[str]) -> dict[str, dict[str, Any]]:
        """One DescribeGroups per coordinator, covering all of its groups."""
        by_coordinator: dict[int, list[str]] = defaultdict(list)
        found = await asyncio.gather(*(self._coordinator(client, g) for g in group_ids), return_exceptions=True)
        for group_id, coordinator in zip(group_ids, found, strict=True):
            if isinstance(coordinator, int):
                by_coordinator[coordinator].append(group_id)
        responses = await asyncio.gather(
            *(self._send(client, node, CappedDescribeGroupsRequest(ids)) for node, ids in by_coordinator.items()),
            return_exceptions=True,
        )
        out: dict[str, dict[str, Any]] = {}
        for ids, response in zip(by_coordinator.values(), responses, strict=True):
            if isinstance(response, BaseException):
                if not isinstance(response, (KafkaError, OSError, asyncio.TimeoutError)):
                    raise response
                for group_id in ids:
                    self._coordinators.pop(group_id, None)
                continue
            for group in response.to_object()["groups"]:
                if group["error_code"] in COORDINATOR_MOVED:
                    self._coordinators.pop(group["group"], None)
                if not group["error_code"]:
                    out[group["group"]] = group
                else:
                    self._part_failed(for_code(group["error_code"])(f"DescribeGroups for group {group['group']!r}"))
        return out

    async def _committed_offsets(
        self, client: AIOKafkaClient, group_ids: list[str], metadata: Metadata, assigned: dict[str, set[str]],
    ) -> tuple[dict[str, dict[tuple[str, int], int]], dict[str, str]]:
        results: list[Any] = []
        if self._fetch_all_committed is None and group_ids:
            # Learn from one group whether the broker takes a null partition list, then fan out.
            results = await asyncio.gather(self._group_offsets(client, group_ids[0], metadata), return_exceptions=True)
        # All groups, the probed one too: it has just been listed in full, so its pairs in the walk
        # cost nothing, and the groups not listed are forgotten.
        asks = self._topics_to_ask(group_ids, metadata, assigned) if self._fetch_all_committed is False else {}
        results += await asyncio.gather(
            *(self._group_offsets(client, g, metadata, asks.get(g)) for g in group_ids[len(results):]),
            return_exceptions=True,
        )
        committed: dict[str, dict[tuple[str, int], int]] = {}
        errors: dict[str, str] = {}
        for group_id, result in zip(group_ids, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, (KafkaError, OSError, asyncio.TimeoutError)):
                    raise result
                self._coordinators.pop(group_id, None)
                errors[group_id] = describe(result)
                self._part_failed(result)
            else:
                committed[group_id] = result
        if group_ids and len(errors) == len(group_ids):
            # Nothing answered: that is the cluster failing, not one group.
            raise KafkaConnectionError(f"OffsetFetch failed for every group; first: {next(iter(errors.values()))}")
        return committed, errors

    def _topics_to_ask(self, group_ids: list[str], metadata: Metadata,
                       assigned: dict[str, set[str]]) -> dict[str, list[str]]:
        """Topics to name in each group's OffsetFetch, for a broker that needs partitions listed.

        Every topic for a group seen for the first time. After that: the topics its last answers
        showed commits on, those its members are assigned, and its share of a rolling walk over
        the (group, topic) pairs not known to have commits, about `committed_rediscovery_partitions`
        partitions per cycle in all. The walk goes on from where the last cycle stopped, so every
        such pair is asked within ceil(S / committed_rediscovery_partitions) cycles (S: the
        partitions of all those pairs): the bound on finding a commit on a topic new to a group.
        Listing every partition for every group each cycle instead grows with groups x partitions.
        """
        for gone in self._committed_topics.keys() - set(group_ids):
            del self._committed_topics[gone]
        topics = metadata.partitions
        asks: dict[str, set[str]] = {}
        unknown: list[tuple[str, str]] = []
        for group_id in group_ids:
            known = self._committed_topics.get(group_id)
            if known is None:
                asks[group_id] = set(topics)
                continue
            ask = asks[group_id] = {t for t in known | assigned.get(group_id, set()) if t in topics}
            unknown += [(group_id, topic) for topic in topics if topic not in ask]
        if unknown:
            unknown.sort()
            start = bisect.bisect_right(unknown, self._rediscovery_cursor) if self._rediscovery_cursor else 0
            taken = 0
            for i in range(len(unknown)):
                group_id, topic = self._rediscovery_cursor = unknown[(start + i) % len(unknown)]
                asks[group_id].add(topic)
                taken += len(topics[topic])
                if taken >= self.config.committed_rediscovery_partitions:
                    break
        return {group_id: sorted(ask) for group_id, ask in asks.items()}

    async def _group_offsets(self, client: AIOKafkaClient, group_id: str, metadata: Metadata,
                             topics: list[str] | None = None) -> dict[tuple[str, int], int]:
        """A group's committed offsets: all of them where the broker takes a null partition list,
        else those on `topics` (None: every topic)."""
        coordinator = await self._coordinator(client, group_id)
        if self._fetch_all_committed is not False:
            try:
                with _quiet("aiokafka.conn", enabled=self._fetch_all_committed is None):
                    request = FastOffsetFetchRequest(self._encoded, group_id, None)
                    response = await self._send(client, coordinator, request)
                self._fetch_all_committed = True
            except (IncompatibleBrokerVersion, KafkaConnectionError, ValueError) as exc:
                if self._fetch_all_committed:
                    raise
                log.info("cluster %s cannot fetch all committed offsets of a group at once (%s); "
                         "listing partitions explicitly from now on", self.config.cluster_label, describe(exc))
                self._fetch_all_committed = False
        if not self._fetch_all_committed:
            asked = list(metadata.partitions) if topics is None else topics
            if not asked:
                return {}
            partitions = tuple((t, tuple(metadata.partitions[t])) for t in asked)
            request = FastOffsetFetchRequest(self._encoded, group_id, partitions)
            response = await self._send(client, coordinator, request)
        # Fields by position, not to_object(), which costs more than the decoding itself: offset is
        # second and error_code last in every version's partition entry.
        if getattr(response, "error_code", 0):
            raise for_code(response.error_code)(f"OffsetFetch for group {group_id!r}")
        offsets: dict[tuple[str, int], int] = {}
        for topic, partitions in response.topics:
            for entry in partitions:
                if entry[-1]:
                    raise for_code(entry[-1])(f"OffsetFetch for group {group_id!r}, {topic}[{entry[0]}]")
                if entry[1] >= 0:
                    offsets[(topic, entry[0])] = entry[1]
        if not self._fetch_all_committed:
            found = {topic for topic, _ in offsets}
            self._committed_topics[group_id] = (self._committed_topics.get(group_id, set()) - set(asked)) | found
        return offsets

    async def _list_offsets(self, client: AIOKafkaClient, metadata: Metadata, which: int) -> dict[tuple[str, int], int]:
        """Latest or earliest offset of every led partition: one ListOffsets per leader broker."""
        by_leader: dict[int, dict[str, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
        for (topic, partition), leader in metadata.leaders.items():
            by_leader[leader][topic].append((partition, which))
        requests = [
            (leader, FastListOffsetsRequest(self._encoded, -1, 0, tuple((t, tuple(p)) for t, p in topics.items())))
            for leader, topics in by_leader.items()
        ]
        responses = await asyncio.gather(*(self._send(client, leader, request) for leader, request in requests))
        offsets: dict[tuple[str, int], int] = {}
        for response in responses:
            p = field_positions(response.SCHEMA, "topics", "partitions")
            p_id, p_error, p_offset = p["partition"], p["error_code"], p["offset"]
            for topic, partitions in response.topics:
                for partition in partitions:
                    if not partition[p_error] and partition[p_offset] >= 0:
                        offsets[(topic, partition[p_id])] = partition[p_offset]
        return offsets

    async def _refresh_retention(self, client: AIOKafkaClient, metadata: Metadata) -> None:
        """Time-based retention of every topic, re-read every `topic_config_refresh_seconds` or when
        topics appear; one DescribeConfigs for all topics. A broker that refuses (no permission,
        old version) leaves retention unknown and the risk falls back to log-start movement."""
        if self._describe_configs is False:
            self._retention = dict.fromkeys(metadata.partitions)
            return
        now = time.monotonic()
        read_at = self._retention_read_at
        fresh = read_at is not None and now - read_at < self.config.topic_config_refresh_seconds
        if fresh and set(metadata.partitions) <= set(self._retention):
            return
        self._retention_read_at = now
        request = DescribeConfigsRequest([(TOPIC_RESOURCE, topic, ["retention.ms", "cleanup.policy"])
                                          for topic in metadata.partitions])
        try:
            with _quiet("aiokafka.conn", enabled=self._describe_configs is None):
                response = await self._send(client, any_node(client), request)
            self._describe_configs = True
        except (KafkaError, OSError, TimeoutError, ValueError) as exc:
            if self._describe_configs is None and isinstance(exc, (KafkaConnectionError, ValueError)):
                self._describe_configs = False  # the broker does not speak it: do not ask again
            log.info("cluster %s: topic retention unavailable (%s)", self.config.cluster_label, describe(exc))
            self._retention = dict.fromkeys(metadata.partitions)
            return
        self._retention = {topic: None for topic in metadata.partitions}
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                continue
            entries = {entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]}
            retention_ms = entries.get("retention.ms")
            deletes = "delete" in (entries.get("cleanup.policy") or "delete")
            if retention_ms and retention_ms.lstrip("-").isdigit() and int(retention_ms) > 0 and deletes:
                self._retention[resource["resource_name"]] = int(retention_ms) / 1000.0

    async def _record_timestamps(
        self, client: AIOKafkaClient, metadata: Metadata, committed: dict[str, dict[tuple[str, int], int]],
        high_watermarks: dict[tuple[str, int], int],
    ) -> dict[tuple[str, int, int], float]:
        """Produce time (unix seconds) of the record at the committed offset, for the most lagging
        (group, partition) pairs, up to `record_timestamp_lookups` per cycle: the exact lag in
        seconds where producers (or brokers, with LogAppendTime) set timestamps."""
        budget = self.config.record_timestamp_lookups
        if not budget:
            return {}
        behind = sorted(
            ((hw - offset, topic, partition, offset)
             for offsets in committed.values() for (topic, partition), offset in offsets.items()
             if (hw := high_watermarks.get((topic, partition))) is not None and hw > offset
             and (topic, partition) in metadata.leaders),
            reverse=True,
        )
        wanted = list(dict.fromkeys((topic, partition, offset) for _, topic, partition, offset in behind))[:budget]
        # A Fetch names each partition once, so groups at different offsets of one partition go in
        # separate rounds; each round sends one Fetch per leader.
        rounds: list[dict[int, dict[str, list[tuple[int, int, int]]]]] = []
        for topic, partition, offset in wanted:
            leader = metadata.leaders[(topic, partition)]
            for round_ in rounds:
                if all(p != partition for p, _, _ in round_.get(leader, {}).get(topic, [])):
                    break
            else:
                round_ = {}
                rounds.append(round_)
            round_.setdefault(leader, {}).setdefault(topic, []).append((partition, offset, _FETCH_PARTITION_BYTES))
        # min_bytes 1 with a short wait: the records exist (hw > offset), so Kafka answers at once;
        # the local broker answers an empty set to a zero-wait fetch.
        requests = [(leader, FetchRequest(100, 1, _FETCH_PARTITION_BYTES * 4, 0, list(topics.items())))
                    for round_ in rounds for leader, topics in round_.items()]
        responses = await asyncio.gather(*(self._send(client, leader, request) for leader, request in requests),
                                         return_exceptions=True)
        found: dict[tuple[str, int, int], float] = {}
        for (_, request), response in zip(requests, responses, strict=True):
            if isinstance(response, BaseException):
                continue  # interpolation still gives an estimate for these partitions
            offsets = {(topic, p): offset for topic, parts in request.topics for p, offset, _ in parts}
            for topic, partitions in response.topics:
                for partition, error_code, _hw, *data in partitions:
                    offset = offsets.get((topic, partition))
                    if error_code or offset is None or not data[-1]:
                        continue
                    stamp = _timestamp_at(data[-1], offset)
                    if stamp is not None:
                        found[(topic, partition, offset)] = stamp
        return found


def members(description: dict[str, Any]) -> tuple[Member, ...]:
    """A DescribeGroups answer's members, with the partitions their consumer assignment names."""
    found = []
    for member in description["members"]:
        assignment: tuple[tuple[str, int], ...] = ()
        raw = member.get("member_assignment") or b""
        if raw:
            try:
                decoded = ConsumerProtocolMemberAssignment.decode(raw)
                assignment = tuple(sorted((topic, p) for topic, partitions in decoded.assignment for p in partitions))
            except Exception:  # a non-consumer protocol (e.g. Connect) encodes its own format
                assignment = ()
        found.append(Member(member["member_id"], member.get("client_id") or "", member.get("client_host") or "",
                            assignment))
    return tuple(sorted(found, key=lambda m: m.member_id))


def assigned_topics(descriptions: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """Group id -> the topics its members are assigned."""
    return {group_id: {topic for member in members(description) for topic, _ in member.assignment}
            for group_id, description in descriptions.items()}


def _timestamp_at(message_set: bytes, offset: int) -> float | None:
    """Timestamp (unix seconds) of the first record at or after `offset` in a Fetch answer; None
    when the records carry no timestamp (old message format) or the answer holds no such record."""
    records = MemoryRecords(message_set)
    try:
        while records.has_next():
            batch = records.next_batch()
            if batch is None:
                break
            for record in batch:
                if record.offset >= offset:
                    return record.timestamp / 1000.0 if record.timestamp is not None and record.timestamp >= 0 else None
    except Exception:  # a batch cut off by the size limit ends the search, it is not an error
        return None
    return None


@contextmanager
def _quiet(logger_name: str, enabled: bool) -> Iterator[None]:
    """Silence a logger while probing a broker capability whose failure is expected and handled."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    if enabled:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)

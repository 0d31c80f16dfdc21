"""Kafka consumer lag: committed offsets, high watermarks, lag, group state and rates.

Requests per cycle grow with brokers and coordinators, not with partitions: one Metadata request,
ListGroups per broker, DescribeGroups per coordinator, ListOffsets per partition leader (latest and
earliest), and one OffsetFetch per group (the OffsetFetch API before v8 takes one group). Groups'
coordinators are cached between cycles. Committed offsets are read before high watermarks so a
commit landing mid-cycle can only over-state lag for a moment, never make it negative.

Failures of a part of the cluster that leave the rest readable (a broker that does not answer, a
group whose offsets or description come back with an error code) go into the store's error registry
as warnings, once per cycle in which they were seen: each cycle asks again and fails again.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import functools
import gc
import logging
import math
import re
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import IncompatibleBrokerVersion, KafkaConnectionError, KafkaError, for_code
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.admin import (
    DescribeConfigsRequest,
    DescribeGroupsRequest_v0,
    DescribeGroupsRequest_v1,
    DescribeGroupsRequest_v2,
    ListGroupsRequest,
)
from aiokafka.protocol.api import Request
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.record.memory_records import MemoryRecords

from collectors.kafka.decode import FastDecoded, LastAnswer
from collectors.kafka.encode import CachedEncoding, EncodedRequests
from collectors.kafka.lag_time import LagTime, OffsetTimeTable
from collectors.kafka.status import PartitionHistory, Status, evaluate, group_status
from monitoring.config import KafkaSource
from monitoring.cycle import CycleResult, SourceFailure
from monitoring.health import categorize, describe
from monitoring.models.kafka import (
    Broker,
    GroupInfo,
    GroupTopic,
    KafkaSnapshot,
    Member,
    PartitionLag,
    PartitionMeta,
    TopicInfo,
)
from monitoring.runtime import Collector
from monitoring.store import CycleWriter

log = logging.getLogger(__name__)

_LATEST, _EARLIEST = -1, -2
_GROUP_COORDINATOR = 0
_TOPIC_RESOURCE = 2
_FETCH_PARTITION_BYTES = 64 * 1024
"""Bytes asked per partition when reading a record's timestamp; Kafka still returns one whole batch."""
_COORDINATOR_MOVED = {14, 15, 16}  # COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR


class _DescribeGroupsRequest(Request[DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2]):
    """DescribeGroups capped at v2: aiokafka 0.14 decodes v3 answers with the v2 schema, which
    garbles every group after the first (brokers since Kafka 2.3 would answer v3)."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class: type) -> Any:
        return request_struct_class(self._groups)


class _AllTopicsMetadataRequest(MetadataRequest):
    """Metadata of every topic, whose answer is decoded only when its bytes differ from the
    previous answer's (`answers`): at 10,000 partitions reading it cost about 0.25 s a cycle,
    and it changes only when the cluster does."""

    def __init__(self, answers: LastAnswer) -> None:
        super().__init__(None)
        self._answers = answers

    def prepare(self, versions: dict[int, tuple[int, int]]) -> Any:
        struct = super().prepare(versions)
        self._answers.response_type = struct.RESPONSE_TYPE
        # aiokafka decodes the answer with the request struct's RESPONSE_TYPE.
        struct.RESPONSE_TYPE = self._answers
        return struct


class _OffsetFetchRequest(CachedEncoding, FastDecoded, OffsetFetchRequest):
    """OffsetFetch, its answer decoded by collectors.kafka.decode (one entry per partition asked),
    its bytes reused while the group is asked for the same partitions (collectors.kafka.encode)."""


class _ListOffsetsRequest(CachedEncoding, FastDecoded, OffsetRequest):
    """ListOffsets, its answer decoded by collectors.kafka.decode (one entry per led partition),
    its bytes reused while the leader's partitions are the same (collectors.kafka.encode)."""


@dataclass(slots=True)
class _Metadata:
    cluster_id: str | None
    brokers: tuple[Broker, ...]
    leaders: dict[tuple[str, int], int]
    """(topic, partition) -> leader broker id; partitions without a leader are absent."""
    partitions: dict[str, list[int]]
    layout: dict[str, dict[int, PartitionMeta]]


class KafkaCollector(Collector):
    def __init__(self, pipeline: str, config: KafkaSource, distinct_name: bool = False) -> None:
        super().__init__(pipeline, ",".join(config.bootstrap_servers), config.interval_seconds, config.timeout_seconds)
        self.name = f"kafka:{config.cluster_label}" if distinct_name else "kafka"
        """`kafka`, or `kafka:<cluster>` when the pipeline watches several clusters."""
        self.config = config
        self._client: AIOKafkaClient | None = None
        self._coordinators: dict[str, int] = {}
        self._limit = asyncio.Semaphore(config.max_concurrent_requests)
        self._requests = 0
        self._encoded = EncodedRequests()
        """Bytes of the ListOffsets and OffsetFetch requests, reused while their content is the same."""
        self._metadata_answers = LastAnswer()
        self._last_metadata: tuple[Any, _Metadata] | None = None
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
        self._tables: dict[tuple[str, int], OffsetTimeTable] = {}
        """High-watermark history per partition, for lag in seconds."""
        self._histories: dict[tuple[str, str, int], PartitionHistory] = {}
        """Observed commits per (group, topic, partition), for the status evaluation."""
        self._protocol_types: dict[str, str] = {}
        """Groups of the last cycle -> protocol type, to keep groups whose coordinator is unreachable."""
        self._retention: dict[str, float | None] = {}
        """Topic -> time-based retention in seconds; None when unlimited, compacted or unknown."""
        self._retention_read_at: float | None = None
        self._describe_configs: bool | None = None
        """Whether the cluster answers DescribeConfigs; None until it has been asked once."""
        self._cycle_errors: list[tuple[str, str]] = []
        """(category, message) of the parts of this cycle that failed while the cycle went on."""
        self._samples: deque[_OffsetSums] = deque(
            maxlen=min(1000, math.ceil(config.rate_window_seconds / config.interval_seconds) + 2))

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def fetch(self) -> CycleResult:
        self._requests = 0
        self._cycle_errors = []
        self._encoded.next_cycle()
        client = await self._connect()
        metadata = await self._metadata(client)
        listed, unreachable = await self._list_groups(client, metadata)
        descriptions = await self._describe_groups(client, list(listed))
        assigned = {group_id: {topic for member in _members(description) for topic, _ in member.assignment}
                    for group_id, description in descriptions.items()}
        committed, group_errors = await self._committed_offsets(client, list(listed), metadata, assigned)
        # Groups whose coordinator did not answer are not listed; keep them, marked, rather than
        # let them vanish as if deleted.
        groups = dict(listed)
        for group_id, node in self._coordinators.items():
            if node in unreachable and group_id not in listed and group_id in self._protocol_types:
                groups[group_id] = self._protocol_types[group_id]
                group_errors[group_id] = f"coordinator {node} unreachable: {unreachable[node]}"
        self._protocol_types = groups
        metadata.brokers = tuple(
            dataclasses.replace(broker, error=unreachable.get(broker.node_id)) for broker in metadata.brokers)
        high_watermarks, log_starts = await asyncio.gather(
            self._list_offsets(client, metadata, _LATEST), self._list_offsets(client, metadata, _EARLIEST)
        )
        # After the offsets, alone: a broker that cannot answer DescribeConfigs may drop the
        # connection, which must not take other requests down with it.
        await self._refresh_retention(client, metadata)
        timestamps = await self._record_timestamps(client, metadata, committed, high_watermarks)
        t = time.time()
        with _gc_paused():
            snapshot = self._build_snapshot(metadata, groups, descriptions, committed, group_errors,
                                            high_watermarks, log_starts, t, timestamps)
        return CycleResult(measured_at=t, requests=self._requests, snapshot=snapshot,
                           write=functools.partial(self._write, snapshot=snapshot),
                           failures=tuple(SourceFailure(category, message) for category, message in self._cycle_errors))

    # -- requests ---------------------------------------------------------------------------------

    async def _connect(self) -> AIOKafkaClient:
        if self._client is None:
            client = AIOKafkaClient(
                bootstrap_servers=self.config.bootstrap_servers,
                client_id="pipewatch",
                request_timeout_ms=int(self.config.timeout_seconds * 1000),
                retry_backoff_ms=200,
                **client_security(self.config),
            )
            try:
                await client.bootstrap()
            except KafkaConnectionError:
                await client.close()
                raise await _unreachable(self.config.bootstrap_servers, self.config.timeout_seconds) from None
            except BaseException:
                await client.close()
                raise
            self._client = client
        return self._client

    async def _send(self, client: AIOKafkaClient, node_id: int, request: Any) -> Any:
        async with self._limit:
            self._requests += 1
            return await client.send(node_id, request)

    def _any_node(self, client: AIOKafkaClient) -> int:
        node = client.get_random_node()
        if node is None:
            raise KafkaConnectionError("no broker known: metadata is empty")
        return node

    async def _metadata(self, client: AIOKafkaClient) -> _Metadata:
        response = await self._send(client, self._any_node(client), _AllTopicsMetadataRequest(self._metadata_answers))
        if self._last_metadata is not None and response is self._last_metadata[0]:
            # A copy: collect() sets this cycle's broker errors on it.
            return dataclasses.replace(self._last_metadata[1])
        # The client sends to brokers by id: it learns their addresses (and changes of them) here.
        client.cluster.update_metadata(response)
        b = _field_positions(response.SCHEMA, "brokers")
        brokers = tuple(sorted(Broker(entry[b["node_id"]], entry[b["host"]], entry[b["port"]])
                               for entry in response.brokers))
        t = _field_positions(response.SCHEMA, "topics")
        p = _field_positions(response.SCHEMA, "topics", "partitions")
        # Fields by position (named from the response's schema), not to_object(): at 10,000
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
        metadata = _Metadata(getattr(response, "cluster_id", None), brokers, leaders, partitions, layout)
        self._last_metadata = (response, metadata)
        return dataclasses.replace(metadata)

    async def _list_groups(self, client: AIOKafkaClient, metadata: _Metadata) -> tuple[dict[str, str], dict[int, str]]:
        """Matched group id -> protocol type, from ListGroups on every broker; and the brokers that
        did not answer, with why. Only when no broker answers is the cycle lost."""
        responses = await asyncio.gather(
            *(self._send(client, broker.node_id, ListGroupsRequest()) for broker in metadata.brokers),
            return_exceptions=True,
        )
        groups: dict[str, str] = {}
        unreachable: dict[int, str] = {}
        for broker, response in zip(metadata.brokers, responses):
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

    async def _coordinator(self, client: AIOKafkaClient, group_id: str) -> int:
        if group_id not in self._coordinators:
            response = await self._send(client, self._any_node(client), FindCoordinatorRequest(group_id, _GROUP_COORDINATOR))
            body = response.to_object()
            if body["error_code"]:
                raise for_code(body["error_code"])(f"FindCoordinator for group {group_id!r}")
            self._coordinators[group_id] = body["coordinator_id"]
        return self._coordinators[group_id]

    async def _describe_groups(self, client: AIOKafkaClient, group_ids: list[str]) -> dict[str, dict[str, Any]]:
        """One DescribeGroups per coordinator, covering all of its groups."""
        by_coordinator: dict[int, list[str]] = defaultdict(list)
        found = await asyncio.gather(*(self._coordinator(client, g) for g in group_ids), return_exceptions=True)
        for group_id, coordinator in zip(group_ids, found):
            if isinstance(coordinator, int):
                by_coordinator[coordinator].append(group_id)
        responses = await asyncio.gather(
            *(self._send(client, node, _DescribeGroupsRequest(ids)) for node, ids in by_coordinator.items()),
            return_exceptions=True,
        )
        out: dict[str, dict[str, Any]] = {}
        for (node, ids), response in zip(by_coordinator.items(), responses):
            if isinstance(response, BaseException):
                if not isinstance(response, (KafkaError, OSError, asyncio.TimeoutError)):
                    raise response
                for group_id in ids:
                    self._coordinators.pop(group_id, None)
                continue
            for group in response.to_object()["groups"]:
                if group["error_code"] in _COORDINATOR_MOVED:
                    self._coordinators.pop(group["group"], None)
                if not group["error_code"]:
                    out[group["group"]] = group
                else:
                    self._part_failed(for_code(group["error_code"])(f"DescribeGroups for group {group['group']!r}"))
        return out

    async def _committed_offsets(
        self, client: AIOKafkaClient, group_ids: list[str], metadata: _Metadata, assigned: dict[str, set[str]],
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
        for group_id, result in zip(group_ids, results):
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

    def _part_failed(self, exc: BaseException, prefix: str = "") -> None:
        self._cycle_errors.append((categorize(exc), prefix + describe(exc)))

    def _topics_to_ask(self, group_ids: list[str], metadata: _Metadata,
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

    async def _group_offsets(self, client: AIOKafkaClient, group_id: str, metadata: _Metadata,
                             topics: list[str] | None = None) -> dict[tuple[str, int], int]:
        """A group's committed offsets: all of them where the broker takes a null partition list,
        else those on `topics` (None: every topic)."""
        coordinator = await self._coordinator(client, group_id)
        if self._fetch_all_committed is not False:
            try:
                with _quiet("aiokafka.conn", enabled=self._fetch_all_committed is None):
                    response = await self._send(client, coordinator, _OffsetFetchRequest(self._encoded, group_id, None))
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
            response = await self._send(client, coordinator, _OffsetFetchRequest(self._encoded, group_id, partitions))
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

    async def _refresh_retention(self, client: AIOKafkaClient, metadata: _Metadata) -> None:
        """Time-based retention of every topic, re-read every `topic_config_refresh_seconds` or when
        topics appear; one DescribeConfigs for all topics. A broker that refuses (no permission,
        old version) leaves retention unknown and the risk falls back to log-start movement."""
        if self._describe_configs is False:
            self._retention = dict.fromkeys(metadata.partitions)
            return
        now = time.monotonic()
        fresh = self._retention_read_at is not None and now - self._retention_read_at < self.config.topic_config_refresh_seconds
        if fresh and set(metadata.partitions) <= set(self._retention):
            return
        self._retention_read_at = now
        request = DescribeConfigsRequest([(_TOPIC_RESOURCE, topic, ["retention.ms", "cleanup.policy"])
                                          for topic in metadata.partitions])
        try:
            with _quiet("aiokafka.conn", enabled=self._describe_configs is None):
                response = await self._send(client, self._any_node(client), request)
            self._describe_configs = True
        except (KafkaError, OSError, asyncio.TimeoutError, ValueError) as exc:
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
        self, client: AIOKafkaClient, metadata: _Metadata, committed: dict[str, dict[tuple[str, int], int]],
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
        for (_, request), response in zip(requests, responses):
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

    async def _list_offsets(self, client: AIOKafkaClient, metadata: _Metadata, which: int) -> dict[tuple[str, int], int]:
        """Latest or earliest offset of every led partition: one ListOffsets per leader broker."""
        by_leader: dict[int, dict[str, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
        for (topic, partition), leader in metadata.leaders.items():
            by_leader[leader][topic].append((partition, which))
        requests = [(leader, _ListOffsetsRequest(self._encoded, -1, 0, tuple((t, tuple(p)) for t, p in topics.items())))
                    for leader, topics in by_leader.items()]
        responses = await asyncio.gather(*(self._send(client, leader, request) for leader, request in requests))
        offsets: dict[tuple[str, int], int] = {}
        for response in responses:
            p = _field_positions(response.SCHEMA, "topics", "partitions")
            p_id, p_error, p_offset = p["partition"], p["error_code"], p["offset"]
            for topic, partitions in response.topics:
                for partition in partitions:
                    if not partition[p_error] and partition[p_offset] >= 0:
                        offsets[(topic, partition[p_id])] = partition[p_offset]
        return offsets

    def _reference_sample(self, now: float) -> _OffsetSums | None:
        """The newest sample at least one rate window old, else the oldest one kept."""
        window = self.config.rate_window_seconds
        old_enough = [sample for sample in self._samples if now - sample.t >= window]
        return old_enough[-1] if old_enough else (self._samples[0] if self._samples else None)

    # -- results ----------------------------------------------------------------------------------

    def _build_snapshot(
        self,
        metadata: _Metadata,
        groups: dict[str, str],
        descriptions: dict[str, dict[str, Any]],
        committed: dict[str, dict[tuple[str, int], int]],
        group_errors: dict[str, str],
        high_watermarks: dict[tuple[str, int], int],
        log_starts: dict[tuple[str, int], int],
        t: float,
        timestamps: dict[tuple[str, int, int], float] | None = None,
    ) -> KafkaSnapshot:
        sums = _OffsetSums.of(t, high_watermarks, log_starts, committed)
        reference = self._reference_sample(t)
        self._track_watermarks(high_watermarks, t)
        topics = {
            name: TopicInfo(
                name, metadata.layout[name],
                {p: high_watermarks[(name, p)] for p in ids if (name, p) in high_watermarks},
                {p: log_starts[(name, p)] for p in ids if (name, p) in log_starts},
                _rate(reference, sums, name),
            )
            for name, ids in metadata.partitions.items()
        }
        group_infos, group_topics = [], {}
        seen_histories: set[tuple[str, str, int]] = set()
        timestamps = timestamps or {}
        for group_id in sorted(groups):
            description = descriptions.get(group_id)
            members = _members(description) if description else None
            has_members = bool(members) if members is not None else None
            owners = {tp: m.label for m in members or () for tp in m.assignment}
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
                group_topics[(group_id, topic)] = _group_topic(
                    group_id, topic, on_topic, _rate(reference, sums, (group_id, topic)), topics[topic].produce_rate,
                    _rate(reference, sums, ("log_start", topic)), self._retention.get(topic))
            evaluation = group_status([_LabelledEvaluation(p) for p in partitions])
            group_infos.append(GroupInfo(
                group_id=group_id,
                state=description["state"] if description else "Unknown",
                protocol_type=groups[group_id],
                members=members,
                coordinator=self._coordinators.get(group_id),
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
            unmatched_patterns=unmatched, requests=self._requests, collected_at=t,
        )

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
            lag_time = LagTime(max(0.0, t - stamp), "record_timestamp", "timestamp of the record at the committed offset")
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

    def _write(self, cycle: CycleWriter, snapshot: KafkaSnapshot) -> None:
        cluster = snapshot.cluster
        cycle.set("kafka_brokers", (cluster,), len(snapshot.brokers))
        for broker in snapshot.brokers:
            cycle.set("kafka_broker_reachable", (cluster, str(broker.node_id)), int(broker.reachable))
        _write_topic_offsets(cycle, cluster, snapshot.topics)
        for group in snapshot.groups:
            if group.error is not None:
                # Keep the group's last known series (marked by their age) rather than blank them.
                prefix = (self.pipeline, cluster, group.group_id)
                cycle.retain(lambda key, prefix=prefix: key[1][:3] == prefix)
                continue
            labels = (cluster, group.group_id)
            cycle.set("kafka_consumergroup_status", labels, int(group.status))
            if group.member_count is not None:
                cycle.set("kafka_consumergroup_members", labels, group.member_count)
            if group.lag_sum is not None:
                cycle.set("kafka_consumergroup_group_sum_lag", labels, group.lag_sum)
                cycle.set("kafka_consumergroup_group_max_lag", labels, group.max_lag)
            cycle.set("kafka_consumergroup_group_max_lag_seconds", labels, group.max_lag_seconds)
        _write_group_partitions(cycle, cluster, [group for group in snapshot.groups if group.error is None])
        for (group_id, topic), progress in snapshot.group_topics.items():
            labels = (cluster, group_id, topic)
            if progress.lag is not None:
                cycle.set("kafka_consumergroup_group_topic_sum_lag", labels, progress.lag)
            cycle.set("kafka_consumergroup_group_topic_max_lag_seconds", labels, progress.max_lag_seconds)
            if progress.consume_rate is not None:
                cycle.set("kafka_consumergroup_consume_rate", labels, progress.consume_rate)
            cycle.set("kafka_consumergroup_catch_up_seconds", labels, progress.catch_up_seconds)
            if progress.retention_margin is not None:
                cycle.set("kafka_consumergroup_retention_margin_messages", labels, progress.retention_margin)
            cycle.set("kafka_consumergroup_retention_risk_seconds", labels, progress.retention_risk_seconds)
        _write_topic_layout(cycle, cluster, snapshot.topics)


def _write_topic_offsets(cycle: CycleWriter, cluster: str, topics: dict[str, TopicInfo]) -> None:
    """Per partition, its latest and earliest offset; per topic, its produce rate."""
    # High watermarks and log starts are only read for partitions the metadata lists.
    for metric, rows in (
        ("kafka_topic_partition_current_offset", [((cluster, name, str(partition)), offset)
                                                  for name, topic in topics.items()
                                                  for partition, offset in topic.high_watermarks.items()]),
        ("kafka_topic_partition_oldest_offset", [((cluster, name, str(partition)), offset)
                                                 for name, topic in topics.items()
                                                 for partition, offset in topic.log_start_offsets.items()]),
    ):
        cycle.set_many(metric, rows)
    for name, topic in topics.items():
        if topic.produce_rate is not None:
            cycle.set("kafka_topic_produce_rate", (cluster, name), topic.produce_rate)


def _write_topic_layout(cycle: CycleWriter, cluster: str, topics: dict[str, TopicInfo]) -> None:
    """Partitions per topic; leader, replicas, in-sync replicas and under-replication per partition.
    The layout changes rarely: its series get a point only when their value changes."""
    cycle.set_column("kafka_topic_partitions", [(cluster, name) for name in topics],
                     [len(topic.partitions) for topic in topics.values()], only_changes=True)
    metas = [((cluster, name, str(partition)), meta)
             for name, topic in topics.items() for partition, meta in topic.partitions.items()]
    labels = [row for row, _ in metas]
    for metric, values in (
        ("kafka_topic_partition_leader", [meta.leader for _, meta in metas]),
        ("kafka_topic_partition_replicas", [len(meta.replicas) for _, meta in metas]),
        ("kafka_topic_partition_in_sync_replica", [len(meta.isr) for _, meta in metas]),
        ("kafka_topic_partition_under_replicated_partition", [int(meta.under_replicated) for _, meta in metas]),
    ):
        cycle.set_column(metric, labels, values, only_changes=True)


def _write_group_partitions(cycle: CycleWriter, cluster: str, groups: list[GroupInfo]) -> None:
    """Per committed group-partition: offset, status, lag and lag in seconds, a column per metric
    (tens of thousands of rows a cycle)."""
    committed = [(group.group_id, p) for group in groups for p in group.partitions if p.committed is not None]
    labels = [(cluster, group_id, p.topic, str(p.partition)) for group_id, p in committed]
    cycle.set_column("kafka_consumergroup_current_offset", labels, [p.committed for _, p in committed])
    cycle.set_column("kafka_consumergroup_partition_status", labels, [int(p.status) for _, p in committed])
    lagged = [(row, p.lag) for row, (_, p) in zip(labels, committed) if p.lag is not None]
    cycle.set_column("kafka_consumergroup_lag", [row for row, _ in lagged], [lag for _, lag in lagged])
    cycle.set_column("kafka_consumergroup_lag_seconds", labels, [p.lag_seconds for _, p in committed])


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


@functools.cache
def _field_positions(schema: Any, *path: str) -> dict[str, int]:
    """Field name -> position in the tuples aiokafka decodes for the entries at `path` of a
    response schema (e.g. "topics", "partitions"): entries read by position without to_object()."""
    for name in path:
        schema = schema.fields[schema.names.index(name)]
        schema = getattr(schema, "array_of", schema)
    return {name: i for i, name in enumerate(schema.names)}


def client_security(config: KafkaSource) -> dict[str, Any]:
    """aiokafka client settings for TLS and SASL; secrets are read here and nowhere else."""
    options: dict[str, Any] = {"security_protocol": config.security_protocol}
    if config.security_protocol.endswith("SSL"):
        tls = config.tls
        context = create_ssl_context(
            cafile=str(tls.ca_file) if tls and tls.ca_file else None,
            certfile=str(tls.cert_file) if tls and tls.cert_file else None,
            keyfile=str(tls.key_file) if tls and tls.key_file else None,
            password=tls.key_password.get_secret_value() if tls and tls.key_password else None,
        )
        context.check_hostname = tls.check_hostname if tls else True
        options["ssl_context"] = context
    if config.sasl is not None:
        options.update(sasl_mechanism=config.sasl.mechanism, sasl_plain_username=config.sasl.username,
                       sasl_plain_password=config.sasl.password.get_secret_value())
    return options


def _members(description: dict[str, Any]) -> tuple[Member, ...]:
    members = []
    for member in description["members"]:
        assignment: tuple[tuple[str, int], ...] = ()
        raw = member.get("member_assignment") or b""
        if raw:
            try:
                decoded = ConsumerProtocolMemberAssignment.decode(raw)
                assignment = tuple(sorted((topic, p) for topic, partitions in decoded.assignment for p in partitions))
            except Exception:  # a non-consumer protocol (e.g. Connect) encodes its own format
                assignment = ()
        members.append(Member(member["member_id"], member.get("client_id") or "", member.get("client_host") or "",
                              assignment))
    return tuple(sorted(members, key=lambda m: m.member_id))


class _LabelledEvaluation:
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


def _group_topic(group_id: str, topic: str, partitions: list[PartitionLag], consume_rate: float | None,
                 produce_rate: float | None, log_start_rate: float | None,
                 retention_seconds: float | None = None) -> GroupTopic:
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


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection in the block, which must not await (no other task runs in it).

    Building and writing a cycle's results allocates hundreds of thousands of objects, most dead
    by the end (rows, labels, evaluations). Each 700 net allocations start a young collection, and
    what survives ten of those moves on until a full collection traverses every object of the
    process, the store's 100,000 series included: at 100 x 10,000 about two full collections a
    cycle. Paused, the objects still alive at the end are examined once, at the next collection.
    The pause is process-wide (the exporter's thread too) and lasts only the block."""
    if not gc.isenabled():  # paused by someone else: theirs to resume
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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


async def _unreachable(servers: list[str], timeout: float) -> OSError:
    """Why no bootstrap server answered, found by a plain TCP connect to each (only after a failure)."""
    reasons = []
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout=min(timeout, 5))
            writer.close()
            reasons.append(f"{server}: accepts TCP but does not answer the Kafka protocol")
        except ConnectionRefusedError:  # asyncio says only "Connect call failed": the errno is what tells
            reasons.append(f"{server}: connection refused")
        except (OSError, asyncio.TimeoutError) as exc:
            reasons.append(f"{server}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else describe(exc)}")
    error = ConnectionRefusedError if all("refused" in r.lower() for r in reasons) else ConnectionError
    return error(f"no bootstrap server reachable ({'; '.join(reasons)})")


@dataclass(frozen=True, slots=True)
class _OffsetSums:
    """Offsets summed per topic (high watermarks), per ("log_start", topic) and per (group, topic)
    (commits) at one time,
    with how many partitions each sum covers: all a rate needs, at a fraction of the memory."""

    t: float
    sums: dict[str | tuple[str, str], tuple[int, int]]

    @classmethod
    def of(cls, t: float, high_watermarks: dict[tuple[str, int], int], log_starts: dict[tuple[str, int], int],
           committed: dict[str, dict[tuple[str, int], int]]) -> _OffsetSums:
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


def _rate(reference: _OffsetSums | None, current: _OffsetSums, key: str | tuple[str, str]) -> float | None:
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

"""The Kafka cycle, step by step: requests (requests.py, over client.py), the snapshot built from their answers
(snapshot.py, derive.py), the series written (write.py). Requests grow with brokers and coordinators, not with
partitions; docs/kafka-collector.md describes the cycle and its partial failures."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time

from collectors.kafka.client import EARLIEST, LATEST
from collectors.kafka.requests import KafkaRequests, assigned_topics
from collectors.kafka.snapshot import SnapshotBuilder
from collectors.kafka.write import write_snapshot
from monitoring.config import KafkaSource
from monitoring.cycle import CycleResult, SourceFailure
from monitoring.models.kafka import KafkaSnapshot
from monitoring.runtime import Collector, gc_paused
from monitoring.sources import KAFKA, collector_name
from monitoring.store import CycleWriter


class KafkaCollector(KafkaRequests, Collector):
    def __init__(self, pipeline: str, config: KafkaSource, distinct_name: bool = False) -> None:
        Collector.__init__(self, pipeline, ",".join(config.bootstrap_servers), config.interval_seconds,
                           config.timeout_seconds)
        KafkaRequests.__init__(self, config)
        self.name = collector_name(KAFKA, config.cluster_label if distinct_name else None)
        """`kafka`, or `kafka:<cluster>` when the pipeline watches several clusters."""
        self._snapshots = SnapshotBuilder(config)

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
        assigned = assigned_topics(descriptions)
        committed, group_errors = await self._committed_offsets(client, list(listed), metadata, assigned)
        groups = self._with_unreachable_groups(listed, unreachable, group_errors)
        metadata.brokers = tuple(
            dataclasses.replace(broker, error=unreachable.get(broker.node_id)) for broker in metadata.brokers)
        high_watermarks, log_starts = await asyncio.gather(
            self._list_offsets(client, metadata, LATEST), self._list_offsets(client, metadata, EARLIEST)
        )
        # After the offsets, alone: a broker that cannot answer DescribeConfigs may drop the
        # connection, which must not take other requests down with it.
        await self._refresh_retention(client, metadata)
        timestamps = await self._record_timestamps(client, metadata, committed, high_watermarks)
        t = time.time()
        with gc_paused():  # the build allocates per partition and group-partition; it does not await
            snapshot = self._snapshots.build(metadata, groups, descriptions, committed, group_errors,
                                             high_watermarks, log_starts, t, timestamps, retention=self._retention,
                                             coordinators=self._coordinators, requests=self._requests)
        return CycleResult(measured_at=t, requests=self._requests, snapshot=snapshot,
                           write=functools.partial(self._write, snapshot=snapshot),
                           failures=tuple(SourceFailure(category, message) for category, message in self._cycle_errors))

    def _write(self, cycle: CycleWriter, snapshot: KafkaSnapshot) -> None:
        write_snapshot(cycle, self.pipeline, snapshot)


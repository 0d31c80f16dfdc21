"""Producing and consuming known counts against a real broker, for exact-lag assertions."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    """Produce counts[partition] records to each partition, one record per batch: the local
    broker reports exact high watermarks only for single-record batches."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        for partition, count in counts.items():
            for i in range(count):
                await producer.send_and_wait(topic, f"{partition}-{i}".encode(), partition=partition)
    finally:
        await producer.stop()


async def commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit the given offsets for a group, as a consumer that read exactly that far would."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in offsets]
        consumer.assign(partitions)
        await consumer.commit({TopicPartition(topic, p): o for p, o in offsets.items()})
    finally:
        await consumer.stop()


async def record_timestamp(bootstrap: str, topic: str, partition: int, offset: int) -> float:
    """The producer timestamp (unix seconds) of the record at an offset: the true production time."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        records = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
        (record,) = records[tp]
        assert record.offset == offset, (record.offset, offset)
        return record.timestamp / 1000.0
    finally:
        await consumer.stop()


async def delete_group(bootstrap: str, group: str) -> None:
    """DeleteGroups sent to the group's coordinator (aiokafka's admin client has no call for it)."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.admin import DeleteGroupsRequest
    from aiokafka.protocol.coordination import FindCoordinatorRequest

    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        found = await client.send(client.get_random_node(), FindCoordinatorRequest(group, 0))
        response = await client.send(found.coordinator_id, DeleteGroupsRequest([group]))
        (result,) = response.to_object()["results"]
        assert result["error_code"] == 0, result
    finally:
        await client.close()

"""The connection to a Kafka cluster: bootstrap, TLS and SASL, and aiokafka's protocol as the collector sends it.

aiokafka's low-level client (`AIOKafkaClient.send`) is used rather than its admin client: one request
per broker or coordinator for all partitions or groups it serves. The request classes here are
aiokafka's with its gaps worked around (a DescribeGroups version it decodes wrongly, answers too
large to decode every cycle).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.admin import DescribeGroupsRequest_v0, DescribeGroupsRequest_v1, DescribeGroupsRequest_v2
from aiokafka.protocol.api import Request
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.offset import OffsetRequest

from collectors.kafka.decode import FastDecoded, LastAnswer
from collectors.kafka.encode import CachedEncoding
from monitoring.config import KafkaSource
from monitoring.health import describe

LATEST, EARLIEST = -1, -2
"""ListOffsets timestamps: the high watermark, the log start."""
GROUP_COORDINATOR = 0
"""FindCoordinator key type of a consumer group."""
TOPIC_RESOURCE = 2
"""DescribeConfigs resource type of a topic."""
COORDINATOR_MOVED = {14, 15, 16}  # COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR


async def connect(config: KafkaSource) -> AIOKafkaClient:
    """A bootstrapped client; when no bootstrap server answers, an OSError saying why for each."""
    client = AIOKafkaClient(
        bootstrap_servers=config.bootstrap_servers,
        client_id="pipewatch",
        request_timeout_ms=int(config.timeout_seconds * 1000),
        retry_backoff_ms=200,
        **client_security(config),
    )
    try:
        await client.bootstrap()
    except KafkaConnectionError:
        await client.close()
        raise await _unreachable(config.bootstrap_servers, config.timeout_seconds) from None
    except BaseException:
        await client.close()
        raise
    return client


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


def any_node(client: AIOKafkaClient) -> int:
    """Some known broker, for requests any broker answers."""
    node = client.get_random_node()
    if node is None:
        raise KafkaConnectionError("no broker known: metadata is empty")
    return node


class CappedDescribeGroupsRequest(
    Request[DescribeGroupsRequest_v0 | DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2]
):
    """DescribeGroups capped at v2: aiokafka 0.14 decodes v3 answers with the v2 schema, which
    garbles every group after the first (brokers since Kafka 2.3 would answer v3)."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class: type) -> Any:
        return request_struct_class(self._groups)


class AllTopicsMetadataRequest(MetadataRequest):
    """Metadata of every topic, whose answer is decoded only when its bytes differ from the
    previous answer's (`answers`): at many partitions decoding it is a large part of a cycle
    (docs/kafka-collector.md), and it changes only when the cluster does."""

    def __init__(self, answers: LastAnswer) -> None:
        super().__init__(None)
        self._answers = answers

    def prepare(self, versions: dict[int, tuple[int, int]]) -> Any:
        struct = super().prepare(versions)
        self._answers.response_type = struct.RESPONSE_TYPE
        # aiokafka decodes the answer with the request struct's RESPONSE_TYPE.
        struct.RESPONSE_TYPE = self._answers
        return struct


class FastOffsetFetchRequest(CachedEncoding, FastDecoded, OffsetFetchRequest):
    """OffsetFetch, its answer decoded by collectors.kafka.decode (one entry per partition asked),
    its bytes reused while the group is asked for the same partitions (collectors.kafka.encode)."""


class FastListOffsetsRequest(CachedEncoding, FastDecoded, OffsetRequest):
    """ListOffsets, its answer decoded by collectors.kafka.decode (one entry per led partition),
    its bytes reused while the leader's partitions are the same (collectors.kafka.encode)."""


@functools.cache
def field_positions(schema: Any, *path: str) -> dict[str, int]:
    """Field name -> position in the tuples aiokafka decodes for the entries at `path` of a
    response schema (e.g. "topics", "partitions"): entries read by position without to_object()."""
    for name in path:
        schema = schema.fields[schema.names.index(name)]
        schema = getattr(schema, "array_of", schema)
    return {name: i for i, name in enumerate(schema.names)}


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
        except (OSError, TimeoutError) as exc:
            reasons.append(f"{server}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else describe(exc)}")
    error = ConnectionRefusedError if all("refused" in r.lower() for r in reasons) else ConnectionError
    return error(f"no bootstrap server reachable ({'; '.join(reasons)})")

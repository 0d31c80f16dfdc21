"""Schemathesis fuzzes the JSON API of a real `pipewatch agent` process fed by a real broker, from the OpenAPI
document the agent serves: valid and invalid parameters alike get no 5xx and no dropped connection, and every
answer conforms to the document (status, content type, headers, body schema); invalid ones are refused (4xx)."""

from __future__ import annotations

import base64
import os
import time
from urllib.parse import quote

import asyncpg
import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.profiling_util import ProfilerTables
from tests.services import run_async, wait_until
from tests.test_json_api import Agent, lagging  # noqa: F401 - the fixture: a broker with lagging groups
from tests.test_profilemesh_api import _seed

SCRAPE = ("prom", "scrape-secret")
API = ("mirror", "api-secret")
EXAMPLES = 40
"""Per /api/v1 operation and mode (valid, invalid): ~440 schemathesis requests (operations without parameters run
out of distinct cases early) and 160 raw queries, 15-30 s."""
PROFILEMESH_EXAMPLES = 12
"""The same for each /profilemesh operation (eight of them, their parameters parsed by the same helpers): ~190
requests more."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]

CONFIG = ("pipelines:\n  - name: orders\n    kafka: {{bootstrap_servers: ['{bootstrap}'], cluster: local, "
          "interval_seconds: 0.5, consumer_groups: [billing]}}\n"
          "  - name: warehouse\n    profiling: {{dsn: '{dsn}', schema: {schema}, interval_seconds: 1}}\n"
          "exporter: {{host: 127.0.0.1, port: {{PORT}}, basic_auth: {{username: prom, password: scrape-secret}}, "
          "api_auth: {{username: mirror, password: api-secret}}}}\n"
          "runtime: {{max_backoff_seconds: 1}}\n")


def test_schemathesis_finds_no_server_error_dropped_connection_or_nonconforming_answer(
        lagging, postgres, pg_schema, tmp_path):  # noqa: F811
    run_async(_profiler_rows(postgres.dsn, pg_schema))
    agent = Agent(tmp_path, CONFIG.format(bootstrap=lagging.bootstrap, dsn=postgres.dsn, schema=pg_schema)).start()
    try:
        def measured() -> bool:
            body = httpx.get(f"{agent.url}/api/v1/pipelines", auth=API, timeout=10).json()
            orders = [p for p in body["pipelines"] if p["pipeline"] == "orders"]
            runs = httpx.get(f"{agent.url}/profilemesh/warehouse/api/runs", auth=API, timeout=10)
            return bool(orders) and orders[0]["lag_messages"] == 6 and runs.status_code == 200

        wait_until(measured, 30, interval=0.2, what="the agent's first measurements")
        document = httpx.get(f"{agent.url}/api/v1/openapi.json", auth=SCRAPE, timeout=10)
        assert document.status_code == 200
        schema = schemathesis.openapi.from_dict(document.json())
        session = requests.Session()
        session.auth = API  # opens every operation; the scrape credential's limits are tested in test_agent_endpoint
        started, calls = time.monotonic(), [0]
        operations = [result.ok() for result in schema.get_all_operations()]
        assert sorted(op.path for op in operations) == [
            "/api/v1", "/api/v1/alerts", "/api/v1/events", "/api/v1/openapi.json", "/api/v1/pipelines",
            "/api/v1/pipelines/{name}", "/api/v1/series", "/api/v1/state",
            *(f"/profilemesh/{{pipeline}}/api/{path}" for path in (
                "dashboard/metrics", "drift", "export/drift", "export/runs", "runs", "runs/{run_id}",
                "tables/{table}/metrics", "warehouses"))]
        for operation in operations:
            modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if operation.definition.raw.get(
                "parameters") else [])
            for mode in modes:
                examples = PROFILEMESH_EXAMPLES if operation.path.startswith("/profilemesh/") else EXAMPLES
                fuzz(operation.as_strategy(generation_mode=mode), agent.url, session, calls, examples)
        elapsed = time.monotonic() - started
        assert calls[0] >= 5 * EXAMPLES + 8 * PROFILEMESH_EXAMPLES and elapsed < 90, (calls[0], elapsed)
        print(f"schemathesis: {calls[0]} requests in {elapsed:.1f} s")
        with httpx.Client(base_url=agent.url, auth=API, timeout=10) as client:
            raw_queries(client)
        # The agent is still there and answering after all of it.
        assert httpx.get(f"{agent.url}/healthz", timeout=10).status_code == 200
    finally:
        agent.stop()


async def _profiler_rows(dsn: str, schema: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await _seed(await ProfilerTables(connection, schema).create())
    finally:
        await connection.close()


def fuzz(strategy, base_url: str, session: requests.Session, calls: list[int], examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=os.environ.get("CI") == "true",
              suppress_health_check=list(HealthCheck), print_blob=True)
    @seed(17)
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        calls[0] += 1
        # A dropped connection raises here (requests.ConnectionError) and fails the test.
        response = case.call(base_url=base_url, session=session, timeout=10)
        case.validate_response(response, checks=CHECKS)

    run()


# Schemathesis' invalid integers are ASCII; these reach the parsers with what it does not send: digits of other
# scripts ('²', '١'), raw and broken percent-escapes, repeated and unknown names.
_TEXT = st.text(st.characters(categories=["Nd", "No", "L", "P", "S", "Zs", "Cc"]), max_size=30)
_DIGITS = st.text(st.characters(categories=["Nd", "No"]) | st.sampled_from("²³¹①⑨"), min_size=1, max_size=3)
"""Digits int() takes (Devanagari '०') and ones str.isdigit takes but int() refuses (superscripts, circled)."""
_RAW = st.one_of(_DIGITS.map(lambda t: quote(t, safe="")), _DIGITS.map(lambda t: quote(t, safe="")),
                 _TEXT.map(lambda t: quote(t, safe="")), _TEXT.map(lambda t: quote(t, safe="%&=+")),
                 st.sampled_from(["%", "%z", "%ff", "%C0%AF", "%E2%82", "+", "-1", "1e3", "0x1",
                                  "99999999999999999999"]))
_NAMES = st.sampled_from(["since", "limit", "pipeline", "cursor", "name", "partition", "x", "days", "offset",
                          "severity", "format", "status"])
_NAMES = _NAMES | _NAMES | _NAMES | _TEXT  # mostly the names the endpoints take, so the values reach the parsers


@settings(max_examples=EXAMPLES * 4, deadline=None, database=None, derandomize=os.environ.get("CI") == "true",
          suppress_health_check=list(HealthCheck))
@seed(17)
@example(path="/api/v1/events", pairs=[("since", "%C2%B2")])  # issue #17: int('²') raised, the connection dropped
@example(path="/api/v1/state", pairs=[("cursor", "[" * 40_000)])
@example(path="/api/v1/state", pairs=[("cursor", base64.urlsafe_b64encode(b"[" * 20_000).decode())])  # RecursionError
@example(path="/profilemesh/warehouse/api/runs", pairs=[("since", "2024-02-30")])
@given(path=st.sampled_from(["/api/v1", "/api/v1/pipelines", "/api/v1/pipelines/orders", "/api/v1/series",
                             "/api/v1/events", "/api/v1/state", "/api/v1/openapi.json",
                             "/profilemesh/warehouse/api/runs", "/profilemesh/warehouse/api/drift",
                             "/profilemesh/warehouse/api/export/runs", "/profilemesh/warehouse/api/dashboard/metrics"]),
       pairs=st.lists(st.tuples(_NAMES.map(lambda n: quote(n, safe="")), _RAW), min_size=1, max_size=4))
def raw_queries(client: httpx.Client, path: str, pairs: list[tuple[str, str]]) -> None:
    query = "&".join(f"{name}={value}" for name, value in pairs)
    response = client.get(httpx.URL(path, query=query.encode()))
    assert response.status_code in (200, 400, 404), (path, query, response.status_code, response.text)
    body = response.json()
    if response.status_code == 400:
        # The error names the parameter it is about, and starts with it.
        assert body["status"] == "error" and body["error"].startswith(body["parameter"]), (query, body)

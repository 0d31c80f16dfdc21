"""The schema-registry collector against the local stand-in of the registry contract
(tests/schema_registry_standin.py: no registry server can be installed here), and the exporter
serving what it measured."""

from __future__ import annotations

import subprocess

import httpx

from collectors.schema_registry.collector import SchemaRegistryCollector
from exporters.server import start_exporter
from monitoring.config import SchemaRegistrySource
from monitoring.health import State
from monitoring.models.schema_registry import RegistrySnapshot
from monitoring.runtime import Supervisor
from monitoring.store import Store
from tests.schema_registry_standin import SchemaRegistryStandIn
from tests.test_exporter import PROMTOOL, _samples

PIPELINE = "orders"
AVRO = '{"type":"record","name":"Order","fields":[{"name":"id","type":"long"}]}'
AVRO_V2 = ('{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},'
           '{"name":"note","type":["null","string"],"default":null}]}')
JSON_SCHEMA = '{"type":"object","properties":{"sku":{"type":"string"}}}'


def _collector(standin: SchemaRegistryStandIn, **settings) -> SchemaRegistryCollector:
    config = SchemaRegistrySource(**{"url": standin.url, "registry": "main", "interval_seconds": 10,
                                     "timeout_seconds": 2, **settings})
    return SchemaRegistryCollector(PIPELINE, config)


def _value(store: Store, name: str, *labels: str) -> float | None:
    point = store.latest(name, (PIPELINE, "main", *labels))
    return None if point is None else point[1]


def _snapshot(store: Store) -> RegistrySnapshot:
    entry = store.snapshot((PIPELINE, "schema_registry"))
    assert entry is not None
    return entry[1]


def _events(store: Store) -> list[tuple[str, str]]:
    return [(e.severity, e.message) for e in store.events_since(0) if e.collector == "schema_registry"]


def _seed(standin: SchemaRegistryStandIn) -> None:
    standin.register("orders-value", AVRO)
    standin.register("orders-value", AVRO_V2)
    standin.register("inventory-value", JSON_SCHEMA, "JSON")
    standin.register("audit-value", AVRO)  # same schema text as orders-value v1: the same id
    standin.subject_compatibility["inventory-value"] = "NONE"


async def test_inventory_settings_and_latency_are_measured(registry):
    _seed(registry)
    store = Store()
    collector = _collector(registry)
    requests = await collector.collect(store)
    # GET /, /subjects, /config, /mode, /_health (404: not Karapace), /subjects?deleted=true, 4 per subject
    assert requests == 6 + 3 * 4 == sum(registry.requests.values())
    assert registry.requests["GET /subjects/orders-value/versions/latest"] == 1

    assert _value(store, "schema_registry_up") == 1
    assert _value(store, "schema_registry_subjects") == 3
    assert _value(store, "schema_registry_deleted_subjects") == 0
    assert _value(store, "schema_registry_schema_versions") == 4
    assert _value(store, "schema_registry_max_schema_id") == 3
    assert _value(store, "schema_registry_subject_versions", "orders-value") == 2
    assert _value(store, "schema_registry_subject_latest_version", "orders-value") == 2
    assert _value(store, "schema_registry_subject_latest_schema_id", "orders-value") == 2
    assert _value(store, "schema_registry_subject_latest_schema_id", "audit-value") == 1
    assert _value(store, "schema_registry_compatibility") == 2  # BACKWARD
    assert _value(store, "schema_registry_mode") == 1  # READWRITE
    assert _value(store, "schema_registry_subject_compatibility", "inventory-value") == 1  # NONE, its own
    assert _value(store, "schema_registry_subject_compatibility", "orders-value") == 2  # inherited BACKWARD
    assert _value(store, "schema_registry_requests_total") == requests
    assert store.keys("schema_registry_errors_total") == []
    assert store.keys("schema_registry_ready") == []  # no /_health: absent, not 0
    for endpoint in ("/", "/subjects"):
        assert 0 < _value(store, "schema_registry_request_duration_seconds", endpoint) < 2

    snapshot = _snapshot(store)
    subjects = {s.name: s for s in snapshot.subjects}
    assert list(subjects) == ["audit-value", "inventory-value", "orders-value"]
    assert subjects["inventory-value"].schema_type == "JSON" and subjects["orders-value"].schema_type == "AVRO"
    assert subjects["inventory-value"].compatibility == "NONE" and subjects["inventory-value"].compatibility_own
    assert subjects["orders-value"].compatibility == "BACKWARD" and not subjects["orders-value"].compatibility_own
    assert subjects["orders-value"].mode == "READWRITE"
    assert snapshot.warnings == ("1 subject(s) with compatibility NONE: inventory-value",)
    assert _events(store) == []  # the first inventory is the baseline, not a change


async def test_changes_between_cycles_become_events(registry):
    _seed(registry)
    store = Store()
    collector = _collector(registry, inventory_refresh_seconds=10)  # every subject re-read every cycle
    await collector.collect(store)

    registry.register("orders-value", '{"type":"record","name":"Order","fields":[]}')
    registry.register("payments-value", AVRO)
    with httpx.Client(base_url=registry.url) as client:
        assert client.delete("/subjects/audit-value").json() == [1]
        assert client.put("/mode", json={"mode": "READONLY"}).json() == {"mode": "READONLY"}
        assert client.put("/config/orders-value", json={"compatibility": "FULL"}).status_code == 200
    await collector.collect(store)

    assert _events(store) == [
        ("warning", "main: global mode changed from READWRITE to READONLY"),
        ("info", "main: subject orders-value: version 3 registered (schema id 4)"),
        ("info", "main: subject orders-value: compatibility changed from BACKWARD to FULL"),
        ("info", "main: subject payments-value registered: version 1 (schema id 1, AVRO)"),
        ("info", "main: subject audit-value deleted (soft-deleted: still listed with ?deleted=true)"),
    ]
    assert _value(store, "schema_registry_subjects") == 3
    assert _value(store, "schema_registry_deleted_subjects") == 1
    assert _value(store, "schema_registry_mode") == 2  # READONLY
    assert _value(store, "schema_registry_subject_mode", "orders-value") == 2  # inherited at once
    assert _value(store, "schema_registry_subject_versions", "audit-value") is None  # its series are gone
    assert _snapshot(store).warnings[0] == "registry is in READONLY mode: no new schemas can be registered"

    with httpx.Client(base_url=registry.url) as client:
        assert client.delete("/subjects/audit-value", params={"permanent": "true"}).json() == [1]
    await collector.collect(store)
    assert _value(store, "schema_registry_deleted_subjects") == 0


async def test_subject_details_are_refreshed_a_slice_per_cycle(registry):
    for index in range(50):
        registry.register(f"s{index:02d}-value", AVRO)
    store = Store()
    # 50 subjects, a cycle every 10 s, each subject re-read every 50 s: 10 subjects a cycle.
    collector = _collector(registry, inventory_refresh_seconds=50)
    assert await collector.collect(store) == 6 + 50 * 4
    first = {s.name: s.read_at for s in _snapshot(store).subjects}
    counts = []
    for _ in range(5):
        counts.append(await collector.collect(store))
    assert counts == [5 + 10 * 4] * 5  # /_health answered 404 once: not asked again
    latest = {s.name: s.read_at for s in _snapshot(store).subjects}
    assert all(latest[name] > first[name] for name in first), "every subject re-read once in 5 cycles"
    assert registry.requests["GET /subjects/s00-value/versions"] == 2
    assert registry.requests["GET /subjects/s49-value/versions"] == 2

    registry.register("zz-new-value", AVRO)  # a new subject is read in the cycle it appears
    assert await collector.collect(store) == 5 + 4 + 11 * 4  # the slice grows with the count: ceil(51 / 5)
    assert _value(store, "schema_registry_subject_versions", "zz-new-value") == 1


async def test_many_new_subjects_are_read_over_several_cycles(registry):
    for index in range(250):
        registry.register(f"t{index:03d}", AVRO)
    store = Store()
    collector = _collector(registry, inventory_refresh_seconds=300)
    await collector.collect(store)
    assert len(store.keys("schema_registry_subject_versions")) == 100
    assert _value(store, "schema_registry_subjects") == 250  # the count is never partial
    await collector.collect(store)
    await collector.collect(store)
    assert len(store.keys("schema_registry_subject_versions")) == 250


def _health(store: Store):
    return store.health()[(PIPELINE, "schema_registry")]


async def _run(store: Store, collector: SchemaRegistryCollector) -> None:
    await Supervisor(store, [], max_backoff=1).run_once(collector)


def _supervised(standin: SchemaRegistryStandIn, **settings) -> tuple[Store, SchemaRegistryCollector]:
    store = Store()
    collector = _collector(standin, **settings)
    Supervisor(store, [collector])  # registers the collector's health
    return store, collector


async def test_backend_error_marks_it_down_with_the_error_code_and_it_recovers(registry):
    _seed(registry)
    store, collector = _supervised(registry)
    await _run(store, collector)
    assert _health(store).state is State.UP

    registry.failure = (500, 50001, "Error in the backend data store")
    await _run(store, collector)
    health = _health(store)
    assert health.state is State.DOWN and health.error_category == "server_error"
    assert health.last_error == "RegistryError: GET /: HTTP 500, error 50001: Error in the backend data store"
    assert _value(store, "schema_registry_up") == 0
    assert _value(store, "schema_registry_errors_total", "500", "50001") == 1
    await _run(store, collector)
    assert _value(store, "schema_registry_errors_total", "500", "50001") == 2

    registry.failure = None
    await _run(store, collector)
    assert _health(store).state is State.UP
    assert _value(store, "schema_registry_up") == 1
    assert _value(store, "schema_registry_errors_total", "500", "50001") == 2  # a counter: kept
    messages = [e.message for e in store.events_since(0)]
    assert any("is down: server_error: RegistryError: GET /: HTTP 500, error 50001" in m for m in messages)
    assert any(m.endswith("recovered") for m in messages)


async def test_unauthorised_slow_and_refused_registries_are_down_with_the_reason(registry):
    _seed(registry)
    registry.credentials = ("monitor", "s3cret")
    store, collector = _supervised(registry)
    await _run(store, collector)
    assert (_health(store).error_category, _health(store).last_error) == (
        "auth", "RegistryError: GET /: HTTP 401, error 401: Unauthorized")
    assert _value(store, "schema_registry_errors_total", "401", "401") == 1

    store, collector = _supervised(registry, basic_auth={"username": "monitor", "password": "s3cret"})
    await _run(store, collector)
    assert _health(store).state is State.UP and _value(store, "schema_registry_subjects") == 3

    registry.delay = 1.0
    store, collector = _supervised(registry, basic_auth={"username": "monitor", "password": "s3cret"},
                                   timeout_seconds=0.3)
    await _run(store, collector)
    assert (_health(store).error_category, _health(store).last_error) == (
        "timeout", "RegistryError: GET /: no answer within 0.3 s")
    assert _value(store, "schema_registry_errors_total", "timeout", "") == 1

    registry.delay = 0.0
    registry.stop()
    store, collector = _supervised(registry, basic_auth={"username": "monitor", "password": "s3cret"})
    await _run(store, collector)
    assert _health(store).error_category == "connection_refused"
    assert _value(store, "schema_registry_up") == 0
    registry.start()  # the same port again
    await _run(store, collector)
    assert _health(store).state is State.UP and _value(store, "schema_registry_up") == 1


async def test_apicurio_path_prefix():
    standin = SchemaRegistryStandIn(prefix="/apis/ccompat/v7").start()
    try:
        standin.register("orders-value", AVRO)
        store, collector = _supervised(standin, path_prefix="/apis/ccompat/v7")
        await _run(store, collector)
        assert _health(store).state is State.UP and _value(store, "schema_registry_subjects") == 1
        assert standin.requests["GET /subjects/orders-value/versions"] == 1

        store, collector = _supervised(standin)  # the prefix forgotten: the registry answers 404
        await _run(store, collector)
        assert (_health(store).error_category, _health(store).last_error) == (
            "http_error", "RegistryError: GET /: HTTP 404, error 404: HTTP 404 Not Found")
    finally:
        standin.stop()


async def test_karapace_health_readiness_and_reader_lag():
    standin = SchemaRegistryStandIn(karapace=True).start()
    try:
        standin.register("orders-value", AVRO)
        standin.karapace_status["schema_registry_reader_highest_offset"] = 14
        store, collector = _supervised(standin)
        await _run(store, collector)
        assert _value(store, "schema_registry_ready") == 1
        assert _value(store, "schema_registry_reader_lag") == 4

        standin.karapace_status["schema_registry_ready"] = False  # /_health answers 503
        await _run(store, collector)
        assert _health(store).state is State.UP  # the API still answers; readiness is its own signal
        assert _value(store, "schema_registry_ready") == 0
        assert "Karapace reports itself not ready" in _snapshot(store).warnings
    finally:
        standin.stop()


async def test_exporter_serves_registry_metrics_and_keeps_availability_while_down(registry):
    _seed(registry)
    store, collector = _supervised(registry)
    await _run(store, collector)
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        text = httpx.get(exporter.url, timeout=10).text
        samples = _samples(text)
        base = {("pipeline", PIPELINE), ("registry", "main")}
        assert samples[("schema_registry_up", frozenset(base))] == 1
        assert samples[("schema_registry_subjects", frozenset(base))] == 3
        assert samples[("schema_registry_subject_versions", frozenset(base | {("subject", "orders-value")}))] == 2
        assert samples[("schema_registry_subject_compatibility_info",
                        frozenset(base | {("subject", "inventory-value"), ("compatibility", "NONE")}))] == 1
        assert samples[("schema_registry_mode_info", frozenset(base | {("mode", "READWRITE")}))] == 1
        assert samples[("schema_registry_requests_total", frozenset(base))] == 18
        lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr

        registry.failure = (500, 50001, "Error in the backend data store")
        await _run(store, collector)
        samples = _samples(httpx.get(exporter.url, timeout=10).text)
        assert samples[("schema_registry_up", frozenset(base))] == 0
        assert samples[("schema_registry_errors_total",
                        frozenset(base | {("http_status", "500"), ("error_code", "50001")}))] == 1
        assert samples[("schema_registry_requests_total", frozenset(base))] == 19
        assert ("schema_registry_subjects", frozenset(base)) not in samples  # not presented as fresh
        assert samples[("pipewatch_collector_up", frozenset({("pipeline", PIPELINE),
                                                              ("collector", "schema_registry")}))] == 0
    finally:
        exporter.stop()


async def test_tls_handshake_failure_is_reported_as_tls(registry):
    # https:// to a server that speaks plain HTTP: the handshake fails, which is what a wrong port or a
    # TLS-terminating proxy misconfiguration looks like.
    store, collector = _supervised(registry, url=registry.url.replace("http://", "https://"))
    await _run(store, collector)
    health = _health(store)
    assert health.state is State.DOWN and health.error_category == "tls", health.last_error
    assert _value(store, "schema_registry_errors_total", "tls", "") == 1

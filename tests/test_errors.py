"""The error registry: deduplication, bound, first/last seen and count, and hints, on error texts
produced by the real libraries and services (a refused port, a plain-HTTP port spoken to in TLS, an
untrusted certificate, the registry stand-in's error bodies, aiokafka's protocol errors)."""

from __future__ import annotations

from aiokafka.errors import for_code

from collectors.flink.collector import FlinkCollector
from collectors.kafka.collector import KafkaCollector
from collectors.schema_registry.collector import SchemaRegistryCollector
from exporters.server import start_exporter
from monitoring.config import ExporterTls, FlinkSource, KafkaSource, SchemaRegistrySource
from monitoring.errors import ErrorRegistry, hint_for, normalise
from monitoring.runtime import Supervisor
from monitoring.store import Store
from pipewatch.local.broker import free_port
from tests.certs import make_certificates

# -- the registry ---------------------------------------------------------------------------------


def test_occurrences_differing_in_numbers_and_ids_are_one_error_with_first_last_and_count():
    store = Store()
    store.record_error("orders", "schema_registry", "timeout", "RegistryError: GET /: no answer within 5.2 s",
                       t=100.0, target="http://registry:8081")
    store.record_error("orders", "schema_registry", "timeout", "RegistryError: GET /: no answer within 4.9 s",
                       t=160.0, target="http://registry:8081")
    (entry,) = store.errors()
    assert (entry.count, entry.first_seen, entry.last_seen) == (2, 100.0, 160.0)
    assert entry.message == "RegistryError: GET /: no answer within 4.9 s"  # the latest, in full
    assert entry.key == "RegistryError: GET /: no answer within <n> s"
    assert entry.hint == ("No answer from / on http://registry:8081 within 4.9 s: check that it is reachable from "
                          "this host (firewall, routing) and not overloaded; "
                          "raise timeout_seconds if it is merely slow.")


def test_error_codes_are_kept_apart_while_ids_offsets_and_hex_are_not():
    assert normalise("FlinkError: GET /jobs/3f2a9c1e0b7d4e6f8a9b0c1d2e3f4a5b/vertices: HTTP 404: Not Found") == \
        "FlinkError: GET /jobs/<id>/vertices: HTTP 404: Not Found"
    assert normalise("[Error 3] UnknownTopicOrPartitionError: OffsetFetch for group 'g', orders[12]") == \
        "[Error 3] UnknownTopicOrPartitionError: OffsetFetch for group 'g', orders[<n>]"
    assert normalise("GET /: HTTP 500, error 50001: offset 1234567 at 0x7f3a") == \
        "GET /: HTTP 500, error 50001: offset <n> at <id>"
    assert normalise("member consumer-1-6b1f0c2a-3d4e-4f50-8a9b-0c1d2e3f4a5b left") == "member consumer-<n>-<id> left"
    assert normalise("OffsetFetch for group 'orders-2024', orders[3]") == (
        "OffsetFetch for group 'orders-2024', orders[<n>]")
    assert normalise("certificate doesn't match 10.0.0.7 and won't") == "certificate doesn't match <n>.<n> and won't"
    store = Store()
    for status, code in (("404", "40401"), ("404", "40403"), ("500", "50001"), ("500", "50001")):
        store.record_error("p", "schema_registry", "http_error", f"GET /: HTTP {status}, error {code}: failed")
    assert sorted((e.key, e.count) for e in store.errors()) == [
        ("GET /: HTTP 404, error 40401: failed", 1), ("GET /: HTTP 404, error 40403: failed", 1),
        ("GET /: HTTP 500, error 50001: failed", 2)]


def test_the_same_message_of_another_pipeline_component_or_category_is_another_error():
    store = Store()
    for pipeline, component, category in (("a", "kafka", "timeout"), ("b", "kafka", "timeout"),
                                          ("a", "flink", "timeout"), ("a", "kafka", "connection")):
        store.record_error(pipeline, component, category, "no answer")
    assert len(store.errors()) == 4


def test_registry_is_bounded_and_evicts_the_least_recently_seen():
    registry = ErrorRegistry(capacity=3)
    for i, t in enumerate((10.0, 20.0, 30.0)):
        registry.record("p", f"c{i}", "x", "boom", "error", "", "", t)
    registry.record("p", "c0", "x", "boom", "error", "", "", 40.0)  # c0 seen again: c1 is now the oldest
    registry.record("p", "c3", "x", "boom", "error", "", "", 50.0)
    assert [e.component for e in registry.entries()] == ["c3", "c0", "c2"]  # newest last seen first
    assert registry.evicted == 1 and len(registry) == 3


def test_a_late_occurrence_keeps_the_newer_message_but_moves_first_seen_back():
    store = Store()
    store.record_error("p", "flink", "other", "job x: boom 2", t=200.0)
    store.record_error("p", "flink", "other", "job x: boom 1", t=100.0)  # reported late, with its own time
    (entry,) = store.errors()
    assert (entry.first_seen, entry.last_seen, entry.count, entry.message) == (100.0, 200.0, 2, "job x: boom 2")


def test_errors_generation_moves_only_when_an_error_is_recorded():
    store = Store()
    before = store.errors_generation
    store.errors()
    assert store.errors_generation == before
    store.record_error("p", "kafka", "timeout", "x")
    assert store.errors_generation == before + 1


def test_no_rule_no_hint():
    assert hint_for("internal", "RuntimeError: something odd") == ""
    assert hint_for("http_error", "FlinkError: GET /jobs/overview: HTTP 418: I'm a teapot") == ""
    store = Store()
    store.record_error("p", "kafka", "internal", "RuntimeError: something odd")
    assert store.errors()[0].hint == ""


def test_a_hint_given_by_the_collector_wins_over_the_rules():
    store = Store()
    store.record_error("p", "flink", "user code: arithmetic", "job j: map (1/1): java.lang.ArithmeticException: "
                       "/ by zero", hint="guard the divisor")
    assert store.errors()[0].hint == "guard the divisor"


# -- every failed run of the supervisor, with the real libraries' messages ------------------------


async def _failing_runs(collector, runs: int = 2) -> Store:
    store = Store()
    supervisor = Supervisor(store, [collector])
    try:
        for _ in range(runs):
            await supervisor.run_once(collector)
    finally:
        await collector.close()
    return store


async def test_every_failed_run_counts_and_a_refused_kafka_bootstrap_names_the_port():
    port = free_port()  # nothing listens there
    collector = KafkaCollector("orders", KafkaSource(bootstrap_servers=[f"127.0.0.1:{port}"], timeout_seconds=2))
    store = await _failing_runs(collector, runs=3)
    (entry,) = store.errors()
    assert (entry.pipeline, entry.component, entry.category, entry.severity, entry.count) == (
        "orders", "kafka", "connection_refused", "error", 3)
    assert entry.message == (f"ConnectionRefusedError: no bootstrap server reachable "
                             f"(127.0.0.1:{port}: connection refused)")
    assert entry.target == f"127.0.0.1:{port}"
    assert entry.hint == (f"Nothing accepts connections at 127.0.0.1:{port}: check the host and port in the config and "
                          "that the service is running and listening there.")
    assert entry.first_seen < entry.last_seen
    health = store.health()[("orders", "kafka")]
    assert health.errors_by_category == {"connection_refused": 3}  # the same count as the health's


async def test_refused_flink_rest_url_hint_names_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    store = await _failing_runs(FlinkCollector("streams", FlinkSource(rest_url=url, cluster="local")))
    (entry,) = store.errors()
    assert (entry.component, entry.category, entry.count) == ("flink", "connection_refused", 2)
    assert entry.message == "FlinkError: GET /overview: All connection attempts failed"
    assert entry.hint.startswith(f"Nothing accepts connections at {url}: ")


async def test_tls_to_a_plain_http_port_and_an_untrusted_certificate_have_their_own_hints(registry, tmp_path):
    plain = registry.url.replace("http://", "https://")
    store = await _failing_runs(SchemaRegistryCollector("orders", SchemaRegistrySource(url=plain)), runs=1)
    (entry,) = store.errors()
    assert entry.category == "tls" and "WRONG_VERSION_NUMBER" in entry.message
    assert entry.hint == (f"The server at {plain} answered the TLS handshake in plain text: the port does not speak "
                          "TLS; use http:// (or PLAINTEXT), or the TLS port.")

    certs = make_certificates(tmp_path)  # pipewatch's own TLS endpoint, with a CA the client does not know
    exporter = start_exporter(Store(), "127.0.0.1", 0, tls=ExporterTls(cert_file=certs.server_cert,
                                                                       key_file=certs.server_key))
    try:
        url = f"https://127.0.0.1:{exporter.port}"
        store = await _failing_runs(FlinkCollector("streams", FlinkSource(rest_url=url)), runs=1)
    finally:
        exporter.stop()
    (entry,) = store.errors()
    assert entry.category == "tls" and "CERTIFICATE_VERIFY_FAILED" in entry.message
    assert entry.hint == (f"The certificate of the server at {url} is not signed by a CA pipewatch trusts: set "
                          "tls.ca_file to the CA that signed it.")


async def test_registry_401_timeout_and_error_code_hints(registry):
    registry.credentials = ("monitor", "s3cret")
    store = await _failing_runs(SchemaRegistryCollector("orders", SchemaRegistrySource(url=registry.url)), runs=1)
    assert [(e.category, e.hint) for e in store.errors()] == [(
        "auth", f"HTTP 401: {registry.url} rejected the credentials: check basic_auth's username and password (or add "
                "basic_auth if the server requires a login).")]
    registry.credentials = None

    registry.delay = 0.5
    source = SchemaRegistrySource(url=registry.url, timeout_seconds=0.2)
    store = await _failing_runs(SchemaRegistryCollector("orders", source), runs=2)
    registry.delay = 0.0
    (entry,) = store.errors()
    assert (entry.category, entry.count, entry.message) == (
        "timeout", 2, "RegistryError: GET /: no answer within 0.2 s")
    assert entry.hint.startswith(f"No answer from / on {registry.url} within 0.2 s: ")

    for failure, expected in (
        ((500, 50001, "Error in the backend data store"),
         f"Error 50001: the registry at {registry.url} could not read or write its backing store"),
        ((500, 50002, "Operation timed out"), f"Error 50002: the registry at {registry.url} timed out waiting"),
        ((500, 50003, "Error while forwarding the request to the primary"),
         f"Error 50003: the registry node at {registry.url} could not forward the request to its primary"),
        ((404, 40401, "Subject 'orders-value' not found."),
         f"Error 40401: subject orders-value does not exist on the registry at {registry.url}"),
    ):
        registry.failure = failure
        store = await _failing_runs(SchemaRegistryCollector("orders", SchemaRegistrySource(url=registry.url)), runs=1)
        (entry,) = store.errors()
        assert entry.message == f"RegistryError: GET /: HTTP {failure[0]}, error {failure[1]}: {failure[2]}"
        assert entry.hint.startswith(expected), entry.hint
    registry.failure = None


async def test_unresolvable_host_hint():
    port = free_port()
    collector = FlinkCollector("streams", FlinkSource(rest_url=f"http://no-such-host.invalid:{port}",
                                                      timeout_seconds=2))
    store = await _failing_runs(collector, runs=1)
    (entry,) = store.errors()
    assert entry.category == "connection", entry
    assert entry.hint == (f"The host name of http://no-such-host.invalid:{port} does not resolve: check its spelling "
                          "and this host's DNS."), entry.message


def test_record_error_is_safe_from_several_threads():
    import threading

    store = Store()

    def write() -> None:
        for i in range(500):
            store.record_error("p", "kafka", "timeout", f"no answer within {i} s")

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e.count for e in store.errors()] == [2000]


# -- the feeds: what the sources report while the collector stays up ------------------------------


async def test_kafka_group_error_counts_once_per_cycle_and_the_other_group_is_measured(broker):
    """A broker that denies one group (GROUP_AUTHORIZATION_FAILED, error code 30) is made by raising, for that group,
    the error the collector's OffsetFetch decoding raises for code 30: the local broker has no ACLs. Everything else
    is the real broker."""
    from collectors.kafka.collector import KafkaCollector
    from tests.kafka_util import commit, create_topic, produce

    class DeniedGroup(KafkaCollector):
        async def _group_offsets(self, client, group_id, metadata, topics=None):
            if group_id == "audit":
                raise for_code(30)(f"OffsetFetch for group {group_id!r}")
            return await super()._group_offsets(client, group_id, metadata, topics)

    await create_topic(broker.bootstrap, "payments", 1)
    await produce(broker.bootstrap, "payments", {0: 5})
    await commit(broker.bootstrap, "billing", "payments", {0: 2})
    await commit(broker.bootstrap, "audit", "payments", {0: 1})
    store = Store()
    collector = DeniedGroup("orders", KafkaSource(bootstrap_servers=[broker.bootstrap], cluster="local",
                                                  timeout_seconds=5))
    supervisor = Supervisor(store, [collector])
    try:
        for _ in range(3):
            await supervisor.run_once(collector)
    finally:
        await collector.close()
    assert store.health()[("orders", "kafka")].state.value == "up"
    assert store.latest("kafka_consumergroup_lag", ("orders", "local", "billing", "payments", "0"))[1] == 3
    (entry,) = store.errors()  # nothing else: the healthy group and broker add no error
    assert (entry.component, entry.category, entry.severity, entry.count) == ("kafka", "auth", "warning", 3)
    assert entry.message == ("GroupAuthorizationFailedError: [Error 30] GroupAuthorizationFailedError: "
                             "OffsetFetch for group 'audit'")
    assert entry.hint.startswith("GROUP_AUTHORIZATION_FAILED: the principal pipewatch connects as may not read group "
                                 "audit's offsets")
    assert entry.target == broker.bootstrap


async def test_registry_failed_subject_reads_count_per_request_and_a_failed_run_only_once(registry):
    from tests.test_schema_registry import _seed

    _seed(registry)
    registry.path_failures["/subjects/orders-value/versions/latest"] = (500, 50002, "Operation timed out")
    store = Store()
    collector = SchemaRegistryCollector("orders", SchemaRegistrySource(url=registry.url, registry="main"))
    supervisor = Supervisor(store, [collector])
    try:
        await supervisor.run_once(collector)
        await supervisor.run_once(collector)  # the subject was not read: it is asked again, and fails again
        assert store.health()[collector.source].state.value == "up"
        (entry,) = store.errors()
        assert (entry.component, entry.category, entry.severity, entry.count) == (
            "schema_registry", "server_error", "warning", 2)
        assert entry.message == ("RegistryError: GET /subjects/orders-value/versions/latest: HTTP 500, error 50002: "
                                 "Operation timed out")
        assert entry.hint.startswith(f"Error 50002: the registry at {registry.url} timed out waiting for its backing "
                                     "store")
        # The same count as the exporter's counter of failed requests.
        assert store.latest("schema_registry_errors_total", ("orders", "main", "500", "50002"))[1] == 2

        registry.path_failures.clear()
        registry.failure = (500, 50001, "Error in the backend data store")
        await supervisor.run_once(collector)
        failed_run = next(e for e in store.errors() if "50001" in e.message)
        # Recorded once, by the supervisor: the collector leaves the request that ended the cycle to it.
        assert (failed_run.severity, failed_run.count) == ("error", 1)
        assert store.latest("schema_registry_errors_total", ("orders", "main", "500", "50001"))[1] == 1
    finally:
        registry.failure = None
        await collector.close()


async def test_flink_job_exceptions_are_counted_once_each_across_cycles(flink):
    from tests.services import async_wait_until

    store = Store()
    collector = FlinkCollector("streams", FlinkSource(rest_url=flink.cluster.rest_url, cluster="local",
                                                      interval_seconds=1, timeout_seconds=5))
    seen: dict[tuple[float, str, str | None], object] = {}

    def arithmetic() -> list:
        return [e for e in store.errors() if e.category == "user code: arithmetic"]

    async def several_exceptions_over_many_cycles() -> bool:
        await collector.collect(store)
        for e in store.snapshot(collector.source)[1].exceptions:
            if e.job_id == flink.failing:
                seen[(e.time, e.name, e.task)] = e
        return len(seen) >= 3

    try:
        await async_wait_until(several_exceptions_over_many_cycles, 90, interval=0.3,
                               what="three exceptions of the failing job")
        for _ in range(3):  # more cycles that read the same exceptions again
            await collector.collect(store)
            for e in store.snapshot(collector.source)[1].exceptions:
                if e.job_id == flink.failing:
                    seen[(e.time, e.name, e.task)] = e
    finally:
        await collector.close()
    entries = arithmetic()
    assert sum(e.count for e in entries) == len(seen)  # each exception once, however many cycles read it
    assert {e.component for e in entries} == {"flink"} and {e.severity for e in entries} == {"error"}
    assert min(e.first_seen for e in entries) == min(t for t, _, _ in seen)
    assert max(e.last_seen for e in entries) == max(t for t, _, _ in seen)
    newest = max(entries, key=lambda e: e.last_seen)
    assert newest.message.startswith("job pipewatch failing job: price per unit (1/1)")
    assert newest.message.endswith(": java.lang.ArithmeticException: / by zero")
    assert newest.hint == ("An arithmetic error (/ by zero) in user code at PipewatchJobs$Divide.map"
                           "(PipewatchJobs.java:52): guard the divisor or filter out the records that cause it.")

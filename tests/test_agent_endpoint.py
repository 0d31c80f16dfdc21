"""The agent's HTTP endpoint over real HTTP(S): probes, basic auth, TLS and mutual TLS, gzip, escaping."""

from __future__ import annotations

import dataclasses
import gzip
import ssl
import subprocess
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from exporters.server import start_exporter
from monitoring.config import BasicAuth, ExporterTls
from monitoring.health import State
from monitoring.runtime import Collector, Supervisor
from monitoring.store import Store
from tests.certs import make_certificates


class _Quiet(Collector):
    name = "kafka"

    async def collect(self, store: Store) -> int:
        return 0


def _store_with(*pipelines: str) -> tuple[Store, list[_Quiet]]:
    store = Store()
    collectors = [_Quiet(pipeline, "k:1", interval=5, timeout=5) for pipeline in pipelines]
    Supervisor(store, collectors)
    return store, collectors


def _finish_run(store: Store, collector: Collector, ok: bool) -> None:
    health = store.health()[collector.source]
    if ok:
        health = dataclasses.replace(health, state=State.UP, last_success=time.time(), runs=health.runs + 1)
    else:
        health = dataclasses.replace(health, state=State.DOWN, last_error="ConnectionRefusedError",
                                     error_category="connection_refused", runs=health.runs + 1)
    store.set_health(health)


def test_readyz_waits_for_every_first_run_and_one_success_and_healthz_follows_liveness():
    store, (orders, billing) = _store_with("orders", "billing")
    problem: list[str | None] = [None]
    exporter = start_exporter(store, "127.0.0.1", 0, liveness=lambda: problem[0])
    base = f"http://127.0.0.1:{exporter.port}"
    try:
        ready = httpx.get(f"{base}/readyz")
        assert (ready.status_code, ready.json()) == (503, {
            "status": "not ready", "reason": "first run not finished: billing/kafka, orders/kafka"})
        _finish_run(store, orders, ok=False)
        assert httpx.get(f"{base}/readyz").json()["reason"] == "first run not finished: billing/kafka"
        _finish_run(store, billing, ok=False)
        ready = httpx.get(f"{base}/readyz")
        assert (ready.status_code, ready.json()["reason"]) == (503, "no collector has succeeded yet")
        _finish_run(store, billing, ok=True)
        ready = httpx.get(f"{base}/readyz")
        assert (ready.status_code, ready.json()) == (200, {
            "status": "ready", "reason": "1 of 2 collectors succeeded at least once"})
        _finish_run(store, billing, ok=False)  # ready stays: a source going down is reported on /metrics
        assert httpx.get(f"{base}/readyz").status_code == 200

        alive = httpx.get(f"{base}/healthz")
        assert (alive.status_code, alive.json()) == (200, {"status": "ok", "reason": "serving"})
        problem[0] = "event loop blocked: no heartbeat for 31 s"
        alive = httpx.get(f"{base}/healthz")
        assert (alive.status_code, alive.json()) == (503, {
            "status": "failing", "reason": "event loop blocked: no heartbeat for 31 s"})
        missing = httpx.get(f"{base}/nothing")
        assert missing.status_code == 404 and "/metrics" in missing.text
    finally:
        exporter.stop()


def test_basic_auth_guards_metrics_but_not_the_probes():
    store, (orders,) = _store_with("orders")
    _finish_run(store, orders, ok=True)
    exporter = start_exporter(store, "127.0.0.1", 0,
                              basic_auth=BasicAuth(username="prom", password=SecretStr("s3cret:with colon")))
    try:
        anonymous = httpx.get(exporter.url)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith('Basic realm="pipewatch"')
        assert "pipewatch_collector_up" not in anonymous.text
        assert httpx.get(exporter.url, auth=("prom", "wrong")).status_code == 401
        assert httpx.get(exporter.url, auth=("other", "s3cret:with colon")).status_code == 401
        assert httpx.get(exporter.url, headers={"Authorization": "Basic !!not base64"}).status_code == 401
        granted = httpx.get(exporter.url, auth=("prom", "s3cret:with colon"))
        assert granted.status_code == 200
        assert 'pipewatch_collector_up{pipeline="orders",collector="kafka"} 1.0' in granted.text
        assert httpx.get(exporter.url.replace("/metrics", "/healthz")).status_code == 200
        assert httpx.get(exporter.url.replace("/metrics", "/readyz")).status_code == 200
    finally:
        exporter.stop()


def test_tls_and_mutual_tls(tmp_path):
    certs = make_certificates(tmp_path)
    store, (orders,) = _store_with("orders")
    _finish_run(store, orders, ok=True)
    exporter = start_exporter(store, "127.0.0.1", 0, tls=ExporterTls(cert_file=certs.server_cert,
                                                                     key_file=certs.server_key))
    try:
        assert exporter.url == f"https://127.0.0.1:{exporter.port}/metrics"
        response = httpx.get(exporter.url, verify=ssl.create_default_context(cafile=str(certs.ca)))
        assert response.status_code == 200 and "pipewatch_collector_up" in response.text
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA
            httpx.get(exporter.url)
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port
            httpx.get(exporter.url.replace("https:", "http:"))
        # The server survives both failed handshakes.
        assert httpx.get(exporter.url, verify=ssl.create_default_context(cafile=str(certs.ca))).status_code == 200
    finally:
        exporter.stop()

    mutual = start_exporter(store, "127.0.0.1", 0, tls=ExporterTls(
        cert_file=certs.server_cert, key_file=certs.server_key, client_ca_file=certs.ca))
    try:
        trusted = ssl.create_default_context(cafile=str(certs.ca))
        with pytest.raises(httpx.TransportError):  # no client certificate
            httpx.get(mutual.url, verify=trusted)
        trusted.load_cert_chain(str(certs.client_cert), str(certs.client_key))
        assert httpx.get(mutual.url, verify=trusted).status_code == 200
    finally:
        mutual.stop()


def test_unusable_certificate_fails_at_start_naming_the_setting(tmp_path):
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(OSError, match=r"exporter.tls: cannot use cert_file .*bogus.pem"):
        start_exporter(Store(), "127.0.0.1", 0, tls=ExporterTls(cert_file=bogus, key_file=bogus))


def test_gzip_on_request_and_label_values_escaped():
    store, (orders,) = _store_with('or"ders\\east\nwest')
    _finish_run(store, orders, ok=True)
    with store.cycle(orders.source) as cycle:
        cycle.set("kafka_topic_partition_current_offset", ("local", 'quote"back\\slash', "0"), 12)
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        plain = httpx.get(exporter.url, headers={"Accept-Encoding": "identity"})
        zipped = httpx.get(exporter.url, headers={"Accept-Encoding": "gzip"})
    finally:
        exporter.stop()
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"  # httpx decodes it: compare the decoded texts
    # Equal up to the process's own metrics (CPU time moves between the two scrapes).
    assert zipped.text.split("# HELP process_")[0] == plain.text.split("# HELP process_")[0]
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(plain.text) for s in family.samples}
    assert samples[("kafka_topic_partition_current_offset", (
        ("cluster", "local"), ("partition", "0"), ("pipeline", 'or"ders\\east\nwest'),
        ("topic", 'quote"back\\slash')))] == 12.0
    lint = subprocess.run(["promtool", "check", "metrics"], input=plain.text, capture_output=True, text=True,
                          timeout=30)
    assert (lint.returncode, lint.stdout, lint.stderr) == (0, "", "")


def test_gzip_body_is_smaller_on_the_wire():
    store, (orders,) = _store_with("orders")
    _finish_run(store, orders, ok=True)
    with store.cycle(orders.source) as cycle:
        for partition in range(500):
            cycle.set("kafka_topic_partition_current_offset", ("local", "events", str(partition)), partition)
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        with httpx.stream("GET", exporter.url, headers={"Accept-Encoding": "gzip"}) as response:
            raw = b"".join(response.iter_raw())
    finally:
        exporter.stop()
    text = gzip.decompress(raw).decode()
    assert len(raw) * 4 < len(text.encode())
    assert 'kafka_topic_partition_current_offset{pipeline="orders",cluster="local",topic="events",partition="499"} 499.0' in text

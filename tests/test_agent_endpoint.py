"""The agent's HTTP endpoint over real HTTP(S): probes, basic auth, TLS and mutual TLS, gzip, escaping; and under
abuse: bad parameters, slow and excess clients, the state cap, api_auth and the Host check."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import socket
import ssl
import subprocess
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from exporters.server import HEADER_TIMEOUT, default_allowed_hosts, start_exporter
from monitoring.config import BasicAuth, ExporterTls
from monitoring.health import State
from monitoring.runtime import Collector, Supervisor
from monitoring.store import Store
from tests.certs import make_certificates
from tests.services import wait_until


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
    assert ('kafka_topic_partition_current_offset{pipeline="orders",cluster="local",topic="events",partition="499"} '
            '499.0') in text


# -- under abuse ---------------------------------------------------------------------------------------

def _raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send bytes as they are; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


def _status_and_json(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


ABUSE = [  # (path and query as sent, parameter named, what the error says)
    ("/api/v1/events?since=%C2%B2", "since", "since: must be a whole number >= 0 in ASCII digits"),  # int('²') raised
    ("/api/v1/events?since=%E0%A5%A7", "since", "since: must be a whole number >= 0 in ASCII digits"),  # Devanagari 1
    ("/api/v1/events?since=-1", "since", "since: must be a whole number >= 0"),
    ("/api/v1/events?since=1e3", "since", "since: must be a whole number >= 0"),
    ("/api/v1/events?since=" + "9" * 19, "since", "since: must be a whole number >= 0 in ASCII digits, at most 18"),
    ("/api/v1/events?limit=1001", "limit", "limit: between 1 and 1000, got 1001"),
    ("/api/v1/series?limit=0", "limit", "limit: between 1 and 10000, got 0"),
    ("/api/v1/series?cursor=0123456789abcdef:%C2%B2", "cursor", "cursor: '0123456789abcdef:²' is not ID:COUNT"),
    ("/api/v1/state?cursor=" + "[" * 40_000, "cursor", "cursor: at most 32,768 characters, got 40,000"),
    ("/api/v1/state?cursor=" + base64.urlsafe_b64encode(b"[" * 20_000).decode(), "cursor",
     "cursor: not a cursor an earlier /api/v1/state answer gave"),  # nested 20,000 deep: RecursionError before
    ("/api/v1/state?cursor=bm90IGpzb24", "cursor", "cursor: not a cursor an earlier /api/v1/state answer gave"),
    ("/api/v1/events?pipeline=" + "p" * 101, "pipeline", "pipeline: a pipeline's name has at most 100 characters"),
    ("/api/v1/pipelines/" + "p" * 101, "name", "name: a pipeline's name has at most 100 characters, got 101"),
    ("/api/v1/pipelines/a%zz", "name", "name: bad percent-encoding"),
    ("/api/v1/events?colour=red", "colour", "colour: unknown parameter (this endpoint takes since, limit, pipeline)"),
    ("/api/v1/events?" + "k" * 101 + "=1", "k" * 60 + "...", "k" * 60 + "...: unknown parameter (a name has at most"),
    ("/api/v1/events?since=1&since=2", "since", "since: given 2 times, takes one value"),
    ("/api/v1/state?cursor=a&cursor=b", "cursor", "cursor: given 2 times, takes one value"),
    ("/api/v1/events?since=%", "since", "since: bad percent-encoding ('%' must be followed by two hex digits)"),
    ("/api/v1/events?since=%g1", "since", "since: bad percent-encoding"),
    ("/api/v1/events?since=%ff", "since", "since: percent-encoded bytes are not UTF-8"),
    ("/api/v1/events?pipeline=" + "x" * 1001, "pipeline", "pipeline: at most 1,000 characters, got 1,001"),
    ("/api/v1/events?since=" + "1" * 70_000, "since", "since: the request line is longer than 65,536 bytes"),
]


@pytest.mark.parametrize(("target", "parameter", "error"), ABUSE, ids=[a[0][:48] for a in ABUSE])
def test_every_bad_parameter_is_a_400_naming_it(target, parameter, error):
    exporter = start_exporter(Store(), "127.0.0.1", 0)
    try:
        answer = _raw(exporter.port, f"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        status, body = _status_and_json(answer)
        assert (status, body["status"], body["parameter"]) == (400, "error", parameter), body
        assert body["error"].startswith(error), body
        assert len(answer) < 2000  # an overlong value is never echoed back whole
        # The server is still there.
        assert httpx.get(f"http://127.0.0.1:{exporter.port}/api/v1").status_code == 200
    finally:
        exporter.stop()


def test_raw_non_ascii_bad_request_lines_headers_and_methods_get_json_errors():
    exporter = start_exporter(Store(), "127.0.0.1", 0)
    port = exporter.port
    try:
        status, body = _status_and_json(_raw(port, b"GET /api/v1/events?since=\xb2 HTTP/1.1\r\nHost: localhost\r\n"
                                                   b"Connection: close\r\n\r\n"))
        assert (status, body) == (400, {"status": "error", "parameter": "since",
                                        "error": "since: characters outside ASCII must be percent-encoded"})
        assert _status_and_json(_raw(port, b"garbage\r\n\r\n")) == (
            400, {"status": "error", "error": "Bad request syntax ('garbage')"})
        assert _status_and_json(_raw(port, b"GET /api/v1 HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n")) == (
            431, {"status": "error", "error": "Too many headers"})
        status, body = _status_and_json(_raw(port, b"GET /api/v1 HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n"))
        assert (status, body["error"]) == (431, "Line too long")
        delete = httpx.delete(f"http://127.0.0.1:{port}/api/v1/state")
        assert (delete.status_code, delete.headers["allow"], delete.json()) == (
            405, "GET, HEAD", {"status": "error", "error": "method DELETE is not allowed: only GET and HEAD"})
        head = httpx.head(f"http://127.0.0.1:{port}/api/v1")
        assert (head.status_code, head.content) == (200, b"") and int(head.headers["content-length"]) > 0
    finally:
        exporter.stop()


def test_a_client_dribbling_its_headers_is_cut_off_at_the_deadline():
    assert HEADER_TIMEOUT == 10.0
    deadline = 1.5  # the default's 10 s, shortened for the test
    exporter = start_exporter(Store(), "127.0.0.1", 0, header_timeout=deadline)
    try:
        with socket.create_connection(("127.0.0.1", exporter.port)) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /api/v1 HTTP/1.1\r\nHost: localhost\r\n")
            closed = None
            while closed is None and time.monotonic() - started < deadline + 5:
                try:
                    sock.sendall(b"X")  # a byte every 0.2 s: each would reset a per-read timeout
                    sock.settimeout(0.2)
                    closed = sock.recv(1024) == b""
                except TimeoutError:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    closed = True
            elapsed = time.monotonic() - started
        assert closed is True and deadline - 0.1 <= elapsed <= deadline + 1.0, elapsed
        # An idle kept-alive connection is closed after the same deadline, and a prompt client is served.
        with socket.create_connection(("127.0.0.1", exporter.port)) as sock:
            sock.sendall(b"GET /api/v1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            sock.settimeout(deadline + 1.0)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 OK")
    finally:
        exporter.stop()


def test_connections_over_the_cap_get_a_quick_503():
    exporter = start_exporter(Store(), "127.0.0.1", 0, max_connections=2, header_timeout=30)
    base = f"http://127.0.0.1:{exporter.port}"
    try:
        idle = [socket.create_connection(("127.0.0.1", exporter.port)) for _ in range(2)]  # hold both threads
        started = time.monotonic()
        busy = httpx.get(f"{base}/api/v1", timeout=5)
        assert time.monotonic() - started < 2
        assert (busy.status_code, busy.headers["retry-after"], busy.json()) == (503, "1", {
            "status": "error", "error": "too many connections at once: try again after Retry-After"})
        for sock in idle:
            sock.close()
        assert wait_until(lambda: httpx.get(f"{base}/api/v1").status_code == 200, 10, what="a free thread")
    finally:
        exporter.stop()


def test_state_answers_over_the_cap_get_503_with_retry_after():
    exporter = start_exporter(Store(), "127.0.0.1", 0, max_state_answers=2)
    api = exporter._server.api
    inside, release = threading.Semaphore(0), threading.Event()
    original = api.state

    def slow_state(params):
        inside.release()
        release.wait(10)
        return original(params)

    api.state = slow_state
    url = f"http://127.0.0.1:{exporter.port}/api/v1/state"
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(httpx.get(url, timeout=15).status_code))
               for _ in range(2)]
    try:
        for thread in threads:
            thread.start()
        assert inside.acquire(timeout=10) and inside.acquire(timeout=10)  # two answers being built
        third = httpx.get(url, timeout=5)
        assert (third.status_code, third.headers["retry-after"], third.json()["error"]) == (
            503, "1", "too many /api/v1/state answers being built at once: try again after Retry-After")
        assert httpx.get(url.replace("/state", "/pipelines")).status_code == 200  # other endpoints still answer
        release.set()
        for thread in threads:
            thread.join(15)
        assert results == [200, 200]
    finally:
        release.set()
        exporter.stop()


def test_api_auth_guards_state_apart_from_the_scrape_credential():
    store, (orders,) = _store_with("orders")
    _finish_run(store, orders, ok=True)
    scrape, api = ("prom", "scrape-secret"), ("mirror", "api-secret")
    exporter = start_exporter(store, "127.0.0.1", 0,
                              basic_auth=BasicAuth(username=scrape[0], password=SecretStr(scrape[1])),
                              api_auth=BasicAuth(username=api[0], password=SecretStr(api[1])))
    base = f"http://127.0.0.1:{exporter.port}"
    try:
        refused = httpx.get(f"{base}/api/v1/state", auth=scrape)
        assert (refused.status_code, refused.json()) == (401, {"status": "error", "error": "authentication required"})
        assert refused.headers["www-authenticate"].startswith('Basic realm="pipewatch"')
        assert httpx.get(f"{base}/api/v1/state", auth=api).status_code == 200
        assert httpx.get(f"{base}/api/v1/state").status_code == 401
        for path in ("/metrics", "/api/v1/pipelines"):  # the scrape credential, and the API one too
            assert httpx.get(base + path, auth=scrape).status_code == 200
            assert httpx.get(base + path, auth=api).status_code == 200
            assert httpx.get(base + path).status_code == 401
        document = httpx.get(f"{base}/api/v1/openapi.json", auth=scrape).json()
        assert document["paths"]["/api/v1/state"]["get"]["security"] == [{"apiAuth": []}]
        assert document["paths"]["/api/v1/pipelines"]["get"]["security"] == [{"scrapeAuth": []}, {"apiAuth": []}]
        assert set(document["components"]["securitySchemes"]) == {"scrapeAuth", "apiAuth"}
    finally:
        exporter.stop()
    # api_auth alone: /metrics stays open, the rows do not.
    exporter = start_exporter(store, "127.0.0.1", 0, api_auth=BasicAuth(username=api[0], password=SecretStr(api[1])))
    base = f"http://127.0.0.1:{exporter.port}"
    try:
        assert httpx.get(f"{base}/metrics").status_code == 200
        assert httpx.get(f"{base}/api/v1/state").status_code == 401
        assert httpx.get(f"{base}/api/v1/state", auth=api).status_code == 200
    finally:
        exporter.stop()


def test_host_header_must_be_an_allowed_name_except_on_the_probes():
    assert default_allowed_hosts("127.0.0.1") == ["127.0.0.1", "::1", "localhost"]
    hostname = socket.gethostname().lower()
    assert hostname in default_allowed_hosts("0.0.0.0", ["pipewatch-agent"])
    assert "pipewatch-agent" in default_allowed_hosts("0.0.0.0", ["pipewatch-agent"])
    exporter = start_exporter(Store(), "127.0.0.1", 0, allowed_hosts=["localhost", "pipewatch.example.com"])
    base = f"http://127.0.0.1:{exporter.port}"
    try:
        for host in ("localhost", f"localhost:{exporter.port}", "PIPEWATCH.example.com.:1", "10.1.2.3:9108",
                     "[::1]:9108"):
            assert httpx.get(f"{base}/api/v1", headers={"Host": host}).status_code == 200, host
        rebound = httpx.get(f"{base}/metrics", headers={"Host": f"evil.example:{exporter.port}"})
        assert (rebound.status_code, rebound.json()) == (421, {"status": "error", "error": (
            "Host: 'evil.example' is not a name this agent answers to: add it to exporter.allowed_hosts if clients "
            "reach the agent by this name")})
        assert httpx.get(f"{base}/api/v1/state", headers={"Host": "evil.example"}).status_code == 421
        assert httpx.get(f"{base}/api/v1", headers={"Host": "bad host"}).status_code == 400
        for probe in ("/healthz", "/readyz"):
            assert httpx.get(base + probe, headers={"Host": "evil.example"}).status_code in (200, 503)
    finally:
        exporter.stop()
    anything = start_exporter(Store(), "127.0.0.1", 0, allowed_hosts=["*"])
    try:
        answer = httpx.get(f"http://127.0.0.1:{anything.port}/api/v1", headers={"Host": "evil.example"})
        assert answer.status_code == 200
    finally:
        anything.stop()

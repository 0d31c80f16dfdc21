"""Alerts end to end against real parts: a rule over a real broker's lag fires after its `for` and resolves when the
group commits; the notifications reach a local webhook receiver (Alertmanager's webhook JSON), an SMTP server
(aiosmtpd) and a real Alertmanager (its own API shows the alert); a failing receiver is retried and reported
without delaying collection; /api/v1/alerts and /metrics say the same."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import yaml
from aiosmtpd.controller import Controller

from monitoring.config import load_config
from pipewatch.local.broker import free_port
from pipewatch.service import Service
from tests.kafka_util import commit, create_topic, produce
from tests.services import LocalAlertmanager, run_async, wait_until

GROUP = "orders-loader"


class Receiver:
    """A local webhook receiver: records every POST body; answers `status` (a list is used up in order)."""

    def __init__(self, statuses: list[int] | None = None, hold: threading.Event | None = None) -> None:
        self.bodies: list[dict] = []
        self.attempts = 0
        statuses, receiver = list(statuses or []), self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's interface
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if hold is not None:
                    hold.wait(30)
                status = statuses.pop(0) if statuses else 200
                if status == 200:
                    receiver.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's interface
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def alertmanager(tmp_path):
    server = LocalAlertmanager(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def smtp():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, mailbox
    controller.stop()


def _config(tmp_path, bootstrap: str, notify: list[dict], **alerts) -> Service:
    path = tmp_path / "pipewatch.yml"
    path.write_text(yaml.safe_dump({
        "pipelines": [{"name": "orders", "kafka": {"bootstrap_servers": [bootstrap], "cluster": "local",
                                                   "interval_seconds": 0.3}}],
        "exporter": {"host": "127.0.0.1", "port": 0},
        "alerts": {"defaults": False, "evaluation_interval": 0.2, "notify": notify, **alerts, "rules": [
            {"name": "OrdersLagHigh", "metric": "kafka_consumergroup_lag", "labels": {"consumergroup": "orders-.*"},
             "op": ">", "threshold": 100, "for": "2s", "severity": "critical",
             "summary": "{consumergroup} lags {value} messages on {topic}/{partition}"}]}}))
    return Service(load_config(path, environ={}))


def test_broker_lag_fires_after_for_notifies_everywhere_and_resolves_on_commit(broker, tmp_path, alertmanager, smtp):
    controller, mailbox = smtp
    run_async(create_topic(broker.bootstrap, "orders", 1))
    run_async(produce(broker.bootstrap, "orders", {0: 250}))
    run_async(commit(broker.bootstrap, GROUP, "orders", {0: 10}))
    hook = Receiver()
    service = _config(tmp_path, broker.bootstrap, [
        {"webhook": {"url": hook.url}},
        {"email": {"smtp": f"127.0.0.1:{controller.port}", "from": "pipewatch@example.com",
                   "to": ["oncall@example.com"], "tls": "none"}},
        {"alertmanager": {"url": alertmanager.url}}])
    service.start_in_thread()
    service.start_exporter()
    try:
        def state():
            return service.alerts.state()

        wait_until(lambda: state().active, 20, what="the alert pending")
        pending = state().active[0]
        assert pending.state == "pending" and pending.value == 240
        fired = wait_until(lambda: state().active[0].fired_at, 20, what="the alert firing")
        assert fired - pending.active_since >= 2.0
        (body,) = wait_until(lambda: hook.bodies, 20, what="the webhook")
        assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "webhook-0"
        assert body["groupKey"] == '{}:{alertname="OrdersLagHigh", pipeline="orders"}'
        assert body["groupLabels"] == {"alertname": "OrdersLagHigh", "pipeline": "orders"}
        (alert,) = body["alerts"]
        assert alert["status"] == "firing" and alert["endsAt"] == "0001-01-01T00:00:00Z"
        assert alert["labels"] == {"pipeline": "orders", "cluster": "local", "consumergroup": GROUP,
                                   "topic": "orders", "partition": "0", "alertname": "OrdersLagHigh",
                                   "severity": "critical"}
        assert alert["annotations"]["summary"] == f"{GROUP} lags 240 messages on orders/0"
        (mail,) = wait_until(lambda: mailbox.messages, 20, what="the email")
        assert mail[0] == "pipewatch@example.com" and mail[1] == ["oncall@example.com"]
        assert "Subject: [FIRING:1] OrdersLagHigh in orders" in mail[2] and "lags 240 messages" in mail[2]

        def in_alertmanager():
            alerts = httpx.get(f"{alertmanager.url}/api/v2/alerts").json()
            return [a for a in alerts if a["labels"].get("alertname") == "OrdersLagHigh"]

        (held,) = wait_until(in_alertmanager, 20, what="Alertmanager to hold the alert")
        assert held["status"]["state"] == "active" and held["labels"]["consumergroup"] == GROUP
        assert held["annotations"]["summary"] == f"{GROUP} lags 240 messages on orders/0"

        base = f"http://127.0.0.1:{service.exporter.port}"
        api = httpx.get(f"{base}/api/v1/alerts").json()
        assert [(a["rule"], a["state"], a["value"]) for a in api["active"]] == [("OrdersLagHigh", "firing", 240)]
        def counted() -> str | None:
            text = httpx.get(f"{base}/metrics").text
            return text if 'pipewatch_alert_notifications_total{receiver="webhook-0",outcome="sent"} 1.0' in text \
                else None

        metrics = wait_until(counted, 10, what="the webhook's delivery counted on /metrics")
        assert 'pipewatch_alerts_firing{pipeline="orders",alertname="OrdersLagHigh",severity="critical"} 1.0' \
            in metrics

        run_async(commit(broker.bootstrap, GROUP, "orders", {0: 250}))
        wait_until(lambda: len(hook.bodies) == 2, 20, what="the resolved webhook")
        resolved = hook.bodies[1]
        assert resolved["status"] == "resolved" and resolved["alerts"][0]["status"] == "resolved"
        assert resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
        assert state().active == () and state().history[0].reason == "the condition no longer holds"
        wait_until(lambda: len(mailbox.messages) == 2, 20, what="the resolved email")
        assert "Subject: [RESOLVED] OrdersLagHigh in orders" in mailbox.messages[1][2]
        wait_until(lambda: in_alertmanager() and in_alertmanager()[0]["status"]["state"] != "active"
                   or not in_alertmanager(), 20, what="Alertmanager to see it resolved")
    finally:
        service.stop_thread()
        service.stop_exporter()
        hook.stop()


def test_a_failing_receiver_is_retried_and_reported_without_delaying_collection(broker, tmp_path):
    run_async(create_topic(broker.bootstrap, "orders", 1))
    run_async(produce(broker.bootstrap, "orders", {0: 250}))
    run_async(commit(broker.bootstrap, GROUP, "orders", {0: 10}))
    hold = threading.Event()
    stuck = Receiver(hold=hold)  # takes the connection and does not answer until released
    failing = Receiver(statuses=[500, 503])  # fails twice, then takes it
    service = _config(tmp_path, broker.bootstrap, [{"webhook": {"url": stuck.url, "timeout_seconds": 30}},
                                                   {"webhook": {"url": failing.url, "name": "flaky"}}])
    service.start_in_thread()
    try:
        wait_until(lambda: stuck.attempts, 20, what="the stuck receiver to be called")
        runs = service.store.health()[("orders", "kafka")].runs
        evaluated = service.alerts.state().evaluated_at
        # While one receiver hangs, collection and evaluation go on at their pace.
        wait_until(lambda: service.store.health()[("orders", "kafka")].runs >= runs + 5, 10, what="five more runs")
        assert service.alerts.state().evaluated_at > evaluated
        wait_until(lambda: failing.bodies, 20, what="the flaky receiver to take it after its retries")
        assert failing.attempts == 3
        errors = [e for e in service.store.errors() if e.component == "notify:flaky"]
        target = f"http://{failing.url.split('/')[2]}"  # never the path: a webhook's may carry its token
        assert sorted((e.pipeline, e.category, e.message, e.target) for e in errors) == [
            ("orders", "server_error", "ReceiverError: HTTP 500 Internal Server Error", target),
            ("orders", "server_error", "ReceiverError: HTTP 503 Service Unavailable", target)]
        assert all("will be retried" in e.hint for e in errors)
        def counts() -> dict[str, float]:
            return {o: service.store.latest("pipewatch_alert_notifications_total", ("flaky", o))[1]
                    for o in ("sent", "failed", "dropped")}

        wait_until(lambda: counts()["sent"] == 1, 10, what="the flaky receiver's delivery to be counted")
        assert counts() == {"sent": 1, "failed": 2, "dropped": 0}
    finally:
        hold.set()
        service.stop_thread()
        stuck.stop()
        failing.stop()

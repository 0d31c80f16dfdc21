"""Delivery of alert notifications to webhooks, Slack, email and Alertmanager, off the collectors' loop.

The engine (monitoring/alerts/) hands over what is due with `Notifier.submit`, which only appends to a bounded
queue per receiver; each receiver has one thread that sends, retries with backoff, counts outcomes
(pipewatch_alert_notifications_total) and reports failures in the error registry (the errors page)."""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import deque

from exporters.notify.payloads import alertmanager_body, email_message, slack_body, webhook_body
from monitoring.alerts.config import AlertsSettings, EmailReceiver, Receiver, receiver_name, shown_url
from monitoring.alerts.engine import GroupNotification
from monitoring.health import categorize, describe
from monitoring.store import Store

log = logging.getLogger(__name__)

NOTIFY_SOURCE = ("_pipewatch", "notify")
"""Where the notification counters are written."""
COUNTER = "pipewatch_alert_notifications_total"
OUTCOMES = ("sent", "failed", "dropped")
_FIRST_RETRY_SECONDS = 1.0


class ReceiverError(Exception):
    def __init__(self, category: str, message: str) -> None:
        super().__init__(message)
        self.category = category


def _post_json(url: str, body: object, timeout: float) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "pipewatch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) checked in config
            response.read(65536)
    except urllib.error.HTTPError as exc:  # its text names the status, never the URL
        category = "auth" if exc.code in (401, 403) else "server_error" if exc.code >= 500 else "http_error"
        raise ReceiverError(category, f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise ReceiverError(categorize(reason) if isinstance(reason, BaseException) else "connection",
                            describe(reason) if isinstance(reason, BaseException) else str(reason)) from None


def _send_email(settings: EmailReceiver, note: GroupNotification) -> None:
    host, _, port = settings.smtp.rpartition(":")
    host = host.strip("[]")
    context = ssl.create_default_context()
    smtp_class = smtplib.SMTP_SSL if settings.tls == "ssl" else smtplib.SMTP
    kwargs = {"context": context} if settings.tls == "ssl" else {}
    with smtp_class(host, int(port), timeout=settings.timeout_seconds, **kwargs) as smtp:
        if settings.tls == "starttls":
            smtp.starttls(context=context)
        if settings.username is not None and settings.password is not None:
            smtp.login(settings.username, settings.password.get_secret_value())
        smtp.send_message(email_message(note, settings.sender, settings.to))


class _Delivery:
    """One receiver: its queue, its thread, its counters."""

    def __init__(self, notifier: Notifier, receiver: Receiver, index: int) -> None:
        self.notifier = notifier
        self.receiver = receiver
        self.name = receiver_name(receiver, index)
        self.kind = receiver.kind
        settings = receiver.settings
        self.target = settings.smtp if self.kind == "email" else shown_url(
            settings.url.get_secret_value() if self.kind == "slack" else settings.url)
        self.queue: deque[GroupNotification] = deque()
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.thread: threading.Thread | None = None

    def send(self, note: GroupNotification) -> None:
        settings = self.receiver.settings
        if self.kind == "webhook":
            _post_json(settings.url, webhook_body(note, self.name), settings.timeout_seconds)
        elif self.kind == "alertmanager":
            _post_json(settings.url.rstrip("/") + "/api/v2/alerts", alertmanager_body(note), settings.timeout_seconds)
        elif self.kind == "slack":
            _post_json(settings.url.get_secret_value(), slack_body(note), settings.timeout_seconds)
        else:
            _send_email(settings, note)


class Notifier:
    def __init__(self, settings: AlertsSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.deliveries = [_Delivery(self, receiver, i) for i, receiver in enumerate(settings.notify)]
        self._condition = threading.Condition()
        self._stopping = False
        now = time.time()
        for delivery in self.deliveries:
            for outcome in OUTCOMES:
                self._count(delivery, outcome, 0, now)

    def submit(self, note: GroupNotification) -> None:
        """Queue a notification for every receiver it concerns; never waits. A full queue drops its oldest."""
        with self._condition:
            for delivery in self.deliveries:
                if note.refresh and delivery.kind != "alertmanager":
                    continue
                if len(delivery.queue) >= self.settings.queue_size:
                    dropped = delivery.queue.popleft()
                    self._failed(delivery, dropped, ReceiverError("queue_full", f"the queue of "
                                 f"{self.settings.queue_size} notifications is full: the oldest was dropped"), True)
                delivery.queue.append(note)
            self._condition.notify_all()

    def start(self) -> None:
        self._stopping = False
        for delivery in self.deliveries:
            if delivery.thread is None:
                delivery.thread = threading.Thread(target=self._run, args=(delivery,), daemon=True,
                                                   name=f"pipewatch-notify-{delivery.name}")
                delivery.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        for delivery in self.deliveries:
            if delivery.thread is not None:
                delivery.thread.join(timeout)
                delivery.thread = None

    def _run(self, delivery: _Delivery) -> None:
        while True:
            with self._condition:
                while not delivery.queue and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                note = delivery.queue[0]
            self._deliver(delivery, note)

    def _deliver(self, delivery: _Delivery, note: GroupNotification) -> None:
        started, wait = time.monotonic(), _FIRST_RETRY_SECONDS
        while True:
            try:
                delivery.send(note)
            except Exception as exc:  # every failure is the receiver's: retried, counted, shown
                gone = time.monotonic() - started + wait > self.settings.retry_for
                with self._condition:
                    self._failed(delivery, note, exc, gone)
                    superseded = not delivery.queue or delivery.queue[0] is not note
                    if gone or superseded:
                        if not superseded:
                            delivery.queue.popleft()
                        return
                    self._condition.wait_for(lambda: self._stopping, timeout=wait)
                    if self._stopping:
                        return
                wait = min(wait * 2, self.settings.retry_max_seconds)
                continue
            with self._condition:
                if delivery.queue and delivery.queue[0] is note:
                    delivery.queue.popleft()
                self._count(delivery, "sent", 1, time.time())
            return

    def _failed(self, delivery: _Delivery, note: GroupNotification, exc: BaseException, dropped: bool) -> None:
        now = time.time()
        self._count(delivery, "dropped" if dropped else "failed", 1, now)
        pipeline = dict(note.group_labels).get("pipeline") or "_pipewatch"
        what = "given up" if dropped else "will be retried"
        hint = (f"Receiver {delivery.name} ({delivery.kind}) did not take the notification of "
                f"{dict(note.group_labels).get('alertname')}; {what} (backoff up to "
                f"{self.settings.retry_max_seconds:g} s, for {self.settings.retry_for:g} s).")
        self.store.record_error(pipeline, f"notify:{delivery.name}", categorize(exc), describe(exc),
                                "error", delivery.target, hint, now)
        log.warning("notification to %s failed (%s): %s", delivery.name, what, describe(exc))

    def _count(self, delivery: _Delivery, outcome: str, add: int, now: float) -> None:
        delivery.counts[outcome] += add
        self.store.append(NOTIFY_SOURCE, COUNTER, (delivery.name, outcome), float(delivery.counts[outcome]), now)

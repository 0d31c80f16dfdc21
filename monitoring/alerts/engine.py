"""The alert engine: evaluates every rule over the exported series each interval, keeps one alert per matching
series through pending, firing, source_down and resolved, holds silences, and hands the notifications due to the
notifier (exporters/notify/) without ever waiting for it. States and grouping: docs/alerts.md."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from monitoring import format as fmt
from monitoring.alerts.config import AlertsSettings
from monitoring.alerts.expr import Element, View, offsets
from monitoring.alerts.rules import Rule, build_rules
from monitoring.alerts.series import ExportedView, Memory
from monitoring.store import Source, Store

log = logging.getLogger(__name__)

ALERTS = "alerts"
"""The `collector` of the engine's series (pipewatch_alerts_firing, per pipeline) and events (firing, resolved,
silenced)."""
REFRESH_SECONDS = 60.0
"""Firing alerts go to an Alertmanager again this often (it resolves an alert whose endsAt passes)."""
MAX_SILENCES = 1000

PENDING, FIRING, SOURCE_DOWN, RESOLVED, INACTIVE = "pending", "firing", "source_down", "resolved", "inactive"


@dataclass(frozen=True, slots=True)
class Alert:
    fingerprint: str
    rule: str
    severity: str
    labels: tuple[tuple[str, str], ...]
    """The series' labels, then alertname and severity."""
    summary: str
    description: str
    state: str
    value: float
    active_since: float
    """When the condition started to hold (pending from then)."""
    updated_at: float
    fired_at: float | None = None
    resolved_at: float | None = None
    source: Source | None = None
    """The collector whose series it is: when that collector is down the alert turns source_down."""
    metric: str = ""
    series: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    """source_down: what is wrong with the collector; resolved: why it ended."""
    silenced_by: str | None = None

    @property
    def pipeline(self) -> str:
        return dict(self.labels).get("pipeline", "")

    @property
    def active(self) -> bool:
        return self.state in (FIRING, SOURCE_DOWN)


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    rule: str
    fingerprint: str | None
    """One alert; None: every alert of the rule (of `pipeline` when given)."""
    pipeline: str | None
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    description: str
    """What it silences, for people: the alert's summary or the rule's name."""

    def matches(self, alert: Alert, now: float) -> bool:
        return (self.starts_at <= now < self.ends_at and alert.rule == self.rule
                and (self.fingerprint is None or self.fingerprint == alert.fingerprint)
                and (self.pipeline is None or self.pipeline == alert.pipeline))


@dataclass(frozen=True, slots=True)
class GroupNotification:
    """What one group (one rule in one pipeline) says now: what receivers are sent."""

    group_key: str
    group_labels: tuple[tuple[str, str], ...]
    status: str
    """firing while one of its alerts fires, else resolved."""
    alerts: tuple[Alert, ...]
    created_at: float
    refresh: bool = False
    """True: nothing changed; only for receivers that forget alerts not sent again (Alertmanager)."""


@dataclass(slots=True)
class _Group:
    sent: frozenset[tuple[str, str]] = frozenset()
    """(fingerprint, state) of the alerts last notified as firing."""
    last_sent: float = 0.0
    last_refresh: float = 0.0
    resolved: list[Alert] = field(default_factory=list)
    """Alerts of the group resolved since the last notification (they were notified firing)."""


@dataclass(frozen=True, slots=True)
class RuleState:
    rule: Rule
    state: str
    """inactive, pending or firing (firing also when some of its alerts are source_down)."""
    firing: int
    pending: int


@dataclass(frozen=True, slots=True)
class AlertsState:
    evaluated_at: float | None
    rules: tuple[RuleState, ...]
    active: tuple[Alert, ...]
    """Firing and source_down first (critical first), then pending."""
    history: tuple[Alert, ...]
    """Resolved alerts, the newest first."""
    silences: tuple[Silence, ...]

    def firing_by_pipeline(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for alert in self.active:
            if alert.active and alert.silenced_by is None:
                counts[alert.pipeline] = counts.get(alert.pipeline, 0) + 1
        return counts


def fingerprint(labels: tuple[tuple[str, str], ...]) -> str:
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def group_key(rule: str, pipeline: str) -> str:
    """Alertmanager's form of a group key: the route's matchers, then the group's labels."""
    return f'{{}}:{{alertname="{rule}", pipeline="{pipeline}"}}'


class AlertEngine:
    def __init__(self, settings: AlertsSettings, store: Store, pipelines: list[str],
                 outbox: Callable[[GroupNotification], None] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.pipelines = pipelines
        self.rules = build_rules(settings)
        self.outbox = outbox
        """Takes the notifications due (must not block: the notifier queues them)."""
        self._names = set(itertools.chain.from_iterable(rule.expr.names() for rule in self.rules))
        remembered: dict[str, float] = {}
        for rule in self.rules:
            for name, seconds in offsets(rule.expr).items():
                remembered[name] = max(remembered.get(name, 0.0), seconds)
        self._memory = Memory(remembered)
        """What the rules read `offset` (an hour ago) of: only this process's own past, as Prometheus' own."""
        self._active: dict[str, Alert] = {}
        self._history: deque[Alert] = deque(maxlen=settings.history)
        self._silences: dict[str, Silence] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._evaluated_at: float | None = None
        self._lock = threading.Lock()
        self.generation = 0
        """Bumped by every evaluation and silence: a page that saw it has seen everything."""

    # -- evaluation --------------------------------------------------------------------------------

    def evaluate(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        view = ExportedView(self.store, self._names, now, self._memory)
        self._memory.record(view)
        notes = self.evaluate_view(view, down={
            s: f"{h.effective_state(now).value} ({h.reason(now)})" for s, h in view.down.items()})
        self._write_metrics(now)
        if self.outbox is not None:
            for note in notes:
                self.outbox(note)

    def evaluate_view(self, view: View, down: dict[Source, str] | None = None) -> list[GroupNotification]:
        """One evaluation over `view`; returns the notifications due. `down`: collectors not up, with why."""
        now, down = view.now, down or {}
        with self._lock:
            seen: set[str] = set()
            for rule in self.rules:
                try:
                    elements = rule.expr.evaluate(view)
                except Exception:  # a bug in one rule must not stop the others
                    log.exception("alert rule %s failed", rule.name)
                    seen.update(fp for fp, a in self._active.items() if a.rule == rule.name)
                    continue
                for element in elements:
                    seen.add(self._hold(rule, element, now))
            for fp in [fp for fp in self._active if fp not in seen]:
                self._release(self._active[fp], view, down, now)
            for fp, alert in self._active.items():
                silence = self._silence_of(alert, now)
                if silence != alert.silenced_by:
                    self._active[fp] = replace(alert, silenced_by=silence)
            self._evaluated_at = now
            self.generation += 1
            return self._notifications(now)

    def _hold(self, rule: Rule, element: Element, now: float) -> str:
        labels = (*element.labels, ("alertname", rule.name), ("severity", rule.severity))
        fp = fingerprint(labels)
        before = self._active.get(fp)
        since = before.active_since if before is not None else now
        state = FIRING if now - since >= rule.for_seconds else PENDING
        fired_at = before.fired_at if before is not None and before.fired_at is not None else (
            now if state == FIRING else None)
        if fired_at is not None:
            state = FIRING  # a firing alert stays firing while it holds (also when back from source_down)
        label_map = dict(labels)
        sample = element.sample
        alert = Alert(fp, rule.name, rule.severity, labels, rule.render(rule.summary, label_map, element.value),
                      rule.render(rule.description, label_map, element.value), state, element.value, since, now,
                      fired_at, None, sample.source if sample else None,
                      sample.name if sample else "", sample.labels if sample else (),
                      silenced_by=before.silenced_by if before else None)
        if state == FIRING and (before is None or before.state != FIRING):
            self._event(alert, "warning", f"alert {rule.name} firing: {alert.summary}"
                        + (" (its collector is back)" if before is not None and before.state == SOURCE_DOWN else ""))
        self._active[fp] = alert
        return fp

    def _release(self, alert: Alert, view: View, down: dict[Source, str], now: float) -> None:
        """The condition no longer matches this alert's series: why decides between source_down and resolved."""
        if alert.source is not None and alert.source in down:
            if alert.state != SOURCE_DOWN:
                reason = f"collector {alert.source[1]} is {down[alert.source]}"
                self._active[alert.fingerprint] = replace(alert, state=SOURCE_DOWN, reason=reason, updated_at=now)
                self._event(alert, "warning", f"alert {alert.rule}: source down, condition unknown: {reason}")
            return
        del self._active[alert.fingerprint]
        if alert.fired_at is None:
            return  # pending only: nobody was told, and Prometheus drops it the same way
        present = alert.metric and any(s.labels == alert.series for s in view.instant(alert.metric))
        reason = ("the condition no longer holds" if present or not alert.metric
                  else f"its series {alert.metric} is gone (the collector is up but no longer reports it)")
        resolved = replace(alert, state=RESOLVED, resolved_at=now, updated_at=now, reason=reason)
        self._history.appendleft(resolved)
        group = self._groups.get((alert.rule, alert.pipeline))
        if group is not None and any(fp == alert.fingerprint for fp, _ in group.sent):
            group.resolved.append(resolved)
        self._event(alert, "info", f"alert {alert.rule} resolved: {reason}")

    def _silence_of(self, alert: Alert, now: float) -> str | None:
        return next((s.id for s in self._silences.values() if s.matches(alert, now)), None)

    def _notifications(self, now: float) -> list[GroupNotification]:
        firing: dict[tuple[str, str], list[Alert]] = {}
        for alert in self._active.values():
            if alert.active and alert.silenced_by is None:
                firing.setdefault((alert.rule, alert.pipeline), []).append(alert)
        notes = []
        for key in set(firing) | set(self._groups):
            alerts = sorted(firing.get(key, ()), key=lambda a: a.labels)
            group = self._groups.setdefault(key, _Group())
            sent = frozenset((a.fingerprint, a.state) for a in alerts)
            if not alerts and not group.resolved:  # its alerts were silenced: nothing to say, nothing resolved
                del self._groups[key]
                continue
            changed = sent != group.sent or group.resolved
            repeat = alerts and now - group.last_sent >= self.settings.repeat_interval
            refresh = alerts and now - group.last_refresh >= REFRESH_SECONDS
            if changed or repeat or refresh:
                notes.append(GroupNotification(
                    group_key(*key), (("alertname", key[0]), ("pipeline", key[1])),
                    FIRING if alerts else RESOLVED, (*alerts, *group.resolved), now,
                    refresh=not (changed or repeat)))
                group.last_refresh = now
                if changed or repeat:
                    group.sent, group.last_sent, group.resolved = sent, now, []
            if not alerts and not group.resolved:
                del self._groups[key]
        return notes

    def _event(self, alert: Alert, severity: str, message: str) -> None:
        self.store.add_event(alert.pipeline or "_pipewatch", ALERTS, severity, message)

    def _write_metrics(self, now: float) -> None:
        counts = {pipeline: {(rule.name, rule.severity): 0 for rule in self.rules} for pipeline in self.pipelines}
        with self._lock:
            for alert in self._active.values():
                if alert.active and alert.pipeline in counts:
                    key = (alert.rule, alert.severity)
                    counts[alert.pipeline][key] = counts[alert.pipeline].get(key, 0) + 1
        for pipeline, rows in counts.items():
            with self.store.cycle((pipeline, ALERTS), now) as cycle:
                cycle.set_many("pipewatch_alerts_firing", [(key, float(n)) for key, n in rows.items()])

    async def run(self) -> None:
        interval = self.settings.evaluation_interval
        while True:
            try:
                self.evaluate()
            except Exception:  # a bug here must not end alerting for good
                log.exception("alert evaluation failed")
            await asyncio.sleep(interval)

    # -- reading, silencing --------------------------------------------------------------------------

    def state(self, now: float | None = None) -> AlertsState:
        now = time.time() if now is None else now
        with self._lock:
            active = sorted(self._active.values(), key=_active_order)
            rules = []
            for rule in self.rules:
                mine = [a for a in active if a.rule == rule.name]
                firing = sum(1 for a in mine if a.active)
                pending = len(mine) - firing
                rules.append(RuleState(rule, FIRING if firing else PENDING if pending else INACTIVE, firing, pending))
            silences = tuple(s for s in self._silences.values() if s.ends_at > now)
            return AlertsState(self._evaluated_at, tuple(rules), tuple(active), tuple(self._history), silences)

    def silence(self, rule: str, duration: float, created_by: str, comment: str, fingerprint: str | None = None,
                pipeline: str | None = None, now: float | None = None) -> Silence:
        """Silence one alert (its fingerprint) or a rule (in one pipeline, or all) for `duration` seconds.
        Raises ValueError for an unknown rule or alert, a duration out of range or a missing name or reason."""
        now = time.time() if now is None else now
        if not created_by.strip() or not comment.strip():
            raise ValueError("a silence needs who sets it and why")
        if not 60 <= duration <= 90 * 86400:
            raise ValueError("a silence lasts from 1 minute to 90 days")
        with self._lock:
            if rule not in {r.name for r in self.rules}:
                raise ValueError(f"no rule named {rule!r}")
            description = f"every {rule} alert" + (f" of pipeline {pipeline}" if pipeline else "")
            if fingerprint is not None:
                alert = self._active.get(fingerprint)
                if alert is None or alert.rule != rule:
                    raise ValueError("that alert is no longer active")
                description, pipeline = alert.summary, alert.pipeline
            for old in [k for k, s in self._silences.items() if s.ends_at <= now]:
                del self._silences[old]
            if len(self._silences) >= MAX_SILENCES:
                raise ValueError(f"{MAX_SILENCES} silences are active: expire some first")
            silence = Silence(uuid.uuid4().hex[:12], rule, fingerprint, pipeline, now, now + duration,
                              created_by.strip()[:100], comment.strip()[:500], description)
            self._silences[silence.id] = silence
            for fp, alert in self._active.items():
                if silence.matches(alert, now) and alert.silenced_by is None:
                    self._active[fp] = replace(alert, silenced_by=silence.id)
            self.generation += 1
        self.store.add_event(pipeline or "_pipewatch", ALERTS, "info",
                             f"{silence.created_by} silenced {description} for {fmt.duration(duration)}: "
                             f"{silence.comment}")
        return silence

    def expire(self, silence_id: str, by: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            silence = self._silences.get(silence_id)
            if silence is None or silence.ends_at <= now:
                raise ValueError("no such active silence")
            self._silences[silence_id] = replace(silence, ends_at=now)
            for fp, alert in self._active.items():
                if alert.silenced_by == silence_id:
                    self._active[fp] = replace(alert, silenced_by=self._silence_of(alert, now))
            self.generation += 1
        self.store.add_event(silence.pipeline or "_pipewatch", ALERTS, "info",
                             f"{by.strip()[:100]} ended the silence of {silence.description}")


def _active_order(alert: Alert) -> tuple:
    return (0 if alert.active else 1, 0 if alert.severity == "critical" else 1, -(alert.fired_at or alert.active_since),
            alert.labels)

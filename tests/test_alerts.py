"""The alert engine over a real store: the series it sees are those /metrics serves, `for`, source_down, a series
that goes, silences, grouping and repeats; config errors name their key."""

from __future__ import annotations

import math
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporters.prometheus import Exposition
from monitoring.alerts.config import AlertsSettings
from monitoring.alerts.engine import FIRING, PENDING, RESOLVED, SOURCE_DOWN, AlertEngine
from monitoring.alerts.rules import DEFAULT_RULES
from monitoring.alerts.series import ExportedView, exported_labels
from monitoring.config import ConfigError, load_config
from monitoring.health import CollectorHealth, State
from monitoring.metrics import DELAY_BUCKETS, JOB_STATES
from monitoring.store import Store

KAFKA = ("orders", "kafka")
FLINK = ("orders", "flink")
LAG = "kafka_consumergroup_lag"
RULE = {"name": "OrdersLagHigh", "metric": LAG, "labels": {"consumergroup": "orders-.*"}, "op": ">",
        "threshold": 1000, "for": "10s", "severity": "warning",
        "summary": "{consumergroup} lags {value} messages on {topic}/{partition}"}


def _health(store: Store, source, state: State, now: float) -> None:
    store.set_health(CollectorHealth(source[0], source[1], "target", 5.0, state=state, last_success=now, runs=3,
                                     last_duration=0.1, last_error=None if state is State.UP else "broker gone",
                                     error_category=None if state is State.UP else "connection_refused"))


def _lag(store: Store, rows: dict[tuple[str, str], float], t: float) -> None:
    with store.cycle(KAFKA, t) as cycle:
        cycle.set_many(LAG, [(("local", group, "orders", partition), value)
                             for (group, partition), value in rows.items()])


def _engine(store: Store, **settings) -> tuple[AlertEngine, list]:
    sent: list = []
    engine = AlertEngine(AlertsSettings.model_validate({"defaults": False, "rules": [RULE], **settings}), store,
                         ["orders"], outbox=sent.append)
    return engine, sent


def test_the_engine_sees_exactly_the_series_metrics_serves():
    store, now = Store(), time.time()
    _health(store, KAFKA, State.UP, now)
    _health(store, FLINK, State.DOWN, now)
    _health(store, ("orders", "schema_registry"), State.DOWN, now)
    _lag(store, {("orders-1", "0"): 5.0, ("orders-1", "1"): math.nan}, now)
    with store.cycle(KAFKA, now) as cycle:
        cycle.set("kafka_consumergroup_status", ("local", "orders-1"), 3)
        cycle.set(LAG, ("local", "orders-1", "orders", "0"), 5.0)
        for bound in (*DELAY_BUCKETS, math.inf):
            cycle.set("db_change_feed_delay_seconds", ("Order", f"le={bound!r}" if bound != math.inf else "le=+Inf"),
                      2.0)
    with store.cycle(FLINK, now) as cycle:  # down: left out
        cycle.set("flink_jobmanager_job_state", ("local", "job", "j1"), JOB_STATES.index("FAILED"))
    with store.cycle(("orders", "schema_registry"), now) as cycle:  # down, but while_down: served
        cycle.set("schema_registry_up", ("reg",), 0)
    exposition = Exposition(store).render().decode()
    served = {(s.name, tuple(sorted(s.labels.items())), s.value)
              for family in text_string_to_metric_families(exposition) for s in family.samples
              if not s.name.startswith(("process_", "python_"))}
    view = ExportedView(store, exported_labels(), now)
    seen = {(s.name, tuple(sorted(s.labels)), s.value) for name in exported_labels() for s in view.instant(name)}
    assert seen == served
    assert ("kafka_consumergroup_status_info", (("cluster", "local"), ("consumergroup", "orders-1"),
                                                ("pipeline", "orders"), ("status", "ERR")), 1.0) in seen
    assert not [s for s in seen if s[0].startswith("flink_jobmanager")]
    assert ("schema_registry_up", (("pipeline", "orders"), ("registry", "reg")), 0.0) in seen


def test_a_rule_is_pending_then_fires_after_its_for_and_resolves():
    store, t0 = Store(), 1_000_000.0
    _health(store, KAFKA, State.UP, t0)
    engine, sent = _engine(store)
    _lag(store, {("orders-1", "0"): 1500, ("orders-1", "1"): 10, ("billing", "0"): 5000}, t0)
    engine.evaluate(t0)
    (alert,) = engine.state(t0).active
    assert alert.state == PENDING and dict(alert.labels) == {
        "pipeline": "orders", "cluster": "local", "consumergroup": "orders-1", "topic": "orders", "partition": "0",
        "alertname": "OrdersLagHigh", "severity": "warning"}
    assert alert.summary == "orders-1 lags 1,500 messages on orders/0"
    assert sent == []
    engine.evaluate(t0 + 9.9)
    assert engine.state().active[0].state == PENDING
    engine.evaluate(t0 + 10)
    assert engine.state().active[0].state == FIRING
    (note,) = sent
    assert note.status == "firing" and [a.fingerprint for a in note.alerts] == [alert.fingerprint]
    assert note.group_key == '{}:{alertname="OrdersLagHigh", pipeline="orders"}'
    assert dict(note.group_labels) == {"alertname": "OrdersLagHigh", "pipeline": "orders"}
    assert store.latest("pipewatch_alerts_firing", ("orders", "OrdersLagHigh", "warning"))[1] == 1
    _lag(store, {("orders-1", "0"): 3, ("orders-1", "1"): 10, ("billing", "0"): 5000}, t0 + 11)
    engine.evaluate(t0 + 11)
    state = engine.state()
    assert state.active == () and state.history[0].state == RESOLVED
    assert state.history[0].reason == "the condition no longer holds"
    assert sent[-1].status == "resolved" and sent[-1].alerts[0].resolved_at == t0 + 11
    assert store.latest("pipewatch_alerts_firing", ("orders", "OrdersLagHigh", "warning"))[1] == 0


def test_a_flapping_condition_never_fires():
    store, t0 = Store(), 1_000_000.0
    _health(store, KAFKA, State.UP, t0)
    engine, sent = _engine(store)
    for i in range(30):
        _lag(store, {("orders-1", "0"): 1500 if i % 5 else 0}, t0 + i)
        engine.evaluate(t0 + i)
    assert sent == [] and engine.state().history == ()


def test_a_down_collector_turns_the_alert_source_down_not_resolved():
    store, t0 = Store(), 1_000_000.0
    _health(store, KAFKA, State.UP, t0)
    engine, sent = _engine(store)
    _lag(store, {("orders-1", "0"): 1500}, t0)
    engine.evaluate(t0)
    engine.evaluate(t0 + 10)
    _health(store, KAFKA, State.DOWN, t0 + 11)
    engine.evaluate(t0 + 11)
    (alert,) = engine.state().active
    assert alert.state == SOURCE_DOWN and alert.reason == "collector kafka is down (connection_refused: broker gone)"
    assert [n.status for n in sent] == ["firing", "firing"]
    assert [a.state for a in sent[-1].alerts] == [SOURCE_DOWN]
    assert engine.state().history == ()
    _health(store, KAFKA, State.UP, t0 + 20)
    engine.evaluate(t0 + 20)
    assert engine.state().active[0].state == FIRING and engine.state().active[0].fired_at == t0 + 10


def test_a_series_that_goes_while_its_collector_is_up_resolves_saying_so():
    store, t0 = Store(), 1_000_000.0
    _health(store, KAFKA, State.UP, t0)
    engine, _ = _engine(store)
    _lag(store, {("orders-1", "0"): 1500}, t0)
    engine.evaluate(t0)
    engine.evaluate(t0 + 10)
    _lag(store, {("billing", "0"): 1}, t0 + 11)  # the group was deleted
    engine.evaluate(t0 + 11)
    assert engine.state().history[0].reason.startswith("its series kafka_consumergroup_lag is gone")


def test_repeat_interval_and_silences():
    store, t0 = Store(), 1_000_000.0
    _health(store, KAFKA, State.UP, t0)
    engine, sent = _engine(store, repeat_interval="1h")

    def evaluate(t: float) -> None:
        _health(store, KAFKA, State.UP, t)  # fresh: not stale
        engine.evaluate(t)

    _lag(store, {("orders-1", "0"): 1500, ("orders-2", "0"): 1500}, t0)
    evaluate(t0)
    evaluate(t0 + 10)
    assert len(sent) == 1 and len(sent[0].alerts) == 2  # one group: one rule, one pipeline
    evaluate(t0 + 3000)
    assert [n.refresh for n in sent[1:]] == [True]  # only Alertmanager hears again before the repeat
    evaluate(t0 + 3610)
    assert not sent[-1].refresh and len(sent) == 3
    first = engine.state().active[0]
    with pytest.raises(ValueError, match="who sets it and why"):
        engine.silence("OrdersLagHigh", 600, "", "deploy", fingerprint=first.fingerprint)
    silence = engine.silence("OrdersLagHigh", 600, "ana", "rebalancing on purpose", fingerprint=first.fingerprint,
                             now=t0 + 3611)
    evaluate(t0 + 3612)
    assert [len(n.alerts) for n in sent[3:]] == [1]  # the group without the silenced alert
    assert {a.fingerprint: a.silenced_by for a in engine.state().active}[first.fingerprint] == silence.id
    events = [e.message for e in store.events_since(0)]
    assert any(m.startswith("ana silenced orders-") and m.endswith(": rebalancing on purpose") for m in events)
    engine.silence("OrdersLagHigh", 600, "ana", "all of it", now=t0 + 3613)
    evaluate(t0 + 3614)
    assert len(sent) == 4  # all silenced: no notification (nothing resolved)
    evaluate(t0 + 3613 + 601)  # both silences ended: notified again
    assert sent[-1].status == "firing" and len(sent[-1].alerts) == 2


@pytest.mark.parametrize(("rule", "message"), [
    ({"metric": "kafka_lag"}, "alerts.rules[0]: metric 'kafka_lag' is not one pipewatch exports"),
    ({"labels": {"group": "x"}}, "alerts.rules[0]: labels: group not a label of kafka_consumergroup_lag"),
    ({"labels": {"topic": "("}}, "alerts.rules[0].labels.topic: '(' is not a valid regular expression"),
    ({"op": "=>"}, "alerts.rules[0].op: Input should be '>'"),
    ({"for": "ten minutes"}, "alerts.rules[0].for: 'ten minutes' is not a duration"),
    ({"summary": "{group} lags"}, "alerts.rules[0]: summary: {group} is not a label of kafka_consumergroup_lag"),
])
def test_a_bad_rule_stops_at_start_with_its_key_path(tmp_path, rule, message):
    import yaml

    path = tmp_path / "pipewatch.yml"
    path.write_text(yaml.safe_dump({"pipelines": [{"name": "orders", "kafka": {"bootstrap_servers": ["b:9092"]}}],
                                    "alerts": {"rules": [{**RULE, **rule}]}}))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert f"{path}: {message}" in str(error.value)


def test_receivers_refuse_credentials_in_urls_and_plain_text_passwords(tmp_path):
    import yaml

    path = tmp_path / "pipewatch.yml"
    for receiver, message in [
        ({"webhook": {"url": "https://user:pw@hooks.example.com/x"}}, "alerts.notify[0].webhook.url: credentials"),
        ({"email": {"smtp": "mail.example.com:25", "from": "a@b.c", "to": ["d@e.f"], "username": "u",
                    "password": "p", "tls": "none"}}, "alerts.notify[0].email: a password over an unencrypted"),
        ({"webhook": {"url": "http://a"}, "slack": {"url": "http://b"}}, "alerts.notify[0]: give exactly one"),
    ]:
        path.write_text(yaml.safe_dump({"pipelines": [{"name": "orders", "kafka": {"bootstrap_servers": ["b:9"]}}],
                                        "alerts": {"notify": [receiver]}}))
        with pytest.raises(ConfigError) as error:
            load_config(path)
        assert message in str(error.value)
        assert "pw@" not in str(error.value)


def test_a_user_rule_replaces_the_builtin_of_its_name():
    settings = AlertsSettings.model_validate({"rules": [{**RULE, "name": "PipewatchKafkaLagHigh"}]})
    engine = AlertEngine(settings, Store(), ["orders"])
    mine = [r for r in engine.rules if r.name == "PipewatchKafkaLagHigh"]
    assert len(mine) == 1 and not mine[0].builtin and len(engine.rules) == len(DEFAULT_RULES)


def test_offset_reads_what_this_process_served_an_hour_ago():
    """The second half of PipewatchProfilingHighSeverityDrift over a real store: a table's first high-severity
    drift event (a new series) alerts when the profiling collector was up an hour before; not without that hour."""
    store, t0 = Store(), 1_000_000.0
    profiling = ("orders", "profiling")
    engine = AlertEngine(AlertsSettings(), store, ["orders"])
    for minute in range(70):
        t = t0 + 60 * minute
        _health(store, profiling, State.UP, t)
        with store.cycle(profiling, t) as cycle:
            if minute >= 65:
                cycle.set("profiling_drift_events_total", ("customers", "high"), 1)
        engine.evaluate(t)
    drift = [a for a in engine.state().active if a.rule == "PipewatchProfilingHighSeverityDrift"]
    assert [dict(a.labels)["table"] for a in drift] == ["customers"] and drift[0].state == FIRING

    fresh = AlertEngine(AlertsSettings(), store, ["orders"])  # started a minute ago: knows nothing of an hour ago
    fresh.evaluate(t0 + 60 * 70)
    assert not [a for a in fresh.state().active if a.rule == "PipewatchProfilingHighSeverityDrift"]

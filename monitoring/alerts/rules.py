"""Alert rules: a condition, how long it must hold, and what the alert says; the built-in rules.

The built-in rules state the conditions of deploy/prometheus/rules.yml with the nodes of expr.py, so users
without Prometheus get the same alerts; tests/test_alert_defaults.py evaluates both on the promtool tests' data.
PipewatchAgentDown and PipewatchAgentMissing are Prometheus' own (its `up` series: an agent cannot see itself
missing) and are not built in."""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass

from monitoring import format as fmt
from monitoring.alerts.config import AlertRule, AlertsSettings
from monitoring.alerts.expr import (
    Age,
    And,
    Compare,
    CompareVectors,
    Deriv,
    Expr,
    HistogramQuantile,
    Increase,
    Offset,
    Or,
    Select,
    SumWithout,
    Unless,
)
from monitoring.metrics import CATALOGUE


@dataclass(frozen=True)
class Rule:
    name: str
    expr: Expr
    for_seconds: float
    severity: str
    summary: str
    """str.format template: the alert's labels and {value} (written for people)."""
    description: str = ""
    unit: str = ""
    """How {value} is written: seconds as a duration, a ratio as a percentage, anything else as a number."""
    builtin: bool = False

    def render(self, template: str, labels: dict[str, str], value: float) -> str:
        return string.Formatter().vformat(template, (), _Fill(labels, format_value(value, self.unit)))


class _Fill(dict):
    def __init__(self, labels: dict[str, str], value: str) -> None:
        super().__init__(labels, value=value)

    def __missing__(self, key: str) -> str:
        return ""


def format_value(value: float, unit: str) -> str:
    if unit == "seconds":
        return fmt.duration(value)
    if unit == "ratio":
        return fmt.share(value)
    return fmt.number(value)


def user_rule(rule: AlertRule) -> Rule:
    select = Select(rule.metric, tuple(sorted(rule.labels.items())))
    spec = CATALOGUE.get(rule.metric.removesuffix("_info"))
    unit = spec.unit if spec is not None and not rule.metric.endswith("_info") else ""
    return Rule(rule.name, Compare(select, rule.op, rule.threshold), rule.for_seconds, rule.severity,
                rule.summary or f"{rule.metric} {rule.op} {fmt.number(rule.threshold)}: {{value}}",
                rule.description, unit)


def build_rules(settings: AlertsSettings) -> list[Rule]:
    """The rules in force: the built-in ones (when `defaults`), a user rule replacing a built-in of its name."""
    own = [user_rule(rule) for rule in settings.rules]
    names = {rule.name for rule in own}
    builtins = [rule for rule in DEFAULT_RULES if rule.name not in names] if settings.defaults else []
    return builtins + own


_M = 60.0
_GROUP_TOPIC = ("pipeline", "cluster", "consumergroup", "topic")
_state: Callable[[], Select] = lambda: Select("flink_jobmanager_job_state")  # noqa: E731
_backlog = Select("db_change_feed_backlog")
_high_drift = Select("profiling_drift_events_total", (("severity", "high"),))

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("PipewatchKafkaLagHigh", Compare(Select("kafka_consumergroup_group_max_lag_seconds"), ">", 300), 10 * _M,
         "warning", "Kafka consumer group {consumergroup} is {value} behind",
         "The oldest record consumer group {consumergroup} has not consumed yet on cluster {cluster} of pipeline "
         "{pipeline} is {value} old, above 5 minutes for 10 minutes.", "seconds", True),
    Rule("PipewatchKafkaLagStatusError", Compare(Select("kafka_consumergroup_status"), "==", 3), 5 * _M, "critical",
         "Kafka consumer group {consumergroup} has lag status ERR",
         "Consumer group {consumergroup} on cluster {cluster} of pipeline {pipeline} has had lag status ERR for 5 "
         "minutes: one of its partitions is stopped, stalled or rewound.", builtin=True),
    Rule("PipewatchKafkaRetentionRisk",
         Unless(Compare(Select("kafka_consumergroup_retention_risk_seconds"), "<", 3600),
                Compare(Select("kafka_consumergroup_retention_margin_messages"), "<", 0), on=_GROUP_TOPIC),
         10 * _M, "warning", "Kafka retention will delete records {consumergroup} has not consumed",
         "At the current rates, retention deletes records of topic {topic} that consumer group {consumergroup} "
         "(cluster {cluster}, pipeline {pipeline}) has not consumed yet in {value}.", "seconds", True),
    Rule("PipewatchKafkaRecordsLost", Compare(Select("kafka_consumergroup_retention_margin_messages"), "<", 0),
         2 * _M, "critical", "Kafka retention deleted records {consumergroup} had not consumed",
         "Consumer group {consumergroup} (cluster {cluster}, pipeline {pipeline}) committed an offset {value} "
         "messages below the log start of a partition of topic {topic}.", builtin=True),
    Rule("PipewatchFlinkJobNotRunning",
         Unless(And(Compare(_state(), "!=", 3), Compare(_state(), "!=", 8)), Compare(_state(), "==", 3),
                on=("pipeline", "cluster", "job_name")),
         5 * _M, "critical", "Flink job {job_name} is not running",
         "Flink job {job_name} ({job_id}) on cluster {cluster} of pipeline {pipeline} has not been RUNNING for 5 "
         "minutes, and no job of that name is.", builtin=True),
    Rule("PipewatchFlinkJobRestarting", Compare(Increase(Select("flink_jobmanager_job_numRestarts"), 15 * _M), ">", 2),
         0.0, "warning", "Flink job {job_name} keeps restarting",
         "Flink job {job_name} ({job_id}) on cluster {cluster} of pipeline {pipeline} restarted about {value} times "
         "in the last 15 minutes.", builtin=True),
    Rule("PipewatchFlinkCheckpointTooOld",
         CompareVectors(Select("flink_jobmanager_job_checkpoint_age_seconds"), ">",
                        Select("flink_jobmanager_job_checkpoint_interval_seconds"), 3.0),
         2 * _M, "warning", "Flink job {job_name} has not completed a checkpoint for {value}",
         "Flink job {job_name} ({job_id}) on cluster {cluster} of pipeline {pipeline} last completed a checkpoint "
         "{value} ago, more than 3 checkpoint intervals.", "seconds", True),
    Rule("PipewatchSchemaRegistryDown", Compare(Select("schema_registry_up"), "==", 0), 2 * _M, "critical",
         "Schema registry {registry} is down",
         "Schema registry {registry} of pipeline {pipeline} has not answered GET / with 2xx for 2 minutes.",
         builtin=True),
    Rule("PipewatchSchemaRegistryReadOnly",
         Compare(Select("schema_registry_mode_info", (("mode", "READONLY|READONLY_OVERRIDE"),)), "==", 1), 5 * _M,
         "warning", "Schema registry {registry} is {mode}",
         "Schema registry {registry} of pipeline {pipeline} has been in mode {mode} for 5 minutes: it refuses new "
         "schemas.", builtin=True),
    Rule("PipewatchProfilingHighSeverityDrift",
         Or(Compare(SumWithout(Increase(_high_drift, 60 * _M), ("severity",)), ">", 0),
            And(SumWithout(Unless(_high_drift, Offset(_high_drift, 60 * _M)), ("severity",)),
                Compare(Offset(Select("pipewatch_collector_up", (("collector", "profiling"),)), 60 * _M), "==", 1),
                on=("pipeline",))),
         0.0, "warning", "High-severity data drift in table {table}",
         "The profiler recorded about {value} high-severity drift event(s) in table {table} of pipeline {pipeline} "
         "in the last hour.", builtin=True),
    Rule("PipewatchDeadLetterRatioHigh", Compare(Select("pipewatch_pipeline_invalid_ratio"), ">", 0.01), 10 * _M,
         "warning", "Pipeline {pipeline} sends {value} of its input to dead letters",
         "{value} of the records into pipeline {pipeline} went to its dead-letter topics, above 1 % for 10 minutes: "
         "they were not processed. The pipeline's page charts the dead-letter rate and names the topics.", "ratio",
         True),
    Rule("PipewatchChangeFeedDelayHigh",
         Compare(HistogramQuantile(0.99, Select("db_change_feed_delay_seconds_bucket"), 5 * _M, ("pipeline", "entity")),
                 ">", 5),
         5 * _M, "warning", "Change feed delay of {entity} is {value} (p99)",
         "99 % of the changes to {entity} in pipeline {pipeline} were delivered within {value} of their commit over "
         "the last 5 minutes, above 5 s for 5 minutes.", "seconds", True),
    Rule("PipewatchChangeFeedBacklogGrowing",
         Or(And(Compare(_backlog, ">", 1000), Compare(Deriv(_backlog, 10 * _M), ">", 0)),
            Compare(_backlog, ">=", 100_000)),
         10 * _M, "warning", "Change feed backlog of pipeline {pipeline} keeps growing",
         "{value} committed changes of pipeline {pipeline} wait for delivery and the backlog has been growing (or at "
         "its 100,000 cap) for 10 minutes.", builtin=True),
    Rule("PipewatchCollectorDown", Compare(Select("pipewatch_collector_up"), "==", 0), 5 * _M, "warning",
         "pipewatch collector {collector} of {pipeline} is down",
         "The {collector} collector of pipeline {pipeline} has been down for 5 minutes: its source fails or does "
         "not answer. The pipeline's health page has the error.", builtin=True),
    Rule("PipewatchCollectorStale",
         Compare(Age(Select("pipewatch_collector_last_success_timestamp_seconds")), ">", 900), 0.0, "critical",
         "pipewatch collector {collector} of {pipeline} has no data for 15 minutes",
         "The {collector} collector of pipeline {pipeline} last succeeded {value} ago.", "seconds", True),
)

"""The catalogue of every measurement pipewatch keeps: name, type, unit, labels, meaning, collector.

The store refuses names that are not here, the exporter takes type and help from here, and
docs/metrics.md is generated from here, so the three cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["gauge", "counter", "histogram"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    type: MetricType
    unit: str
    labels: tuple[str, ...]
    help: str
    collector: str
    codes: tuple[str, ...] = ()
    """For a metric whose value is a code: the name of each code (index = value). The exporter
    also serves `<name>_info{..., <code_label>="<name of the code>"} 1` so dashboards can show words."""
    code_label: str = "status"
    buckets: tuple[float, ...] = ()
    """For a histogram: upper bounds of its buckets (+Inf is added). Its series in the store carry one
    label more than `labels`: "le=<bound>" for a cumulative bucket count, or "sum"."""
    exported: bool = True
    """False for history kept for the page only (e.g. every column metric): never on /metrics."""
    while_down: bool = False
    """Served while its collector is down: it describes the source's availability (up, errors),
    which is what matters most exactly then. Every other series of a down collector is dropped."""


_PARTITION = ("pipeline", "cluster", "consumergroup", "topic", "partition")
_GROUP_TOPIC = ("pipeline", "cluster", "consumergroup", "topic")
_GROUP = ("pipeline", "cluster", "consumergroup")
_TOPIC_PARTITION = ("pipeline", "cluster", "topic", "partition")
_TOPIC = ("pipeline", "cluster", "topic")
_COLLECTOR = ("pipeline", "collector")
_CLUSTER = ("pipeline", "cluster")
_STATUS_CODES = ("NOTFOUND", "OK", "WARN", "ERR", "STOP", "STALL", "REWIND")
JOB_STATES = ("UNKNOWN", "INITIALIZING", "CREATED", "RUNNING", "FAILING", "FAILED", "CANCELLING", "CANCELED",
              "FINISHED", "RESTARTING", "SUSPENDED", "RECONCILING")
BACKPRESSURE_LEVELS = ("UNKNOWN", "OK", "LOW", "HIGH")
_FLINK = ("pipeline", "cluster")
_FLINK_TM = ("pipeline", "cluster", "tm_id")
_FLINK_JOB = ("pipeline", "cluster", "job_name", "job_id")
_FLINK_TASK = (*_FLINK_JOB, "task_name")
_REGISTRY = ("pipeline", "registry")
DELAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SUBJECT = ("pipeline", "registry", "subject")
COMPATIBILITY_LEVELS = ("UNKNOWN", "NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
                        "FULL_TRANSITIVE")
REGISTRY_MODES = ("UNKNOWN", "READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT")

CATALOGUE: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        # Kafka: names and labels follow kafka_exporter so its Grafana dashboards work unchanged.
        MetricSpec("kafka_consumergroup_lag", "gauge", "messages", _PARTITION,
                   "High watermark minus committed offset of a partition (offset lag).", "kafka"),
        MetricSpec("kafka_consumergroup_lag_seconds", "gauge", "seconds", _PARTITION,
                   "Age of the oldest unconsumed record of the partition: now minus the time the record at the "
                   "committed offset was produced, from the partition's high-watermark history. Absent when unknown.",
                   "kafka"),
        MetricSpec("kafka_consumergroup_group_max_lag_seconds", "gauge", "seconds", _GROUP,
                   "Largest partition lag in seconds of a consumer group (absent when none is known).", "kafka"),
        MetricSpec("kafka_consumergroup_group_topic_max_lag_seconds", "gauge", "seconds", _GROUP_TOPIC,
                   "Largest partition lag in seconds of a consumer group on one topic (absent when none is known).",
                   "kafka"),
        MetricSpec("kafka_consumergroup_status", "gauge", "code", _GROUP,
                   "Group lag status: 0 NOTFOUND, 1 OK, 2 WARN, 3 ERR (a partition is STOP, STALL or REWIND).",
                   "kafka", codes=_STATUS_CODES),
        MetricSpec("kafka_consumergroup_partition_status", "gauge", "code", _PARTITION,
                   "Partition lag status: 0 NOTFOUND, 1 OK, 2 WARN, 4 STOP, 5 STALL, 6 REWIND.", "kafka",
                   codes=_STATUS_CODES),
        MetricSpec("kafka_consumergroup_catch_up_seconds", "gauge", "seconds", _GROUP_TOPIC,
                   "Estimated time to consume the topic's lag at current rates: lag / (consume rate - produce "
                   "rate); +Inf when the group is not catching up.", "kafka"),
        MetricSpec("kafka_consumergroup_retention_margin_messages", "gauge", "messages", _GROUP_TOPIC,
                   "Smallest distance between a committed offset and its partition's log start offset; "
                   "negative when records were deleted before the group consumed them.", "kafka"),
        MetricSpec("kafka_consumergroup_retention_risk_seconds", "gauge", "seconds", _GROUP_TOPIC,
                   "Estimated time until retention deletes records the group has not consumed yet, from the log "
                   "start and consume rates; 0 when it already happened, +Inf when not at risk.", "kafka"),
        MetricSpec("kafka_consumergroup_current_offset", "gauge", "offset", _PARTITION,
                   "Offset the consumer group last committed for the partition.", "kafka"),
        MetricSpec("kafka_consumergroup_group_topic_sum_lag", "gauge", "messages", _GROUP_TOPIC,
                   "Offset lag of a consumer group summed over the partitions of a topic that have a commit.", "kafka"),
        MetricSpec("kafka_consumergroup_group_sum_lag", "gauge", "messages", _GROUP,
                   "Offset lag of a consumer group summed over all its committed partitions.", "kafka"),
        MetricSpec("kafka_consumergroup_group_max_lag", "gauge", "messages", _GROUP,
                   "Largest partition offset lag of a consumer group.", "kafka"),
        MetricSpec("kafka_consumergroup_members", "gauge", "members", _GROUP,
                   "Members currently in the consumer group.", "kafka"),
        MetricSpec("kafka_consumergroup_consume_rate", "gauge", "messages per second", _GROUP_TOPIC,
                   "Committed-offset advance per second over the rate window (rate_window_seconds).", "kafka"),
        MetricSpec("kafka_brokers", "gauge", "brokers", _CLUSTER,
                   "Brokers in the cluster's metadata.", "kafka"),
        MetricSpec("kafka_broker_reachable", "gauge", "boolean", ("pipeline", "cluster", "broker"),
                   "1 when the broker answered this cycle's requests, 0 when it did not.", "kafka"),
        MetricSpec("kafka_topic_partitions", "gauge", "partitions", _TOPIC,
                   "Partitions of the topic.", "kafka"),
        MetricSpec("kafka_topic_partition_leader", "gauge", "broker id", _TOPIC_PARTITION,
                   "Broker id of the partition's leader; -1 when it has none (offline).", "kafka"),
        MetricSpec("kafka_topic_partition_replicas", "gauge", "replicas", _TOPIC_PARTITION,
                   "Replicas assigned to the partition.", "kafka"),
        MetricSpec("kafka_topic_partition_in_sync_replica", "gauge", "replicas", _TOPIC_PARTITION,
                   "Replicas in sync with the leader.", "kafka"),
        MetricSpec("kafka_topic_partition_under_replicated_partition", "gauge", "boolean", _TOPIC_PARTITION,
                   "1 when fewer replicas are in sync than assigned.", "kafka"),
        MetricSpec("kafka_topic_partition_current_offset", "gauge", "offset", _TOPIC_PARTITION,
                   "High watermark (next offset to be written) of a partition.", "kafka"),
        MetricSpec("kafka_topic_partition_oldest_offset", "gauge", "offset", _TOPIC_PARTITION,
                   "Log start offset (oldest retained offset) of a partition.", "kafka"),
        MetricSpec("kafka_dead_letter_rate", "gauge", "messages per second", _CLUSTER,
                   "Records per second produced to the topics matching `dead_letter_topics`, over the rate window "
                   "(a topic created within it counts all its records); written only when dead-letter topics are "
                   "declared, NaN while not measurable.", "kafka"),
        MetricSpec("kafka_dead_letter_input_rate", "gauge", "messages per second", _CLUSTER,
                   "Records per second produced to the pipeline's input topics (`input_topics`, default: those its "
                   "consumer groups committed on; never dead-letter or internal topics), over the same window as "
                   "kafka_dead_letter_rate; NaN without input topics.", "kafka"),
        MetricSpec("kafka_topic_produce_rate", "gauge", "messages per second", _TOPIC,
                   "High-watermark advance per second over all partitions, over the rate window (rate_window_seconds).",
                   "kafka"),
        # Schema registries (Confluent-compatible API), one `registry` label per configured registry.
        MetricSpec("schema_registry_up", "gauge", "boolean", _REGISTRY,
                   "1 when the registry answered GET / with 2xx within the timeout in the last cycle, else 0.",
                   "schema_registry", while_down=True),
        MetricSpec("schema_registry_request_duration_seconds", "gauge", "seconds", (*_REGISTRY, "endpoint"),
                   "Latency of the last liveness (endpoint=\"/\") and subject list (endpoint=\"/subjects\") request.",
                   "schema_registry"),
        MetricSpec("schema_registry_requests_total", "counter", "requests", _REGISTRY,
                   "HTTP requests sent to the registry since pipewatch started.", "schema_registry", while_down=True),
        MetricSpec("schema_registry_errors_total", "counter", "requests", (*_REGISTRY, "http_status", "error_code"),
                   "Failed requests since pipewatch started, by HTTP status (or timeout, connection_refused, tls, "
                   "connection when no answer came) and the registry's error_code (empty when it gave none).",
                   "schema_registry", while_down=True),
        MetricSpec("schema_registry_subjects", "gauge", "subjects", _REGISTRY,
                   "Subjects listed by GET /subjects (not deleted).", "schema_registry"),
        MetricSpec("schema_registry_deleted_subjects", "gauge", "subjects", _REGISTRY,
                   "Soft-deleted subjects: listed with ?deleted=true but not without it.", "schema_registry"),
        MetricSpec("schema_registry_schema_versions", "gauge", "versions", _REGISTRY,
                   "Versions summed over the subjects read in detail.", "schema_registry"),
        MetricSpec("schema_registry_max_schema_id", "gauge", "id", _REGISTRY,
                   "Highest schema id among the subjects' latest versions.", "schema_registry"),
        MetricSpec("schema_registry_compatibility", "gauge", "code", _REGISTRY,
                   "Global compatibility level: " + ", ".join(f"{i} {c}" for i, c in enumerate(COMPATIBILITY_LEVELS))
                   + ".", "schema_registry", codes=COMPATIBILITY_LEVELS, code_label="compatibility"),
        MetricSpec("schema_registry_mode", "gauge", "code", _REGISTRY,
                   "Global mode: " + ", ".join(f"{i} {m}" for i, m in enumerate(REGISTRY_MODES)) + ".",
                   "schema_registry", codes=REGISTRY_MODES, code_label="mode"),
        MetricSpec("schema_registry_subject_versions", "gauge", "versions", _SUBJECT,
                   "Registered (not deleted) versions of the subject.", "schema_registry"),
        MetricSpec("schema_registry_subject_latest_version", "gauge", "version", _SUBJECT,
                   "Version number of the subject's latest schema.", "schema_registry"),
        MetricSpec("schema_registry_subject_latest_schema_id", "gauge", "id", _SUBJECT,
                   "Schema id of the subject's latest version.", "schema_registry"),
        MetricSpec("schema_registry_subject_compatibility", "gauge", "code", _SUBJECT,
                   "Compatibility level in force for the subject (its own, else the global one); codes as "
                   "schema_registry_compatibility.", "schema_registry", codes=COMPATIBILITY_LEVELS,
                   code_label="compatibility"),
        MetricSpec("schema_registry_subject_mode", "gauge", "code", _SUBJECT,
                   "Mode in force for the subject (its own, else the global one); codes as schema_registry_mode.",
                   "schema_registry", codes=REGISTRY_MODES, code_label="mode"),
        MetricSpec("schema_registry_ready", "gauge", "boolean", _REGISTRY,
                   "Karapace /_health: 1 when schema_registry_ready is true. Absent for registries without /_health.",
                   "schema_registry"),
        MetricSpec("schema_registry_reader_lag", "gauge", "messages", _REGISTRY,
                   "Karapace /_health: reader_highest_offset minus reader_current_offset of the schemas topic.",
                   "schema_registry"),
        # Flink: names follow Flink's own Prometheus reporter where the meaning is the same (and keep its units:
        # milliseconds and bytes), with job and task as labels; series are per vertex, never per subtask.
        MetricSpec("flink_jobmanager_numRegisteredTaskManagers", "gauge", "taskmanagers", _FLINK,
                   "Taskmanagers registered with the jobmanager.", "flink"),
        MetricSpec("flink_jobmanager_taskSlotsTotal", "gauge", "slots", _FLINK, "Task slots in the cluster.", "flink"),
        MetricSpec("flink_jobmanager_taskSlotsAvailable", "gauge", "slots", _FLINK, "Free task slots.", "flink"),
        MetricSpec("flink_jobmanager_numRunningJobs", "gauge", "jobs", _FLINK, "Jobs in state RUNNING.", "flink"),
        MetricSpec("flink_jobs", "gauge", "jobs", (*_FLINK, "state"),
                   "Jobs the jobmanager lists, by state (finished ones until Flink forgets them).", "flink"),
        MetricSpec("flink_taskmanager_Status_JVM_CPU_Load", "gauge", "ratio", _FLINK_TM,
                   "CPU load of the taskmanager's JVM.", "flink"),
        MetricSpec("flink_taskmanager_Status_JVM_Memory_Heap_Used", "gauge", "bytes", _FLINK_TM, "Heap used.", "flink"),
        MetricSpec("flink_taskmanager_Status_JVM_Memory_Heap_Max", "gauge", "bytes", _FLINK_TM,
                   "Heap maximum.", "flink"),
        MetricSpec("flink_taskmanager_Status_Flink_Memory_Managed_Used", "gauge", "bytes", _FLINK_TM,
                   "Managed memory used.", "flink"),
        MetricSpec("flink_taskmanager_Status_Flink_Memory_Managed_Total", "gauge", "bytes", _FLINK_TM,
                   "Managed memory available.", "flink"),
        MetricSpec("flink_taskmanager_Status_JVM_GarbageCollector_All_TimeMsPerSecond", "gauge", "ms per second",
                   _FLINK_TM, "Time spent in garbage collection per second, all collectors.", "flink"),
        MetricSpec("flink_taskmanager_Status_JVM_Threads_Count", "gauge", "threads", _FLINK_TM, "Live JVM threads.",
                   "flink"),
        MetricSpec("flink_taskmanager_last_heartbeat_timestamp_seconds", "gauge", "seconds", _FLINK_TM,
                   "Unix time of the taskmanager's last heartbeat to the jobmanager.", "flink"),
        MetricSpec("flink_taskmanager_slots", "gauge", "slots", (*_FLINK_TM, "state"),
                   "The taskmanager's task slots, free or used.", "flink"),
        MetricSpec("flink_jobmanager_job_state", "gauge", "code", _FLINK_JOB,
                   "Job state: " + ", ".join(f"{i} {s}" for i, s in enumerate(JOB_STATES)) + ".", "flink",
                   codes=JOB_STATES, code_label="state"),
        MetricSpec("flink_jobmanager_job_tasks", "gauge", "tasks", (*_FLINK_JOB, "state"),
                   "The job's tasks by execution state.", "flink"),
        MetricSpec("flink_jobmanager_job_uptime", "gauge", "milliseconds", _FLINK_JOB,
                   "How long the job has been running without interruption (0 while not running).", "flink"),
        MetricSpec("flink_jobmanager_job_downtime", "gauge", "milliseconds", _FLINK_JOB,
                   "How long the job has been failing or restarting, while it is.", "flink"),
        MetricSpec("flink_jobmanager_job_restartingTime", "gauge", "milliseconds", _FLINK_JOB,
                   "Time spent in the current restart.", "flink"),
        MetricSpec("flink_jobmanager_job_numRestarts", "gauge", "restarts", _FLINK_JOB,
                   "Restarts since the job was submitted (a gauge in Flink: it resets with a resubmission).", "flink"),
        MetricSpec("flink_jobmanager_job_numberOfCompletedCheckpoints", "gauge", "checkpoints", _FLINK_JOB,
                   "Completed checkpoints.", "flink"),
        MetricSpec("flink_jobmanager_job_numberOfFailedCheckpoints", "gauge", "checkpoints", _FLINK_JOB,
                   "Failed checkpoints.", "flink"),
        MetricSpec("flink_jobmanager_job_numberOfInProgressCheckpoints", "gauge", "checkpoints", _FLINK_JOB,
                   "Checkpoints in progress.", "flink"),
        MetricSpec("flink_jobmanager_job_lastCheckpointDuration", "gauge", "milliseconds", _FLINK_JOB,
                   "End-to-end duration of the latest completed checkpoint.", "flink"),
        MetricSpec("flink_jobmanager_job_lastCheckpointSize", "gauge", "bytes", _FLINK_JOB,
                   "Checkpointed size of the latest completed checkpoint (incremental size where incremental).",
                   "flink"),
        MetricSpec("flink_jobmanager_job_lastCheckpointFullSize", "gauge", "bytes", _FLINK_JOB,
                   "Full state size of the latest completed checkpoint.", "flink"),
        MetricSpec("flink_jobmanager_job_lastCheckpointCompletedTimestamp", "gauge", "milliseconds", _FLINK_JOB,
                   "Unix time in ms when the latest checkpoint completed.", "flink"),
        MetricSpec("flink_jobmanager_job_checkpoint_age_seconds", "gauge", "seconds", _FLINK_JOB,
                   "Time since the latest completed checkpoint of a running job (since it started running when none "
                   "has completed). Alert when it exceeds a few checkpoint intervals.", "flink"),
        MetricSpec("flink_jobmanager_job_checkpoint_interval_seconds", "gauge", "seconds", _FLINK_JOB,
                   "Configured checkpoint interval (absent when checkpointing is off).", "flink"),
        MetricSpec("flink_jobmanager_job_checkpoint_timeout_seconds", "gauge", "seconds", _FLINK_JOB,
                   "Configured checkpoint timeout.", "flink"),
        MetricSpec("flink_jobmanager_job_checkpoint_duration_seconds", "gauge", "seconds", (*_FLINK_JOB, "stat"),
                   "End-to-end checkpoint duration over the checkpoints Flink keeps in its history: stat p50, p90, "
                   "p99 or max.", "flink"),
        MetricSpec("flink_jobmanager_job_checkpoint_size_bytes", "gauge", "bytes", (*_FLINK_JOB, "stat"),
                   "Checkpointed size over the checkpoints Flink keeps: stat p50, p90, p99 or max.", "flink"),
        MetricSpec("flink_task_parallelism", "gauge", "subtasks", _FLINK_TASK, "Parallelism of the vertex.", "flink"),
        MetricSpec("flink_taskmanager_job_task_numRecordsInPerSecond", "gauge", "records per second", _FLINK_TASK,
                   "Records in per second, summed over the vertex's subtasks.", "flink"),
        MetricSpec("flink_taskmanager_job_task_numRecordsOutPerSecond", "gauge", "records per second", _FLINK_TASK,
                   "Records out per second, summed over the vertex's subtasks (0 for sinks).", "flink"),
        MetricSpec("flink_taskmanager_job_task_busyTimeMsPerSecond", "gauge", "ms per second", _FLINK_TASK,
                   "Busy time per second of the busiest subtask.", "flink"),
        MetricSpec("flink_taskmanager_job_task_idleTimeMsPerSecond", "gauge", "ms per second", _FLINK_TASK,
                   "Idle time per second, the highest over the subtasks.", "flink"),
        MetricSpec("flink_taskmanager_job_task_backPressuredTimeMsPerSecond", "gauge", "ms per second", _FLINK_TASK,
                   "Backpressured time per second of the most backpressured subtask.", "flink"),
        MetricSpec("flink_taskmanager_job_task_currentInputWatermark", "gauge", "milliseconds", _FLINK_TASK,
                   "Lowest input watermark over the vertex's subtasks (Unix time in ms); absent without one.", "flink"),
        MetricSpec("flink_task_watermark_lag_seconds", "gauge", "seconds", _FLINK_TASK,
                   "Now minus the vertex's input watermark: how far event time trails the clock.", "flink"),
        MetricSpec("flink_task_backpressure_level", "gauge", "code", _FLINK_TASK,
                   "Backpressure of the vertex as Flink rates it: 0 UNKNOWN (not measured yet), 1 OK, 2 LOW, 3 HIGH.",
                   "flink", codes=BACKPRESSURE_LEVELS, code_label="level"),
        MetricSpec("flink_task_backpressure_ratio", "gauge", "ratio", _FLINK_TASK,
                   "Backpressure ratio of the most backpressured subtask (0..1).", "flink"),
        # The database change feed: changes captured by triggers into a changelog table.
        MetricSpec("db_change_events_total", "counter", "changes", ("pipeline", "entity", "event_type"),
                   "Changes delivered by the change feed since pipewatch started, by entity and event type (only the "
                   "event types captured for the entity).",
                   "change_feed"),
        MetricSpec("db_change_feed_delay_seconds", "histogram", "seconds", ("pipeline", "entity"),
                   "Delay from a change (its insert into the changelog, inside the writing transaction) to its "
                   "delivery by pipewatch.", "change_feed", buckets=DELAY_BUCKETS),
        MetricSpec("db_change_feed_backlog", "gauge", "changes", ("pipeline",),
                   "Committed changes not delivered yet (counted up to 100,000).", "change_feed"),
        MetricSpec("db_change_feed_rate", "gauge", "changes per second", ("pipeline", "entity"),
                   "Changes delivered per second over the last 10 s.", "change_feed"),
        MetricSpec("db_change_feed_unparsed_total", "counter", "changes", ("pipeline", "entity"),
                   "Changes whose payload was not JSON pipewatch could read (nested over 100 deep, malformed): "
                   "delivered with their raw text under the key \"(raw JSON)\", counted here.", "change_feed"),
        # Profiling (ProfileMesh / baselinr tables): one source per pipeline.
        MetricSpec("profiling_runs_total", "counter", "runs", ("pipeline", "dataset", "status"),
                   "Profiling runs in the runs table, by dataset and status as the profiler wrote it.", "profiling"),
        MetricSpec("profiling_drift_events_total", "counter", "events", ("pipeline", "table", "severity"),
                   "Drift events (DataDriftDetected) in the events table, by table and severity.", "profiling"),
        MetricSpec("profiling_table_staleness_seconds", "gauge", "seconds", ("pipeline", "schema", "table"),
                   "Time since the table was last profiled (table_state.last_profiled_at; without table_state, "
                   "the dataset's newest run).", "profiling"),
        MetricSpec("profiling_table_staleness_score", "gauge", "score", ("pipeline", "schema", "table"),
                   "The profiler's own staleness score of the table (table_state.staleness_score).", "profiling"),
        MetricSpec("profiling_table_decision", "gauge", "boolean", ("pipeline", "schema", "table", "decision"),
                   "1 for the table's current incremental-profiling decision (skip, full, partial, defer, sample).",
                   "profiling"),
        MetricSpec("profiling_tables", "gauge", "tables", ("pipeline", "freshness"),
                   "Tables by freshness against fresh_within_seconds: fresh, stale, or never profiled.", "profiling"),
        MetricSpec("profiling_dataset_rows", "gauge", "rows", ("pipeline", "dataset"),
                   "Row count of the dataset's newest run.", "profiling"),
        MetricSpec("profiling_last_run_timestamp_seconds", "gauge", "seconds", ("pipeline", "dataset"),
                   "Unix time of the dataset's newest run (profiled_at).", "profiling"),
        MetricSpec("profiling_run_failure_ratio", "gauge", "ratio", ("pipeline",),
                   "Failed runs / runs over the last 24 h; absent when there were none.", "profiling"),
        MetricSpec("profiling_column_metric", "gauge", "as profiled", ("pipeline", "dataset", "column", "metric"),
                   "History of every numeric column metric, at the time it was profiled (percent names as ratios). "
                   "For the page's trend charts only: not exported (one series per column and metric).",
                   "profiling", exported=False),
        # pipewatch's own health, one series per configured collector.
        MetricSpec("pipewatch_collector_up", "gauge", "boolean", _COLLECTOR,
                   "1 when the collector's last run succeeded and is not stale, else 0.", "runtime"),
        MetricSpec("pipewatch_collector_last_success_timestamp_seconds", "gauge", "seconds", _COLLECTOR,
                   "Unix time at which the collector last finished a run successfully.", "runtime"),
        MetricSpec("pipewatch_collector_run_duration_seconds", "gauge", "seconds", _COLLECTOR,
                   "Wall time of the collector's last run, successful or not.", "runtime"),
        MetricSpec("pipewatch_collector_runs_total", "counter", "runs", _COLLECTOR,
                   "Collector runs started since the process started.", "runtime"),
        MetricSpec("pipewatch_collector_errors_total", "counter", "runs", (*_COLLECTOR, "category"),
                   "Failed collector runs since the process started, by error category.", "runtime"),
        MetricSpec("pipewatch_collector_requests", "gauge", "requests", _COLLECTOR,
                   "Requests the collector sent to its source in its last successful run.", "runtime"),
        # Alerts evaluated in pipewatch (monitoring/alerts/, exporters/notify/).
        MetricSpec("pipewatch_alerts_firing", "gauge", "alerts", ("pipeline", "alertname", "severity"),
                   "Alerts of the rule firing now in the pipeline (source_down ones included, silenced ones too): 0 "
                   "for every rule and pipeline without one.", "alerts"),
        MetricSpec("pipewatch_alert_notifications_total", "counter", "notifications", ("receiver", "outcome"),
                   "Group notifications handled per receiver since the process started, by outcome: sent, failed "
                   "(an attempt failed; it is retried), dropped (given up after alerts.retry_for, or the queue was "
                   "full).", "alerts"),
        # Per pipeline, derived once a second from the measurements above (monitoring/evaluation.py).
        MetricSpec("pipewatch_pipeline_throughput", "gauge", "messages per second", ("pipeline", "direction"),
                   "Messages per second into the pipeline's topics (produce: kafka_topic_produce_rate summed) and out "
                   "of them (consume: kafka_consumergroup_consume_rate summed over groups); absent when unknown.",
                   "evaluation"),
        MetricSpec("pipewatch_pipeline_dead_letter_rate", "gauge", "messages per second", ("pipeline",),
                   "Records per second sent to the pipeline's dead-letter topics (kafka_dead_letter_rate summed over "
                   "clusters); only for pipelines that declare `kafka.dead_letter_topics`, NaN while unknown.",
                   "evaluation"),
        MetricSpec("pipewatch_pipeline_invalid_ratio", "gauge", "ratio", ("pipeline",),
                   "Share of the pipeline's input sent to dead-letter topics: kafka_dead_letter_rate over "
                   "kafka_dead_letter_input_rate, summed over clusters (docs/dead-letters.md); only for pipelines "
                   "that declare `kafka.dead_letter_topics`, NaN while unknown or while the input is 0.", "evaluation"),
        MetricSpec("pipewatch_pipeline_lag", "gauge", "messages", ("pipeline",),
                   "Sum of every consumer group's lag (kafka_consumergroup_group_sum_lag); absent when unknown.",
                   "evaluation"),
        MetricSpec("pipewatch_pipeline_latency_seconds", "gauge", "seconds", ("pipeline", "measure", "quantile"),
                   "Nearest-rank percentile of one latency measure: consumer_lag (lag in seconds over every "
                   "partition of every group), watermark_lag (Flink vertices' watermark behind the clock) or "
                   "change_feed_delay (change to delivery, last minute); absent without samples.", "evaluation"),
    )
}


LABELS: dict[str, str] = {
    # What each label holds and what bounds its values: a series exists per combination that occurs, and the
    # store refuses new series beyond `store.max_series` (100,000 by default), logging what it refused.
    "pipeline": "Configured pipeline name (`pipelines[].name`): as many as the config lists; `_aggregate` for "
                "the aggregate page's readers, the Prometheus read-back and the remote agents (their collectors' "
                "health only).",
    "collector": "kafka, flink, schema_registry, profiling or change_feed (`kafka:<cluster>` etc. when a pipeline "
                 "has several), prometheus for the read-back, and `remote:<host:port>` per remote agent: a few per "
                 "pipeline, one per configured remote agent.",
    "cluster": "The Kafka or Flink cluster's label (`cluster`, default its address): one per configured cluster.",
    "consumergroup": "Consumer group id, only groups matching `consumer_groups` (a regex list): filter there.",
    "topic": "Topic name: the cluster's topics (kafka_topic_*) or the topics a group committed on.",
    "partition": "Partition number: partitions of those topics; the largest factor (topics x partitions x groups).",
    "broker": "Broker id: the cluster's brokers.",
    "registry": "The schema registry's label (`registry`, default its URL): one per configured registry.",
    "endpoint": "`/` or `/subjects`.",
    "http_status": "HTTP status of a failed request, or timeout, connection_refused, tls, connection: a few values.",
    "error_code": "The registry's error_code (e.g. 40401, 50001), empty when none: the API's short list.",
    "subject": "Subject name: the registry's subjects, at most `max_subjects` (10,000 by default).",
    "tm_id": "Flink taskmanager id: the cluster's taskmanagers.",
    "job_name": "Flink job name: the jobs the jobmanager lists (finished ones until Flink expires them).",
    "job_id": "Flink job id: one per job; a resubmitted job has a new id.",
    "task_name": "Name of a job vertex (operator chain): a job's vertices, never its subtasks.",
    "state": "A job, task or slot state from Flink's fixed list (see each metric).",
    "stat": "p50, p90, p99 or max.",
    "entity": "Change-feed entity name (`change_feed.entities[].name`): as many as configured.",
    "event_type": "insert, update or delete (only those captured for the entity).",
    "le": "Histogram bucket upper bound: the 12 bounds of DELAY_BUCKETS and +Inf.",
    "dataset": "Profiled dataset (table) name as the profiler writes it: the tables it profiles.",
    "status": "Run status as the profiler writes it (e.g. completed, failed); for *_info: the status code's name.",
    "table": "Profiled table name: the tables the profiler reports drift or state for.",
    "schema": "Database schema of a profiled table.",
    "severity": "Drift severity as the profiler writes it: low, medium, high; for alerts, the rule's severity "
                "(warning, critical, or a configured one).",
    "alertname": "An alert rule's name: the built-in rules and `alerts.rules[].name`.",
    "receiver": "An `alerts.notify` entry's name (default its kind and index, e.g. webhook-0).",
    "outcome": "sent, failed or dropped.",
    "decision": "skip, full, partial, defer or sample.",
    "freshness": "fresh, stale or never.",
    "category": "Error category: timeout, connection_refused, connection, unreachable, tls, auth, server_error, "
                "http_error, protocol, too_large, kafka_protocol, os_error, internal and the collectors' own (a short "
                "fixed list).",
    "compatibility": "The compatibility level's name (for *_info).",
    "mode": "The registry mode's name (for *_info).",
    "level": "The backpressure level's name (for *_info).",
    "column": "Profiled column (page only: never exported).",
    "direction": "produce or consume.",
    "measure": "consumer_lag, watermark_lag or change_feed_delay.",
    "quantile": "0.5, 0.95 or 0.99.",
    "metric": "Profiling metric name (page only: never exported).",
}


def bucket_label(bound: float) -> str:
    """The store label of a histogram bucket: "le=" and the bound as the exposition writes it."""
    return "le=+Inf" if bound == float("inf") else f"le={float(bound)!r}"


"""The series a Flink cycle writes: one snapshot into one store cycle (`CycleWriter`); a value the cluster did not
report (None) is left out, not written as zero (docs/metrics.md lists every series)."""

from __future__ import annotations

from monitoring.metrics import BACKPRESSURE_LEVELS, JOB_STATES
from monitoring.models.flink import FlinkSnapshot
from monitoring.store import CycleWriter


def write_snapshot(cycle: CycleWriter, snapshot: FlinkSnapshot) -> None:
    """Every series of the snapshot, named as Flink's Prometheus reporter names them where there is one."""
    cluster = (snapshot.cluster,)
    for name, value in (("flink_jobmanager_numRegisteredTaskManagers", snapshot.taskmanagers_count),
                        ("flink_jobmanager_taskSlotsTotal", snapshot.slots_total),
                        ("flink_jobmanager_taskSlotsAvailable", snapshot.slots_available),
                        ("flink_jobmanager_numRunningJobs", snapshot.jobs_by_state.get("RUNNING", 0))):
        if value is not None:
            cycle.set(name, cluster, value)
    for state, count in snapshot.jobs_by_state.items():
        cycle.set("flink_jobs", (*cluster, state), count)
    for tm in snapshot.taskmanagers:
        labels = (*cluster, tm.tm_id)
        for name, value in (("flink_taskmanager_Status_JVM_CPU_Load", tm.cpu_load),
                            ("flink_taskmanager_Status_JVM_Memory_Heap_Used", tm.heap_used),
                            ("flink_taskmanager_Status_JVM_Memory_Heap_Max", tm.heap_max),
                            ("flink_taskmanager_Status_Flink_Memory_Managed_Used", tm.managed_used),
                            ("flink_taskmanager_Status_Flink_Memory_Managed_Total", tm.managed_total),
                            ("flink_taskmanager_Status_JVM_GarbageCollector_All_TimeMsPerSecond",
                             tm.gc_ms_per_second),
                            ("flink_taskmanager_Status_JVM_Threads_Count", tm.threads),
                            ("flink_taskmanager_last_heartbeat_timestamp_seconds", tm.last_heartbeat)):
            if value is not None:
                cycle.set(name, labels, value)
        if tm.slots is not None and tm.free_slots is not None:
            cycle.set("flink_taskmanager_slots", (*labels, "free"), tm.free_slots)
            cycle.set("flink_taskmanager_slots", (*labels, "used"), tm.slots - tm.free_slots)
    for job in snapshot.jobs:
        labels = (*cluster, job.name, job.job_id)
        cycle.set("flink_jobmanager_job_state", labels,
                  JOB_STATES.index(job.state) if job.state in JOB_STATES else 0)
        if not job.detailed:
            continue
        for state, count in job.tasks.items():
            if state != "total":
                cycle.set("flink_jobmanager_job_tasks", (*labels, state), count)
        for name, value in (("flink_jobmanager_job_uptime", job.uptime_ms),
                            ("flink_jobmanager_job_downtime", job.downtime_ms),
                            ("flink_jobmanager_job_restartingTime", job.restarting_ms),
                            ("flink_jobmanager_job_numRestarts", job.restarts),
                            ("flink_jobmanager_job_checkpoint_age_seconds", job.checkpoint_age_seconds)):
            if value is not None:
                cycle.set(name, labels, value)
        checkpoints = job.checkpoints
        if checkpoints is not None:
            for name, value in (
                    ("flink_jobmanager_job_numberOfCompletedCheckpoints", checkpoints.completed),
                    ("flink_jobmanager_job_numberOfFailedCheckpoints", checkpoints.failed),
                    ("flink_jobmanager_job_numberOfInProgressCheckpoints", checkpoints.in_progress),
                    ("flink_jobmanager_job_lastCheckpointDuration", checkpoints.last_duration_ms),
                    ("flink_jobmanager_job_lastCheckpointSize", checkpoints.last_checkpointed_size),
                    ("flink_jobmanager_job_lastCheckpointFullSize", checkpoints.last_state_size),
                    ("flink_jobmanager_job_lastCheckpointCompletedTimestamp",
                     checkpoints.last_completed_at * 1000 if checkpoints.last_completed_at else None),
                    ("flink_jobmanager_job_checkpoint_interval_seconds", checkpoints.interval_seconds),
                    ("flink_jobmanager_job_checkpoint_timeout_seconds", checkpoints.timeout_seconds)):
                if value is not None:
                    cycle.set(name, labels, value)
            for stat, value in checkpoints.duration_stats.items():
                cycle.set("flink_jobmanager_job_checkpoint_duration_seconds", (*labels, stat), value / 1000)
            for stat, value in checkpoints.size_stats.items():
                cycle.set("flink_jobmanager_job_checkpoint_size_bytes", (*labels, stat), value)
        for vertex in job.vertices:
            task = (*labels, vertex.name)
            cycle.set("flink_task_parallelism", task, vertex.parallelism)
            for name, value in (("flink_taskmanager_job_task_numRecordsInPerSecond", vertex.records_in_per_second),
                                ("flink_taskmanager_job_task_numRecordsOutPerSecond",
                                 vertex.records_out_per_second),
                                ("flink_taskmanager_job_task_busyTimeMsPerSecond", vertex.busy_ms_per_second),
                                ("flink_taskmanager_job_task_idleTimeMsPerSecond", vertex.idle_ms_per_second),
                                ("flink_taskmanager_job_task_backPressuredTimeMsPerSecond",
                                 vertex.backpressured_ms_per_second)):
                if value is not None:
                    cycle.set(name, task, value)
            if vertex.input_watermark is not None:
                cycle.set("flink_taskmanager_job_task_currentInputWatermark", task, vertex.input_watermark * 1000)
                cycle.set("flink_task_watermark_lag_seconds", task, max(0.0, snapshot.measured_at
                                                                        - vertex.input_watermark))
            if vertex.backpressure is not None:
                cycle.set("flink_task_backpressure_level", task,
                          BACKPRESSURE_LEVELS.index(vertex.backpressure.level))
                if vertex.backpressure.max_ratio is not None:
                    cycle.set("flink_task_backpressure_ratio", task, vertex.backpressure.max_ratio)

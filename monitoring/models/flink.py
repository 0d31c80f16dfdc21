"""What the Flink collector publishes: the cluster, its taskmanagers, jobs, vertices, checkpoints and
exceptions as read from the REST API. None is "not known" (not reported, or not yet)."""

from __future__ import annotations

from dataclasses import dataclass, field

TERMINAL_STATES = frozenset({"FINISHED", "CANCELED", "FAILED"})


@dataclass(frozen=True, slots=True)
class TaskManager:
    tm_id: str
    slots: int | None
    free_slots: int | None
    last_heartbeat: float | None
    """Unix time of the last heartbeat (the API's timeSinceLastHeartbeat is really a timestamp)."""
    cpu_load: float | None
    heap_used: float | None
    heap_max: float | None
    managed_used: float | None
    managed_total: float | None
    gc_ms_per_second: float | None
    threads: float | None


@dataclass(frozen=True, slots=True)
class Backpressure:
    level: str
    """OK, LOW, HIGH, or UNKNOWN (Flink answered `deprecated`: no samples yet)."""
    max_ratio: float | None
    subtask_ratios: tuple[float | None, ...]
    measured_at: float | None


@dataclass(frozen=True, slots=True)
class Vertex:
    vertex_id: str
    name: str
    parallelism: int
    status: str
    records_in_per_second: float | None
    records_out_per_second: float | None
    busy_ms_per_second: float | None
    idle_ms_per_second: float | None
    backpressured_ms_per_second: float | None
    input_watermark: float | None
    """Unix time (s) of the lowest input watermark over the subtasks; None without one (sources)."""
    backpressure: Backpressure | None
    inputs: tuple[str, ...] = ()
    """Vertex ids feeding this one (from the job plan)."""


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """One checkpoint of the history Flink keeps (web.checkpoints.history, 10 by default), newest first."""

    checkpoint_id: int
    status: str
    """COMPLETED, FAILED or IN_PROGRESS."""
    triggered_at: float | None
    finished_at: float | None
    """Completed: the last acknowledgement; failed: the failure; in progress: the newest acknowledgement."""
    duration_ms: float | None
    checkpointed_size: float | None
    state_size: float | None
    failure_message: str | None


@dataclass(frozen=True, slots=True)
class Checkpoints:
    completed: int | None
    failed: int | None
    in_progress: int | None
    last_completed_at: float | None
    last_duration_ms: float | None
    last_checkpointed_size: float | None
    last_state_size: float | None
    last_failure_at: float | None
    last_failure_message: str | None
    interval_seconds: float | None
    """None when checkpointing is off (Flink reports a huge interval then)."""
    timeout_seconds: float | None
    duration_stats: dict[str, float] = field(default_factory=dict)
    """p50, p90, p99, max of the end-to-end duration (ms) over the checkpoints Flink keeps."""
    size_stats: dict[str, float] = field(default_factory=dict)
    history: tuple[CheckpointRecord, ...] = ()
    """The recent checkpoints Flink still lists, newest first."""


@dataclass(frozen=True, slots=True)
class FlinkException:
    job_id: str
    name: str
    message: str
    task: str | None
    location: str | None
    time: float
    trace_head: str
    """The first lines of the stack trace."""
    category: str
    hint: str | None


@dataclass(frozen=True, slots=True)
class Job:
    job_id: str
    name: str
    state: str
    start_time: float | None
    end_time: float | None
    duration_seconds: float | None
    tasks: dict[str, int]
    state_entered: dict[str, float] = field(default_factory=dict)
    """State -> when the job last entered it (from the job's timestamps)."""
    uptime_ms: float | None = None
    downtime_ms: float | None = None
    restarting_ms: float | None = None
    restarts: float | None = None
    vertices: tuple[Vertex, ...] = ()
    checkpoints: Checkpoints | None = None
    checkpoint_age_seconds: float | None = None
    """Since the last completed checkpoint, or since the job started running when none completed."""
    detailed: bool = False
    """False for jobs listed from the overview only (finished ones, or beyond max_jobs)."""
    errors: tuple[str, ...] = ()
    """Parts of the job the cluster answered with an error this cycle (they show as unknown)."""


@dataclass(frozen=True, slots=True)
class FlinkSnapshot:
    cluster: str
    rest_url: str
    version: str | None
    taskmanagers_count: int | None
    slots_total: int | None
    slots_available: int | None
    jobs_by_state: dict[str, int]
    taskmanagers: tuple[TaskManager, ...]
    jobs: tuple[Job, ...]
    exceptions: tuple[FlinkException, ...]
    """Newest first, over the detailed jobs."""
    measured_at: float

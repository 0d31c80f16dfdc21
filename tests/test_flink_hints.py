"""Flink's own error hints for the errors page (collectors/flink/hints.py): root causes and 404s told apart,
registered with the core's hint_for for the flink components."""

from __future__ import annotations

import pytest

import collectors.flink  # noqa: F401  (registers the hints)
from monitoring.errors import hint_for


def test_flink_404_hints_tell_a_vanished_job_a_stopped_vertex_and_a_wrong_url_apart():
    job, vertex = "3f2a9c1e0b7d4e6f8a9b0c1d2e3f4a5b", "cbc357ccb763df2852fee8c4fc7d55f2"
    assert hint_for("http_error", f"FlinkError: GET /jobs/{job}/vertices/{vertex}/backpressure: HTTP 404: x",
                    component="flink").startswith(f"HTTP 404 for /jobs/{job}/vertices/{vertex}/backpressure: "
                                                  "the vertex of job 3f2a9c1e is not running")
    assert hint_for("http_error", f"FlinkError: GET /jobs/{job}/checkpoints: HTTP 404: x", component="flink:local") \
        .startswith("HTTP 404 for /jobs/3f2a9c1e0b7d4e6f8a9b0c1d2e3f4a5b/checkpoints: "
                    "Flink no longer knows job 3f2a9c1e")
    assert hint_for("http_error", "FlinkError: GET /overview: HTTP 404: Not Found", "http://h:9090", "flink") \
        .startswith("HTTP 404 for /overview: http://h:9090 is not Flink's REST API")


@pytest.mark.parametrize("message, start", [
    ("job etl: map (1/2): java.lang.ClassNotFoundException: com.example.OrderDeserializer",
     "com.example.OrderDeserializer is not on the job's classpath"),
    ("job etl: job: org.apache.flink.runtime.jobmanager.scheduler.NoResourceAvailableException: Could not acquire the "
     "minimum required resources.", "Not enough free task slots"),
    ("job etl: window (1/1): java.util.concurrent.CompletionException: No pooled slot available",
     "Not enough free task slots"),
    ("job etl: sink (1/1): java.lang.OutOfMemoryError: Java heap space", "A taskmanager ran out of heap"),
    ("job etl: sink (1/1): java.lang.OutOfMemoryError: Metaspace", "The JVM ran out of metaspace"),
    ("job etl: checkpoint failed: Checkpoint expired before completing.",
     "The checkpoint did not complete within execution.checkpointing.timeout"),
    ("job etl: checkpoint failed: Checkpoint was declined (task is closing)",
     "A task declined the checkpoint (task is closing)"),
    ("job etl: checkpoint failed: Checkpoint Coordinator is suspending.",
     "The job was failing or restarting, so its checkpoints in flight were aborted"),
])
def test_flink_root_causes(message, start):
    assert hint_for("other", message, component="flink").startswith(start)


def test_flink_hints_are_flinks_own():
    message = "job etl: sink (1/1): java.lang.OutOfMemoryError: Java heap space"
    assert hint_for("other", message, component="kafka") == ""

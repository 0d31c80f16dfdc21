"""Flink's own error hints for the errors page: the root causes its job and checkpoint failures name, and a 404
told apart (a vertex not running, a job Flink no longer knows, a URL that is not Flink's REST API). (A job
exception's category and hint when it is read are collectors/flink/exceptions.py's.) Registered for the flink
components when the package is imported."""

from __future__ import annotations

import re

from monitoring.errors import HintContext, register_hints, request_path


def _flink_root_cause(ctx: HintContext) -> str:
    text = ctx.message
    missing = re.search(r"(?:ClassNotFoundException|NoClassDefFoundError):\s*([\w$./]+)", text)
    if missing:
        return (f"{missing.group(1).replace('/', '.')} is not on the job's classpath: package it in the job jar "
                "or put it in Flink's lib/.")
    if "OutOfMemoryError" in text:
        if "Metaspace" in text:
            return "The JVM ran out of metaspace: raise taskmanager.memory.jvm-metaspace.size."
        if "Direct buffer memory" in text:
            return "The JVM ran out of direct memory: raise taskmanager.memory.task.off-heap.size."
        return ("A taskmanager ran out of heap: raise taskmanager.memory.task.heap.size or keep large state off "
                "the heap.")
    if "No pooled slot available" in text or "NoResourceAvailableException" in text \
            or "Could not acquire the minimum required resources" in text:
        return "Not enough free task slots for the job's parallelism: add taskmanagers or lower the parallelism."
    if re.search(r"Checkpoint expired before completing", text, re.IGNORECASE):
        return ("The checkpoint did not complete within execution.checkpointing.timeout: barriers are held up by "
                "backpressure or the state is large; relieve the backpressured vertex or raise the timeout.")
    declined = re.search(r"Checkpoint (?:was )?declined[ :(]*(.*)", text, re.IGNORECASE)
    if declined:
        why = declined.group(1).strip(" .)")
        return ("A task declined the checkpoint" + (f" ({why})" if why else "") + ": a task not running yet or "
                "already finishing declines; if it repeats, look at that task's exception.")
    if "Checkpoint Coordinator is suspending" in text:
        return ("The job was failing or restarting, so its checkpoints in flight were aborted: the cause is the "
                "job's exception, not checkpointing.")
    if "tolerable failure threshold" in text.lower():
        return ("More checkpoints failed in a row than execution.checkpointing.tolerable-failed-checkpoints allows, "
                "so the job failed: fix why they fail (see the checkpoint failures).")
    return ""


def _status(text: str) -> str | None:
    match = re.search(r"HTTP (\d{3})", text)
    return match.group(1) if match else None


def _not_found(ctx: HintContext) -> str:
    if not _status(ctx.message) == "404":
        return ""
    path = request_path(ctx.message) or "the path"
    job = re.search(r"/jobs/([0-9a-f]{32})(/vertices/([0-9a-f]{32}))?", path)
    if job and job.group(3):
        return (f"HTTP 404 for {path}: the vertex of job {job.group(1)[:8]} is not running (the job is "
                "restarting or finishing), so Flink has nothing to report for it this cycle.")
    if job:
        return (f"HTTP 404 for {path}: Flink no longer knows job {job.group(1)[:8]} (it ended and left the "
                "jobmanager's history, or the jobmanager restarted).")
    if path in ("/overview", "/jobs/overview", "/taskmanagers", "/config"):
        return (f"HTTP 404 for {path}: {ctx.target or 'the URL'} is not Flink's REST API: check rest_url "
                "(the jobmanager's rest.port, 8081 by default, and any path a proxy adds).")
    return ""


register_hints("flink", _flink_root_cause)
register_hints("flink", _not_found)

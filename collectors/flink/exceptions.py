"""Job exceptions sorted into categories, with a hint only where the exception itself says enough: a guess would
send people the wrong way (the rules: docs/flink-collector.md)."""

from __future__ import annotations

import re

_FRAME = re.compile(r"^\s*at ([\w$.]+)\.([\w$<>]+)\(([^)]*)\)", re.MULTILINE)
_CAUSE = re.compile(r"^Caused by: ([\w$.]+)(?::\s*(.*))?$", re.MULTILINE)
_PLATFORM = ("org.apache.flink.", "java.", "javax.", "jdk.", "sun.", "scala.", "org.apache.pekko.", "akka.")


def classify(name: str, trace: str) -> tuple[str, str | None]:
    """(category, hint) for an exception: its class name and stack trace as Flink reports them."""
    chain = [(name, _message(name, trace))] + [(m.group(1), (m.group(2) or "").strip()) for m in _CAUSE.finditer(trace)]
    names = " ".join(cls for cls, _ in chain)
    text = " ".join(message for _, message in chain)
    frame = _user_frame(trace)
    where = f" at {frame}" if frame else ""

    def has(*classes: str) -> bool:
        return any(cls.endswith(c) for cls, _ in chain for c in classes)

    if has("ArithmeticException"):
        return "user code: arithmetic", (f"An arithmetic error ({_first(chain, 'ArithmeticException')}) in user code"
                                         f"{where}: guard the divisor or filter out the records that cause it.")
    if has("NullPointerException"):
        return "user code: null value", f"A null value reached user code{where}: check the input for missing fields."
    if has("NumberFormatException", "ClassCastException", "DateTimeParseException", "IndexOutOfBoundsException"):
        return "user code: bad input", f"An input value did not fit what the code{where} expects: {_short(text)}"
    if has("OutOfMemoryError"):
        if "Metaspace" in text:
            return "resources: metaspace", ("The JVM ran out of metaspace: raise taskmanager.memory.jvm-metaspace.size "
                                            "(or look for classes loaded again on every restart).")
        if "Direct buffer memory" in text:
            return "resources: direct memory", ("The JVM ran out of direct memory: raise "
                                                "taskmanager.memory.task.off-heap.size.")
        return "resources: heap", ("A taskmanager ran out of heap: raise taskmanager.memory.task.heap.size or keep "
                                   "large state off the heap (the RocksDB state backend).")
    if has("NoResourceAvailableException"):
        return "resources: slots", ("Not enough free task slots for the job's parallelism: add taskmanagers or lower "
                                    "the parallelism.")
    if has("ClassNotFoundException", "NoClassDefFoundError"):
        missing = _first(chain, "ClassNotFoundException") or _first(chain, "NoClassDefFoundError") or "a class"
        return "deployment: classpath", (f"{missing} is not on the classpath: package it in the job jar or put it "
                                         f"in Flink's lib/.")
    if has("CheckpointException") or "checkpoint" in text.lower() and ("expired" in text.lower()
                                                                       or "tolerable" in text.lower()):
        return "checkpointing", ("Checkpoints fail or expire: look at backpressure and state size, or raise "
                                 "execution.checkpointing.timeout and tolerable-failed-checkpoints.")
    if "heartbeat" in text.lower() and has("TimeoutException"):
        return "cluster: heartbeat", ("A taskmanager stopped answering heartbeats (lost, or stalled by long GC "
                                      "pauses): check its log and memory.")
    if "org.apache.kafka." in names:
        return "connector: Kafka", f"The Kafka client failed: {_short(text)} Check the brokers, topic and credentials."
    if has("ConnectException", "UnknownHostException", "SocketTimeoutException", "NoRouteToHostException"):
        return "network", f"A connection from the job failed: {_short(text)} Check the address and that it is up."
    if has("KryoException", "SerializationException") or "could not be serialized" in text.lower():
        return "serialization", ("A record type could not be (de)serialized: give it a serializer, or use POJO or "
                                 "Avro types.")
    return "other", None


def _message(name: str, trace: str) -> str:
    head = trace.strip().splitlines()[0] if trace.strip() else ""
    return head.removeprefix(name).removeprefix(":").strip()


def _first(chain: list[tuple[str, str]], suffix: str) -> str | None:
    for cls, message in chain:
        if cls.endswith(suffix):
            return message or cls.rsplit(".", 1)[-1]
    return None


def _user_frame(trace: str) -> str | None:
    for match in _FRAME.finditer(trace):
        cls, method, place = match.groups()
        if not cls.startswith(_PLATFORM):
            return f"{cls}.{method}({place})"
    return None


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return (text if len(text) <= limit else text[: limit - 1] + "…") + ("" if text.endswith(".") else ".")

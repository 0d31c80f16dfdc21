"""What one collection cycle produced, as a value: the runtime writes it into the store, one way for all.

A collector's `fetch()` talks to its source and returns a `CycleResult`; it never touches the store.
`monitoring.runtime.write_result` applies the result in one order for every collector:

1. the cycle's series, written in one `Store.cycle` (series the cycle neither wrote nor retained are
   removed), by the result's `write` callable;
2. points appended with their own times (`appended`: history loaded in bulk, or a failed cycle's few
   series), which remove nothing;
3. the snapshot, published at `measured_at`;
4. the source-reported failures (`failures`) into the error registry;
5. the events (`events`) into the event log.

The runtime then records the collector's health (up, with `requests`). A cycle that fails raises; a
collector that still has something to write then (a registry that is down says `up 0` and keeps
counting its errors) returns it from `Collector.on_failure`, a result without `write` (a `Store.cycle`
would remove the series it does not write) that the runtime applies the same way before it marks the
collector down.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from monitoring.store import CycleWriter

Point = tuple[tuple[str, ...], float, float]
"""(labels as the store keys them, the pipeline first; time; value): one point of `Appended`."""


@dataclass(frozen=True, slots=True)
class Appended:
    """Points of one metric appended to their series with their own times (Store.append_many)."""

    metric: str
    points: Sequence[Point]


@dataclass(frozen=True, slots=True)
class SourceFailure:
    """A failure the source reported while the cycle went on (a broker that did not answer, a job
    exception, a checkpoint that failed): one occurrence in the store's error registry, with the
    collector's target."""

    category: str
    message: str
    severity: str = "warning"
    """"warning" (a part of the source could not be read) or "error" (the source reports a failure)."""
    hint: str | None = None
    """None: derived from the error (monitoring.errors.hint_for)."""
    t: float | None = None
    """When it happened; None: the cycle's measured_at."""


@dataclass(frozen=True, slots=True)
class CycleEvent:
    """A discrete happening of the cycle for the event log (a subject registered, a job exception)."""

    severity: str  # "info" | "warning" | "error"
    message: str
    t: float | None = None
    """When it happened; None: the cycle's measured_at."""


@dataclass(frozen=True, slots=True)
class CycleResult:
    """Everything one cycle of a collector produced; see the module's docstring for the order it is written in."""

    measured_at: float
    """The cycle's time: its series' points, its snapshot's time, the default time of its failures and events."""
    requests: int = 0
    """Requests (or queries) sent to the source: the health line's `requests`."""
    write: Callable[[CycleWriter], None] | None = None
    """Writes the cycle's series (CycleWriter.set, set_many, set_column, retain); None: no Store.cycle at all."""
    snapshot: Any = None
    """The source's structured picture, published when not None."""
    appended: Sequence[Appended] = ()
    failures: Sequence[SourceFailure] = ()
    events: Sequence[CycleEvent] = ()

"""What one collection cycle produced, as a value: a collector's `fetch()` returns a `CycleResult` and never
touches the store; the runtime writes it, in one order for every collector (docs/internals.md)."""

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
    """Everything one cycle of a collector produced; docs/internals.md gives the order it is written in."""

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

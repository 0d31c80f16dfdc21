"""Consumer status per (group, partition) in the manner of LinkedIn Burrow, adapted to polled offsets.

Pure logic, no I/O. Burrow reads every commit from ``__consumer_offsets``; pipewatch polls committed
offsets once per cycle and cannot see a consumer re-committing the same offset, the evidence Burrow's
STALL rests on, so group membership stands in for it, and the clock of a stop starts when new data
shows up rather than at the last commit (no false alarm on slow topics). The rules, and where and why
they differ from Burrow's, are specified in docs/kafka-lag-status.md.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

from monitoring.models.kafka import Status


@dataclass(frozen=True, slots=True)
class Evaluation:
    status: Status
    reason: str
    """Short human sentence naming the evidence, with the numbers it rests on."""


class Evaluated(Protocol):
    """What group_status reads of each partition's evaluation: an Evaluation, or a stand-in that
    formats its reason only when read."""

    @property
    def status(self) -> Status: ...

    @property
    def reason(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    offset: int
    t: float
    """When a poll first saw this offset (kept across min_distance replacements)."""
    lag: int


class PartitionHistory:
    """Sliding window of observed commits of one (group, partition)."""

    __slots__ = ("_entries", "_min_distance", "_latest_t", "_committed", "_high_watermark", "_observations",
                 "_moved_at", "_hw_when_moved", "_waiting_since")

    def __init__(self, size: int = 10, min_distance: float = 0.0) -> None:
        if size < 2:
            raise ValueError(f"size must be at least 2 (a trend needs two entries), got {size}")
        if min_distance < 0:
            raise ValueError(f"min_distance must not be negative, got {min_distance}")
        self._entries: deque[_Entry] = deque(maxlen=size)
        self._min_distance = min_distance
        # The latest observation, as plain fields rather than an object: one is made per
        # partition per cycle, and at many partitions they kept the garbage collector busy.
        self._latest_t = 0.0
        self._committed = 0
        self._high_watermark = 0
        self._observations = 0
        """Observations so far; 0: the fields above hold none yet."""
        self._moved_at = 0.0
        """When the current offset was first seen."""
        self._hw_when_moved = 0
        """The watermark at that moment: lag up to it was already there when the consumer last moved."""
        self._waiting_since: float | None = None
        """First observation since the offset last changed that showed new data; None while there is none."""

    def observe(self, t: float, committed: int, high_watermark: int) -> None:
        """Record one poll; call once per cycle, and only when both the committed offset and the
        watermark were read (a missing value is no evidence of movement or of its absence)."""
        seen = self._observations
        if seen and t < self._latest_t:
            return  # out of order: every duration below would go negative
        changed = not seen or committed != self._committed
        self._latest_t, self._committed, self._high_watermark = t, committed, high_watermark
        self._observations += 1
        if changed:
            self._record_change(t, committed, high_watermark)
            self._moved_at, self._hw_when_moved, self._waiting_since = t, high_watermark, None
        elif self._waiting_since is None and high_watermark > max(self._hw_when_moved, committed):
            self._waiting_since = t

    def __len__(self) -> int:
        return len(self._entries)

    def _record_change(self, t: float, committed: int, high_watermark: int) -> None:
        lag = max(0, high_watermark - committed)
        if self._entries:
            last = self._entries[-1]
            if t - last.t < self._min_distance and committed > last.offset:
                # Keep the slot's time, as Burrow does: otherwise a consumer moving more often than
                # min_distance would replace the same slot forever and the window would never fill.
                self._entries[-1] = _Entry(committed, last.t, lag)
                return
        self._entries.append(_Entry(committed, t, lag))


def evaluate(history: PartitionHistory, now: float, has_members: bool | None, allowed_lag: int = 0,
             stall_after: float = 300.0) -> Evaluation:
    """Status of one (group, partition); the rules are in the module docstring."""
    if not history._observations:
        return Evaluation(Status.NOTFOUND, "no committed offset observed")
    if history._observations < 2:
        return Evaluation(Status.OK, "not enough commits observed yet")
    lag = max(0, history._high_watermark - history._committed)
    if lag <= allowed_lag:
        return Evaluation(Status.OK, f"caught up: lag {lag:,} (allowed {allowed_lag:,})")
    entries = list(history._entries)
    return (_stopped(history, entries, now, lag, has_members, stall_after)
            or _rewound(entries, now, history._committed, lag)
            or _falling_behind(entries, allowed_lag)
            or _ok(history, entries, now, lag, stall_after))


def group_status(evaluations: Iterable[Evaluated] | Mapping[Any, Evaluated]) -> Evaluation:
    """Worst partition of a group, STOP/STALL/REWIND shown as ERR; a mapping's keys name the partition."""
    if isinstance(evaluations, Mapping):
        labelled = [(_label(key), evaluation) for key, evaluation in evaluations.items()]
    else:
        labelled = [(None, evaluation) for evaluation in evaluations]
    seen = [(label, e) for label, e in labelled if e.status != Status.NOTFOUND]
    if not seen:
        return Evaluation(Status.NOTFOUND, "no partition of the group has an observed commit")
    # max() keeps the first of equals, so ties go to the caller's order.
    worst_label, worst = max(seen, key=lambda item: item[1].status)
    unseen = len(labelled) - len(seen)
    if worst.status == Status.OK:
        reason = f"{len(seen)} of {len(labelled)} partitions OK"
        return Evaluation(Status.OK, reason + (f", {unseen} not observed yet" if unseen else ""))
    where = f"{worst_label} " if worst_label is not None else "worst partition "
    reason = f"{where}{worst.status.name}: {worst.reason}"
    others = sum(1 for _, e in seen if e.status > Status.OK) - 1
    if others:
        reason += f"; {others} other partition{'s' if others > 1 else ''} not OK"
    return Evaluation(min(worst.status, Status.ERR), reason)


# -- rules ------------------------------------------------------------------------------------------


def _stopped(history: PartitionHistory, entries: list[_Entry], now: float, lag: int, has_members: bool | None,
             stall_after: float) -> Evaluation | None:
    if history._waiting_since is None:
        return None  # nothing arrived since the consumer last moved: idle, not stopped
    waited = max(0.0, now - history._waiting_since)
    if waited <= _stall_threshold(entries, stall_after):
        return None
    offset = entries[-1].offset
    evidence = (f"offset {offset:,} unchanged for {_duration(now - history._moved_at)} while lag is {lag:,}, "
                f"new data waiting {_duration(waited)}")
    if has_members is None:
        return Evaluation(Status.STOP, f"{evidence}; group membership unknown, so treated as stopped")
    if has_members:
        return Evaluation(Status.STALL, f"{evidence}; members present but the offset does not move")
    return Evaluation(Status.STOP, f"{evidence} and the group has no members: no member is consuming")


def _rewound(entries: list[_Entry], now: float, offset: int, lag: int) -> Evaluation | None:
    regained_up_to = -math.inf  # highest offset at or after the entry being looked at
    for before, after in reversed(list(pairwise(entries))):
        regained_up_to = max(regained_up_to, after.offset)
        if after.offset < before.offset and regained_up_to < before.offset:
            return Evaluation(Status.REWIND,
                              f"offset went back from {before.offset:,} to {after.offset:,} "
                              f"{_duration(now - after.t)} ago and has not regained {before.offset:,} "
                              f"(now {offset:,}, lag {lag:,})")
    return None


def _falling_behind(entries: list[_Entry], allowed_lag: int) -> Evaluation | None:
    if len(entries) < 2:
        return None
    lags = [e.lag for e in entries]
    if min(lags) <= allowed_lag or lags[-1] <= lags[0] or any(b < a for a, b in pairwise(lags)):
        return None
    return Evaluation(Status.WARN,
                      f"lag grew from {lags[0]:,} to {lags[-1]:,} over {len(entries)} offsets in "
                      f"{_duration(entries[-1].t - entries[0].t)} without ever decreasing: "
                      f"the consumer moves but falls behind")


def _ok(history: PartitionHistory, entries: list[_Entry], now: float, lag: int, stall_after: float) -> Evaluation:
    offset = entries[-1].offset
    unchanged = _duration(now - history._moved_at)
    if history._waiting_since is not None:
        return Evaluation(Status.OK,
                          f"offset {offset:,} unchanged for {unchanged}, new data waiting "
                          f"{_duration(now - history._waiting_since)} (stall after "
                          f"{_duration(_stall_threshold(entries, stall_after))}), lag {lag:,}")
    if history._moved_at < history._latest_t:
        return Evaluation(Status.OK,
                          f"lag {lag:,} but no new data since offset {offset:,} was first seen {unchanged} ago: "
                          f"nothing new to consume")
    if len(entries) >= 2:
        return Evaluation(Status.OK,
                          f"offset advancing ({entries[0].offset:,} to {offset:,} in "
                          f"{_duration(entries[-1].t - entries[0].t)}), lag {lag:,}")
    return Evaluation(Status.OK, f"offset moved to {offset:,}, lag {lag:,}")


def _stall_threshold(entries: list[_Entry], stall_after: float) -> float:
    """How long new data may wait: stall_after, or the window's span if longer (Burrow's STOP test),
    so consumers that normally commit rarely are judged against their own pace."""
    return max(stall_after, entries[-1].t - entries[0].t)


# -- formatting -------------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        minutes, rest = divmod(s, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, rest = divmod(s, 3600)
    return f"{hours} h" + (f" {rest // 60} min" if rest >= 60 else "")


def _label(key: Any) -> str:
    if isinstance(key, tuple) and len(key) == 2:
        return f"{key[0]}[{key[1]}]"
    return str(key)

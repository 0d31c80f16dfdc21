"""Consumer lag in seconds, estimated from a per-partition table of high-watermark samples.

Kafka keeps no produce time per offset that a monitor can read cheaply, so each partition's high
watermark is sampled once per cycle with the time it was read, and the produce time of the record at
a group's committed offset is interpolated between samples: kafka-lag-exporter's algorithm, with its
known flaws fixed (too few samples, idle producers, extrapolation, recreated topics), as described in
docs/kafka-lag-time.md. One table per topic-partition serves every group.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

_MAX_AGE_FACTOR = 10.0
"""An extrapolated age may be at most this many times the age of the oldest sample."""
_MAX_EXTRAPOLATED_AGE = 7 * 24 * 3600.0
"""...and never more than this, however old the oldest sample is."""


@dataclass(frozen=True, slots=True)
class LagTime:
    seconds: float
    """math.nan when unknown (never 0 or -1 as a stand-in)."""
    method: str
    """One of: caught_up, interpolated, extrapolated, lower_bound, unknown."""
    reason: str


# Answers that do not depend on the inputs are built once: lag_time runs for every (group, partition)
# each cycle, and caught-up consumers are the common case.
_UNKNOWN = LagTime(math.nan, "unknown", "no high-watermark sample yet")
_CAUGHT_UP = LagTime(0.0, "caught_up", "committed offset is at or past the newest high watermark")
_INTERPOLATED = "committed offset lies between two high-watermark samples"
_EXTRAPOLATED = "committed offset is older than the oldest watermark sample; extrapolated from the oldest rise"
_CAPPED = ("committed offset is older than the oldest watermark sample; extrapolation out of bounds, "
           "so only its age is certain")
_NOT_MOVED = ("committed offset is older than the oldest watermark sample, and the watermark has not moved "
              "since, so there is no rate to extrapolate")


class OffsetTimeTable:
    """Per topic-partition (high watermark, time it was read) samples, shared by all groups."""

    __slots__ = ("_capacity", "_offsets", "_times")

    def __init__(self, capacity: int = 60) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2 (a flat stretch keeps two points), got {capacity}")
        self._capacity = capacity
        # Parallel lists: offsets never decrease (a drop resets the table) and times strictly increase,
        # so lookups can bisect the offsets.
        self._offsets: list[int] = []
        self._times: list[float] = []

    def __len__(self) -> int:
        return len(self._offsets)

    def __repr__(self) -> str:
        return f"OffsetTimeTable({list(zip(self._offsets, self._times, strict=True))})"

    def add(self, offset: int, t: float) -> None:
        """Record one high-watermark sample (one per collection cycle)."""
        offsets, times = self._offsets, self._times
        if not math.isfinite(t) or (times and t <= times[-1]):
            return
        if offsets and offset < offsets[-1]:
            # Topic recreated or truncated: the old samples describe another log.
            offsets[:] = [offset]
            times[:] = [t]
            return
        if len(offsets) >= 2 and offset == offsets[-1] == offsets[-2]:
            # A flat stretch needs only its first point (records below were written before it) and
            # its latest (records from here on are written after it).
            times[-1] = t
            return
        offsets.append(offset)
        times.append(t)
        if len(offsets) > self._capacity:
            del offsets[0]
            del times[0]

    def lag_time(self, committed: int, now: float) -> LagTime:
        """Age at `now` of the record at `committed` (the group's oldest unconsumed record)."""
        offsets, times = self._offsets, self._times
        if not offsets:
            return _UNKNOWN
        if committed >= offsets[-1]:
            return _CAUGHT_UP
        oldest = offsets[0]
        if committed >= oldest:
            # Newest pair with L.offset <= committed < R.offset. R exists because committed < offsets[-1],
            # and R.offset > L.offset, so the divisor is never zero.
            r = bisect_right(offsets, committed)
            low, high, t_low, t_high = offsets[r - 1], offsets[r], times[r - 1], times[r]
            produced = t_high - (high - committed) * (t_high - t_low) / (high - low)
            return LagTime(max(0.0, now - produced), "interpolated", _INTERPOLATED)
        # The record existed at the oldest sample: that sample's age is a certain lower bound.
        oldest_age = max(0.0, now - times[0])
        if oldest == offsets[-1]:
            return LagTime(oldest_age, "lower_bound", _NOT_MOVED)
        first_rise = bisect_right(offsets, oldest)
        rate = (offsets[first_rise] - oldest) / (times[first_rise] - times[0])
        age = oldest_age + (oldest - committed) / rate
        if age > min(oldest_age * _MAX_AGE_FACTOR, _MAX_EXTRAPOLATED_AGE):
            return LagTime(oldest_age, "lower_bound", _CAPPED)
        return LagTime(age, "extrapolated", _EXTRAPOLATED)

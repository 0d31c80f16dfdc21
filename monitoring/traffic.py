"""Traffic patterns: a base rate with bursts, written like "base=50/s;2m-4m:400%;every=6m".

- `base=R/s`: the rate outside bursts (messages per second).
- `START-END:P%`: between START and END (e.g. `90s`, `2m`, `1h`) the rate is P% of the base.
- `every=D`: the pattern repeats with this period; without it the pattern runs once, then stays at base.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import pairwise

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class PatternError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Phase:
    start: float
    end: float
    percent: float


@dataclass(frozen=True, slots=True)
class TrafficPattern:
    base_rate: float
    phases: tuple[Phase, ...]
    period: float | None

    def rate_at(self, elapsed: float) -> float:
        t = elapsed % self.period if self.period else elapsed
        for phase in self.phases:
            if phase.start <= t < phase.end:
                return self.base_rate * phase.percent / 100.0
        return self.base_rate

    def occurrences(self, start: float, end: float) -> list[tuple[float, float, float]]:
        """(start, end, percent) of every burst overlapping [start, end), in seconds since the pattern's time 0."""
        if not self.phases or end <= 0:
            return []
        cycles = (range(max(0, math.floor(start / self.period)), math.floor(end / self.period) + 1)
                  if self.period else (0,))
        out = []
        for cycle in cycles:
            offset = cycle * self.period if self.period else 0.0
            out += [(offset + p.start, offset + p.end, p.percent) for p in self.phases
                    if offset + p.end > start and offset + p.start < end]
        return out

    def phase_at(self, elapsed: float) -> Phase | None:
        t = elapsed % self.period if self.period else elapsed
        return next((p for p in self.phases if p.start <= t < p.end), None)


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip())
    if not match:
        raise PatternError(f"{text!r} is not a duration like 90s, 2m or 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_pattern(text: str) -> TrafficPattern:
    base, period, phases = None, None, []
    for part in (p.strip() for p in text.split(";") if p.strip()):
        if part.startswith("base="):
            value = part.removeprefix("base=").removesuffix("/s")
            try:
                base = float(value)
            except ValueError:
                raise PatternError(f"{part!r}: the base rate must be a number of messages per second") from None
            if base < 0:
                raise PatternError(f"{part!r}: the base rate cannot be negative")
        elif part.startswith("every="):
            period = parse_duration(part.removeprefix("every="))
        else:
            match = re.fullmatch(r"([^-]+)-([^:]+):(\d+(?:\.\d+)?)%", part)
            if not match:
                raise PatternError(f"{part!r} is not a burst like 2m-4m:400%")
            start, end = parse_duration(match.group(1)), parse_duration(match.group(2))
            if end <= start:
                raise PatternError(f"{part!r}: the burst ends before it starts")
            phases.append(Phase(start, end, float(match.group(3))))
    if base is None:
        raise PatternError(f"{text!r} has no base rate (base=50/s)")
    phases.sort(key=lambda p: p.start)
    for earlier, later in pairwise(phases):
        if later.start < earlier.end:
            raise PatternError(f"bursts overlap: {earlier.start:g}s-{earlier.end:g}s "
                               f"and {later.start:g}s-{later.end:g}s")
    if period is not None and phases and phases[-1].end > period:
        raise PatternError(f"a burst ends after the period of {period:g} s")
    return TrafficPattern(base, tuple(phases), period)

"""How pipewatch writes a measured value for people: one set of rules for every page, the report and the flow
diagram, and the same rounding as its JavaScript twin (apps/format_templates.py). The rules are in
docs/internals.md."""

from __future__ import annotations

import math
from datetime import UTC, datetime

UNKNOWN = "unknown"
NEVER = "never"


def _round(value: float) -> int:
    """Half up, as JavaScript's Math.round: floor(value + 0.5)."""
    return math.floor(value + 0.5)


def _missing(value: float | int | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _tenths(tenths: int) -> str:
    return f"{tenths // 10:,}.{tenths % 10}"


def duration(seconds: float | None, infinite: str = "unbounded") -> str:
    """A duration: `350 ms` below a second, `4.2 s` below 10 s, `52 s`, `1 min 18 s`, `3 h 2 min`, `2 d 5 h`."""
    if _missing(seconds):
        return UNKNOWN
    if math.isinf(seconds):
        return infinite
    if seconds < 0:
        return "-" + duration(-seconds, infinite)
    if seconds == 0:
        return "0 s"
    millis = _round(seconds * 1000)
    if millis < 1000:
        return f"{millis} ms"
    tenths = _round(seconds * 10)
    if tenths < 100:
        return f"{_tenths(tenths)} s"
    whole = _round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    minutes = _round(seconds / 60)
    if minutes < 1440:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, rest = divmod(_round(seconds / 3600), 24)
    return f"{days:,} d {rest} h" if rest else f"{days:,} d"


def age(t: float | None, now: float) -> str:
    """How long ago a moment was: `52 s ago`; `never` for None."""
    if t is None:
        return NEVER
    return f"{duration(max(0.0, now - t))} ago"


def clock(t: float | None) -> str:
    """A moment's time of day: `14:03:27 UTC`; `never` for None."""
    if t is None:
        return NEVER
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S UTC")


def millis_clock(t: float) -> str:
    """A moment's time of day to the millisecond (a change's time): `14:03:27.042`."""
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S.%f")[:-3]


_SCALES = (("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12))


def rate(per_second: float | None, unit: str = "/s") -> str:
    """A rate: `0.5/s` below 10, `57/s`, `1.2k/s`, `3.4M/s`."""
    if _missing(per_second):
        return UNKNOWN
    if math.isinf(per_second):
        return "unbounded"
    if per_second < 0:
        return "-" + rate(-per_second, unit)
    if per_second == 0:
        return f"0{unit}"
    tenths = _round(per_second * 10)
    if tenths < 100:
        return f"{_tenths(tenths)}{unit}"
    whole = _round(per_second)
    if whole < 1000:
        return f"{whole}{unit}"
    for index, (suffix, scale) in enumerate(_SCALES):
        tenths = _round(per_second / scale * 10)
        if tenths < 10_000 or index == len(_SCALES) - 1:
            return f"{_tenths(tenths)}{suffix}{unit}"
    raise AssertionError("unreachable")


_SIZES = (("kB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12), ("PB", 1e15))


def size(size_bytes: float | None) -> str:
    """A size in bytes: `512 B`, `2.4 kB` below 10 of a unit, `243 MB`."""
    if _missing(size_bytes):
        return UNKNOWN
    if size_bytes < 0:
        return "-" + size(-size_bytes)
    whole = _round(size_bytes)
    if whole < 1000:
        return f"{whole} B"
    for index, (suffix, scale) in enumerate(_SIZES):
        scaled = size_bytes / scale
        tenths = _round(scaled * 10)
        if tenths < 100:
            return f"{_tenths(tenths)} {suffix}"
        whole = _round(scaled)
        if whole < 1000 or index == len(_SIZES) - 1:
            return f"{whole:,} {suffix}"
    raise AssertionError("unreachable")


def count(value: float | int | None, unit: str = "") -> str:
    """A count with thousands separators (`1,234,567`), rounded to a whole number, with its unit if given."""
    if _missing(value):
        return UNKNOWN
    if isinstance(value, float) and math.isinf(value):
        return "unbounded"
    text = f"{_round(value):,}"
    return f"{text} {unit}" if unit else text


def number(value: float | None, unit: str = "") -> str:
    """A measure that is neither a count nor a rate (ms/s busy, a CPU load): one decimal below 10, whole above,
    with separators: `0.4`, `12`, `1,530`."""
    if _missing(value):
        return UNKNOWN
    if math.isinf(value):
        return "unbounded"
    if value < 0:
        return "-" + number(-value, unit)
    tenths = _round(value * 10)
    text = _tenths(tenths) if tenths < 100 else f"{_round(value):,}"
    return f"{text} {unit}" if unit else text


def share(ratio: float | None) -> str:
    """A ratio as a percentage, with `number`'s precision: `0.4 %`, `5.0 %`, `12 %`."""
    return UNKNOWN if _missing(ratio) else number(ratio * 100, "%")

"""Numbers in pipewatch's JSON (the API, and the mirrors and remote agents that read it): JSON has no NaN or
infinity, so unknown (NaN) is null and unbounded is the string "Infinity" or "-Infinity". One writer and one
reader, so both sides agree."""

from __future__ import annotations

import math


def to_json(value: float | None) -> float | str | None:
    if value is None or math.isnan(value):
        return None
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def from_json(value: object) -> float | None:
    """The number `value` writes: null is NaN, "Infinity" and "-Infinity" are unbounded; None when it is no number
    (a bool is none: True is no lag) or too large for a float."""
    if type(value) is float:
        return value
    if value is None:
        return math.nan
    if value == "Infinity":
        return math.inf
    if value == "-Infinity":
        return -math.inf
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            return None
    return None

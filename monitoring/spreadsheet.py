"""CSV cells a spreadsheet would run as a formula, made text: one rule for the pages' downloads and the API's."""

from __future__ import annotations

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula, prefixed with ' (it then shows the text as written)."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value

"""Table cells formatted in the browser by monitoring/format.py's rules.

A table column keeps its values numeric (so a click on its header sorts by value, not by text) and a cell template
writes each value as monitoring/format.py does: the same JavaScript for every table, made here. Each function
below is the JavaScript twin of the Python function of the same name; tests/test_format.py runs both on the same
values and compares the text.
"""

from __future__ import annotations

import weakref

from bokeh.models import CustomJSHover, CustomJSTickFormatter, HTMLTemplateFormatter
from bokeh.models.widgets.tables import CellFormatter
from panel.io.state import state

_COMMON = (
    "var r = function (x) { return Math.floor(x + 0.5); };"
    "var sep = function (n) { return n.toLocaleString('en'); };"
    "var tenths = function (t) { return sep(Math.floor(t / 10)) + '.' + (t % 10); };"
)

_JS = {
    "duration": (
        "var duration = function duration(s) {"
        " if (s === null || s === undefined || Number.isNaN(s)) { return 'unknown'; }"
        " if (s === Infinity || s === -Infinity) { return INFINITE; }"
        " if (s < 0) { return '-' + duration(-s); }"
        " if (s === 0) { return '0 s'; }"
        " var ms = r(s * 1000); if (ms < 1000) { return ms + ' ms'; }"
        " var t = r(s * 10); if (t < 100) { return tenths(t) + ' s'; }"
        " var w = r(s); if (w < 60) { return w + ' s'; }"
        " if (w < 3600) { var m = Math.floor(w / 60), ms_ = w % 60;"
        "  return ms_ ? m + ' min ' + ms_ + ' s' : m + ' min'; }"
        " var mi = r(s / 60); if (mi < 1440) { var h = Math.floor(mi / 60), hm = mi % 60;"
        "  return hm ? h + ' h ' + hm + ' min' : h + ' h'; }"
        " var hr = r(s / 3600), d = Math.floor(hr / 24), dh = hr % 24;"
        " return dh ? sep(d) + ' d ' + dh + ' h' : sep(d) + ' d'; }"
    ),
    "rate": (
        "var rate = function rate(v) {"
        " if (v === null || v === undefined || Number.isNaN(v)) { return 'unknown'; }"
        " if (v === Infinity || v === -Infinity) { return 'unbounded'; }"
        " if (v < 0) { return '-' + rate(-v); }"
        " if (v === 0) { return '0/s'; }"
        " var t = r(v * 10); if (t < 100) { return tenths(t) + '/s'; }"
        " var w = r(v); if (w < 1000) { return w + '/s'; }"
        " var scales = [['k', 1e3], ['M', 1e6], ['G', 1e9], ['T', 1e12]];"
        " for (var i = 0; i < scales.length; i++) { t = r(v / scales[i][1] * 10);"
        "  if (t < 10000 || i === scales.length - 1) { return tenths(t) + scales[i][0] + '/s'; } } }"
    ),
    "size": (
        "var size = function size(v) {"
        " if (v === null || v === undefined || Number.isNaN(v)) { return 'unknown'; }"
        " if (v < 0) { return '-' + size(-v); }"
        " var w = r(v); if (w < 1000) { return w + ' B'; }"
        " var units = [['kB', 1e3], ['MB', 1e6], ['GB', 1e9], ['TB', 1e12], ['PB', 1e15]];"
        " for (var i = 0; i < units.length; i++) { var scaled = v / units[i][1], t = r(scaled * 10);"
        "  if (t < 100) { return tenths(t) + ' ' + units[i][0]; }"
        "  w = r(scaled); if (w < 1000 || i === units.length - 1) { return sep(w) + ' ' + units[i][0]; } } }"
    ),
    "count": (
        "var count = function count(v) {"
        " if (v === null || v === undefined || Number.isNaN(v)) { return 'unknown'; }"
        " if (v === Infinity || v === -Infinity) { return 'unbounded'; }"
        " return sep(r(v)); }"
    ),
    "number": (
        "var number = function number(v) {"
        " if (v === null || v === undefined || Number.isNaN(v)) { return 'unknown'; }"
        " if (v === Infinity || v === -Infinity) { return 'unbounded'; }"
        " if (v < 0) { return '-' + number(-v); }"
        " var t = r(v * 10); return t < 100 ? tenths(t) : sep(r(v)); }"
    ),
}


def script(kind: str, infinite: str = "unbounded") -> str:
    """The JavaScript of one formatting function (for tests/test_format.py, which runs it)."""
    return _COMMON + _JS[kind].replace("INFINITE", _js_string(infinite)) + ";"


def _js_string(text: str) -> str:
    """A JavaScript string literal of the code's own constant text (no quote, backslash or template delimiter)."""
    if any(c in text for c in "'\\<%>"):
        raise ValueError(f"not a plain text: {text!r}")
    return f"'{text}'"


def cell_template(kind: str, infinite: str = "unbounded", blank_none: bool = False, field: str | None = None) -> str:
    """An HTMLTemplateFormatter template writing the cell's value by `kind`'s rule (duration, rate, count, number).
    blank_none: a None (null) value is an empty cell instead of `unknown` (a pipeline without that source).
    field: wrap the text in a span naming its column (`data-field`)."""
    code = script(kind, infinite)
    shown = f"<%- {kind}(value) %>"
    if blank_none:
        shown = f"<% if (value === null || value === undefined) {{ %><% }} else {{ %>{shown}<% }} %>"
    template = f"<% {code} %>{shown}"
    if field is not None:
        template = f'<span class="pw-cell" data-field="{field}">{template}</span>'
    return template


def formatter(kind: str, infinite: str = "unbounded", blank_none: bool = False,
              field: str | None = None) -> HTMLTemplateFormatter:
    """A cell formatter following monitoring/format.py: the value stays numeric (and sorts as a number)."""
    return HTMLTemplateFormatter(template=cell_template(kind, infinite, blank_none, field))


def duration_formatter(infinite: str = "unbounded") -> HTMLTemplateFormatter:
    """Seconds as monitoring.format.duration writes them; +Inf as `infinite`."""
    return formatter("duration", infinite)


COUNT = formatter("count")
"""Counts with thousands separators; NaN and None `unknown`."""
RATE = formatter("rate")
"""Per-second rates (`57/s`, `1.2k/s`)."""
NUMBER = formatter("number")
"""Measures that are neither counts nor rates (`busy ms/s`): one decimal below 10."""


AXIS_KINDS = {"seconds": "duration", "messages / s": "rate", "records / s": "rate", "messages": "count",
              "requests": "count", "bytes": "size"}
"""A chart's unit (its y axis label) -> the rule its values are written by; any other unit: `number`."""


def axis_kind(unit: str) -> str:
    return AXIS_KINDS.get(unit, "number")


def tick_formatter(kind: str) -> CustomJSTickFormatter:
    """A chart axis's tick labels by `kind`'s rule; a count axis's fractional ticks (a chart of small counts) as
    numbers (`0.5`), not rounded into repeated labels."""
    shown = "Number.isInteger(tick) ? count(tick) : number(tick)" if kind == "count" else f"{kind}(tick)"
    code = script(kind) + (script("number") if kind == "count" else "")
    return CustomJSTickFormatter(code=f"{code} return {shown};")


def hover_formatter(kind: str) -> CustomJSHover:
    """A hover tooltip's value (`$y{custom}`) by `kind`'s rule."""
    return CustomJSHover(code=f"{script(kind)} return {kind}(value);")


NOT_NEGATIVE = ("rate", "count", "size")
"""Kinds of values never below zero: their axes start at zero."""


def value_axis(figure, kind: str) -> None:
    """A chart's y axis for values of `kind`: ticks written by its rule; a count axis ticks whole numbers only (its
    half-way ticks were written rounded, `2,189 2,189 2,190`); an axis of values never below zero starts at zero
    (an idle chart's range otherwise ran from -1/s to 1/s)."""
    figure.yaxis.formatter = tick_formatter(kind)
    if kind == "count":
        for axis in figure.yaxis:
            axis.ticker.min_interval = 1
    if kind in NOT_NEGATIVE:
        figure.y_range.start = 0


def format_axes(figure, unit: str) -> CustomJSHover:
    """Label a chart's y axis with its unit and write its values by the unit's rule (`value_axis`); returns the hover
    formatter for its `$y` (`formatters={"$y": ...}`, tooltip `$y{custom}`)."""
    kind = axis_kind(unit)
    figure.yaxis.axis_label = unit
    value_axis(figure, kind)
    return hover_formatter(kind)


_copies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""Session document -> {id of a module-level formatter: this session's copy of it}."""


def session_copy(formatter: CellFormatter) -> CellFormatter:
    """This session's own copy of a formatter made once at import (COUNT, RATE, a column dict's formatters).

    A Bokeh model belongs to one document: a module-level formatter reached every session's table, and every
    session but the first got its default template (the raw float, `1.2120161056518`) in the
    browser. One copy per session and formatter, shared by that session's tables."""
    document = state.curdoc
    copies = _copies.setdefault(document, {}) if document is not None else {}
    copy = copies.get(id(formatter))
    if copy is None:
        copy = copies[id(formatter)] = type(formatter)(**formatter.properties_with_values(include_defaults=False))
    return copy

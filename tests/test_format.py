"""monitoring/format.py: the one way pipewatch writes values, and its JavaScript twin for table cells."""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import pytest

from apps.format_templates import axis_kind, cell_template, hover_formatter, script, tick_formatter
from monitoring.format import age, clock, count, duration, number, rate, size

DURATIONS = [
    (None, "unknown"), (math.nan, "unknown"), (math.inf, "unbounded"), (0, "0 s"), (0.0004, "0 ms"),
    (0.35, "350 ms"), (0.9996, "1.0 s"), (1, "1.0 s"), (4.25, "4.3 s"), (9.94, "9.9 s"), (9.96, "10 s"),
    (52.3, "52 s"), (59.6, "1 min"), (78, "1 min 18 s"), (120, "2 min"), (3599.4, "59 min 59 s"),
    (3599.6, "1 h"), (10920, "3 h 2 min"), (86399, "1 d"), (86400 + 5 * 3600, "1 d 5 h"),
    (400 * 86400, "400 d"), (-78, "-1 min 18 s"),
]
RATES = [
    (None, "unknown"), (math.nan, "unknown"), (0, "0/s"), (0.04, "0.0/s"), (0.5, "0.5/s"), (9.94, "9.9/s"),
    (9.96, "10/s"), (57.4, "57/s"), (999.4, "999/s"), (999.6, "1.0k/s"), (1234, "1.2k/s"), (123_456, "123.5k/s"),
    (999_960, "1.0M/s"), (3.4e6, "3.4M/s"), (2.5e9, "2.5G/s"), (5e15, "5,000.0T/s"),
]
SIZES = [
    (None, "unknown"), (0, "0 B"), (512, "512 B"), (999.6, "1.0 kB"), (2400, "2.4 kB"), (243e6, "243 MB"),
    (243.4e6, "243 MB"), (9.96e9, "10 GB"), (2e18, "2,000 PB"),
]
COUNTS = [(None, "unknown"), (math.nan, "unknown"), (0, "0"), (7, "7"), (1234567, "1,234,567"), (2.5, "3"),
          (1e3, "1,000")]
NUMBERS = [(None, "unknown"), (0, "0.0"), (0.44, "0.4"), (9.96, "10"), (1530.4, "1,530")]


@pytest.mark.parametrize(("value", "text"), DURATIONS)
def test_duration(value, text):
    assert duration(value) == text


def test_duration_names_infinity_as_told():
    assert duration(math.inf, "not catching up") == "not catching up"


@pytest.mark.parametrize(("value", "text"), RATES)
def test_rate(value, text):
    assert rate(value) == text


@pytest.mark.parametrize(("value", "text"), SIZES)
def test_size(value, text):
    assert size(value) == text


@pytest.mark.parametrize(("value", "text"), COUNTS)
def test_count(value, text):
    assert count(value) == text


def test_count_with_a_unit_and_number():
    assert count(1500, "messages") == "1,500 messages"
    for value, text in NUMBERS:
        assert number(value) == text
    assert number(12.3, "ms") == "12 ms"


def test_age_and_clock():
    assert age(None, 100.0) == "never" and clock(None) == "never"
    assert age(22.0, 100.0) == "1 min 18 s ago" and age(200.0, 100.0) == "0 s ago"
    assert clock(3600 * 14 + 3 * 60 + 27) == "14:03:27 UTC"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the cell templates' JavaScript")
@pytest.mark.parametrize(("kind", "cases", "python"), [
    ("duration", DURATIONS, duration), ("rate", RATES, rate), ("count", COUNTS, count), ("number", NUMBERS, number),
    ("size", SIZES, size)])
def test_the_cell_templates_write_what_python_writes(kind, cases, python):
    """The browser's text for every case (and a spread of values between them) is Python's, character for character."""
    values = [v for v, _ in cases] + [x * f for x in (0.05, 0.5, 5, 50, 500, 5e3, 5e4, 5e5, 5e6, 5e9)
                                      for f in (0.999, 1, 1.001, 1.5, 1.95, 2.25)]
    encoded = json.dumps([None if v is None else "NaN" if isinstance(v, float) and math.isnan(v)
                          else "Infinity" if v == math.inf else v for v in values])
    program = (script(kind) + f"var values = {encoded}.map(function (v) {{ return v === 'NaN' ? NaN : "
               f"v === 'Infinity' ? Infinity : v; }});"
               f"process.stdout.write(JSON.stringify(values.map(function (v) {{ return {kind}(v); }})));")
    shown = json.loads(subprocess.run(["node", "-e", program], capture_output=True, text=True, check=True).stdout)
    assert shown == [python(v) for v in values]


def test_cell_templates_escape_and_can_leave_none_blank():
    template = cell_template("duration", "unbounded", blank_none=True, field="max_lag")
    assert "<%=" not in template and "<%- duration(value) %>" in template
    assert template.startswith('<span class="pw-cell" data-field="max_lag">')


def _run(code: str, name: str, values: list[float]) -> list[str]:
    """A formatter model's JavaScript `code`, as BokehJS calls it (a function of `name`), over `values`."""
    program = (f"var f = new Function({json.dumps(name)}, {json.dumps(code)});"
               f"process.stdout.write(JSON.stringify({json.dumps(values)}.map(function (v) {{ return f(v); }})));")
    return json.loads(subprocess.run(["node", "-e", program], capture_output=True, text=True, check=True).stdout)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the charts' formatter code")
@pytest.mark.parametrize(("unit", "values", "ticks"), [
    ("seconds", [0, 0.35, 52.3, 78, 10920, 700_000], ["0 s", "350 ms", "52 s", "1 min 18 s", "3 h 2 min", "8 d 2 h"]),
    ("messages / s", [0, 0.5, 57.4, 1234], ["0/s", "0.5/s", "57/s", "1.2k/s"]),
    ("records / s", [3.4e6], ["3.4M/s"]),
    ("messages", [0, 1496, 2_500_000, 0.5, 2.5], ["0", "1,496", "2,500,000", "0.5", "2.5"]),
    ("bytes", [512, 2400, 243e6], ["512 B", "2.4 kB", "243 MB"]),
    ("ms / s", [0.44, 1530.4], ["0.4", "1,530"]),
])
def test_chart_axes_and_hovers_write_values_by_their_unit(unit, values, ticks):
    """The y axis of a chart in `unit` labels its ticks as monitoring/format.py writes them (a count axis's
    fractional ticks as numbers, not rounded into repeated labels); its hover writes the value the same way."""
    assert _run(tick_formatter(axis_kind(unit)).code, "tick", values) == ticks
    hover = _run(hover_formatter(axis_kind(unit)).code, "value", values)
    python = {"duration": duration, "rate": rate, "count": count, "size": size, "number": number}[axis_kind(unit)]
    assert hover == [python(v) for v in values]

"""pipewatch's colours: one meaning, one colour, on every page, in the report and in the flow diagram."""

from __future__ import annotations

import hashlib

from bokeh.palettes import Category10_10

from monitoring.health import State

OK = "#1a7f37"
"""Up, running, healthy."""
WARNING = "#bf8700"
"""Degraded, stale, restarting: look soon."""
ERROR = "#cf222e"
"""Down, failed, lagging past the limit: look now."""
SEVERE = "#82071e"
"""A flow node whose source is down (darker than an error of the data it carries)."""
LATE = "#bc4c00"
"""A flow node whose data is stale."""
NEUTRAL = "#6e7781"
"""Not known, not started, finished."""
WARNING_TEXT = "#9a6700"
"""Text of a warning (notes, STALE lines): WARNING is too light to read as text."""
LINE = "#1f77b4"
"""A chart's single line."""
INFO = "#54aeff"
QUIET = "#8c959f"
BORDER = "#d0d7de"

STATE_COLOURS = {State.UP: OK, State.DOWN: ERROR, State.STALE: WARNING, State.STARTING: NEUTRAL}
"""A collector's health."""
HEALTH_COLOURS = {"ok": OK, "degraded": WARNING, "down": ERROR, "agent down": ERROR, "starting": NEUTRAL,
                  "unknown": NEUTRAL}
"""A pipeline's health (PipelineSummary.health)."""
FLOW_COLOURS = {"ok": OK, "warning": WARNING, "error": ERROR, "stale": LATE, "down": SEVERE, "unknown": NEUTRAL}
"""A flow diagram node's state (monitoring.topology.STATES)."""
BAND_COLOURS = {"bronze": "#b0652a", "silver": "#8c959f", "gold": "#c99a06"}
"""A medallion layer's band in the flow diagram (drawn faint, behind the boxes); other layer names: NEUTRAL."""
BAND_TEXT = {"default": "#1f2328", "dark": "#e6edf3"}
"""A band's title and freshness line, by theme (over the band's faint colour: contrast measured in
tests/test_flow_browser.py)."""
LAG_STATUS_COLOURS = {"OK": OK, "WARN": WARNING, "ERR": ERROR, "STOP": ERROR, "STALL": ERROR, "REWIND": ERROR}
"""A consumer group's or partition's lag status."""
FLINK_JOB_COLOURS = {"RUNNING": OK, "FINISHED": NEUTRAL, "CANCELED": NEUTRAL, "CREATED": NEUTRAL,
                     "INITIALIZING": NEUTRAL, "RESTARTING": WARNING, "FAILING": ERROR, "FAILED": ERROR,
                     "CANCELLING": WARNING, "SUSPENDED": WARNING, "RECONCILING": WARNING}
BACKPRESSURE_COLOURS = {"OK": OK, "LOW": WARNING, "HIGH": ERROR, "UNKNOWN": NEUTRAL}
SEVERITY_COLOURS = {"error": ERROR, "warning": WARNING_TEXT}
"""An error registry entry's severity."""
RUN_STATUS_COLOURS = {"completed": OK, "success": OK, "failed": ERROR}
"""A profiling run's status."""
DRIFT_COLOURS = {"high": ERROR, "medium": WARNING, "low": INFO, "none": QUIET}
"""A drift event's severity."""


def js_colour(colours: dict[str, str], default: str = NEUTRAL) -> str:
    """A cell template expression: the colour of the cell's value (`value`), `default` for any other value. The
    keys and colours are the code's own constants."""
    pairs = ", ".join(f"'{key}': '{colour}'" for key, colour in colours.items())
    return f"({{{pairs}}})[value] || '{default}'"


def coloured_cell(css_class: str, data: str, colours: dict[str, str], default: str = NEUTRAL) -> str:
    """A cell template: the value in bold, in its colour, its class and a `data-<data>` attribute holding it."""
    return (f'<span class="{css_class}" data-{data}="<%- value %>" style="font-weight:bold;color:'
            f'<%- {js_colour(colours, default)} %>"><%- value %></span>')


def entity_colour(name: str) -> str:
    """The same colour for an entity on every page and in every process."""
    return Category10_10[int(hashlib.md5(name.encode()).hexdigest(), 16) % len(Category10_10)]

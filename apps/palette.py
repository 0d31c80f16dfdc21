"""pipewatch's colours: one meaning, one colour, on every page, in the report and in the flow diagram.

A colour drawn as text is written `text_colour(colour)`: a CSS variable that the page's theme (apps/theme.py) sets to a
shade of that colour legible on its background (WCAG contrast of at least 4.5:1), falling back to the light
theme's shade where no theme is (the report). Borders and fills keep the colour itself."""

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

TEXT_SHADES = {
    # colour: (its shade as text on the light theme's backgrounds, on the dark theme's)
    OK: ("#116329", "#3fb950"),
    WARNING: ("#7d4e00", "#d29922"),
    WARNING_TEXT: ("#7d4e00", "#d29922"),
    ERROR: ("#cf222e", "#ff7b72"),
    SEVERE: ("#82071e", "#ffa198"),
    LATE: ("#953800", "#f0883e"),
    NEUTRAL: ("#57606a", "#9da5ae"),
    INFO: ("#0969da", "#58a6ff"),
    QUIET: ("#57606a", "#9da5ae"),
}
"""Every palette colour that is ever drawn as text."""


def text_colour(colour: str) -> str:
    """A palette colour as a CSS text colour: the theme's legible shade of it."""
    light, _ = TEXT_SHADES[colour]
    return f"var(--pw-text-{colour.lstrip('#')}, {light})"


def shade(colour: str, dark: bool) -> str:
    """A palette colour's shade for text drawn on a chart's canvas (where no CSS variable reaches)."""
    light, on_dark = TEXT_SHADES[colour]
    return on_dark if dark else light


STATE_COLOURS = {State.UP: OK, State.DOWN: ERROR, State.STALE: WARNING, State.STARTING: NEUTRAL}
"""A collector's health."""
HEALTH_COLOURS = {"ok": OK, "degraded": WARNING, "down": ERROR, "agent down": ERROR, "starting": NEUTRAL,
                  "unknown": NEUTRAL}
"""A pipeline's health (PipelineSummary.health)."""
FLOW_COLOURS = {"ok": OK, "warning": WARNING, "error": ERROR, "stale": LATE, "down": SEVERE, "unknown": NEUTRAL}
"""A flow diagram node's state (monitoring.topology.STATES)."""
BAND_COLOURS = {"bronze": "#b0652a", "silver": "#8c959f", "gold": "#c99a06"}
"""A medallion layer's band in the flow diagram (drawn faint, behind the boxes); other layer names: NEUTRAL."""
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
    """A cell template expression: the text colour (`text`) of the cell's value (`value`), `default`'s for any other
    value. The keys and colours are the code's own constants."""
    pairs = ", ".join(f"'{key}': '{text_colour(colour)}'" for key, colour in colours.items())
    return f"({{{pairs}}})[value] || '{text_colour(default)}'"


def coloured_cell(css_class: str, data: str, colours: dict[str, str], default: str = NEUTRAL) -> str:
    """A cell template: the value in bold, in its colour, its class and a `data-<data>` attribute holding it."""
    return (f'<span class="{css_class}" data-{data}="<%- value %>" style="font-weight:bold;color:'
            f'<%- {js_colour(colours, default)} %>"><%- value %></span>')


def entity_colour(name: str) -> str:
    """The same colour for an entity on every page and in every process."""
    return Category10_10[int(hashlib.md5(name.encode()).hexdigest(), 16) % len(Category10_10)]

"""The baseline of bench/bench_sessions.py: the least a live page of streaming Bokeh charts can cost.

Raw Bokeh, served like pipewatch (`panel serve bench/baseline_app`, the same session flags): one
figure per chart (datetime axis, 300 px high, as pipewatch's live charts), one line and one
ColumnDataSource per line, and Bokeh's own 1 s periodic callback per session that streams one new
point into every line with `ColumnDataSource.stream(..., rollover)`, all of a tick under one
`pn.io.hold()` as pipewatch does (one PATCH-DOC per tick; Bokeh's own `doc.hold()` still sends one
message per stream). Nothing else on the page, nothing read from anywhere.

BASELINE_LINES: lines per chart, comma-separated (default 10 charts of 2); BASELINE_ROLLOVER: points
kept per line (default 720, pipewatch's LiveChart rollover).
"""

import os
import time

import numpy as np
import panel as pn
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

LINES = [int(n) for n in os.environ.get("BASELINE_LINES", ",".join(["2"] * 10)).split(",")]
ROLLOVER = int(os.environ.get("BASELINE_ROLLOVER", "720"))

doc = curdoc()
sources: list[ColumnDataSource] = []
figures = []
for chart, lines in enumerate(LINES):
    fig = figure(title=f"chart {chart + 1}", x_axis_type="datetime", height=300, sizing_mode="stretch_width")
    for _ in range(lines):
        source = ColumnDataSource({"t": [], "y": []})
        fig.line("t", "y", source=source, line_width=2)
        sources.append(source)
    figures.append(fig)
rng = np.random.default_rng()


def tick() -> None:
    t = np.array([time.time() * 1000.0])
    with pn.io.hold(doc):  # as pipewatch: Bokeh's own doc.hold() still sends one message per stream
        for source in sources:
            source.stream({"t": t, "y": rng.random(1)}, rollover=ROLLOVER)


doc.add_root(column(*figures, sizing_mode="stretch_width"))
doc.add_periodic_callback(tick, 1000)

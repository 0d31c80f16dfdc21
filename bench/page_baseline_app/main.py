"""The baseline of bench/bench_page_open.py: a minimal Panel page, one Bokeh line chart and one table."""

import numpy as np
import pandas as pd
import panel as pn
from bokeh.plotting import figure

pn.extension("tabulator", sizing_mode="stretch_width")

chart = figure(title="chart", x_axis_type="datetime", height=300, sizing_mode="stretch_width")
chart.line(np.arange(100) * 1000.0, np.random.default_rng(1).random(100), line_width=2)
rows = pd.DataFrame({"name": [f"row {i}" for i in range(10)], "value": np.arange(10.0)})
pn.Column(pn.pane.Bokeh(chart), pn.widgets.Tabulator(rows, show_index=False, disabled=True)).servable(title="baseline")

"""The pipeline's flow diagram: producers -> topics -> Flink jobs -> sinks / databases -> consumer groups.

One Bokeh figure, every renderer built up front (see apps/live.py on why models are never added to a live
document): boxes (rect) coloured by health, two text lines per box (name, live rate), arrows for measured
and plan-derived links (solid) and hinted ones (dashed), rate labels on the edges, column titles and a legend
of the health colours. A refresh only compares the topology's fingerprint (monitoring/topology.py, computed
once per change for every session) and, when it changed, sends one `patch` per data source (or one `.data`
when nodes came or went).

`flow_figure(topology)` draws the same diagram as a standalone figure (reports).
"""

from __future__ import annotations

import functools
from typing import Any

import panel as pn
from bokeh.models import (
    Arrow,
    ColumnDataSource,
    HoverTool,
    PanTool,
    Plot,
    Range1d,
    Rect,
    ResetTool,
    SaveTool,
    Text,
    Title,
    VeeHead,
    WheelZoomTool,
)
from panel.viewable import Viewer

from apps.escape import esc
from apps.palette import FLOW_COLOURS
from apps.theme import TOOLBAR_CSS, chart_colours, is_dark
from monitoring.store import Store
from monitoring.topology import COLUMN_TITLES, STATES, TOPOLOGIES, Topology, TopologyCache

X_STEP = 2.8
BOX_WIDTH = 2.0
BOX_HEIGHT = 0.72
LABEL_CHARS = 28
ROW_PIXELS = 62

_NODE_COLUMNS = ("id", "x", "y", "label", "name", "kind", "state", "reason", "rate", "detail", "colour")
_EDGE_COLUMNS = ("x0", "y0", "x1", "y1", "mx", "my", "rate", "basis", "source", "target")


def layout(topology: Topology) -> tuple[dict[str, tuple[float, float]], list[tuple[float, str]], int]:
    """Node id -> (x, y); (x, title) of each used column; rows of the tallest column.

    Columns by kind, left to right, empty ones dropped; within a column nodes are ordered by the average
    position of their neighbours in the columns before (one barycentre pass), so edges cross less."""
    used = sorted({n.column for n in topology.nodes})
    x_of = {column: index * X_STEP for index, column in enumerate(used)}
    neighbours: dict[str, list[str]] = {}
    for edge in topology.edges:
        neighbours.setdefault(edge.source, []).append(edge.target)
        neighbours.setdefault(edge.target, []).append(edge.source)
    rank: dict[str, float] = {}
    for column in used:
        members = [n for n in topology.nodes if n.column == column]
        # By the ranks of the columns before this one (a copy: this column's ranks are not among them).
        key = functools.partial(_barycentre, dict(rank), neighbours)
        for index, node in enumerate(sorted(members, key=key)):
            rank[node.id] = index
    sizes = {column: sum(1 for n in topology.nodes if n.column == column) for column in used}
    positions = {}
    for node in topology.nodes:
        rows = sizes[node.column]
        positions[node.id] = (x_of[node.column], (rows - 1) / 2 - rank[node.id])
    titles = [(x_of[c], COLUMN_TITLES[c] if c < len(COLUMN_TITLES) else "") for c in used]
    return positions, titles, max(sizes.values(), default=0)


def _barycentre(placed: dict[str, float], neighbours: dict[str, list[str]], node) -> tuple:
    """Where a node goes in its column: the mean rank of its neighbours already placed (none: last), then its kind
    and label."""
    known = [placed[m] for m in neighbours.get(node.id, ()) if m in placed]
    return (sum(known) / len(known) if known else float("inf"), node.kind, node.label)


def diagram_data(topology: Topology) -> dict[str, Any]:
    positions, titles, rows = layout(topology)
    nodes = {column: [] for column in _NODE_COLUMNS}
    for node in topology.nodes:
        x, y = positions[node.id]
        values = {"id": node.id, "x": x, "y": y, "name": node.label,
                  "label": node.label if len(node.label) <= LABEL_CHARS else node.label[: LABEL_CHARS - 1] + "…",
                  "kind": node.kind, "state": node.state, "reason": node.reason, "rate": node.rate,
                  "detail": node.detail, "colour": FLOW_COLOURS[node.state]}
        for column in _NODE_COLUMNS:
            nodes[column].append(values[column])
    solid = {column: [] for column in _EDGE_COLUMNS}
    dashed = {column: [] for column in _EDGE_COLUMNS}
    for edge in topology.edges:
        (xa, ya), (xb, yb) = positions[edge.source], positions[edge.target]
        if xb > xa:
            x0, x1 = xa + BOX_WIDTH / 2, xb - BOX_WIDTH / 2
        elif xb < xa:
            x0, x1 = xa - BOX_WIDTH / 2, xb + BOX_WIDTH / 2
        else:  # same column: from the box's bottom or top edge to the other's
            x0 = x1 = xa
            ya, yb = ((ya - BOX_HEIGHT / 2, yb + BOX_HEIGHT / 2) if yb < ya
                      else (ya + BOX_HEIGHT / 2, yb - BOX_HEIGHT / 2))
        target = dashed if edge.basis == "hint" else solid
        values = {"x0": x0, "y0": ya, "x1": x1, "y1": yb, "mx": (x0 + x1) / 2, "my": (ya + yb) / 2,
                  "rate": edge.rate, "basis": edge.basis, "source": edge.source, "target": edge.target}
        for column in _EDGE_COLUMNS:
            target[column].append(values[column])
    half = max(rows, 1) / 2
    return {
        "nodes": nodes, "edges": solid, "hint_edges": dashed,
        "titles": {"x": [x for x, _ in titles], "y": [half + 0.25] * len(titles), "text": [t for _, t in titles]},
        "x_range": (-BOX_WIDTH / 2 - 0.3, max((x for x, _ in titles), default=0) + BOX_WIDTH / 2 + 0.3),
        "y_range": (-half - 0.1, half + 0.6),
        "height": max(240, 110 + ROW_PIXELS * max(rows, 1)),
    }


class _Models:
    """The figure and its data sources; the same for the live view and the standalone figure."""

    def __init__(self, name: str, sizing_mode: str | None = "stretch_width", width: int = 1100,
                 dark: bool = False) -> None:
        ink = chart_colours(dark)
        self.nodes = ColumnDataSource({column: [] for column in _NODE_COLUMNS}, name="flow-nodes")
        self.edges = ColumnDataSource({column: [] for column in _EDGE_COLUMNS}, name="flow-edges")
        self.hint_edges = ColumnDataSource({column: [] for column in _EDGE_COLUMNS}, name="flow-hint-edges")
        self.titles = ColumnDataSource({"x": [], "y": [], "text": []})
        extra = {"sizing_mode": sizing_mode} if sizing_mode else {"width": width}
        # A bare Plot: figure() would also build axes, grids, tickers and formatters that are never shown.
        fig = Plot(name=name, height=240, x_range=Range1d(0, 1), y_range=Range1d(0, 1), toolbar_location="above",
                   title=Title(text="Pipeline flow", text_color=ink.text), outline_line_color=None, min_border=10,
                   background_fill_color=ink.background, border_fill_color=ink.background, **extra)
        fig.add_tools(PanTool(), WheelZoomTool(), ResetTool(), SaveTool())
        fig.toolbar.stylesheets = [TOOLBAR_CSS]
        # Glyphs added as models (add_glyph): the plotting API would also build selection, hover and muted
        # copies of each, which a session pays for and never uses here.
        for source, dash in ((self.edges, "solid"), (self.hint_edges, "dashed")):
            fig.add_layout(Arrow(source=source, x_start="x0", y_start="y0", x_end="x1", y_end="y1",
                                 line_color=ink.line, line_width=1.5, line_dash=dash,
                                 end=VeeHead(size=9, fill_color=ink.line, line_color=ink.line)))
            fig.add_glyph(source, Text(x="mx", y="my", text="rate", text_font_size="8pt", text_color=ink.muted,
                                       text_align="center", text_baseline="bottom", y_offset=-2))
        boxes = fig.add_glyph(self.nodes, Rect(x="x", y="y", width=BOX_WIDTH, height=BOX_HEIGHT, fill_color="colour",
                                               fill_alpha=0.14, line_color="colour", line_width=2.5),
                              name="flow-boxes")
        fig.add_glyph(self.nodes, Text(x="x", y="y", text="label", text_font_size="10pt", text_font_style="bold",
                                       text_color=ink.text,
                                       text_align="center", text_baseline="bottom", y_offset=-1))
        # One colour for all rate labels, not each node's state colour (the box has it): BokehJS lays out a Text
        # glyph's labels asynchronously, and when the nodes shrink a colour per label is read past its new end
        # ("Offset is outside the bounds of the DataView" in the browser, seen when a broker went away).
        fig.add_glyph(self.nodes, Text(x="x", y="y", text="rate", text_font_size="9pt", text_align="center",
                                       text_baseline="top", y_offset=3, text_color=ink.muted))
        fig.add_glyph(self.titles, Text(x="x", y="y", text="text", text_font_size="10pt", text_color=ink.muted,
                                        text_align="center", text_font_style="italic"))
        fig.add_tools(HoverTool(renderers=[boxes], tooltips=[
            ("", "@name"), ("kind", "@kind"), ("health", "@state"), ("why", "@reason"), ("rate", "@rate"),
            ("", "@detail")]))
        self.figure = fig

    def show(self, data: dict[str, Any]) -> None:
        """Send what changed: a patch when the same nodes and edges only changed colour, label or rate."""
        for source, new in ((self.nodes, data["nodes"]), (self.edges, data["edges"]),
                            (self.hint_edges, data["hint_edges"]), (self.titles, data["titles"])):
            _update(source, new)
        for rng, (start, end) in ((self.figure.x_range, data["x_range"]), (self.figure.y_range, data["y_range"])):
            if (rng.start, rng.end) != (start, end):
                rng.update(start=start, end=end)
        if self.figure.height != data["height"]:
            self.figure.height = data["height"]


def _update(source: ColumnDataSource, new: dict[str, list]) -> None:
    old = source.data
    same_shape = set(old) == set(new) and all(len(old[c]) == len(new[c]) for c in new)
    if same_shape and old.get("id", old.get("source")) == new.get("id", new.get("source")) and \
            old.get("target") == new.get("target"):
        changed = {column: [(slice(0, len(values)), values)] for column, values in new.items()
                   if list(old[column]) != list(values)}
        if changed:
            source.patch(changed)
        return
    source.data = new


def legend_html(dark: bool = False) -> str:
    """The health colours and edge styles, as HTML beside the figure (cheaper than a Bokeh legend's renderers)."""
    ink = chart_colours(dark)
    boxes = "".join(
        f'<span class="pw-flow-legend-item" style="display:inline-block;margin-right:12px">'
        f'<span style="display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px;'
        f'border:2px solid {esc(FLOW_COLOURS[state])};background:{esc(FLOW_COLOURS[state])}33"></span>'
        f'{esc(state)}</span>'
        for state in STATES)
    lines = "".join(
        f'<span style="display:inline-block;margin-right:12px"><span style="display:inline-block;width:26px;'
        f'vertical-align:middle;margin-right:4px;border-top:2px {style} {esc(ink.line)}"></span>{label}</span>'
        for label, style in (("measured / from the job plan", "solid"), ("hint from the config", "dashed")))
    return f'<div class="pw-flow-legend" style="font-size:12px;color:{esc(ink.text)}">{boxes}{lines}</div>'


def flow_figure(topology: Topology, width: int = 1100) -> Any:
    """The diagram as a standalone Bokeh figure (fixed width), e.g. for a report."""
    models = _Models(f"flow-{topology.pipeline}", sizing_mode=None, width=width)
    models.figure.title.text = f"Pipeline flow: {topology.pipeline}"
    models.show(diagram_data(topology))
    return models.figure


class FlowDiagram(Viewer):
    """The live diagram of one pipeline; `refresh()` once a second per session."""

    def __init__(self, store: Store, pipeline: str, config_hints: Any = None, change_feed: Any = None,
                 cache: TopologyCache = TOPOLOGIES, **params) -> None:
        super().__init__(**params)
        self.store, self.pipeline, self.hints, self.change_feed, self.cache = (store, pipeline, config_hints,
                                                                                change_feed, cache)
        self.dark = is_dark()
        self.models = _Models("flow-diagram", dark=self.dark)
        self.figure = self.models.figure
        self.topology: Topology | None = None
        self.updates = 0
        """Times new data was sent (for tests and benchmarks: a quiet pipeline sends nothing)."""
        self.refresh()

    def __panel__(self):
        return pn.Column(pn.pane.Bokeh(self.figure, sizing_mode="stretch_width"),
                         pn.pane.HTML(legend_html(self.dark), sizing_mode="stretch_width"), sizing_mode="stretch_width")

    def refresh(self) -> None:
        _, topology = self.cache.get(self.store, self.pipeline, self.hints, self.change_feed)
        if topology is self.topology:
            return
        self.topology = topology
        self.models.show(diagram_data(topology))
        self.updates += 1

"""The pipeline's flow diagram: producers -> topics -> Flink jobs -> sinks / databases -> consumer groups.

One Bokeh figure, every renderer built up front (see apps/live.py on why models are never added to a live
document), drawn one pixel per data unit from the layered layout of monitoring/flow_layout.py: boxes coloured by
health with two lines of text (name, kind and live rate), edges routed between the columns (solid: measured or
from the job plan; dashed: hints) with their rate labels, and the medallion layers as coloured bands with their
health and freshness. Sizes are fixed per node and label (never the current text's), so a new rate never moves a
box; the geometry is computed once per shape for every session. A refresh only compares the topology's
fingerprint (monitoring/topology.py) and, when it changed, sends one `patch` per data source (or one `.data` when
nodes came or went). Specification: docs/flow.md.

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
    MultiLine,
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

from apps.escape import esc, plain
from apps.palette import BAND_COLOURS, FLOW_COLOURS, NEUTRAL
from apps.theme import TOOLBAR_CSS, chart_colours, is_dark
from monitoring.flow_layout import FlowLayout, LayoutEdge, LayoutNode, layered_layout
from monitoring.store import Store
from monitoring.topology import STATES, TOPOLOGIES, Topology, TopologyCache

BOX_WIDTH = 210.0
BOX_HEIGHT = 44.0
NAME_PX = 12
"""Font sizes in pixels: a box's name (bold), its second line, edge labels, band titles (bold) and their line."""
LINE_PX = 11
EDGE_LABEL_PX = 10
EDGE_LABEL_CHARS = 16
"""Room reserved for every rate label (`1.2k records/s`), whatever it says now: a new rate never moves a box."""
BAND_HEADER_HEIGHT = 36.0
TEXT_PAD = 10.0

_NODE_COLUMNS = ("id", "x", "y", "w", "h", "label", "line", "name", "kind", "state", "reason", "rate", "detail",
                 "colour", "layer")
_EDGE_COLUMNS = ("xs", "ys", "x0", "y0", "x1", "y1", "lx", "ly", "lw", "lh", "rate", "basis", "source", "target")
_BAND_COLUMNS = ("x", "y", "w", "h", "name", "state", "reason", "freshness", "detail", "colour", "state_colour",
                 "title", "line", "tx", "ty", "ly", "sx", "sy")

# Advance widths in em, a little above DejaVu Sans's (the widest common sans-serif; browsers elsewhere draw
# narrower): text is cut to fit its box by these, never by the number of characters.
_NARROW, _WIDE = set("il.,:;'|!ijftI()[] "), set("mwMW@%")


def text_width(text: str, px: float, bold: bool = False) -> float:
    """An upper estimate of the text's width in pixels."""
    em = sum(0.36 if c in _NARROW else 1.02 if c in _WIDE else 0.8 if c.isupper() else 0.64 for c in text)
    return em * px * (1.1 if bold else 1.0)


def fit(text: str, width: float, px: float, bold: bool = False) -> str:
    """The text, cut with an ellipsis so it fits the width."""
    if text_width(text, px, bold) <= width:
        return text
    while text and text_width(text + "…", px, bold) > width:
        text = text[:-1]
    return text + "…"


def _labelled(edge) -> bool:
    """Edges that carry a rate get a label's room even while it is unknown, so the layout does not jump."""
    return edge.basis != "hint" or bool(edge.rate)


def _band_title(layer) -> tuple[str, str]:
    return f"{layer.name} · {layer.state}", f"freshness: {layer.freshness}"


@functools.lru_cache(maxsize=64)
def _geometry(nodes: tuple[tuple[str, int | None, int], ...], edges: tuple[tuple[str, str, bool], ...],
              bands: tuple[str, ...]) -> FlowLayout:
    """The layout of one shape of diagram, shared by every session showing it."""
    label_width = text_width("8" * EDGE_LABEL_CHARS, EDGE_LABEL_PX) + 4
    headers = [(max(text_width(f"{name} · warning", NAME_PX, True), text_width("freshness: 59 min 59 s ago",
                                                                                 LINE_PX)) + 2 * TEXT_PAD,
                BAND_HEADER_HEIGHT) for name in bands]
    return layered_layout(
        [LayoutNode(node_id, BOX_WIDTH, BOX_HEIGHT, band, column) for node_id, band, column in nodes],
        [LayoutEdge(a, b, label_width if labelled else 0.0, EDGE_LABEL_PX + 4 if labelled else 0.0)
         for a, b, labelled in edges], headers)


def geometry(topology: Topology) -> FlowLayout:
    bands = tuple(layer.name for layer in topology.layers)
    index = {name: i for i, name in enumerate(bands)}
    return _geometry(tuple((n.id, index.get(n.layer), n.column) for n in topology.nodes),
                     tuple((e.source, e.target, _labelled(e)) for e in topology.edges), bands)


def diagram_data(topology: Topology) -> dict[str, Any]:
    layout = geometry(topology)
    inner = BOX_WIDTH - 2 * TEXT_PAD
    nodes = {column: [] for column in _NODE_COLUMNS}
    for node in topology.nodes:
        box = layout.boxes[node.id]
        values = {"id": node.id, "x": box.x, "y": box.y, "w": box.width, "h": box.height, "name": node.label,
                  "label": fit(node.label, inner, NAME_PX, bold=True),
                  "line": fit(f"{node.kind} · {node.rate}", inner, LINE_PX),
                  "kind": node.kind, "state": node.state, "reason": node.reason, "rate": node.rate,
                  "detail": node.detail, "colour": FLOW_COLOURS[node.state], "layer": node.layer}
        for column in _NODE_COLUMNS:
            nodes[column].append(values[column])
    solid = {column: [] for column in _EDGE_COLUMNS}
    dashed = {column: [] for column in _EDGE_COLUMNS}
    routes = {(r.source, r.target): r for r in layout.routes}
    for edge in topology.edges:
        route = routes.get((edge.source, edge.target))
        if route is None:  # (an edge of a node to itself has no drawing)
            continue
        (x0, y0), (x1, y1) = route.points[-2], route.points[-1]
        label = route.label
        values = {"xs": [p[0] for p in route.points], "ys": [p[1] for p in route.points],
                  "x0": x0, "y0": y0, "x1": x1, "y1": y1,
                  "lx": label.x if label else x0, "ly": label.y if label else y0,
                  "lw": label.width if label else 0.0, "lh": label.height if label else 0.0,
                  "rate": fit(edge.rate, label.width, EDGE_LABEL_PX) if label else "", "basis": edge.basis,
                  "source": edge.source, "target": edge.target}
        target = dashed if edge.basis == "hint" else solid
        for column in _EDGE_COLUMNS:
            target[column].append(values[column])
    bands = {column: [] for column in _BAND_COLUMNS}
    for area in layout.bands:
        layer = topology.layers[area.band]
        title, line = _band_title(layer)
        head = area.header
        values = {"x": area.area.x, "y": area.area.y, "w": area.area.width, "h": area.area.height,
                  "name": layer.name, "state": layer.state, "reason": layer.reason, "freshness": layer.freshness,
                  "detail": layer.freshness_detail, "colour": BAND_COLOURS.get(layer.name, NEUTRAL),
                  "state_colour": FLOW_COLOURS[layer.state], "title": fit(title, head.width - 3 * TEXT_PAD, NAME_PX,
                                                                          bold=True),
                  "line": fit(line, head.width - 2 * TEXT_PAD, LINE_PX),
                  "tx": head.left + TEXT_PAD + 14, "ty": head.top + 4, "ly": head.top + 4 + NAME_PX + 4,
                  "sx": head.left + TEXT_PAD + 5, "sy": head.top + 4 + NAME_PX / 2 + 1}
        for column in _BAND_COLUMNS:
            bands[column].append(values[column])
    return {"nodes": nodes, "edges": solid, "hint_edges": dashed, "bands": bands,
            "width": round(layout.width), "height": round(layout.height)}


class _Models:
    """The figure and its data sources; the same for the live view and the standalone figure."""

    def __init__(self, name: str, dark: bool = False) -> None:
        ink = chart_colours(dark)
        self.nodes = ColumnDataSource({column: [] for column in _NODE_COLUMNS}, name="flow-nodes")
        self.edges = ColumnDataSource({column: [] for column in _EDGE_COLUMNS}, name="flow-edges")
        self.hint_edges = ColumnDataSource({column: [] for column in _EDGE_COLUMNS}, name="flow-hint-edges")
        self.bands = ColumnDataSource({column: [] for column in _BAND_COLUMNS}, name="flow-bands")
        # A bare Plot (figure() would also build axes, grids and tickers never shown), one pixel per data unit:
        # the frame is exactly as large as the layout, y downwards as in the layout.
        fig = Plot(name=name, frame_width=300, frame_height=200, x_range=Range1d(0, 300), y_range=Range1d(200, 0),
                   toolbar_location="above", title=Title(text="Pipeline flow", text_color=ink.text),
                   outline_line_color=None,
                   min_border=0, sizing_mode=None, width_policy="fixed", width=300,
                   background_fill_color=ink.background, border_fill_color=ink.background)
        # (width_policy fixed: never squeezed into a narrower page, it scrolls; the width is the frame's, there
        # are no borders; the height follows frame_height below the title and toolbar.)
        fig.add_tools(PanTool(), WheelZoomTool(), ResetTool(), SaveTool())
        fig.toolbar.stylesheets = [TOOLBAR_CSS]
        # Glyphs added as models (add_glyph): the plotting API would also build selection, hover and muted
        # copies of each, which a session pays for and never uses here.
        band_areas = fig.add_glyph(self.bands, Rect(x="x", y="y", width="w", height="h", fill_color="colour",
                                                    fill_alpha=0.16, line_color="colour", line_width=1.5),
                                   name="flow-band-areas")
        fig.add_glyph(self.bands, Rect(x="sx", y="sy", width=10, height=10, fill_color="state_colour",
                                       line_color="state_colour"))
        fig.add_glyph(self.bands, Text(x="tx", y="ty", text="title", text_font_size=f"{NAME_PX}px",
                                       text_font_style="bold", text_baseline="top", text_color=ink.text),
                      name="flow-band-titles")
        fig.add_glyph(self.bands, Text(x="tx", y="ly", text="line", text_font_size=f"{LINE_PX}px",
                                       text_baseline="top", text_color=ink.text), name="flow-band-lines")
        for source, dash in ((self.edges, "solid"), (self.hint_edges, "dashed")):
            fig.add_glyph(source, MultiLine(xs="xs", ys="ys", line_color=ink.line, line_width=1.5,
                                            line_dash=dash))
            fig.add_layout(Arrow(source=source, x_start="x0", y_start="y0", x_end="x1", y_end="y1",
                                 line_color=ink.line, line_width=1.5,
                                 end=VeeHead(size=8, fill_color=ink.line, line_color=ink.line)))
            fig.add_glyph(source, Text(x="lx", y="ly", text="rate", text_font_size=f"{EDGE_LABEL_PX}px",
                                       text_color=ink.muted, text_align="center", text_baseline="middle"))
        boxes = fig.add_glyph(self.nodes, Rect(x="x", y="y", width="w", height="h", fill_color="colour",
                                               fill_alpha=0.14, line_color="colour", line_width=2.5),
                              name="flow-boxes")
        fig.add_glyph(self.nodes, Text(x="x", y="y", text="label", text_font_size=f"{NAME_PX}px",
                                       text_font_style="bold", text_align="center", text_baseline="bottom",
                                       y_offset=-1, text_color=ink.text))
        # One colour for all second lines, not each node's state colour (the box has it): BokehJS lays out a Text
        # glyph's labels asynchronously, and when the nodes shrink a colour per label is read past its new end
        # ("Offset is outside the bounds of the DataView" in the browser, seen when a broker went away).
        fig.add_glyph(self.nodes, Text(x="x", y="y", text="line", text_font_size=f"{LINE_PX}px",
                                       text_align="center", text_baseline="top", y_offset=2, text_color=ink.muted))
        fig.add_tools(HoverTool(renderers=[boxes], tooltips=[
            ("", "@name"), ("kind", "@kind"), ("health", "@state"), ("why", "@reason"), ("rate", "@rate"),
            ("", "@detail"), ("layer", "@layer")]))
        fig.add_tools(HoverTool(renderers=[band_areas], tooltips=[
            ("layer", "@name"), ("health", "@state"), ("why", "@reason"), ("freshness", "@freshness"),
            ("", "@detail")]))
        self.figure = fig

    def show(self, data: dict[str, Any]) -> None:
        """Send what changed: a patch when the same nodes and edges only changed colour, label or rate."""
        for source, new in ((self.nodes, data["nodes"]), (self.edges, data["edges"]),
                            (self.hint_edges, data["hint_edges"]), (self.bands, data["bands"])):
            _update(source, new)
        fig = self.figure
        if (fig.frame_width, fig.frame_height) != (data["width"], data["height"]):
            fig.update(frame_width=data["width"], width=data["width"], frame_height=data["height"])
            fig.x_range.update(start=0, end=data["width"])
            fig.y_range.update(start=data["height"], end=0)


def _update(source: ColumnDataSource, new: dict[str, list]) -> None:
    old = source.data
    same_shape = set(old) == set(new) and all(len(old[c]) == len(new[c]) for c in new)
    if same_shape and old.get("id", old.get("source", old.get("name"))) == new.get(
            "id", new.get("source", new.get("name"))) and old.get("target") == new.get("target"):
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


def flow_figure(topology: Topology, width: int | None = None) -> Any:
    """The diagram as a standalone Bokeh figure (its layout's own size), e.g. for a report. `width` is kept for
    callers of the earlier figure; the diagram is drawn at one pixel per unit whatever it says."""
    models = _Models(f"flow-{topology.pipeline}")
    models.figure.title.text = plain(f"Pipeline flow: {topology.pipeline}")
    models.show(diagram_data(topology))
    return models.figure


class FlowDiagram(Viewer):
    """The live diagram of one pipeline; `refresh()` once a second per session. A self-contained view: a page
    places `FlowDiagram(...)` (or its `__panel__()`) wherever its template wants the diagram."""

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
        # Drawn at its own size: a diagram wider than the page scrolls sideways instead of squeezing its text.
        return pn.Column(pn.Column(pn.pane.Bokeh(self.figure), sizing_mode="stretch_width",
                                   styles={"overflow-x": "auto"}, css_classes=["pw-flow-scroll"]),
                         pn.pane.HTML(legend_html(self.dark), sizing_mode="stretch_width"), sizing_mode="stretch_width")

    def refresh(self) -> None:
        _, topology = self.cache.get(self.store, self.pipeline, self.hints, self.change_feed)
        if topology is self.topology:
            return
        self.topology = topology
        self.models.show(diagram_data(topology))
        self.updates += 1

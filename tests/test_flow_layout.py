"""The layered layout's geometry (monitoring/flow_layout.py) and the diagram's data drawn from it: no edge passes
through a box or a label that is not its own, no two labels or boxes overlap, columns follow the data flow, long
edges bend around what is in their way, bands keep to their own nodes. At 3 nodes, at 31 (many topics, jobs and
groups) and on random graphs with cycles."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from apps.flow_view import BOX_WIDTH, EDGE_LABEL_PX, LINE_PX, NAME_PX, TEXT_PAD, diagram_data, fit, text_width
from monitoring.flow_layout import (
    STUB,
    FlowLayout,
    LayoutEdge,
    LayoutNode,
    Rect,
    layered_layout,
    rects_overlap,
    segment_hits_rect,
)
from monitoring.topology import FlowInputs, build_topology
from tests.flow_fixtures import HINTS, LAYER_HINTS, NOW, pipeline_store, wide_pipeline_store


def problems(layout: FlowLayout) -> list[str]:
    """Every way the drawing breaks its promises, in words (empty: none)."""
    found = []
    labels = {(r.source, r.target): r.label for r in layout.routes if r.label is not None}
    for route in layout.routes:
        for p, q in itertools.pairwise(route.points):
            for node_id, box in layout.boxes.items():
                if node_id not in (route.source, route.target) and segment_hits_rect(p, q, box):
                    found.append(f"{route.source}->{route.target} passes through box {node_id}")
            for other, label in labels.items():
                if other != (route.source, route.target) and segment_hits_rect(p, q, label):
                    found.append(f"{route.source}->{route.target} passes through the label of {other}")
            for band in layout.bands:
                if segment_hits_rect(p, q, band.header):
                    found.append(f"{route.source}->{route.target} passes through band {band.band}'s title")
        # It leaves its source's box and its arrowhead enters the target's box on a straight piece.
        source, target = layout.boxes[route.source], layout.boxes[route.target]
        first, last = route.points[0], route.points[-1]
        if not (first[0] in (source.left, source.right) and source.top < first[1] < source.bottom):
            found.append(f"{route.source}->{route.target} does not start on its source's side")
        if not (last[0] in (target.left, target.right) and target.top < last[1] < target.bottom):
            found.append(f"{route.source}->{route.target} does not end on its target's side")
        if route.points[-2][1] != last[1] or abs(route.points[-2][0] - last[0]) < STUB - 1e-6:
            found.append(f"{route.source}->{route.target} has no straight piece for its arrowhead")
    rects = [(f"box {k}", r) for k, r in layout.boxes.items()] + [(f"label {k}", r) for k, r in labels.items()]
    for (a, ra), (b, rb) in itertools.combinations(rects, 2):
        if rects_overlap(ra, rb):
            found.append(f"{a} overlaps {b}")
    for band in layout.bands:
        for name, rect in rects:
            if rects_overlap(rect, band.header):
                found.append(f"{name} overlaps band {band.band}'s title")
    return found


def band_problems(layout: FlowLayout, nodes: list[LayoutNode]) -> list[str]:
    found = []
    for band in layout.bands:
        for node in nodes:
            box = layout.boxes[node.id]
            inside = (band.area.left < box.left and box.right < band.area.right and band.area.top < box.top
                      and box.bottom < band.area.bottom)
            if node.band == band.band and not inside:
                found.append(f"{node.id} is outside its band {band.band}")
            if node.band != band.band and rects_overlap(box, band.area):
                found.append(f"{node.id} lies in band {band.band}, not its own")
        for other in layout.bands:
            if other.band > band.band and rects_overlap(other.area, band.area):
                found.append(f"bands {band.band} and {other.band} overlap")
            if other.band > band.band and not other.area.left > band.area.right:
                found.append(f"band {other.band} is not right of band {band.band}")
    return found


def _topology(store, hints):
    return build_topology(FlowInputs.gather(store, "orders", hints, now=NOW))


def _layout_of(data: dict) -> FlowLayout:
    """The layout as the diagram's data sources hold it (what the browser draws)."""
    from monitoring.flow_layout import Route

    nodes = data["nodes"]
    boxes = {nodes["id"][i]: Rect(nodes["x"][i], nodes["y"][i], nodes["w"][i], nodes["h"][i])
             for i in range(len(nodes["id"]))}
    routes = []
    for edges in (data["edges"], data["hint_edges"]):
        for i in range(len(edges["source"])):
            label = Rect(edges["lx"][i], edges["ly"][i], edges["lw"][i], edges["lh"][i]) if edges["lw"][i] else None
            routes.append(Route(edges["source"][i], edges["target"][i],
                                tuple(zip(edges["xs"][i], edges["ys"][i], strict=True)), label))
    return FlowLayout(boxes, tuple(routes), (), data["width"], data["height"], 0, True)


@pytest.mark.parametrize(("store", "hints", "size"), [(pipeline_store, HINTS, 8),
                                                      (wide_pipeline_store, LAYER_HINTS, 31)])
def test_the_diagram_of_a_pipeline_has_no_edge_through_a_box_and_no_overlapping_labels(store, hints, size):
    topology = _topology(store(), hints)
    assert len(topology.nodes) == size
    data = diagram_data(topology)
    layout = _layout_of(data)
    assert problems(layout) == []
    # Every edge is drawn, left to right in the data flow (these pipelines have no cycle).
    assert len(layout.routes) == len(topology.edges)
    for edge in topology.edges:
        assert layout.boxes[edge.source].x < layout.boxes[edge.target].x, edge
    # Text fits its box: a name and its second line (measured generously) within the box's inner width.
    for label, line in zip(data["nodes"]["label"], data["nodes"]["line"], strict=True):
        assert text_width(label, NAME_PX, bold=True) <= BOX_WIDTH - 2 * TEXT_PAD
        assert text_width(line, LINE_PX) <= BOX_WIDTH - 2 * TEXT_PAD
    for edges in (data["edges"], data["hint_edges"]):
        for rate, width in zip(edges["rate"], edges["lw"], strict=True):
            assert text_width(rate, EDGE_LABEL_PX) <= width or rate == ""
    # The figure is as large as the drawing, at one pixel per unit.
    assert max(b.right for b in layout.boxes.values()) < data["width"]
    assert max(b.bottom for b in layout.boxes.values()) < data["height"]


def test_the_wide_pipeline_is_in_data_flow_columns_with_its_layers_as_bands_in_order():
    topology = _topology(wide_pipeline_store(), LAYER_HINTS)
    data = diagram_data(topology)
    nodes = {data["nodes"]["id"][i]: {c: data["nodes"][c][i] for c in data["nodes"]} for i in
             range(len(data["nodes"]["id"]))}
    x = {node_id: node["x"] for node_id, node in nodes.items()}
    assert x["producer:web"] < x["topic:local/raw.orders"] < x["job:local/clean-orders"] < x["topic:local/clean.orders"]
    assert x["topic:local/clean.orders"] < x["job:local/agg_revenue"] < x["topic:local/agg_revenue"] < \
        x["group:local/billing"]
    bands = data["bands"]
    assert bands["name"] == ["bronze", "silver", "gold"]
    assert bands["colour"] == ["#b0652a", "#8c959f", "#c99a06"]
    left = [bx - w / 2 for bx, w in zip(bands["x"], bands["w"], strict=True)]
    right = [bx + w / 2 for bx, w in zip(bands["x"], bands["w"], strict=True)]
    assert right[0] < left[1] and right[1] < left[2]  # side by side, bronze to gold
    for i, name in enumerate(bands["name"]):
        top = bands["y"][i] - bands["h"][i] / 2
        bottom = bands["y"][i] + bands["h"][i] / 2
        for node in nodes.values():
            within = left[i] < node["x"] < right[i] and top < node["y"] < bottom
            assert within == (node["layer"] == name), (name, node["id"])
    assert bands["title"] == ["bronze · ok", "silver · error", "gold · error"]
    assert bands["line"] == ["freshness: unknown", "freshness: 1 min 35 s ago", "freshness: 2 h 2 min ago"]


def test_geometry_does_not_move_when_only_rates_and_states_change():
    store = wide_pipeline_store()
    first = diagram_data(_topology(store, LAYER_HINTS))
    snapshot = store.snapshot(("orders", "kafka"))[1]
    topics = {name: dataclasses.replace(info, produce_rate=1234.5) for name, info in snapshot.topics.items()}
    store.publish_snapshot(("orders", "kafka"), dataclasses.replace(snapshot, topics=topics), NOW + 5)
    second = diagram_data(_topology(store, LAYER_HINTS))
    assert second["nodes"]["line"] != first["nodes"]["line"]  # (the rates did change)
    for column in ("x", "y", "w", "h"):
        assert second["nodes"][column] == first["nodes"][column]
    assert second["edges"]["xs"] == first["edges"]["xs"] and second["edges"]["ys"] == first["edges"]["ys"]


def test_a_long_edge_bends_around_the_box_in_its_way():
    # a -> b -> c and a -> c: b sits in the straight line from a to c.
    nodes = [LayoutNode(n, 100, 40) for n in "abc"]
    layout = layered_layout(nodes, [LayoutEdge("a", "b"), LayoutEdge("b", "c"), LayoutEdge("a", "c", 60, 14)])
    assert problems(layout) == []
    long = next(r for r in layout.routes if (r.source, r.target) == ("a", "c"))
    assert len(long.points) > 4  # through a point in b's column (and its label's)
    box = layout.boxes["b"]
    assert not any(segment_hits_rect(p, q, box) for p, q in itertools.pairwise(long.points))
    assert long.label is not None and long.label.right < layout.boxes["c"].left


def test_crossing_reduction_untangles_a_twisted_order():
    # Given in an order that crosses (a1 -> b2, a2 -> b1 listed first): drawn without a crossing.
    nodes = [LayoutNode(n, 80, 30) for n in ("a1", "a2", "b2", "b1", "c1", "c2")]
    edges = [LayoutEdge("a1", "b1"), LayoutEdge("a2", "b2"), LayoutEdge("b1", "c2"), LayoutEdge("b2", "c1"),
             LayoutEdge("a1", "c2")]
    layout = layered_layout(nodes, edges)
    assert layout.crossings == 0
    assert problems(layout) == []


def test_a_cycle_is_drawn_with_every_arrow_ending_at_its_target():
    nodes = [LayoutNode(n, 80, 30) for n in ("topic", "job", "other")]
    edges = [LayoutEdge("topic", "job", 50, 14), LayoutEdge("job", "topic", 50, 14), LayoutEdge("job", "other")]
    layout = layered_layout(nodes, edges)
    assert problems(layout) == []
    back = next(r for r in layout.routes if r.source == "job" and r.target == "topic")
    assert back.points[-1][0] == layout.boxes["topic"].right  # enters the topic from the right, against the flow


def test_bands_that_contradict_the_edges_are_still_drawn():
    # A "gold" node feeding a "bronze" one: the bands cannot be side by side in their order.
    nodes = [LayoutNode("g", 80, 30, band=2), LayoutNode("b", 80, 30, band=0), LayoutNode("s", 80, 30, band=1)]
    layout = layered_layout(nodes, [LayoutEdge("g", "b"), LayoutEdge("b", "s")], [(60, 30)] * 3)
    assert not layout.bands_in_order
    assert problems(layout) == []
    assert len(layout.bands) == 3


def test_random_graphs_keep_every_promise():
    checked_bands = 0
    for seed in range(120):
        rnd = random.Random(seed)
        count = rnd.randint(2, 35)
        banded = seed % 2 == 1
        nodes = [LayoutNode(f"n{i}", rnd.choice([80, 150, 210]), rnd.choice([30, 44]),
                            band=min(i * 3 // count, 2) if banded and rnd.random() < 0.7 else None,
                            column=rnd.randint(0, 4)) for i in range(count)]
        edges = []
        for _ in range(rnd.randint(0, 2 * count)):
            a, b = rnd.sample(range(count), 2)
            if seed % 3 == 0 or a < b:  # every third graph has cycles
                edges.append(LayoutEdge(f"n{a}", f"n{b}", rnd.choice([0, 60, 110]), 14))
        layout = layered_layout(nodes, edges, [(rnd.choice([60, 300]), 36)] * 3 if banded else ())
        assert problems(layout) == [], seed
        if banded and layout.bands_in_order:
            checked_bands += 1
            assert band_problems(layout, nodes) == [], seed
    assert checked_bands >= 20


def test_text_is_cut_to_fit_with_an_ellipsis():
    assert fit("orders", 200, NAME_PX, bold=True) == "orders"
    cut = fit("a-very-long-topic-name-that-goes-on-and-on", 120, NAME_PX, bold=True)
    assert cut.endswith("…") and text_width(cut, NAME_PX, bold=True) <= 120
    assert fit("WWWWWWWWWWWWWWWWWWWWWWWWWWWW", 100, NAME_PX) .endswith("…")

"""The flow diagram view in-process: what its data sources hold, and that a refresh without news sends nothing."""

from __future__ import annotations

import dataclasses

from bokeh.document import Document

from apps.flow_view import FlowDiagram, flow_figure
from apps.palette import FLOW_COLOURS
from monitoring.topology import TopologyCache
from tests.flow_fixtures import HINTS, NOW, kafka_snapshot, pipeline_store


def _by_id(view: FlowDiagram) -> dict[str, dict]:
    data = view.models.nodes.data
    return {data["id"][i]: {c: data[c][i] for c in data} for i in range(len(data["id"]))}


def test_nodes_are_laid_out_left_to_right_coloured_and_labelled():
    view = FlowDiagram(pipeline_store(), "orders", HINTS, cache=TopologyCache())
    nodes = _by_id(view)
    xs = {kind: {n["x"] for n in nodes.values() if n["kind"] == kind} for kind in ("producer", "topic", "job", "group")}
    assert max(xs["producer"]) < min(xs["job"]) < max(xs["group"])
    assert nodes["topic:local/orders"]["x"] < nodes["job:local/enrich"]["x"] < nodes["topic:local/orders-enriched"]["x"]
    audit = nodes["group:local/audit"]
    assert (audit["state"], audit["colour"]) == ("error", FLOW_COLOURS["error"])
    assert nodes["job:local/enrich"]["rate"] == "in 50 / out 49 records/s"
    edges = view.models.edges.data
    assert ("topic:local/orders", "group:local/billing") in zip(edges["source"], edges["target"], strict=True)
    hinted = view.models.hint_edges.data
    assert set(zip(hinted["source"], hinted["target"], strict=True)) == {("producer:checkout", "topic:local/orders"),
                                                            ("job:local/enrich", "sink:warehouse.orders")}
    assert "hint from the config" in view.__panel__()[1].object  # the legend of colours and edge styles


def test_refresh_sends_nothing_without_news_and_patches_colours_in_place():
    store = pipeline_store()
    view = FlowDiagram(store, "orders", HINTS, cache=TopologyCache())
    doc = Document()
    doc.add_root(view.figure)
    sent: list = []
    doc.on_change(lambda event: sent.append(event))
    models_before = set(doc.models.ids) if hasattr(doc.models, "ids") else {m.id for m in doc.models}
    view.refresh()
    assert sent == [] and view.updates == 1

    # The audit group recovers: same nodes, one patch of the changed columns, no new models.
    snapshot = kafka_snapshot(NOW + 5)
    audit = dataclasses.replace(snapshot.groups[1], status=snapshot.groups[0].status, status_reason="caught up")
    store.publish_snapshot(("orders", "kafka"), dataclasses.replace(snapshot, groups=(snapshot.groups[0], audit)),
                           NOW + 5)
    view.refresh()
    assert view.updates == 2
    assert [type(e).__name__ for e in sent] == ["ColumnsPatchedEvent"]
    assert _by_id(view)["group:local/audit"]["state"] == "ok"
    assert {m.id for m in doc.models} == models_before


def test_standalone_figure_has_the_same_nodes_hover_and_zoom():
    store = pipeline_store()
    view = FlowDiagram(store, "orders", HINTS, cache=TopologyCache())
    figure = flow_figure(view.topology)
    source = figure.select_one({"name": "flow-nodes"})
    assert source.data["id"] == view.models.nodes.data["id"]
    tools = {type(t).__name__ for t in figure.tools}
    assert {"HoverTool", "WheelZoomTool"} <= tools


def test_pipeline_page_shows_the_diagram_after_the_health_bar():
    from apps.views import PipelinePage

    page = PipelinePage(pipeline_store(), "orders", [], flow_hints=HINTS)
    # Right after the health bar and the links into the sections.
    assert page._layout.objects[2][0][0].object is page.flow.figure
    page.refresh()
    assert "job:local/enrich" in page.flow.models.nodes.data["id"]


def test_report_button_builds_nothing_until_clicked_then_names_the_file_with_the_time():
    from apps.views import PipelinePage
    from tests.services import wait_until

    page = PipelinePage(pipeline_store(), "orders", [], flow_hints=HINTS)
    button = page.report.button
    assert button.data is None  # nothing built with the page
    page.report.window.value = "everything held"
    button._clicks += 1  # what a click does: the report is built on a worker thread
    wait_until(lambda: button.data is not None, 60, what="the report to be built")
    assert button.filename.startswith("pipewatch-report-") and button.filename.endswith(".html")
    assert button.data.startswith("data:text/html;base64,")

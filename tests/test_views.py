"""Views built in-process (no server): what a session's tables hold for a known snapshot."""

from __future__ import annotations

import math

from apps.views import KafkaLagView
from collectors.kafka.status import Status
from monitoring.health import CollectorHealth, State
from monitoring.models.kafka import GroupInfo, GroupTopic, KafkaSnapshot, Member, PartitionLag
from monitoring.store import Store


def _snapshot() -> KafkaSnapshot:
    billing = GroupInfo("billing", "Stable", "consumer",
                        (Member("m-1", "billing-1", "/10.0.0.7", (("orders", 0), ("orders", 1))),), 1,
                        (PartitionLag("orders", 0, 4, 10, 6, 0, 2.5, "interpolated", Status.OK, "ok",
                                      "billing-1@10.0.0.7"),
                         PartitionLag("orders", 1, 7, 7, 0, 0, 0.0, "caught_up", Status.OK, "caught up",
                                      "billing-1@10.0.0.7")),
                        Status.OK, "2 of 2 partitions OK")
    audit = GroupInfo("audit", "Empty", "consumer", (), 1,
                      (PartitionLag("orders", 0, 1, 10, 9, 0, math.nan, "unknown", Status.STOP,
                                    "no member is consuming"),),
                      Status.ERR, "orders[0] STOP: no member is consuming")
    return KafkaSnapshot("local", None, (), {}, (audit, billing),
                         {("billing", "orders"): GroupTopic("billing", "orders", 6, 2.5, 2.0, 3.0, 4, math.inf),
                          ("audit", "orders"): GroupTopic("audit", "orders", 9, math.nan, 0.0, math.inf, 1, 30.0)},
                         (), 7, 1000.0)


def _view() -> KafkaLagView:
    store = Store()
    store.set_health(CollectorHealth("orders", "kafka", "k:9092", 5.0, state=State.UP, last_success=1e12))
    store.publish_snapshot(("orders", "kafka"), _snapshot(), t=1000.0)
    return KafkaLagView(store, "orders", "kafka", "local")


def test_groups_partitions_and_retention_warning():
    view = _view()
    groups = view.groups.value.set_index("group")
    assert groups.loc["audit", "status"] == "ERR" and groups.loc["billing", "status"] == "OK"
    assert groups.loc["billing", "catch-up"] == 3.0 and math.isinf(groups.loc["audit", "catch-up"])
    assert list(view.partitions.value["lag"]) == [9, 6, 0]  # most lagging first, across groups
    assert "will be deleted before they are consumed in about 30 s" in view.status.text
    assert view.members.value.empty  # members are shown for a chosen group


def test_drilling_down_into_a_group_shows_its_partitions_and_members():
    view = _view()
    assert view.group_choice.options == ["all groups", "audit", "billing"]
    view.group_choice.value = "billing"
    assert list(view.partitions.value["group"]) == ["billing", "billing"]
    assert list(view.partitions.value["owner"]) == ["billing-1@10.0.0.7"] * 2
    (member,) = view.members.value.to_dict("records")
    assert member == {"member": "m-1", "client id": "billing-1", "host": "/10.0.0.7",
                      "partitions": "orders[0], orders[1]"}
    view.group_choice.value = "all groups"
    assert len(view.partitions.value) == 3


def test_live_table_pages_on_the_server_and_sends_a_page_only_when_it_changed():
    import numpy as np
    import pandas as pd

    from apps.format_templates import COUNT
    from apps.widgets import LiveTable

    table = LiveTable({"name": None, "lag": COUNT}, "t", page_size=20)
    frame = pd.DataFrame({"name": [f"p{i}" for i in range(45)], "lag": np.arange(45, 0, -1, dtype=float)})
    table.value = frame
    assert table.source.data["name"] == [f"p{i}" for i in range(20)]
    assert table.page_info.text == "rows 1&ndash;20 of 45" and table.next.visible and table.previous.disabled
    table.turn(+2)  # the last page: the rest of the rows
    assert table.source.data["name"] == [f"p{i}" for i in range(40, 45)]
    assert list(table.source.data["lag"]) == [5.0, 4.0, 3.0, 2.0, 1.0] and table.next.disabled
    shown, version = table.source.data, table.table.view.tags
    table.value = frame.copy()  # equal rows: nothing is sent
    assert table.source.data is shown and table.table.view.tags == version
    changed = frame.copy()
    changed.loc[44, "lag"] = np.nan
    table.value = changed
    assert np.isnan(table.source.data["lag"][-1]) and table.table.view.tags != version
    table.value = frame.head(3)  # fewer rows: back to the one page there is, pager hidden
    assert table.source.data["name"] == ["p0", "p1", "p2"] and not table.next.visible and table.page_info.text == ""


def test_pipeline_page_redraws_tables_every_few_seconds_and_at_once_on_a_health_change(monkeypatch):
    import dataclasses

    from apps import views
    from apps.views import PipelinePage

    view = _view()
    view.store.set_health(CollectorHealth("orders", "kafka", "k:9092", 60.0, state=State.UP, last_success=2000.0))
    page = PipelinePage(view.store, "orders", [])
    kafka = KafkaLagView(view.store, "orders", "kafka", "local")
    page.sections = [kafka]
    clock = [2000.0]
    monkeypatch.setattr(views.time, "time", lambda: clock[0])
    page.refresh()  # the first refresh draws everything
    assert list(kafka.partitions.value["lag"]) == [9, 6, 0]

    def publish(lag: int, t: float) -> None:
        snapshot = _snapshot()
        audit = snapshot.groups[0]
        audit = dataclasses.replace(audit, partitions=(dataclasses.replace(audit.partitions[0], lag=lag),))
        view.store.publish_snapshot(("orders", "kafka"),
                                    dataclasses.replace(snapshot, groups=(audit, snapshot.groups[1])), t=t)

    publish(12, 1001.0)
    clock[0] += 1
    page.refresh()  # one second later: charts only, the table still shows what it showed
    assert list(kafka.partitions.value["lag"]) == [9, 6, 0]
    clock[0] += views.DETAIL_SECONDS
    page.refresh()
    assert list(kafka.partitions.value["lag"]) == [12, 6, 0]
    publish(15, 1002.0)
    view.store.set_health(CollectorHealth("orders", "kafka", "k:9092", 60.0, state=State.DOWN, last_success=2000.0,
                                          last_error="connection refused"))
    clock[0] += 1
    page.refresh()  # a source went down: everything is redrawn at once
    assert list(kafka.partitions.value["lag"]) == [15, 6, 0]
    assert 'data-state="down"' in page.health.div.text


def test_live_chart_makes_line_slots_as_needed_and_indexes_them_as_bokeh_would():
    from bokeh.document import Document
    from bokeh.protocol import Protocol

    from apps.live import LiveChart

    store = Store()
    name = "kafka_consumergroup_group_max_lag_seconds"
    chart = LiveChart(store, "Lag", "seconds", lambda key: key[0] == name, lambda key: key[1][2], name="lag",
                      max_lines=3)
    document = Document()
    document.add_root(chart.figure)
    for group in ("billing", "audit"):
        document.models.flush_synced()  # as after the session's document (or its last update) went to the browser
        events = []

        def changed(event, events=events) -> None:
            events.append(event)

        document.on_change(changed)
        store.append(("orders", "kafka"), name, ("orders", "local", group), 5.0, t=1000.0)
        chart.refresh()
        indexed = dict(document.models._models)
        document.models.recompute()
        assert indexed.keys() == document.models._models.keys()  # what Bokeh's own full re-index finds, no more
        # The update to the browser carries the new models whole (a reference it does not know breaks the page).
        patch = Protocol().create("PATCH-DOC", events).content
        assert chart._slots[-1].source.id in {ref["id"] for ref in _definitions(patch)}
        document.remove_on_change(changed)
    assert [slot.key[1][2] for slot in chart._slots] == ["billing", "audit"]  # a slot per line, made as needed


def _definitions(value):
    """Every model definition (a dict with an id and attributes) in a serialized PATCH-DOC."""
    if isinstance(value, dict):
        if "id" in value and "attributes" in value:
            yield value
        for item in value.values():
            yield from _definitions(item)
    elif isinstance(value, list):
        for item in value:
            yield from _definitions(item)


def test_pipeline_page_has_a_section_per_declared_source_named_as_its_collector(tmp_path):
    """The page learns its sections from the config (monitoring.sources), not from collector objects: a mirror
    builds none and shows the same page. The summary links to each section; a section shows every source of its
    kind."""
    from pathlib import Path

    from apps.change_feed_view import ChangeFeedView
    from apps.dead_letter_view import DeadLetterView
    from apps.flink_view import FlinkView
    from apps.pages import SECTIONS, sections_of
    from apps.pipeline_overview import PipelineOverview
    from apps.profiling_view import ProfilingView
    from apps.registry_view import SchemaRegistryView
    from apps.views import PipelinePage
    from monitoring.config import load_config
    from monitoring.sources import declared_sources

    config = load_config(Path(__file__).resolve().parent.parent / "examples" / "full.yml", environ={})
    sources = declared_sources(config)
    assert sections_of(sources, "orders") == list(SECTIONS)
    summary = PipelinePage(Store(), "orders", sources, config.pipelines[0])
    # orders declares dead-letter topics: their chart follows the pipeline's overview.
    assert [type(s) for s in summary.sections] == [PipelineOverview, DeadLetterView]
    links = summary._layout.objects[1].object
    assert [f'href="?page=pipeline&amp;pipeline=orders&amp;section={kind}"' in links for kind in SECTIONS] == [
        True] * len(SECTIONS)
    pages = {kind: PipelinePage(Store(), "orders", sources, config.pipelines[0], section=kind) for kind in SECTIONS}
    try:
        assert [type(s) for kind in SECTIONS for s in pages[kind].sections] == [
            KafkaLagView, SchemaRegistryView, FlinkView, ProfilingView, ChangeFeedView]
        assert [s.source for kind in SECTIONS for s in pages[kind].sections] == [
            s.source for s in sources if s.pipeline == "orders"]
        clicks = PipelinePage(Store(), "clickstream", sources, config.pipelines[1], section="kafka")
        labels = [c.cluster_label for c in config.pipelines[1].kafka_clusters]
        assert [s.source for s in clicks.sections] == [("clickstream", f"kafka:{label}") for label in labels]
        deferred = PipelinePage(Store(), "orders", sources, config.pipelines[0], section="flink", defer=True)
        assert deferred.sections == [] and len(deferred._layout.objects) == 1  # the health bar, nothing built
        deferred.complete()
        assert [type(s) for s in deferred.sections] == [FlinkView]
    finally:
        for page in pages.values():
            page.close()

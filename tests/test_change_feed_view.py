"""The change-feed section built in-process, fed by the real reader on a real PostgreSQL."""

from __future__ import annotations

import io

import asyncpg
import pandas as pd
import panel as pn
from bokeh.document import Document

from apps.change_feed_view import ChangeFeedView, entity_colour
from collectors.change_feed.collector import ChangeFeedCollector
from monitoring.health import CollectorHealth, State
from monitoring.store import Store
from tests.test_change_feed import PIPELINE, _drain, _setup


async def test_live_table_filters_search_pause_and_export(postgres, pg_schema):
    feed = await _setup(postgres.dsn, pg_schema, rows_per_entity=3)
    store, collector = Store(), ChangeFeedCollector(PIPELINE, feed)
    writer = await asyncpg.connect(postgres.dsn)
    try:
        await collector.collect(store)
        view = ChangeFeedView(store, PIPELINE, collector.name, feed)
        for key in range(1, 5):
            await writer.execute(f'INSERT INTO "{pg_schema}".orders VALUES ($1, \'new\', 10, $2)', key,
                                 "<script>alert(1)</script>" if key == 4 else "ok")
        await writer.execute(f'INSERT INTO "{pg_schema}"."order items" (order_key, sku) VALUES (1, \'A-1\')')
        await writer.execute(f'UPDATE "{pg_schema}".orders SET status = \'paid\' WHERE order_key = 4')
        await _drain(store, collector, 6)
        store.set_health(CollectorHealth(PIPELINE, collector.name, "db", 0.5, state=State.UP, last_success=1e12))
        view.refresh()
        shown = view.shown()
        # Newest first, at most 3 per entity: orders 4 (update), 4, 3 and the one order item.
        assert list(zip(shown["entity"], shown["event"], shown["key"], strict=True)) == [
            ("Order", "update", "4"), ("Order Item", "insert", "1"), ("Order", "insert", "4"), ("Order", "insert", "3")]
        assert shown.iloc[0]["fields"] == "order_key=4, status=paid, total=10, note=<script>alert(1)</script>"
        assert '"note": "<script>alert(1)</script>"' in shown.iloc[0]["payload"]  # text, shown as such

        view.entity_filter.value = ["Order"]
        view.event_filter.value = ["insert"]
        assert list(view.shown()["key"]) == ["4", "3"]
        view.search.value = "SCRIPT"
        assert list(view.shown()["key"]) == ["4"]
        csv = pd.read_csv(io.StringIO(view.download.callback().getvalue()))
        assert list(csv.columns) == ["time", "entity", "event", "key", "fields", "payload"] and list(csv["key"]) == [4]
        view.entity_filter.value, view.event_filter.value, view.search.value = [], [], ""

        view.pause.value = True
        await writer.execute(f'INSERT INTO "{pg_schema}".orders VALUES (5, \'new\', 1, \'\')')
        await writer.execute(f'INSERT INTO "{pg_schema}".orders VALUES (6, \'new\', 1, \'\')')
        await _drain(store, collector, 8)
        view.refresh()
        assert "2 change(s) arrived while paused" in view.arrived.text
        assert "6" not in list(view.shown()["key"])  # frozen while paused
        view.pause.value = False
        assert list(view.shown()["key"])[:2] == ["6", "5"]

        view._slow_at = 0
        view.refresh()
        assert f"border-left:6px solid {entity_colour('Order')}" in view.cards.text
        assert 'data-state="up"' in view.status.text and "delay from change to delivery" in view.status.text
    finally:
        await writer.close()
        await collector.close()


async def test_new_changes_are_pushed_to_the_session_and_pages_turn(postgres, pg_schema):
    feed = await _setup(postgres.dsn, pg_schema, rows_per_entity=100)
    store, collector = Store(), ChangeFeedCollector(PIPELINE, feed)
    writer = await asyncpg.connect(postgres.dsn)
    doc = Document()
    previous, pn.state.curdoc = pn.state.curdoc, doc
    try:
        await collector.collect(store)
        view = ChangeFeedView(store, PIPELINE, collector.name, feed)
        view.go_live()
        for key in range(1, 31):
            await writer.execute(f'INSERT INTO "{pg_schema}".orders VALUES ($1, \'new\', 1, \'\')', key)
        await _drain(store, collector, 30)
        # The arrivals scheduled exactly one update on the session's loop (however many batches they came in).
        (pending,) = doc.session_callbacks
        assert list(view.shown()["key"]) == []
        pending.callback()
        assert list(view.shown()["key"]) == [str(key) for key in range(30, 5, -1)]  # a page: the newest 25
        assert view.page_info.text == "changes 1&ndash;25 of the 30 kept, newest first"
        assert (view.newer.disabled, view.older.disabled) == (True, False)
        view._turn(+1)
        assert list(view.shown()["key"]) == ["5", "4", "3", "2", "1"]
        assert (view.newer.disabled, view.older.disabled) == (False, True)
        view.close()
        await writer.execute(f'INSERT INTO "{pg_schema}".orders VALUES (31, \'new\', 1, \'\')')
        await _drain(store, collector, 31)
        assert doc.session_callbacks == []  # closed: nothing new scheduled (the update above ran and left)
    finally:
        pn.state.curdoc = previous
        await writer.close()
        await collector.close()


def test_entity_colours_are_stable_and_distinct_enough():
    assert entity_colour("Order") == entity_colour("Order")
    assert len({entity_colour(name) for name in ("Order", "Customer", "Part", "Line Item")}) >= 3

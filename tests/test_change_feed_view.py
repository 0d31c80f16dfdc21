"""The change-feed section built in-process, fed by the real reader on a real PostgreSQL."""

from __future__ import annotations

import io

import asyncpg
import pandas as pd

from apps.change_feed_view import ChangeFeedView, entity_colour
from collectors.change_feed import ChangeFeedCollector
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
        shown = view.table.value
        # Newest first, at most 3 per entity: orders 4 (update), 4, 3 and the one order item.
        assert list(zip(shown["entity"], shown["event"], shown["key"])) == [
            ("Order", "update", "4"), ("Order Item", "insert", "1"), ("Order", "insert", "4"), ("Order", "insert", "3")]
        assert shown.iloc[0]["fields"] == "order_key=4, status=paid, total=10, note=<script>alert(1)</script>"
        assert '"note": "<script>alert(1)</script>"' in shown.iloc[0]["payload"]  # text, shown as such

        view.entity_filter.value = ["Order"]
        view.event_filter.value = ["insert"]
        assert list(view.table.value["key"]) == ["4", "3"]
        view.search.value = "SCRIPT"
        assert list(view.table.value["key"]) == ["4"]
        csv = pd.read_csv(io.StringIO(view.download.callback().getvalue()))
        assert list(csv.columns) == ["time", "entity", "event", "key", "fields", "payload"] and list(csv["key"]) == [4]
        view.entity_filter.value, view.event_filter.value, view.search.value = [], [], ""

        view.pause.value = True
        await writer.execute(f'INSERT INTO "{pg_schema}".orders VALUES (5, \'new\', 1, \'\')')
        await writer.execute(f'INSERT INTO "{pg_schema}".orders VALUES (6, \'new\', 1, \'\')')
        await _drain(store, collector, 8)
        view.refresh()
        assert "2 change(s) arrived while paused" in view.arrived.object
        assert "6" not in list(view.table.value["key"])  # frozen while paused
        view.pause.value = False
        assert list(view.table.value["key"])[:2] == ["6", "5"]

        view._slow_at = 0
        view.refresh()
        assert f"border-left:6px solid {entity_colour('Order')}" in view.cards.object
        assert 'data-state="up"' in view.status.object and "delay from change to delivery" in view.status.object
    finally:
        await writer.close()
        await collector.close()


def test_entity_colours_are_stable_and_distinct_enough():
    assert entity_colour("Order") == entity_colour("Order")
    assert len({entity_colour(name) for name in ("Order", "Customer", "Part", "Line Item")}) >= 3

"""The schema-registry section built in-process (no server), fed by the real collector and the stand-in."""

from __future__ import annotations

import math

from apps.registry_view import SchemaRegistryView
from monitoring.health import State
from tests.schema_registry_standin import SchemaRegistryStandIn
from tests.test_schema_registry import AVRO, PIPELINE, _run, _seed, _supervised


async def test_subjects_settings_changes_and_down_state_are_shown():
    standin = SchemaRegistryStandIn().start()
    try:
        _seed(standin)
        store, collector = _supervised(standin, inventory_refresh_seconds=10)
        await _run(store, collector)
        view = SchemaRegistryView(store, PIPELINE, collector.name, "main")

        rows = view.subjects.value.set_index("subject")
        assert list(rows.index) == ["audit-value", "inventory-value", "orders-value"]
        assert rows.loc["orders-value", "versions"] == 2 and rows.loc["orders-value", "latest id"] == 2
        assert rows.loc["inventory-value", "type"] == "JSON"
        assert rows.loc["inventory-value", "compatibility"] == "NONE"
        assert rows.loc["orders-value", "compatibility"] == "BACKWARD (global)"
        assert "3 subjects" in view.status.text and "global compatibility <b>BACKWARD</b>" in view.status.text
        assert "1 subject(s) with compatibility NONE: inventory-value" in view.status.text
        assert view.changes.value.empty

        standin.register("payments-value", AVRO)
        await _run(store, collector)
        view.refresh()
        assert list(view.changes.value["change"]) == [
            "main: subject payments-value registered: version 1 (schema id 1, AVRO)"]
        assert len(view.subjects.value) == 4

        standin.failure = (500, 50001, "Error in the backend data store")
        await _run(store, collector)
        assert store.health()[collector.source].state is State.DOWN
        view.refresh()
        assert "<b>DOWN</b>: server_error: RegistryError: GET /: HTTP 500, error 50001" in view.status.text
        assert "STALE" in view.status.text and view.subjects.styles == {"opacity": "0.5"}
        assert view.changes.value["change"][0].startswith("schema_registry collector for")
        lines = {slot.renderer.name: slot for slot in view.errors_chart._slots if slot.key is not None}
        assert list(lines) == ["500 / 50001"]
        assert not math.isnan(lines["500 / 50001"].source.data["y"][-1])
    finally:
        standin.stop()

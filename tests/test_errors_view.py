"""The errors page built in-process (no server): rows, order, filters, the count line, quiet ticks."""

from __future__ import annotations

from apps.errors_view import ALL, ErrorsPage
from monitoring.store import Store


def _store() -> Store:
    store = Store()
    store.record_error("orders", "kafka", "connection_refused",
                       "ConnectionRefusedError: no bootstrap server reachable (127.0.0.1:9: connection refused)",
                       target="127.0.0.1:9", t=1_000.0)
    store.record_error("orders", "kafka", "connection_refused",
                       "ConnectionRefusedError: no bootstrap server reachable (127.0.0.1:9: connection refused)",
                       target="127.0.0.1:9", t=1_030.0)
    store.record_error("catalog", "schema_registry", "server_error",
                       "RegistryError: GET /subjects/orders-value/versions/latest: HTTP 500, error 50002: Operation "
                       "timed out", "warning", "http://registry:8081", t=1_010.0)
    store.record_error("catalog", "flink", "user code: arithmetic",
                       "job etl: map (1/1): java.lang.ArithmeticException: / by zero", hint="guard the divisor",
                       t=1_020.0)
    return store


def test_rows_newest_last_seen_first_with_every_column():
    page = ErrorsPage(_store(), ["orders", "catalog"])
    rows = page.table.value
    assert list(rows.columns) == ["pipeline", "component", "severity", "category", "first seen", "last seen", "count",
                                  "message", "hint"]
    assert list(rows["component"]) == ["kafka", "flink", "schema_registry"]
    kafka = rows.iloc[0]
    assert (kafka["first seen"], kafka["last seen"], kafka["count"]) == (
        "1970-01-01 00:16:40", "1970-01-01 00:17:10", 2)
    assert kafka["hint"] == ("Nothing accepts connections at 127.0.0.1:9: check the host and port in the config and "
                             "that the service is running and listening there.")
    assert rows.iloc[1]["hint"] == "guard the divisor"
    assert 'data-shown="3"' in page.count_line.object and 'data-occurrences="4"' in page.count_line.object


def test_filters_by_pipeline_component_and_severity():
    page = ErrorsPage(_store(), ["orders", "catalog"])
    assert page.component_filter.options == [ALL, "flink", "kafka", "schema_registry"]
    page.severity_filter.value = "warning"
    assert list(page.table.value["component"]) == ["schema_registry"]
    page.severity_filter.value = ALL
    page.pipeline_filter.value = "catalog"
    assert list(page.table.value["component"]) == ["flink", "schema_registry"]
    page.component_filter.value = "kafka"
    assert page.table.value.empty
    assert 'data-shown="0"' in page.count_line.object and 'data-total="3"' in page.count_line.object


def test_a_quiet_tick_redraws_nothing_and_a_new_occurrence_does():
    store = _store()
    page = ErrorsPage(store, ["orders", "catalog"])
    shown = page.table.value
    page.refresh()
    assert page.table.value is shown  # nothing recorded since: the same frame, nothing sent
    store.record_error("orders", "kafka", "connection_refused",
                       "ConnectionRefusedError: no bootstrap server reachable (127.0.0.1:9: connection refused)",
                       target="127.0.0.1:9", t=1_040.0)
    page.refresh()
    assert page.table.value.iloc[0]["count"] == 3


def test_an_empty_registry_says_so():
    page = ErrorsPage(Store(), ["orders"])
    assert page.table.value.empty and "No errors seen since pipewatch started." in page.count_line.object

"""The profiling section built in-process (no server), fed by the real collector reading a real PostgreSQL."""

from __future__ import annotations

import io
import json

import asyncpg
import numpy as np
import pandas as pd
import panel as pn

from apps.profiling_view import DRIFT_COLUMNS, RUN_COLUMNS, ProfilingView
from monitoring.store import Store
from tests.profiling_util import ProfilerTables
from tests.test_profiling import PIPELINE, _collector, _seed


async def _view(postgres, schema: str) -> tuple[ProfilingView, dict[str, str]]:
    connection = await asyncpg.connect(postgres.dsn)
    try:
        runs = await _seed(await ProfilerTables(connection, schema).create())
    finally:
        await connection.close()
    store = Store()
    collector = _collector(postgres.dsn, schema)
    try:
        await collector.collect(store)
    finally:
        await collector.close()
    return ProfilingView(store, PIPELINE, "profiling"), runs


def _download(widget) -> str:
    return widget.callback().getvalue()


async def test_kpi_tiles_filters_detail_and_table_state(postgres, pg_schema):
    view, runs = await _view(postgres, pg_schema)
    tiles = view.kpis.object
    assert 'data-kpi="runs" data-value="4.0"' in tiles and "+2 vs the 24 h before" in tiles
    assert 'data-kpi="failure rate" data-value="0.25"' in tiles and "25.0%" in tiles
    assert "+25.0 points vs the 24 h before" in tiles
    assert 'data-kpi="stale tables" data-value="2.0"' in tiles

    assert list(view.runs.value["run id"]) == [runs[k] for k in ("o1", "o2", "o3", "c1", "c2", "o4")]
    view.status_filter.value = ["failed"]
    assert list(view.runs.value["run id"]) == [runs["o3"]]
    view.status_filter.value = []
    view.dataset_filter.value = ["customers"]
    view.period.value = "last 24 hours"
    assert list(view.runs.value["run id"]) == [runs["c1"]]
    view.dataset_filter.value = []
    assert list(view.runs.value["dataset"]) == ["orders", "orders", "orders", "customers"]
    view.period.value = "everything kept"

    view.runs.selection = [0]  # o1: its column metrics
    assert set(view.run_detail.value["metric"]) == {"null_ratio", "mean", "histogram"}
    assert view.run_detail_title.object == (f'<p class="pw-run-title">Column metrics of run <code>{runs["o1"]}</code> '
                                            "of <code>orders</code></p>")

    view.severity_filter.value = ["high"]
    assert list(view.drift.value["severity"]) == ["high"]
    assert view.drift.value.iloc[0]["baseline"] == 40.0 and view.drift.value.iloc[0]["current"] == 50.5
    assert "orders (2)" in view.top_drift.object and "orders.amount (2)" in view.top_drift.object

    state = view.tables.value.set_index("table")
    assert state.loc["products", "freshness"] == "never profiled"
    assert state.loc["customers", "freshness"] == "STALE" and state.loc["orders", "freshness"] == "fresh"
    assert state.loc["customers", "decision"] == "skip" and state.loc["orders", "bytes scanned"] == 4096

    assert (view.history_dataset.value, view.history_column.value) == ("orders", "amount")
    assert view.history_metric.options == ["mean", "null_ratio"]
    assert view.history.object is not None and view.per_day.object is not None


async def test_exports_round_trip_to_what_the_page_shows(postgres, pg_schema):
    view, _ = await _view(postgres, pg_schema)
    view.dataset_filter.value = ["orders"]
    downloads = {w.filename: w for w in view._layout.select(pn.widgets.FileDownload)}
    shown_runs = view.runs.value.replace({None: np.nan})
    assert list(shown_runs.columns) == RUN_COLUMNS and len(shown_runs) == 4
    from_csv = pd.read_csv(io.StringIO(_download(downloads["runs.csv"])))
    pd.testing.assert_frame_equal(from_csv, shown_runs, check_dtype=False)
    from_json = pd.DataFrame(json.loads(_download(downloads["runs.json"])), columns=RUN_COLUMNS).replace({None: np.nan})
    pd.testing.assert_frame_equal(from_json, shown_runs, check_dtype=False)

    shown_drift = view.drift.value.replace({None: np.nan})
    assert list(shown_drift.columns) == DRIFT_COLUMNS and len(shown_drift) == 3
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(_download(downloads["drift.csv"]))), shown_drift,
                                  check_dtype=False)
    from_json = pd.DataFrame(json.loads(_download(downloads["drift.json"])), columns=DRIFT_COLUMNS)
    pd.testing.assert_frame_equal(from_json.replace({None: np.nan}), shown_drift, check_dtype=False)

"""Profiling and drift for one pipeline: KPI tiles, runs, drift alerts, metric trends, table state.

The live parts (tiles, tables) follow the collector's snapshot; the analytical charts (runs and
drift per day, a column metric's history) are hvplot figures, re-drawn only when their data change.
Exports hand over exactly the rows the tables show, as CSV or JSON.
"""

from __future__ import annotations

import io
import math
import time
from datetime import UTC, datetime

import hvplot.pandas  # noqa: F401 - registers DataFrame.hvplot
import numpy as np
import pandas as pd
import panel as pn
from panel.viewable import Viewer

from apps.escape import choice_options, esc, plain, spreadsheet_safe
from apps.format_templates import COUNT, value_axis
from apps.palette import DRIFT_COLOURS, QUIET, RUN_STATUS_COLOURS, WARNING_TEXT, text_colour
from apps.theme import TOOLBAR_CSS
from apps.widgets import LiveHTML, SnapshotSection, dim, freshness, table
from monitoring.format import age
from monitoring.models.profiling import Kpi, ProfilingSnapshot, Run, TableState
from monitoring.store import Store

RUN_COLUMNS = ["run id", "dataset", "schema", "profiled at", "environment", "status", "rows", "columns"]
DRIFT_COLUMNS = ["time", "table", "column", "metric", "baseline", "current", "change %", "severity"]
_METRIC_COLUMNS = {"column": None, "type": None, "metric": None, "value": None}
_STATE_COLUMNS = {"schema": None, "table": None, "decision": None, "reason": None, "last profiled": None,
                  "freshness": None, "staleness score": COUNT, "rows": COUNT, "bytes scanned": COUNT, "snapshot": None}
_STATUS_COLOURS = RUN_STATUS_COLOURS
_SEVERITY_COLOURS = DRIFT_COLOURS
_OTHER_COLOUR = QUIET
_NO_RUN = "<p class='pw-run-title'>Select a run to see its column metrics.</p>"
_PERIODS = {"last 24 hours": 86_400.0, "last 7 days": 7 * 86_400.0, "last 30 days": 30 * 86_400.0,
            "everything kept": math.inf}


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ProfilingView(SnapshotSection, Viewer):
    _snapshot: ProfilingSnapshot | None = None

    def __init__(self, store: Store, pipeline: str, collector: str, **params) -> None:
        super().__init__(**params)
        self.store, self.pipeline = store, pipeline
        self.source = (pipeline, collector)
        self.status = LiveHTML("", name="profiling-status", sizing_mode="stretch_width")
        self.kpis = pn.pane.HTML("", name="profiling-kpis", sizing_mode="stretch_width")
        self.per_day = pn.pane.HoloViews(None, sizing_mode="stretch_width", height=260)
        self.drift_per_day = pn.pane.HoloViews(None, sizing_mode="stretch_width", height=260)
        self._per_day_data: tuple = ()

        self.dataset_filter = pn.widgets.MultiChoice(label="Dataset", options=[], width=260)
        self.status_filter = pn.widgets.MultiChoice(label="Status", options=[], width=200)
        self.environment_filter = pn.widgets.MultiChoice(label="Environment", options=[], width=200)
        self.period = pn.widgets.Select(label="Time range", options=list(_PERIODS), value="everything kept", width=160)
        self.runs = table(dict.fromkeys(RUN_COLUMNS) | {"rows": COUNT, "columns": COUNT}, "runs-table", page_size=15)
        self.runs.selectable = 1
        self.run_detail_title = pn.pane.HTML(_NO_RUN, name="run-detail-title", sizing_mode="stretch_width")
        self.run_detail = table(_METRIC_COLUMNS, "run-detail-table", page_size=20)
        self.severity_filter = pn.widgets.MultiChoice(label="Severity", options=[], width=260)
        self.drift = table(dict.fromkeys(DRIFT_COLUMNS), "drift-table", page_size=15)
        self.top_drift = pn.pane.HTML("", name="top-drift", sizing_mode="stretch_width")
        self.tables = table(_STATE_COLUMNS, "table-state-table", page_size=15)

        self.history_dataset = pn.widgets.Select(label="Dataset", options=[], width=200)
        self.history_column = pn.widgets.Select(label="Column", options=[], width=200)
        self.history_metric = pn.widgets.Select(label="Metric", options=[], width=200)
        self.history = pn.pane.HoloViews(None, sizing_mode="stretch_width", height=300)
        self._history_generation = -1
        self._history_drawn: tuple | None = None

        exports = [
            pn.widgets.FileDownload(callback=lambda: self._export(self.runs_frame(), "csv"), filename="runs.csv",
                                    label="Runs as CSV", width=160),
            pn.widgets.FileDownload(callback=lambda: self._export(self.runs_frame(), "json"), filename="runs.json",
                                    label="Runs as JSON", width=160),
            pn.widgets.FileDownload(callback=lambda: self._export(self.drift_frame(), "csv"), filename="drift.csv",
                                    label="Drift alerts as CSV", width=180),
            pn.widgets.FileDownload(callback=lambda: self._export(self.drift_frame(), "json"), filename="drift.json",
                                    label="Drift alerts as JSON", width=180),
        ]
        for widget in (self.dataset_filter, self.status_filter, self.environment_filter, self.period):
            widget.param.watch(lambda _: self._render_runs(), "value")
        self.severity_filter.param.watch(lambda _: self._render_drift(), "value")
        self.runs.param.watch(lambda _: self._render_run_detail(), "selection")
        self.history_dataset.param.watch(lambda _: self._history_options(), "value")
        self.history_column.param.watch(lambda _: self._history_options(), "value")
        self.history_metric.param.watch(lambda _: self._draw_history(), "value")

        self._layout = pn.Column(
            pn.pane.Markdown("### Profiling and drift"),
            pn.pane.Bokeh(self.status.model, sizing_mode="stretch_width"), self.kpis,
            pn.Row(self.per_day, self.drift_per_day, sizing_mode="stretch_width"),
            pn.pane.Markdown("#### Runs"),
            pn.Row(self.dataset_filter, self.status_filter, self.environment_filter, self.period),
            self.runs, self.run_detail_title, self.run_detail,
            pn.pane.Markdown("#### Drift alerts"), self.severity_filter, self.drift, self.top_drift,
            pn.Row(*exports),
            pn.pane.Markdown("#### Column metric history"),
            pn.Row(self.history_dataset, self.history_column, self.history_metric), self.history,
            pn.pane.Markdown("#### Table state"), self.tables,
            sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    # -- every tick -------------------------------------------------------------------------------

    def refresh(self, detail: bool = True) -> None:
        """Profiling has no live charts: everything it shows is detail (see views.DETAIL_SECONDS)."""
        if not detail:
            return
        now = time.time()
        shown = self._follow_snapshot(now)
        health = self.store.health().get(self.source)
        text, stale = freshness("profiling", shown, health, now)
        if self._snapshot is not None:
            text += "".join(f'<div class="pw-note" style="color:{text_colour(WARNING_TEXT)}">{esc(n)}</div>'
                            for n in self._snapshot.notes)
        self.status.text = text  # a Bokeh property set to its own value sends nothing
        dim((self.runs, self.drift, self.tables), stale)
        if self.store.series_generation != self._history_generation:
            self._history_generation = self.store.series_generation
            self._history_options()
        else:
            self._draw_history()

    def _render(self, now: float) -> None:
        snapshot = self._snapshot
        self.kpis.object = _kpi_tiles(snapshot.kpis, snapshot.kpi_period_seconds)
        runs = snapshot.runs
        _set_options(self.dataset_filter, sorted({r.dataset for r in runs}))
        _set_options(self.status_filter, sorted({r.status for r in runs}))
        _set_options(self.environment_filter, sorted({r.environment or "unknown" for r in runs}))
        _set_options(self.severity_filter, sorted({e.severity for e in snapshot.drift_events}))
        self._render_runs()
        self._render_drift()
        self.top_drift.object = (
            "<b>Top drifting tables</b>: " + (", ".join(f"{esc(t or '(no table)')} ({n:,})"
                                                       for t, n in snapshot.top_drifting_tables) or "none")
            + " &middot; <b>columns</b>: " + (", ".join(f"{esc(t)}.{esc(c)} ({n:,})"
                                                       for t, c, n in snapshot.top_drifting_columns) or "none"))
        fresh = {(f.schema, f.table): f.fresh for f in snapshot.freshness}
        tables = pd.DataFrame([_state_row(s, fresh[(s.schema, s.table)], now) for s in snapshot.table_state]
                              if snapshot.table_state is not None else [
            {"schema": f.schema or "", "table": f.table, "decision": "unknown (no table_state)", "reason": "",
             "last profiled": age(f.last_profiled_at, now), "freshness": "fresh" if f.fresh else "STALE",
             "staleness score": np.nan, "rows": np.nan, "bytes scanned": np.nan, "snapshot": ""}
            for f in snapshot.freshness], columns=list(_STATE_COLUMNS))
        if not _same_frame(tables, self.tables.value):
            self.tables.value = tables
        self._draw_per_day()

    # -- runs and drift -------------------------------------------------------------------------

    def runs_frame(self) -> pd.DataFrame:
        """The runs the table shows (filters applied), newest first: what the exports hand over."""
        if self._snapshot is None:
            return pd.DataFrame(columns=RUN_COLUMNS)
        since = time.time() - _PERIODS[self.period.value]
        datasets, statuses, environments = (set(w.value) for w in (self.dataset_filter, self.status_filter,
                                                                    self.environment_filter))
        rows = [_run_row(r) for r in reversed(self._snapshot.runs)
                if r.profiled_at >= since and (not datasets or r.dataset in datasets)
                and (not statuses or r.status in statuses)
                and (not environments or (r.environment or "unknown") in environments)]
        return pd.DataFrame(rows, columns=RUN_COLUMNS)

    def drift_frame(self) -> pd.DataFrame:
        if self._snapshot is None:
            return pd.DataFrame(columns=DRIFT_COLUMNS)
        severities = set(self.severity_filter.value)
        rows = [{"time": iso(e.time), "table": e.table, "column": e.column, "metric": e.metric,
                 "baseline": _float(e.baseline), "current": _float(e.current), "change %": _float(e.change_percent),
                 "severity": e.severity}
                for e in reversed(self._snapshot.drift_events) if not severities or e.severity in severities]
        return pd.DataFrame(rows, columns=DRIFT_COLUMNS)

    def _render_runs(self) -> None:
        """The runs table, when what it shows changed (a new snapshot with the same runs changes nothing); the run
        the user selected stays selected (and its detail shown) while the table still shows it."""
        frame = self.runs_frame()
        if _same_frame(frame, self.runs.value):
            return
        shown = self.runs.value
        chosen = ([tuple(shown.iloc[i][["run id", "dataset"]]) for i in self.runs.selection if i < len(shown)]
                  if self.runs.selection else [])
        self.runs.value = frame
        keys = list(zip(frame["run id"], frame["dataset"], strict=True))
        self.runs.selection = [keys.index(key) for key in chosen if key in keys]

    def _render_drift(self) -> None:
        frame = self.drift_frame()
        if not _same_frame(frame, self.drift.value):
            self.drift.value = frame

    def _render_run_detail(self) -> None:
        if not self.runs.selection or self._snapshot is None:
            self.run_detail_title.object = _NO_RUN
            self.run_detail.value = pd.DataFrame(columns=list(_METRIC_COLUMNS))
            return
        row = self.runs.value.iloc[self.runs.selection[0]]
        metrics = self._snapshot.metrics_by_run.get((row["run id"], row["dataset"]))
        run = f"<code>{esc(row['run id'])}</code> of <code>{esc(row['dataset'])}</code>"
        if metrics is None:
            self.run_detail_title.object = (f'<p class="pw-run-title">Run {run}: its column metrics are not '
                                            "kept (only the newest runs' are, see runs_with_metrics).</p>")
            metrics = ()
        else:
            self.run_detail_title.object = f'<p class="pw-run-title">Column metrics of run {run}</p>'
        self.run_detail.value = pd.DataFrame(
            [{"column": m.column, "type": m.column_type or "", "metric": m.metric, "value": m.value or ""}
             for m in metrics], columns=list(_METRIC_COLUMNS))

    @staticmethod
    def _export(frame: pd.DataFrame, kind: str) -> io.StringIO:
        if kind == "csv":
            return io.StringIO(spreadsheet_safe(frame).to_csv(index=False))
        return io.StringIO(frame.to_json(orient="records"))

    # -- charts ---------------------------------------------------------------------------------

    def _draw_per_day(self) -> None:
        snapshot = self._snapshot
        data = (tuple(sorted(snapshot.runs_per_day.items())), tuple(sorted(snapshot.drift_per_day.items())))
        if data == self._per_day_data:
            return
        self._per_day_data = data
        runs = pd.DataFrame([(day, status, n) for (day, status), n in data[0]], columns=["day", "status", "runs"])
        drift = pd.DataFrame([(day, severity, n) for (day, severity), n in data[1]],
                             columns=["day", "severity", "events"])
        self.per_day.object = (runs.hvplot.bar(
            x="day", y="runs", by="status", stacked=True, rot=45, title="Runs per day (UTC) by status",
            responsive=True, cmap=_colours(runs["status"], _STATUS_COLOURS)).opts(hooks=[_themed, _counted])
            if not runs.empty else None)
        self.drift_per_day.object = (drift.hvplot.bar(
            x="day", y="events", by="severity", stacked=True, rot=45, title="Drift events per day (UTC) by severity",
            responsive=True, cmap=_colours(drift["severity"], _SEVERITY_COLOURS)).opts(hooks=[_themed, _counted])
            if not drift.empty else None)

    def _history_keys(self) -> list[tuple[str, str, str]]:
        return sorted(key[1][1:] for key in self.store.keys(
            "profiling_column_metric", where=lambda key: key[1][0] == self.pipeline))

    def _history_options(self) -> None:
        keys = self._history_keys()
        _set_choice(self.history_dataset, sorted({k[0] for k in keys}))
        _set_choice(self.history_column, sorted({k[1] for k in keys if k[0] == self.history_dataset.value}))
        _set_choice(self.history_metric, sorted({k[2] for k in keys if k[:2] == (self.history_dataset.value,
                                                                                  self.history_column.value)}))
        self._draw_history()

    def _draw_history(self) -> None:
        chosen = (self.history_dataset.value, self.history_column.value, self.history_metric.value)
        if None in chosen:
            return
        delta = self.store.since(("profiling_column_metric", (self.pipeline, *chosen)))
        if delta is None or (chosen, delta.count) == self._history_drawn:
            return
        self._history_drawn = (chosen, delta.count)
        # The metric's name (the profiler's data) is the axis label, never a column name: HoloViews would read
        # it as a dimension spec.
        frame = pd.DataFrame({"profiled at": pd.to_datetime(delta.times, unit="s"), "value": delta.values})
        title = ".".join(chosen[:2]) + ": " + chosen[2]
        self.history.object = (frame.sort_values("profiled at").hvplot.line(
            x="profiled at", y="value", title=title, ylabel=chosen[2], responsive=True,
        ) * frame.hvplot.scatter(x="profiled at", y="value", responsive=True)).opts(hooks=[_themed, _as_written])
        # (responsive parts: fixed-size ones would warn)


def _themed(plot, _element) -> None:
    """HoloViews' hook: the chart's toolbar in the theme's colours, as every other chart's."""
    plot.state.toolbar.stylesheets = [TOOLBAR_CSS]


def _as_written(plot, _element) -> None:
    """HoloViews' hook: the title and axis labels hold the profiler's names, drawn as written (never read as TeX)."""
    figure = plot.state
    if isinstance(figure.title.text, str):
        figure.title.text = plain(figure.title.text)
    for axis in (*figure.xaxis, *figure.yaxis):
        if isinstance(axis.axis_label, str):
            axis.axis_label = plain(axis.axis_label)


def _counted(plot, _element) -> None:
    """HoloViews' hook: a chart of counts (runs, events per day) ticks whole numbers, written as counts."""
    value_axis(plot.state, "count")


def _run_row(run: Run) -> dict[str, object]:
    return {"run id": run.run_id, "dataset": run.dataset, "schema": run.schema, "profiled at": iso(run.profiled_at),
            "environment": run.environment, "status": run.status, "rows": _float(run.row_count),
            "columns": _float(run.column_count)}


def _state_row(state: TableState, fresh: bool, now: float) -> dict[str, object]:
    return {"schema": state.schema, "table": state.table, "decision": state.decision or "unknown",
            "reason": state.reason or "", "last profiled": age(state.last_profiled_at, now),
            "freshness": "never profiled" if state.last_profiled_at is None else "fresh" if fresh else "STALE",
            "staleness score": _float(state.staleness_score), "rows": _float(state.row_count),
            "bytes scanned": _float(state.bytes_scanned), "snapshot": state.snapshot_id or ""}


def _colours(categories: pd.Series, known: dict[str, str]) -> dict[str, str]:
    return {category: known.get(category, _OTHER_COLOUR) for category in categories.unique()}


def _same_frame(new: pd.DataFrame, shown: pd.DataFrame) -> bool:
    """Whether a table would show the same rows: a Tabulator sends a new value whole, equal or not (and the
    browser redraws it)."""
    return new.shape == shown.shape and list(new.columns) == list(shown.columns) and new.equals(shown)


def _float(value: float | int | None) -> float:
    return np.nan if value is None else float(value)


def _set_options(widget, options: list[str]) -> None:
    labelled = choice_options(options)
    if widget.options != labelled:
        widget.options = labelled
        widget.value = [v for v in widget.value if v in options]


def _set_choice(widget, options: list[str]) -> None:
    if list(widget.options) != options:
        widget.options = options
    if widget.value not in options:
        widget.value = options[0] if options else None


def _kpi_tiles(kpis: tuple[Kpi, ...], period: float) -> str:
    hours = f"{period / 3600:g} h"
    tiles = []
    for kpi in kpis:
        ratio = kpi.unit == "ratio"
        value = "unknown" if kpi.value is None else f"{kpi.value:.1%}" if ratio else f"{kpi.value:,.0f}"
        change = kpi.change
        if not kpi.over_period:
            detail = ""
        elif change is None:
            detail = f"no earlier {hours} to compare" if kpi.previous is None else ""
        else:
            detail = (f"{change * 100:+.1f} points" if ratio else f"{change:+,.0f}") + f" vs the {hours} before"
        tiles.append(
            f'<div class="pw-kpi" data-kpi="{esc(kpi.name)}" data-value="{esc("" if kpi.value is None else kpi.value)}"'
            f' style="display:inline-block;min-width:150px;margin:4px 8px 4px 0;padding:6px 10px;'
            f'border:1px solid #d0d7de;border-radius:6px"><div style="opacity:.7">{esc(kpi.name)} '
            f'({esc("last " + hours if kpi.over_period else "now")})</div>'
            f'<div class="pw-kpi-value" style="font-size:1.6em;font-weight:bold">{value}</div>'
            f'<div class="pw-kpi-change" style="opacity:.8">{detail}</div></div>')
    return "".join(tiles)

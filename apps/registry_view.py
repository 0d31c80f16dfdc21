"""A schema registry for one pipeline: status and latency, subjects, recent changes."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import panel as pn
from panel.viewable import Viewer

from apps.escape import esc
from apps.format_templates import COUNT
from apps.live import LiveChart
from apps.palette import ERROR, WARNING_TEXT, text_colour
from apps.widgets import LiveHTML, LiveTable, SnapshotSection, dim, freshness, shared_frame
from monitoring.format import clock
from monitoring.health import State
from monitoring.models.schema_registry import RegistrySnapshot, Subject
from monitoring.store import Store

CHANGES_SHOWN = 50
"""Recent changes kept in the table; the store's event log holds more."""
_WARN = WARNING_TEXT
_SUBJECT_COLUMNS = {
    "subject": None, "versions": COUNT, "latest version": COUNT, "latest id": COUNT, "type": None,
    "compatibility": None, "mode": None, "read": None, "error": None,
}
_CHANGE_COLUMNS = {"time": None, "severity": None, "change": None}


class SchemaRegistryView(SnapshotSection, Viewer):
    def __init__(self, store: Store, pipeline: str, collector: str, registry: str, **params) -> None:
        super().__init__(**params)
        self.store, self.pipeline, self.collector = store, pipeline, collector
        self.source = (pipeline, collector)
        mine = (pipeline, registry)
        self.latency_chart = LiveChart(
            store, "Registry latency (seconds)", "seconds",
            select=lambda k: k[0] == "schema_registry_request_duration_seconds" and k[1][:2] == mine,
            label=lambda k: f"GET {k[1][2]}", name="registry-latency-chart",
        )
        self.errors_chart = LiveChart(
            store, "Failed requests since start, by HTTP status and error code",
            "requests",
            select=lambda k: k[0] == "schema_registry_errors_total" and k[1][:2] == mine,
            label=lambda k: k[1][2] + (f" / {k[1][3]}" if k[1][3] else ""), name="registry-errors-chart",
        )
        self.charts = (self.latency_chart, self.errors_chart)
        self.status = LiveHTML("", name="registry-status", sizing_mode="stretch_width")
        self.subjects = LiveTable(_SUBJECT_COLUMNS, "subjects-table", page_size=15)
        self.changes = LiveTable(_CHANGE_COLUMNS, "registry-changes-table", page_size=10)
        self._summary = ""
        self._event_seq = 0
        self._changes: list[dict[str, str]] = []
        self._layout = pn.Column(
            pn.pane.HTML(f"<h3>Schema registry <code>{esc(registry)}</code></h3>"),
            pn.pane.Bokeh(self.status.model, sizing_mode="stretch_width"),
            pn.Row(*(pn.pane.Bokeh(chart.figure, sizing_mode="stretch_width") for chart in self.charts),
                   sizing_mode="stretch_width"),
            pn.pane.Markdown("#### Subjects"), self.subjects,
            pn.pane.Markdown("#### Recent changes"), self.changes,
            sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    def refresh(self, detail: bool = True) -> None:
        """Stream the charts; with `detail`, also the status line and the tables (see views.DETAIL_SECONDS)."""
        for chart in self.charts:
            chart.refresh()
        if not detail:
            return
        now = time.time()
        shown = self._follow_snapshot(now)
        health = self.store.health().get(self.source)
        text, stale = freshness("schema registry", shown, health, now)
        if health is not None and health.effective_state(now) is State.DOWN:
            text = (f'<div class="pw-registry-down" style="color:{text_colour(ERROR)}"><b>DOWN</b>: '
                    f'{esc(health.reason(now))}</div>'
                    + text)
        text += self._summary
        self.status.text = text  # a Bokeh property set to its own value sends nothing
        dim((self.subjects, self.changes), stale)
        self._refresh_changes()

    def _render(self, now: float) -> None:
        snapshot: RegistrySnapshot = self._snapshot
        facts = [
            f"{snapshot.subject_count:,} subjects",
            "soft-deleted: " + (f"{len(snapshot.deleted_subjects):,}" if snapshot.deleted_subjects is not None
                                else "unknown"),
            f"global compatibility <b>{esc(snapshot.compatibility or 'unknown')}</b>",
            f"mode <b>{esc(snapshot.mode or 'unknown')}</b>",
        ]
        if snapshot.karapace is not None:
            facts.append("Karapace " + ("ready" if snapshot.karapace.ready else "NOT READY")
                         + (f", reader lag {snapshot.karapace.reader_lag:,}" if snapshot.karapace.reader_lag is not None
                            else ""))
        shown = " &middot; ".join(facts)  # each fact escaped above
        self._summary = f'<div class="pw-registry-facts">{shown}</div>' + "".join(
            f'<div class="pw-note" style="color:{text_colour(_WARN)}">{esc(w)}</div>' for w in snapshot.warnings)
        self.subjects.value = shared_frame(self.source, snapshot, "subjects", lambda: pd.DataFrame(
            [_subject_row(s) for s in snapshot.subjects], columns=list(_SUBJECT_COLUMNS)))

    def _refresh_changes(self) -> None:
        new = [e for e in self.store.events_since(self._event_seq)
               if e.pipeline == self.pipeline and e.collector == self.collector]
        if not new:
            return
        self._event_seq = new[-1].seq
        self._changes = ([{"time": clock(e.time), "severity": e.severity, "change": e.message} for e in reversed(new)]
                         + self._changes)[:CHANGES_SHOWN]
        self.changes.value = pd.DataFrame(self._changes, columns=list(_CHANGE_COLUMNS))


def _subject_row(subject: Subject) -> dict[str, object]:
    def setting(value: str | None, own: bool) -> str:
        if value is None:
            return "unknown"
        return value if own else f"{value} (global)"

    read = subject.read_at is not None
    return {
        "subject": subject.name,
        "versions": float(len(subject.versions)) if subject.versions is not None else np.nan,
        "latest version": float(subject.latest_version) if subject.latest_version is not None else np.nan,
        "latest id": float(subject.latest_id) if subject.latest_id is not None else np.nan,
        "type": subject.schema_type or "unknown",
        "compatibility": setting(subject.compatibility, subject.compatibility_own) if read else "unknown",
        "mode": setting(subject.mode, subject.mode_own) if read else "unknown",
        # When it was read, not how long ago: an age changes with every snapshot and would resend the table.
        "read": clock(subject.read_at) if read else "not read yet",
        "error": subject.error or "",
    }

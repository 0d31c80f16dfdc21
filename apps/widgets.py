"""Pieces every source's view uses: time formatting, number formatters, tables, the freshness line."""

from __future__ import annotations

import html
from datetime import datetime, timezone

import pandas as pd
import panel as pn
from bokeh.models import HTMLTemplateFormatter, NumberFormatter

from monitoring.health import CollectorHealth, State

STATE_COLOURS = {State.UP: "#1a7f37", State.DOWN: "#cf222e", State.STALE: "#bf8700", State.STARTING: "#6e7781"}
COUNT = NumberFormatter(format="0,0", nan_format="unknown", null_format="unknown")
RATE = NumberFormatter(format="0,0.0", nan_format="unknown", null_format="unknown")


def clock(t: float | None) -> str:
    if t is None:
        return "never"
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S UTC")


def age(t: float | None, now: float) -> str:
    if t is None:
        return "never"
    seconds = max(0.0, now - t)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def duration_formatter(infinite: str) -> HTMLTemplateFormatter:
    """Seconds as s / min / h in the browser; NaN as unknown, +Inf as `infinite`; sorts numerically."""
    return HTMLTemplateFormatter(template=(
        "<% if (value === null || value === undefined || Number.isNaN(value)) { %>unknown"
        f"<% }} else if (value === Infinity) {{ %>{infinite}"
        "<% } else if (value < 120) { %><%= value.toFixed(1) %> s"
        "<% } else if (value < 7200) { %><%= (value / 60).toFixed(1) %> min"
        "<% } else { %><%= (value / 3600).toFixed(1) %> h<% } %>"
    ))


def table(columns: dict[str, object], name: str, page_size: int) -> pn.widgets.Tabulator:
    """A read-only table paged on the server: only the rows on screen go to the browser."""
    return pn.widgets.Tabulator(
        pd.DataFrame(columns=list(columns)), name=name, show_index=False, disabled=True, sizing_mode="stretch_width",
        pagination="remote", page_size=page_size, layout="fit_data_stretch",
        formatters={column: f for column, f in columns.items() if f is not None},
    )


def show(shown: pn.widgets.Tabulator, frame: pd.DataFrame) -> None:
    """Give a table a new frame, unless it already shows an equal one.

    Every session runs this once a second for each of its tables. A Tabulator value update costs
    the server tens of milliseconds per session (the page of rows, the column configuration, styles
    and selection are recomputed and sent); comparing the frames costs a fraction of that."""
    current = shown.value
    if current is frame or (current is not None and current.shape == frame.shape
                            and list(current.columns) == list(frame.columns) and current.equals(frame)):
        return
    shown.value = frame


def dim(tables, stale: bool) -> None:
    """Grey out the tables while what they show is stale; set only on a change (every session, every second)."""
    styles = {"opacity": "0.5"} if stale else {}
    for shown in tables:
        if shown.styles != styles:
            shown.styles = styles


_shared: dict[tuple, tuple[object, object, pd.DataFrame]] = {}


def shared_frame(source: tuple[str, str], snapshot: object, name: str, build, variant: object = None) -> pd.DataFrame:
    """The frame `build()` makes from a source's snapshot, built once for every session that shows it.

    Sessions show the same snapshot: instead of each building the same rows (and sorting the partition
    table) in every session, the first one to render a snapshot builds the frame and the others reuse
    it. `variant` names a per-session choice the frame depends on (the chosen group). Only the newest
    frame per (source, name) is kept. Frames are read-only once shared: the tables are disabled (not
    editable) and pipewatch never changes a frame it handed to a table. All sessions run on the Bokeh
    server's event loop, one at a time."""
    key = (source, name)
    entry = _shared.get(key)
    if entry is None or entry[0] is not snapshot or entry[1] != variant:
        entry = _shared[key] = (snapshot, variant, build())
    return entry[2]


def freshness(what: str, snapshot_time: float | None, health: CollectorHealth | None, now: float) -> tuple[str, bool]:
    """The line above a source's tables: no data yet, measured at, or STALE with the reason.
    Also whether what is shown is stale (its collector is not up)."""
    state = health.effective_state(now) if health is not None else None
    if snapshot_time is None:
        text = f"<em>No {what} data yet: waiting for the first successful collection.</em>"
        if state is State.DOWN:
            text += f" Collector down: {html.escape(health.reason(now))}"
        return text, False
    if state is not None and state is not State.UP:
        return (f'<div class="pw-stale" style="color:#9a6700"><b>STALE</b>: tables and charts show data measured '
                f'at {clock(snapshot_time)} ({age(snapshot_time, now)}); the collector is '
                f'{state.value}: {html.escape(health.reason(now))}</div>'), True
    return f'<span class="pw-fresh">Measured at {clock(snapshot_time)} ({age(snapshot_time, now)})</span>', False


class SnapshotSection:
    """A page section that draws its collector's latest snapshot, re-rendered only when a new one is
    published. Subclasses set `store` and `source` and implement `_render(now)` from `self._snapshot`."""

    _snapshot_time: float | None = None
    _snapshot = None

    def _follow_snapshot(self, now: float) -> float | None:
        """Render a newer snapshot if there is one; return the time of the one shown (None: none yet)."""
        entry = self.store.snapshot(self.source)
        if entry is not None and entry[0] != self._snapshot_time:
            self._snapshot_time, self._snapshot = entry
            self._render(now)
        return entry[0] if entry else None

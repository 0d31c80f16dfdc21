"""The overview: a tile per pipeline with its health (worst of its sources, with the reason) and its
headline measures, each as measured now or "unknown"."""

from __future__ import annotations

import math
from functools import lru_cache

import panel as pn
from panel.viewable import Viewer

from apps.escape import esc, pipeline_href
from apps.palette import ERROR, HEALTH_COLOURS, NEUTRAL, text_colour
from apps.widgets import LiveHTML
from monitoring.alerts.engine import AlertEngine
from monitoring.evaluation import SUMMARY_SOURCE
from monitoring.format import clock, count, duration, rate, share
from monitoring.store import Store
from monitoring.summary import PipelineSummary

_STATUS_NAMES = ("NOTFOUND", "OK", "WARN", "ERR")


class OverviewPage(Viewer):
    """Tiles of every local pipeline, from the evaluator's summary (one computation for all sessions)."""

    def __init__(self, store: Store, alerts: AlertEngine | None = None, **params) -> None:
        super().__init__(**params)
        self.store = store
        self.alerts = alerts
        """Where each tile's count of firing alerts comes from (None: not evaluated in this process)."""
        # One plain model (LiveHTML): a tick sets its text only when the summaries changed (once a collection), and the
        # text itself is built once for every session showing the same summaries.
        self.tiles = LiveHTML("<em>No summary yet: the first evaluation runs within a second.</em>",
                              name="overview-tiles", sizing_mode="stretch_width")
        self._time: tuple | None = None
        self._layout = pn.Column(pn.pane.Markdown("### Overview: every pipeline"),
                                 pn.pane.Bokeh(self.tiles.model, sizing_mode="stretch_width"),
                                 sizing_mode="stretch_width")
        self.refresh()

    def __panel__(self):
        return self._layout

    def refresh(self) -> None:
        entry = self.store.snapshot(SUMMARY_SOURCE)
        firing = None if self.alerts is None else tuple(sorted(self.alerts.state().firing_by_pipeline().items()))
        if entry is None or (entry[0], firing) == self._time:
            return
        self._time = (entry[0], firing)
        text = tiles_html(tuple(entry[1]), firing)
        if text != self.tiles.text:
            self.tiles.text = text

    def go_live(self) -> None:
        """Nothing here is pushed: the summary changes once a second."""

    def close(self) -> None:
        """Nothing to stop."""


@lru_cache(maxsize=4)
def tiles_html(summaries: tuple[PipelineSummary, ...], firing: tuple[tuple[str, int], ...] | None = None) -> str:
    """firing: (pipeline, alerts firing) of pipelines with some; None when alerts are not evaluated here."""
    counts = None if firing is None else dict(firing)
    return ('<div class="pw-tiles" style="display:flex;flex-wrap:wrap;gap:12px">'
            + "".join(_tile(s, None if counts is None else counts.get(s.pipeline, 0)) for s in summaries) + "</div>")


def _tile(s: PipelineSummary, firing: int | None = None) -> str:
    colour = HEALTH_COLOURS.get(s.health, NEUTRAL)
    name = esc(s.pipeline)
    facts = [
        ("produce", rate(s.produce_rate), s.watches("kafka")),
        ("consume (all groups)", rate(s.consume_rate), s.watches("kafka")),
        ("max lag", _lag(s), s.watches("kafka")),
        ("total lag", count(s.lag_messages, "messages"), s.watches("kafka")),
        ("lag status", _status(s.worst_status), s.watches("kafka")),
        ("Flink jobs", _jobs(s), s.watches("flink")),
        ("checkpoint age", duration(s.checkpoint_age), s.watches("flink")),
        ("registry", "unknown" if math.isnan(s.registry_up) else "up" if s.registry_up == 1 else "DOWN",
         s.watches("schema_registry")),
        ("changes", rate(s.change_rate), s.watches("change_feed")),
        # Only pipelines that declare dead-letter topics have these values (docs/dead-letters.md).
        ("dead letters", f"{rate(s.dead_letter_rate)}, {share(s.invalid_ratio)} of input",
         not (math.isnan(s.dead_letter_rate) and math.isnan(s.invalid_ratio))),
    ]
    if firing is not None:
        alert_colour = text_colour(ERROR if firing else NEUTRAL)
        facts.insert(0, ("alerts firing", f'<a href="?page=alerts" class="pw-tile-alerts" data-firing="{firing:d}" '
                                          f'style="color:{alert_colour}">{firing:d}</a>', True))
    rows = "".join(f'<tr data-fact="{label}"><td style="opacity:.75;padding-right:10px">{label}</td>'
                   f'<td class="v"><b>{value}</b></td></tr>' for label, value, shown in facts if shown)
    reason = "" if s.health == "ok" else (
        f'<div class="pw-reason" style="margin-top:6px;font-size:90%;color:{text_colour(colour)}">'
        f'{esc(s.reason)}</div>')
    return (
        f'<div class="pw-tile" data-pipeline="{name}" data-health="{esc(s.health)}" style="min-width:260px;'
        f'flex:1 1 260px;max-width:420px;border:1px solid {colour};border-left:6px solid {colour};border-radius:6px;'
        f'padding:8px 12px">'
        f'<div style="display:flex;justify-content:space-between;align-items:baseline">'
        f'<a href="{pipeline_href(s.pipeline)}" style="font-size:120%;font-weight:bold;color:var(--pw-link,#0969da)">'
        f'{name}</a>'
        f'<span class="pw-tile-health" style="color:{text_colour(colour)};font-weight:bold">'
        f'{esc(s.health.upper())}</span></div>'
        f'<table style="margin-top:4px">{rows}</table>{reason}'
        f'<div style="margin-top:6px;font-size:85%;opacity:.75">last update {clock(s.last_success)}</div></div>'
    )


def _lag(s: PipelineSummary) -> str:
    return f"{count(s.max_lag_messages, 'messages')}, {duration(s.lag_seconds)}"


def _status(code: float) -> str:
    if math.isnan(code):
        return "unknown"
    code = int(code)
    return _STATUS_NAMES[code] if 0 <= code < len(_STATUS_NAMES) else str(code)


def _jobs(s: PipelineSummary) -> str:
    if math.isnan(s.flink_jobs):
        return "unknown"
    return f"{s.flink_running:.0f} of {s.flink_jobs:.0f} RUNNING"

"""The alerts page: firing alerts first, then pending ones, recent history, and silences set from the page.

Silencing changes what people are told, so it needs a signed-in user (Panel's --basic-auth or an OAuth provider,
docs/alerts.md): the silence is recorded with that name and the reason given."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import panel as pn
from bokeh.models import HTMLTemplateFormatter
from panel.viewable import Viewer

from apps.escape import esc
from apps.palette import ERROR, NEUTRAL, WARNING_TEXT, coloured_cell
from apps.widgets import table
from monitoring import format as fmt
from monitoring.alerts.engine import FIRING, PENDING, SOURCE_DOWN, Alert, AlertEngine

STATE_COLOURS = {FIRING: ERROR, SOURCE_DOWN: WARNING_TEXT, PENDING: NEUTRAL}
DURATIONS = {"15 minutes": 900, "1 hour": 3600, "4 hours": 4 * 3600, "1 day": 86400, "1 week": 7 * 86400}
HISTORY_ROWS = 200
_STATE = HTMLTemplateFormatter(template=coloured_cell("pw-alert-state", "state", STATE_COLOURS, NEUTRAL))
_ACTIVE = {"state": _STATE, "severity": None, "alert": None, "pipeline": None, "summary": None, "value": None,
           "since (UTC)": None, "silenced": None}
_HISTORY = {"alert": None, "pipeline": None, "summary": None, "last value": None, "fired (UTC)": None,
            "resolved (UTC)": None, "why": None}
_SILENCES = {"what": None, "until (UTC)": None, "by": None, "why": None}


def _when(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def firing_badge(alerts: AlertEngine | None, dark: bool = False) -> str:
    """The header's count of firing alerts (not silenced), linking to the page (in the same theme)."""
    if alerts is None:
        return ""
    firing = sum(alerts.state().firing_by_pipeline().values())
    href = "?page=alerts&amp;theme=dark" if dark else "?page=alerts"
    # On the header's colour: white text, on a red pill while something fires (white on ERROR: 5.4:1).
    look = f"background:{ERROR};padding:2px 8px;border-radius:10px" if firing else ""
    return (f'<a class="pw-alerts-badge" data-firing="{firing:d}" href="{href}" '
            f'style="color:#ffffff;font-weight:bold;text-decoration:none;{look}">{firing:d} firing</a>')


class AlertsPage(Viewer):
    def __init__(self, alerts: AlertEngine | None, user: str | None, mirror_url: str | None = None,
                 **params) -> None:
        super().__init__(**params)
        self.alerts = alerts
        self.user = user or None
        self.summary = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["pw-alerts-summary"])
        self.active = table(_ACTIVE, "alerts-active-table", page_size=25)
        self.history = table(_HISTORY, "alerts-history-table", page_size=25)
        self.silences = table(_SILENCES, "alerts-silences-table", page_size=10)
        self.target = pn.widgets.Select(label="Silence", options={}, width=420, css_classes=["pw-silence-target"])
        self.duration = pn.widgets.Select(label="for", options=DURATIONS, value=3600, width=140,
                                          css_classes=["pw-silence-duration"])
        self.reason = pn.widgets.TextInput(label="why", placeholder="why (recorded with your name)", width=320,
                                           css_classes=["pw-silence-reason"])
        self.button = pn.widgets.Button(label="Silence", color="warning", width=100,
                                        css_classes=["pw-silence-button"])
        self.message = pn.pane.HTML("", sizing_mode="stretch_width", css_classes=["pw-silence-message"])
        self.button.on_click(self._silence)
        self._generation: int | None = None
        if alerts is None:
            where = f" at {esc(mirror_url)}" if mirror_url else ""
            self._layout = pn.Column(pn.pane.Markdown("### Alerts"), pn.pane.HTML(
                f"<p>Alerts are evaluated by the agent{where}, not by this dashboard: its <code>/api/v1/alerts"
                f"</code> lists them.</p>"), sizing_mode="stretch_width")
            return
        if self.user is None:
            for widget in (self.target, self.duration, self.reason, self.button):
                widget.disabled = True
            self.message.object = ("<span style='opacity:.8'>Silencing needs a signed-in user: serve the dashboard "
                                   "with Panel's <code>--basic-auth</code> or an OAuth provider (docs/alerts.md)."
                                   "</span>")
        self._layout = pn.Column(
            pn.pane.Markdown("### Alerts"), self.summary,
            pn.pane.Markdown("#### Active: firing first"), self.active,
            pn.pane.Markdown("#### Silence an alert or a rule"),
            pn.Row(self.target, self.duration, self.reason, self.button), self.message,
            pn.pane.Markdown("#### Silences in force"), self.silences,
            pn.pane.Markdown("#### Recent history"), self.history,
            sizing_mode="stretch_width", css_classes=["pw-alerts"])
        self.refresh()

    def __panel__(self):
        return self._layout

    def refresh(self) -> None:
        """Called once a second by the session; redraws only after an evaluation or a silence."""
        if self.alerts is None or self.alerts.generation == self._generation:
            return
        self._generation = self.alerts.generation
        state = self.alerts.state()
        firing = [a for a in state.active if a.active]
        pending = len(state.active) - len(firing)
        silenced = sum(1 for a in state.active if a.silenced_by)
        self.summary.object = (
            f'<div class="pw-alerts-count" data-firing="{len(firing):d}" data-pending="{pending:d}">'
            f"{len(firing):d} firing ({silenced:d} silenced), {pending:d} pending, "
            f"{sum(1 for r in state.rules if r.state == 'inactive'):d} of {len(state.rules):d} rules inactive; "
            f"evaluated {esc(fmt.clock(state.evaluated_at))}</div>")
        self.active.value = pd.DataFrame([_active_row(a) for a in state.active], columns=list(_ACTIVE))
        self.history.value = pd.DataFrame([_history_row(a) for a in state.history[:HISTORY_ROWS]],
                                          columns=list(_HISTORY))
        self.silences.value = pd.DataFrame(
            [{"what": s.description, "until (UTC)": _when(s.ends_at), "by": s.created_by, "why": s.comment}
             for s in state.silences], columns=list(_SILENCES))
        options = {f"alert: {a.summary} [{a.pipeline}]": ("alert", a.rule, a.fingerprint, a.pipeline)
                   for a in state.active if not a.silenced_by}
        for rule in state.rules:
            options[f"rule: {rule.rule.name} (every pipeline)"] = ("rule", rule.rule.name, None, None)
        if list(self.target.options) != list(options):
            self.target.options = options
            if self.target.value not in options.values():
                self.target.value = next(iter(options.values()), None)

    def _silence(self, _event) -> None:
        choice = self.target.value
        if choice is None or self.user is None:
            return
        _, rule, fingerprint, _pipeline = choice
        try:
            silence = self.alerts.silence(rule, float(self.duration.value), self.user, self.reason.value or "",
                                          fingerprint=fingerprint)
        except ValueError as exc:
            self.message.object = f'<span style="color:{ERROR}">{esc(exc)}</span>'
            return
        self.reason.value = ""
        self.message.object = (f'<span class="pw-silenced" data-silence="{esc(silence.id)}">Silenced '
                               f"{esc(silence.description)} until {esc(_when(silence.ends_at))} UTC.</span>")
        self.refresh()

    def go_live(self) -> None:
        """Nothing is pushed to this page: the once-a-second refresh is enough."""

    def close(self) -> None:
        """Nothing to release: the page only reads the engine."""


def _active_row(alert: Alert) -> dict[str, object]:
    return {"state": alert.state, "severity": alert.severity, "alert": alert.rule, "pipeline": alert.pipeline,
            "summary": alert.summary + (f" ({alert.reason})" if alert.state == SOURCE_DOWN else ""),
            "value": fmt.number(alert.value), "since (UTC)": _when(alert.fired_at or alert.active_since),
            "silenced": "yes" if alert.silenced_by else ""}


def _history_row(alert: Alert) -> dict[str, object]:
    return {"alert": alert.rule, "pipeline": alert.pipeline, "summary": alert.summary,
            "last value": fmt.number(alert.value), "fired (UTC)": _when(alert.fired_at),
            "resolved (UTC)": _when(alert.resolved_at), "why": alert.reason}

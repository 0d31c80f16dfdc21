"""One badge per source of a pipeline: its state, its last update and, when it is not up, why."""

from __future__ import annotations

import time

import panel as pn
from panel.viewable import Viewer

from apps.escape import esc
from apps.palette import STATE_COLOURS, text_colour
from apps.widgets import LiveHTML
from monitoring.format import age, clock
from monitoring.health import CollectorHealth, State
from monitoring.sources import MIRROR_SOURCE
from monitoring.store import Store


class HealthBar(Viewer):
    """One badge per collector of a pipeline: state, last update, and the reason when not up."""

    def __init__(self, store: Store, pipeline: str, kind: str | None = None, **params) -> None:
        """kind: only the sources of this kind (a section's), and the mirror's copy; None: every source."""
        super().__init__(**params)
        self.store, self.pipeline, self.kind = store, pipeline, kind
        # A plain model (LiveHTML, not a Bokeh Div: see there): it changes every second in every session, and a
        # Panel pane's update costs ten times more (parameter watchers) than setting the model's text.
        self.div = LiveHTML("", name="health-bar", sizing_mode="stretch_width")
        self.refresh()

    def __panel__(self):
        return pn.pane.Bokeh(self.div.model, sizing_mode="stretch_width")

    def states(self, now: float) -> tuple:
        """The state of each of the pipeline's sources (and of the mirror's copy): a change redraws the page."""
        return tuple((source, h.effective_state(now)) for source, h in sorted(self.store.health().items())
                     if self._shows(source) or source == MIRROR_SOURCE)

    def _shows(self, source: tuple[str, str]) -> bool:
        pipeline, collector = source
        return pipeline == self.pipeline and (self.kind is None or collector.split(":", 1)[0] == self.kind)

    def refresh(self) -> None:
        now = time.time()
        health = self.store.health()
        badges = [self._badge(h, now) for source, h in sorted(health.items()) if self._shows(source)]
        text = " ".join(badges) or "<em>no sources configured for this pipeline</em>"
        if MIRROR_SOURCE in health:  # a mirror: whether the copy is current is part of every source's health
            text += " " + self._badge(health[MIRROR_SOURCE], now)
        if text != self.div.text:
            self.div.text = text

    @staticmethod
    def _badge(health: CollectorHealth, now: float) -> str:
        state = health.effective_state(now)
        colour = STATE_COLOURS[state]
        detail = f"last update {clock(health.last_success)} ({age(health.last_success, now)})"
        if state is not State.UP:
            detail += f" &middot; {esc(health.reason(now))}"
        return (
            f'<span class="pw-health" data-collector="{esc(health.collector)}" data-state="{esc(state.value)}" '
            f'style="display:inline-block;margin:2px 8px 2px 0;padding:3px 8px;border-radius:4px;'
            f'border:1px solid {colour}">'
            f'<b style="color:{text_colour(colour)}">{esc(health.collector)}: {esc(state.value.upper())}</b> '
            f'<span style="opacity:.8">{esc(health.target)} &middot; {detail}</span></span>'
        )

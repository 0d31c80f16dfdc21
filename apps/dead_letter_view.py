"""A pipeline's dead letters as data quality: the records it sent to its dead-letter topics, and their share of its
input (docs/dead-letters.md). Shown only for pipelines that declare `kafka.dead_letter_topics`."""

from __future__ import annotations

import panel as pn
from panel.viewable import Viewer

from apps.escape import esc
from apps.live import LiveChart
from apps.widgets import LiveHTML
from monitoring.config import Pipeline
from monitoring.format import rate, share
from monitoring.models.kafka import KafkaSnapshot
from monitoring.sources import KAFKA
from monitoring.store import Store
from monitoring.summary import is_kind


def declares_dead_letters(config: Pipeline | None) -> bool:
    return config is not None and any(cluster.dead_letter_topics for cluster in config.kafka_clusters)


class DeadLetterView(Viewer):
    """The dead-letter rate and the invalid share, live, with the topics each cluster counts."""

    def __init__(self, store: Store, pipeline: str, **params) -> None:
        super().__init__(**params)
        self.store, self.pipeline = store, pipeline

        def mine(name: str):
            return lambda key: key[0] == name and key[1][0] == pipeline

        self.rate = LiveChart(store, "Dead letters: records sent to dead-letter topics", "messages / s",
                              mine("pipewatch_pipeline_dead_letter_rate"), lambda key: "dead letters",
                              name="dead-letter-rate", max_lines=1)
        self.ratio = LiveChart(store, "Invalid share: dead letters / input", "ratio",
                               mine("pipewatch_pipeline_invalid_ratio"), lambda key: "invalid share",
                               name="dead-letter-ratio", max_lines=1)
        self.charts = (self.rate, self.ratio)
        self.line = LiveHTML("", name="dead-letter-line", sizing_mode="stretch_width")
        self._layout = pn.Column(
            pn.pane.Markdown("### Data quality: dead letters"),
            pn.pane.Bokeh(self.line.model, sizing_mode="stretch_width"),
            pn.Row(*(pn.pane.Bokeh(chart.figure, sizing_mode="stretch_width") for chart in self.charts),
                   sizing_mode="stretch_width"),
            sizing_mode="stretch_width")
        self.refresh()

    def __panel__(self):
        return self._layout

    def refresh(self, detail: bool = True) -> None:
        for chart in self.charts:
            chart.refresh()
        if detail:
            text = self._line()
            if text != self.line.text:
                self.line.text = text

    def _line(self) -> str:
        """Now: the rate and share, then per cluster the dead-letter and input topics counted."""
        dead = self.store.latest("pipewatch_pipeline_dead_letter_rate", (self.pipeline,))
        ratio = self.store.latest("pipewatch_pipeline_invalid_ratio", (self.pipeline,))
        parts = [f'<span class="pw-dead-letters" data-rate="{esc(dead[1] if dead else "")}">Dead letters now: '
                 f'<b>{rate(dead[1] if dead else None, " records/s")}</b>, '
                 f'<b>{share(ratio[1] if ratio else None)}</b> of the input</span>']
        for (pipeline, collector), _health in sorted(self.store.health().items()):
            if pipeline != self.pipeline or not is_kind(collector, KAFKA):
                continue
            entry = self.store.snapshot((pipeline, collector))
            snapshot = entry[1] if entry is not None else None
            if not isinstance(snapshot, KafkaSnapshot) or snapshot.dead_letters is None:
                continue
            letters = snapshot.dead_letters
            parts.append(f'<div class="pw-dead-letter-topics" data-cluster="{esc(snapshot.cluster)}" '
                         f'style="font-size:90%;opacity:.8">{esc(snapshot.cluster)}: dead-letter topics '
                         f'{_names(letters.topics, "none exists yet")}; input {_names(letters.input_topics, "none")}'
                         "</div>")
        return "".join(parts)


def _names(topics: tuple[str, ...], empty: str) -> str:
    return ", ".join(esc(topic) for topic in topics) if topics else f"<em>{empty}</em>"

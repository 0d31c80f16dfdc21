"""Per-session views over the shared store. Views read the store; they never talk to sources."""

from __future__ import annotations

import html
import time
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import panel as pn
from bokeh.models import NumberFormatter
from panel.viewable import Viewer

from apps.live import LiveChart
from collectors.kafka import KafkaSnapshot
from monitoring.health import CollectorHealth, State
from monitoring.store import Store

_STATE_COLOURS = {State.UP: "#1a7f37", State.DOWN: "#cf222e", State.STALE: "#bf8700", State.STARTING: "#6e7781"}
_COUNT = NumberFormatter(format="0,0", nan_format="unknown", null_format="unknown")
_RATE = NumberFormatter(format="0,0.0", nan_format="unknown", null_format="unknown")
PARTITION_ROWS = 1000
"""The partition table keeps the most-lagging rows only: the browser stays fast at any cluster size."""


def clock(t: float | None) -> str:
    if t is None:
        return "never"
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S UTC")


def age(t: float | None, now: float) -> str:
    if t is None:
        return "never"
    seconds = max(0.0, now - t)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


class HealthBar(Viewer):
    """One badge per collector of a pipeline: state, last update, and the reason when not up."""

    def __init__(self, store: Store, pipeline: str, **params) -> None:
        super().__init__(**params)
        self.store, self.pipeline = store, pipeline
        self._pane = pn.pane.HTML("", name="health-bar", sizing_mode="stretch_width")
        self.refresh()

    def __panel__(self):
        return self._pane

    def refresh(self) -> None:
        now = time.time()
        badges = [self._badge(h, now) for (pipeline, _), h in sorted(self.store.health().items()) if pipeline == self.pipeline]
        text = " ".join(badges) or "<em>no sources configured for this pipeline</em>"
        if text != self._pane.object:
            self._pane.object = text

    @staticmethod
    def _badge(health: CollectorHealth, now: float) -> str:
        state = health.effective_state(now)
        detail = f"last update {clock(health.last_success)} ({age(health.last_success, now)})"
        if state is not State.UP:
            detail += f" &middot; {html.escape(health.reason(now))}"
        return (
            f'<span class="pw-health" data-collector="{html.escape(health.collector)}" data-state="{state.value}" '
            f'style="display:inline-block;margin:2px 8px 2px 0;padding:3px 8px;border-radius:4px;'
            f'border:1px solid {_STATE_COLOURS[state]}">'
            f'<b style="color:{_STATE_COLOURS[state]}">{html.escape(health.collector)}: {state.value.upper()}</b> '
            f'<span style="opacity:.8">{html.escape(health.target)} &middot; {detail}</span></span>'
        )


class KafkaLagView(Viewer):
    """Consumer lag of one pipeline: live lag and rate charts, groups and per-partition tables."""

    def __init__(self, store: Store, pipeline: str, **params) -> None:
        super().__init__(**params)
        self.store, self.pipeline = store, pipeline
        self.source = (pipeline, "kafka")
        self._snapshot_time: float | None = None
        self._notes = ""
        self.lag_chart = LiveChart(
            store, "Consumer lag (messages) per group and topic", "messages",
            select=lambda k: k[0] == "kafka_consumergroup_group_topic_sum_lag" and k[1][0] == pipeline,
            label=lambda k: f"{k[1][2]} / {k[1][3]}", name="lag-chart",
        )
        self.rate_chart = LiveChart(
            store, "Produce and consume rate (messages/s)", "messages / s",
            select=lambda k: k[1][0] == pipeline and k[0] in ("kafka_topic_produce_rate", "kafka_consumergroup_consume_rate"),
            label=lambda k: (f"produced to {k[1][2]}" if k[0] == "kafka_topic_produce_rate"
                             else f"consumed by {k[1][2]} from {k[1][3]}"),
            name="rate-chart",
        )
        self.status = pn.pane.HTML("", name="kafka-status", sizing_mode="stretch_width")
        self.groups = pn.widgets.Tabulator(
            _empty_groups(), name="groups-table", show_index=False, disabled=True, sizing_mode="stretch_width",
            formatters={c: _COUNT for c in ("members", "lag", "max lag")} | {"consume rate": _RATE},
            pagination="remote", page_size=10, layout="fit_data_stretch",
        )
        self.partitions = pn.widgets.Tabulator(
            _empty_partitions(), name="partitions-table", show_index=False, disabled=True,
            sizing_mode="stretch_width", pagination="remote", page_size=20, layout="fit_data_stretch",
            formatters={c: _COUNT for c in ("partition", "committed", "high watermark", "lag")},
        )
        self.topics = pn.widgets.Tabulator(
            _empty_topics(), name="topics-table", show_index=False, disabled=True, sizing_mode="stretch_width",
            formatters={"partitions": _COUNT, "messages": _COUNT, "produce rate": _RATE},
            pagination="remote", page_size=10, layout="fit_data_stretch",
        )
        self._layout = pn.Column(
            self.status,
            pn.Row(pn.pane.Bokeh(self.lag_chart.figure, sizing_mode="stretch_width"),
                   pn.pane.Bokeh(self.rate_chart.figure, sizing_mode="stretch_width"), sizing_mode="stretch_width"),
            pn.pane.Markdown("#### Consumer groups"), self.groups,
            pn.pane.Markdown(f"#### Partitions (the {PARTITION_ROWS:,} most lagging)"), self.partitions,
            pn.pane.Markdown("#### Topics"), self.topics,
            sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    def refresh(self) -> None:
        self.lag_chart.refresh()
        self.rate_chart.refresh()
        entry = self.store.snapshot(self.source)
        health = self.store.health().get(self.source)
        self._refresh_status(entry[0] if entry else None, health)
        if entry is not None and entry[0] != self._snapshot_time:
            self._snapshot_time = entry[0]
            self._render(entry[1])

    def _refresh_status(self, snapshot_time: float | None, health: CollectorHealth | None) -> None:
        now = time.time()
        if snapshot_time is None:
            text = "<em>No Kafka data yet: waiting for the first successful collection.</em>"
            if health is not None and health.effective_state(now) is State.DOWN:
                text += f" Collector down: {html.escape(health.reason(now))}"
        elif health is not None and health.effective_state(now) is not State.UP:
            text = (f'<div class="pw-stale" style="color:#9a6700"><b>STALE</b>: tables and charts show data measured '
                    f'at {clock(snapshot_time)} ({age(snapshot_time, now)}); the collector is '
                    f'{health.effective_state(now).value}: {html.escape(health.reason(now))}</div>')
        else:
            text = f'<span class="pw-fresh">Measured at {clock(snapshot_time)} ({age(snapshot_time, now)})</span>'
        text += self._notes
        if text != self.status.object:
            self.status.object = text
        stale = snapshot_time is not None and health is not None and health.effective_state(now) is not State.UP
        for table in (self.groups, self.partitions, self.topics):
            table.styles = {"opacity": "0.5"} if stale else {}

    def _render(self, snapshot: KafkaSnapshot) -> None:
        self._notes = ""
        if snapshot.unmatched_patterns:
            self._notes = '<div class="pw-note">No consumer group matches ' + ", ".join(
                f"<code>{html.escape(p)}</code>" for p in snapshot.unmatched_patterns) + "</div>"
        groups = pd.DataFrame(
            [{
                "group": g.group_id, "state": g.state, "members": _num(g.members), "lag": _num(g.lag_sum),
                "max lag": _num(g.max_lag),
                "consume rate": _num(_sum_or_none([r for (gid, _), r in snapshot.consume_rates.items() if gid == g.group_id])),
                "error": g.error or "",
            } for g in snapshot.groups],
            columns=_empty_groups().columns,
        )
        rows = [
            {"group": g.group_id, "topic": p.topic, "partition": p.partition, "committed": _num(p.committed),
             "high watermark": _num(p.high_watermark), "lag": _num(p.lag)}
            for g in snapshot.groups for p in g.partitions
        ]
        partitions = pd.DataFrame(rows, columns=_empty_partitions().columns)
        # Most lagging first, unknown lag after known, then a stable order.
        partitions = partitions.sort_values(["lag", "group", "topic", "partition"], ascending=[False, True, True, True],
                                            na_position="last", kind="stable").head(PARTITION_ROWS)
        topics = pd.DataFrame(
            [{"topic": t.name, "partitions": float(t.partitions),
              "messages": float(sum(t.high_watermarks.values()) - sum(t.log_start_offsets.values()))
              if len(t.high_watermarks) == len(t.log_start_offsets) == t.partitions else np.nan,
              "produce rate": _num(t.produce_rate)} for t in sorted(snapshot.topics.values(), key=lambda t: t.name)],
            columns=_empty_topics().columns,
        )
        self.groups.value = groups
        self.partitions.value = partitions.reset_index(drop=True)
        self.topics.value = topics


def _num(value: float | int | None) -> float:
    return np.nan if value is None else float(value)


def _sum_or_none(values: list[float]) -> float | None:
    return sum(values) if values else None


def _empty_groups() -> pd.DataFrame:
    return pd.DataFrame(columns=["group", "state", "members", "lag", "max lag", "consume rate", "error"])


def _empty_partitions() -> pd.DataFrame:
    return pd.DataFrame(columns=["group", "topic", "partition", "committed", "high watermark", "lag"])


def _empty_topics() -> pd.DataFrame:
    return pd.DataFrame(columns=["topic", "partitions", "messages", "produce rate"])


class PipelinePage(Viewer):
    """Everything about one pipeline: collector health, then one section per configured source."""

    def __init__(self, store: Store, pipeline: str, has_kafka: bool, **params) -> None:
        super().__init__(**params)
        self.health = HealthBar(store, pipeline)
        self.sections: list[KafkaLagView] = [KafkaLagView(store, pipeline)] if has_kafka else []
        self._layout = pn.Column(self.health, *self.sections, sizing_mode="stretch_width")

    def __panel__(self):
        return self._layout

    def refresh(self) -> None:
        self.health.refresh()
        for section in self.sections:
            section.refresh()

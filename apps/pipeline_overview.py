"""The top of a pipeline's page: latency percentiles, each with what it measures, and live charts of
throughput (produce vs consume), lag and latency over a selectable window, with the expected traffic
pattern's bursts drawn on the throughput chart."""

from __future__ import annotations

import time

import panel as pn
from bokeh.models import ColumnDataSource, LabelSet
from panel.viewable import Viewer

from apps.escape import esc
from apps.live import LiveChart
from apps.palette import WARNING, WARNING_TEXT, shade
from apps.theme import is_dark
from apps.widgets import LiveHTML
from monitoring.config import ExpectedTraffic
from monitoring.evaluation import LATENCY_SOURCE, Latency
from monitoring.format import duration, rate
from monitoring.store import SeriesKey, Store

WINDOWS = {"1 min": 60.0, "5 min": 300.0, "15 min": 900.0, "all kept": None}
_DEFAULT_WINDOW = "5 min"
_MEASURE_NAMES = {"consumer_lag": "consumer lag", "watermark_lag": "watermark lag",
                  "change_feed_delay": "change-feed delay"}


class PipelineOverview(Viewer):
    """Pipeline-level measures, derived by the evaluator (pipewatch_pipeline_* series)."""

    def __init__(self, store: Store, pipeline: str, traffic: ExpectedTraffic | None = None, **params) -> None:
        super().__init__(**params)
        self.store, self.pipeline = store, pipeline

        def mine(name: str):
            return lambda key: key[0] == name and key[1][0] == pipeline

        self.throughput = LiveChart(store, "Throughput: produced vs consumed", "messages / s",
                                    mine("pipewatch_pipeline_throughput"), _throughput_label,
                                    name="pipeline-throughput", max_lines=2, legend_columns=2)
        self.lag = LiveChart(store, "Lag: all consumer groups", "messages", mine("pipewatch_pipeline_lag"),
                             lambda key: "lag", name="pipeline-lag", max_lines=1)
        self.latency = LiveChart(store, "Latency percentiles", "seconds", mine("pipewatch_pipeline_latency_seconds"),
                                 _latency_label, name="pipeline-latency", max_lines=9, legend_columns=3)
        self.charts = (self.throughput, self.lag, self.latency)
        self.window = pn.widgets.RadioButtonGroup(label="window", options=list(WINDOWS), value=_DEFAULT_WINDOW,
                                                  color="light", width=320)
        self.window.param.watch(lambda event: self._show_window(event.new), "value")
        self._show_window(_DEFAULT_WINDOW)
        self.latency_table = LiveHTML("", name="pipeline-latency-table", sizing_mode="stretch_width")
        self._latency_time: float | None = None
        self.traffic = _TrafficPhases(self.throughput, traffic) if traffic is not None else None
        self.traffic_line = LiveHTML("", name="traffic-phase", sizing_mode="stretch_width")
        self._layout = pn.Column(
            pn.pane.Markdown("### Pipeline: throughput, lag and latency"),
            pn.Row(pn.pane.HTML("window:", width=60), self.window),
            pn.pane.Bokeh(self.latency_table.model, sizing_mode="stretch_width"),
            pn.pane.Bokeh(self.traffic_line.model, sizing_mode="stretch_width"),
            pn.Row(*(pn.pane.Bokeh(chart.figure, sizing_mode="stretch_width") for chart in self.charts[:2]),
                   sizing_mode="stretch_width"),
            # The page's width to itself: its nine lines' legend is wider than a third of the page, and drew over
            # the lag chart's beside it.
            pn.pane.Bokeh(self.latency.figure, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self):
        return self._layout

    def refresh(self, detail: bool = True) -> None:
        """Stream the charts; with `detail`, also the latency table and the traffic line (see views.DETAIL_SECONDS)."""
        for chart in self.charts:
            chart.refresh()
        if not detail:
            return
        entry = self.store.snapshot(LATENCY_SOURCE)
        if entry is not None and entry[0] != self._latency_time:
            self._latency_time = entry[0]
            text = _latency_html(entry[1].get(self.pipeline, []))
            if text != self.latency_table.text:
                self.latency_table.text = text
        if self.traffic is not None:
            text = self.traffic.refresh(time.time())
            if text != self.traffic_line.text:
                self.traffic_line.text = text

    def _show_window(self, label: str) -> None:
        seconds = WINDOWS[label]
        for chart in self.charts:
            chart.show_window(seconds)


def _throughput_label(key: SeriesKey) -> str:
    return "produced" if key[1][1] == "produce" else "consumed (all groups)"


def _latency_label(key: SeriesKey) -> str:
    _pipeline, measure, quantile = key[1]
    return f"{_MEASURE_NAMES.get(measure, measure)} p{float(quantile) * 100:g}"


def _latency_html(latencies: list[Latency]) -> str:
    if not latencies:
        return ('<div class="pw-latency" data-measures="0"><em>Latency: unknown (no consumer lag in seconds, '
                "watermark or change-feed delay measured yet)</em></div>")
    rows = "".join(
        f'<tr data-measure="{esc(m.measure)}"><td><b>{esc(_MEASURE_NAMES.get(m.measure, m.measure))}'
        f'</b></td><td>{esc(m.description)}</td>'
        + "".join(f'<td class="q" data-q="{q:g}" style="text-align:right">{duration(v)}</td>'
                  for q, v in sorted(m.quantiles.items()))
        + f'<td style="text-align:right">{m.samples:,}</td></tr>'
        for m in latencies)
    return (f'<table class="pw-latency" data-measures="{len(latencies)}" style="border-collapse:collapse;width:100%">'
            "<tr><th align=left>latency</th><th align=left>what it measures</th><th>p50</th><th>p95</th><th>p99</th>"
            f"<th>samples</th></tr>{rows}</table>")


class _TrafficPhases:
    """The expected pattern's bursts as shaded bands (one quad glyph, its data replaced only when the set of
    bursts in view changes) and a line saying which phase runs now and the rate it expects."""

    _SPAN = 4 * 3600.0

    def __init__(self, chart: LiveChart, traffic: ExpectedTraffic) -> None:
        self.pattern = traffic.parsed
        self.origin = traffic.started_at.timestamp()
        self.source = ColumnDataSource({"left": [], "right": [], "label": [], "y": []})
        chart.figure.quad(left="left", right="right", bottom=0, top=1e12, source=self.source, fill_color=WARNING,
                          fill_alpha=0.12, line_alpha=0, level="underlay", name="traffic-bursts")
        chart.figure.add_layout(LabelSet(x="left", y="y", y_units="screen", text="label", source=self.source,
                                         text_font_size="9pt", text_color=shade(WARNING_TEXT, is_dark()),
                                         x_offset=3))
        self._shown: list[tuple[float, float, float]] | None = None

    def refresh(self, now: float) -> str:
        elapsed = now - self.origin
        bursts = self.pattern.occurrences(elapsed - self._SPAN, elapsed + (self.pattern.period or 0.0) + 60)
        if bursts != self._shown:
            self._shown = bursts
            self.source.data = {
                "left": [(self.origin + start) * 1000 for start, _, _ in bursts],
                "right": [(self.origin + end) * 1000 for _, end, _ in bursts],
                "label": [f"{percent:g}%" for _, _, percent in bursts],
                "y": [4] * len(bursts),
            }
        if elapsed < 0:
            return (f'<span class="pw-traffic" data-phase="not started">Expected traffic starts in '
                    f'{duration(-elapsed)}</span>')
        phase = self.pattern.phase_at(elapsed)
        expected = self.pattern.rate_at(elapsed)
        name = f"burst {phase.percent:g}%" if phase else "base"
        return (f'<span class="pw-traffic" data-phase="{esc(name)}">Expected traffic: <b>{name}</b>, '
                f"{rate(expected, ' messages/s')} expected (pattern {esc(_describe(self.pattern))}); bursts are "
                "shaded on the throughput chart</span>")


def _describe(pattern) -> str:
    bursts = ", ".join(f"{p.start:g}-{p.end:g} s at {p.percent:g}%" for p in pattern.phases)
    every = f", every {pattern.period:g} s" if pattern.period else ""
    return f"base {pattern.base_rate:g}/s" + (f"; {bursts}" if bursts else "") + every

"""A report as one self-contained HTML file: Bokeh's JavaScript inline, no CDN, font or other network
request, so it opens offline and its charts stay interactive (hover, zoom, pan).

The data comes from monitoring/report.py; this module only draws it: the executive summary and tables as
plain HTML (readable and searchable without JavaScript), the flow diagram and the charts as Bokeh figures.
"""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime
from urllib.parse import quote

from bokeh.embed import file_html
from bokeh.models import HoverTool, Legend, LegendItem
from bokeh.palettes import Category10_10
from bokeh.plotting import figure
from bokeh.resources import Resources
from jinja2 import Template

from apps.escape import esc
from apps.flow_view import flow_figure, legend_html
from apps.format_templates import format_axes
from apps.palette import HEALTH_COLOURS, NEUTRAL, WARNING_TEXT, text_colour
from apps.theme import TOOLBAR_CSS
from monitoring.format import count, duration, rate, size
from monitoring.report import Chart, PipelineReport, ReportData

_TEMPLATE = Template("""\
{% extends base %}
{% block postamble %}<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1f2328; height: auto; }
h1 { margin: 0 0 4px 0; } h2 { margin-top: 36px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0 16px 0; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f6f8fa; }
.pw-health { font-weight: bold; }
.pw-sentence { font-size: 15px; margin: 8px 0; }
.pw-meta { color: #57606a; }
</style>{% endblock %}
{% block contents %}
{% for kind, value in blocks %}{% if kind == "html" %}{{ value }}{% else %}{{ embed(roots[value]) }}{% endif %}
{% endfor %}
{% endblock %}
""")


class SelfContained(Resources):
    """Bokeh's JavaScript inlined, and nothing else: Resources also collects every registered model class's
    `__javascript__` / `__css__` (Panel's models bring CDN or server paths even when none is used), which a
    file that must open offline cannot reference."""

    def __init__(self, components: list[str] | None = None) -> None:
        super().__init__(mode="inline", components=components)

    def _collect_external_resources(self, resource_attr) -> list[str]:
        return []

    def clone(self, *, components=None) -> SelfContained:
        return SelfContained(components=components if components is not None else list(self.components))



def render_report(data: ReportData) -> str:
    """The report as a complete HTML document (a string)."""
    blocks: list[tuple[str, str]] = [("html", _header(data))]
    models = []
    for report in data.pipelines:
        blocks.append(("html", _summary(report)))
        flow = flow_figure(report.topology)
        models.append(flow)
        blocks.append(("root", flow.name))
        blocks.append(("html", legend_html()))
        blocks.append(("html", "<h3>Throughput, lag and latency</h3>"))
        for chart in report.charts:
            if chart.lines:
                fig = _chart(chart, data)
                models.append(fig)
                blocks.append(("root", fig.name))
            else:
                blocks.append(("html", f"<p class='pw-meta'>{esc(chart.title)}: no measurements in the "
                                       "window.</p>"))
        blocks.append(("html", _checkpoint_tables(report) + _error_table(report)))
    title = f"pipewatch report {_time(data.generated_at)}"
    return file_html(models, resources=SelfContained(), title=title, template=_TEMPLATE,
                     template_variables={"blocks": blocks})


def _time(t: float | None) -> str:
    if t is None:
        return "unknown"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _header(data: ReportData) -> str:
    window = (f"{_time(data.window_start)} to {_time(data.window_end)}" if data.window_start is not None
              else f"everything the store held at {_time(data.window_end)}")
    rows = "".join(
        f"<tr><td><a href='#pipeline-{esc(quote(r.name, safe=''))}'>{esc(r.name)}</a></td>"
        f"<td class='pw-health' style='color:{esc(text_colour(HEALTH_COLOURS.get(r.summary.health, NEUTRAL)))}'>"
        f"{esc(r.summary.health)}</td><td>{esc(r.sentence)}</td></tr>"
        for r in data.pipelines)
    return (f"<h1>pipewatch report</h1><div class='pw-meta'>Generated {_time(data.generated_at)} on "
            f"{esc(data.instance)}; window: {window}. Every value was measured by pipewatch; "
            "<em>unknown</em> means it was not.</div>"
            f"<h2>Executive summary</h2><table class='pw-executive'><tr><th>pipeline</th><th>health</th>"
            f"<th>what is wrong</th></tr>{rows}</table>")


def _summary(report: PipelineReport) -> str:
    s = report.summary
    registry = ("unknown" if math.isnan(s.registry_up) else "every registry answers" if s.registry_up == 1
                else "a registry does not answer")
    facts = [
        ("health", s.health), ("reason", s.reason),
        ("sources", ", ".join(s.collectors) or "none"), ("sources not up", ", ".join(s.collectors_down) or "none"),
        ("last successful collection", _time(s.last_success)),
        ("produce rate", rate(s.produce_rate, " msg/s")), ("consume rate", rate(s.consume_rate, " msg/s")),
        ("consumer lag", count(s.lag_messages, "messages")), ("oldest unconsumed record", duration(s.lag_seconds)),
        ("Flink jobs running", f"{count(s.flink_running)} of {count(s.flink_jobs)}"),
        ("oldest checkpoint age", duration(s.checkpoint_age)), ("schema registry", registry),
        ("change feed rate", rate(s.change_rate, " changes/s")),
    ]
    rows = "".join(f"<tr><th>{esc(k)}</th><td data-fact='{esc(k)}'>{esc(v)}</td></tr>"
                   for k, v in facts)
    latency_rows = "".join(
        f"<tr><td>{esc(lat.measure)}</td><td>{esc(lat.description)}</td><td class='n'>{lat.samples:,}</td>"
        + "".join(f"<td class='n'>{duration(lat.quantiles.get(q, math.nan))}</td>" for q in (0.5, 0.95, 0.99))
        + "</tr>" for lat in report.latencies)
    latency = (f"<h3>Latency now</h3><table class='pw-latency'><tr><th>measure</th><th>what it is</th><th>samples</th>"
               f"<th>p50</th><th>p95</th><th>p99</th></tr>{latency_rows}</table>" if latency_rows
               else "<p class='pw-meta'>Latency: no measure has samples (unknown).</p>")
    return (f"<h2 id='pipeline-{esc(report.name)}'>Pipeline {esc(report.name)}</h2>"
            f"<p class='pw-sentence'>{esc(report.sentence)}</p>"
            f"<table class='pw-summary'>{rows}</table>{latency}")


def _chart(chart: Chart, data: ReportData):
    fig = figure(title=chart.title, name=chart.name, x_axis_type="datetime", height=300, width=1100,
                 tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="above")
    fig.toolbar.stylesheets = [TOOLBAR_CSS]
    hover = format_axes(fig, chart.unit)
    items = []
    for index, line in enumerate(chart.lines[:20]):
        renderer = fig.line(line.times * 1000.0, line.values, line_width=2, color=Category10_10[index % 10],
                            name=line.label)
        items.append(LegendItem(label=line.label, renderers=[renderer]))
    fig.add_tools(HoverTool(tooltips=[("series", "$name"), ("value", "$y{custom}"), ("time", "$x{%H:%M:%S}")],
                            formatters={"$x": "datetime", "$y": hover}))
    fig.add_layout(Legend(items=items, click_policy="hide", label_text_font_size="9pt"), "right")
    return fig


def _millis(value: float | None) -> str:
    return duration(None if value is None else value / 1000)


def _cell(value: object, numeric: bool = False) -> str:
    return f"<td class='n'>{esc(value)}</td>" if numeric else f"<td>{esc(value)}</td>"


def _checkpoint_tables(report: PipelineReport) -> str:
    if not report.jobs:
        return "<h3>Checkpoints</h3><p class='pw-meta'>No Flink job with checkpoint information.</p>"
    jobs = "".join(
        "<tr>" + _cell(j.job) + _cell(j.state) + _cell(count(j.completed), True) + _cell(count(j.failed), True)
        + _cell(duration(j.interval_seconds) if j.interval_seconds else "off or unknown")
        + _cell(duration(j.age_seconds) if j.age_seconds is not None else "unknown", True)
        + _cell(_millis(j.duration_p50_ms), True) + _cell(_millis(j.duration_max_ms), True)
        + _cell(j.last_failure or "") + "</tr>" for j in report.jobs)
    history = "".join(
        "<tr>" + _cell(c.job) + _cell(c.checkpoint_id, True) + _cell(c.status) + _cell(_time(c.triggered_at))
        + _cell(_millis(c.duration_ms), True) + _cell(size(c.checkpointed_size), True)
        + _cell(size(c.state_size), True) + _cell(c.failure or "") + "</tr>" for c in report.checkpoints)
    return ("<h3>Checkpoints</h3><table class='pw-checkpoint-jobs'><tr><th>job</th><th>state</th><th>completed</th>"
            "<th>failed</th><th>interval</th><th>age of last completed</th><th>duration p50</th><th>duration max</th>"
            f"<th>last failure</th></tr>{jobs}</table>"
            "<table class='pw-checkpoints'><tr><th>job</th><th>checkpoint</th><th>status</th><th>triggered</th>"
            "<th>duration</th><th>checkpointed size</th><th>state size</th><th>failure</th></tr>"
            + (history or "<tr><td colspan=8>no checkpoint in the window</td></tr>") + "</table>")


def _error_table(report: PipelineReport) -> str:
    if not report.errors:
        return "<h3>Errors</h3><p class='pw-meta'>No error seen in the window.</p>"
    rows = "".join("<tr>" + _cell(_time(e.last_seen)) + _cell(_time(e.first_seen)) + _cell(f"{e.count:,}", True)
                   + _cell(e.source) + _cell(e.severity) + _cell(e.category) + _cell(e.message) + _cell(e.hint)
                   + "</tr>" for e in report.errors[:500])
    return ("<h3>Errors</h3><table class='pw-errors'><tr><th>last seen</th><th>first seen</th><th>count</th>"
            "<th>source</th><th>severity</th><th>category</th><th>message</th><th>hint</th>"
            f"</tr>{rows}</table>")


_building: set[object] = set()
"""Sessions (their documents) building a report now: one at a time each, so clicking again and again cannot
queue up reports (each reads the whole store window) on the server."""


class ReportDownload:
    """The page's "Report" button: builds the HTML from the live store when clicked (never before), on a
    worker thread so other sessions keep updating, for the chosen window; the file is named with the time.
    A click while this session's report is being built is refused, and the page says so."""

    WINDOWS = {"last 15 min": 900.0, "last hour": 3600.0, "everything held": None}

    def __init__(self, store, pipeline) -> None:
        """pipeline: its config (flow hints and change feed are used) or its name."""
        import panel as pn

        self.store, self.pipeline = store, pipeline
        self.window = pn.widgets.Select(label="Report window", options=list(self.WINDOWS), value="last hour",
                                        width=150)
        self.button = _refusable_download()(callback=self._build, filename="pipewatch-report.html", label="Report",
                                             color="primary", width=110,
                                             align="end")
        self.message = pn.pane.HTML("", css_classes=["pw-report-message"])
        self.panel = pn.Row(self.window, self.button, self.message, name="report-row")

    def build(self, window: float | None):
        """The report as of now, (file name, HTML)."""
        import time

        from monitoring.report import gather_report, report_filename

        now = time.time()
        return report_filename(now), render_report(gather_report(self.store, [self.pipeline], window, now))

    async def _build(self):
        import asyncio
        import io

        import panel as pn

        session = pn.state.curdoc if pn.state.curdoc is not None else self
        if session in _building:
            self.message.object = (f"<span class='pw-report-busy' style='color:{text_colour(WARNING_TEXT)}'>"
                                   "A report is being built "
                                   "for this page already: it downloads when ready.</span>")
            return None  # refused: nothing is downloaded for this click
        _building.add(session)
        self.message.object = "<span class='pw-report-building'>Building the report&hellip;</span>"
        try:
            name, page = await asyncio.to_thread(self.build, self.WINDOWS[self.window.value])
        finally:
            _building.discard(session)
        self.message.object = ""
        self.button.filename = name
        return io.StringIO(page)


@functools.cache
def _refusable_download():
    import panel as pn
    from param.parameterized import eval_function_with_deps

    class RefusableDownload(pn.widgets.FileDownload):
        """A FileDownload whose callback may answer None: that click downloads nothing (Panel's own widget
        fails on it)."""

        async def _async_sync_data(self):
            fileobj = await eval_function_with_deps(self.callback)
            if fileobj is not None:
                self._sync_data(fileobj)

    return RefusableDownload

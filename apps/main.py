"""pipewatch's dashboard; each browser session runs this script and builds its own views."""

from __future__ import annotations

import panel as pn

from apps.aggregate_view import AggregatePage
from apps.views import PipelinePage
from collectors.prometheus_query import AGGREGATE_PIPELINE
from monitoring.service import get_service

pn.extension("tabulator", sizing_mode="stretch_width", notifications=False)

service = get_service()
if not service.supervisor.running:  # served without app_hooks.py (e.g. `panel serve apps/main.py`)
    service.start_exporter()
    service.start_in_thread()

pipelines = [p.name for p in service.config.pipelines]
options = {name: name for name in pipelines}
options["All pipelines"] = AGGREGATE_PIPELINE  # this process's, remote agents' and Prometheus': ?pipeline=_aggregate
choice = pn.widgets.Select(label="Pipeline", options=options, value=pipelines[0], width=260)
if pn.state.location is not None:
    pn.state.location.sync(choice, {"value": "pipeline"})
metrics_link = (
    f'<a href="http://{service.exporter.host}:{service.exporter.port}/metrics" target="_blank">/metrics</a>'
    if service.exporter else ""
)
holder = pn.Column(sizing_mode="stretch_width")
current: dict[str, object] = {}
"""This session's page and, once the browser is connected, its periodic callback (the ticker)."""


def show(name: str) -> None:
    if "page" in current:
        current["page"].close()
    if name == AGGREGATE_PIPELINE:
        page = AggregatePage.of(service)
    else:
        page = PipelinePage(service.store, name, service.supervisor.collectors)
    current["page"] = page
    holder[:] = [page]
    if "ticker" in current:  # connected already: push can start at once
        page.go_live()


def tick() -> None:
    with pn.io.hold():
        current["page"].refresh()


def start_ticking() -> None:
    # Only once the browser is connected: changes made between the page's first render and the
    # websocket connection never reach the browser, and a stale document stops updating.
    tick()
    current["page"].go_live()
    # Bokeh's own periodic callback: Panel's wrapper also updates a busy indicator on every call, which
    # costs more than a quiet tick itself when a hundred sessions tick.
    current["ticker"] = pn.state.curdoc.add_periodic_callback(tick, 1000)


show(choice.value)
choice.param.watch(lambda event: show(event.new), "value")
pn.state.onload(start_ticking)
pn.state.on_session_destroyed(lambda _context: current["page"].close())

pn.Column(
    pn.Row(pn.pane.HTML("<h2 style='margin:4px 0'>pipewatch</h2>"), choice, pn.pane.HTML(metrics_link),
           sizing_mode="stretch_width"),
    holder,
    sizing_mode="stretch_width",
).servable(title="pipewatch")

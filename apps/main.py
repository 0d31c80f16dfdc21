"""pipewatch's dashboard; each browser session runs this script and builds its own views.

The URL says what is shown, so a link shows the same page to someone else:
`?page=overview` (the default), `?page=pipeline&pipeline=NAME`, `?page=aggregate`, `?page=errors`, and `&theme=dark`
for the dark theme. `?pipeline=NAME` alone (older links) opens that pipeline, `?pipeline=_aggregate` the
aggregate page.
"""

from __future__ import annotations

import panel as pn

from apps.aggregate_view import AggregatePage
from apps.errors_view import ErrorsPage
from apps.escape import esc
from apps.overview_view import OverviewPage
from apps.theme import install as install_theme
from apps.views import PipelinePage
from monitoring.models.aggregate import AGGREGATE_PIPELINE
from pipewatch.service import get_service

pn.extension("tabulator", sizing_mode="stretch_width", notifications=False)

service = get_service()
if not service.supervisor.running:  # served without app_hooks.py (e.g. `panel serve apps/main.py`)
    service.start_exporter()
    service.start_in_thread()

pipelines = [p.name for p in service.config.pipelines]
# All pipelines: this process's, remote agents' (`remote_agents`) and Prometheus' (`prometheus`).
PAGES = {"Overview": "overview", "Pipeline": "pipeline", "All pipelines": "aggregate", "Errors": "errors"}


def _initial(args: dict[str, list[bytes]]) -> tuple[str, str]:
    """(page, pipeline) the URL asks for; anything unknown falls back to the overview / first pipeline."""
    page = args.get("page", [b""])[0].decode("utf-8", "replace")
    pipeline = args.get("pipeline", [b""])[0].decode("utf-8", "replace")
    if not page and pipeline:  # links from before pages had names
        page = "aggregate" if pipeline == AGGREGATE_PIPELINE else "pipeline"
    if page not in PAGES.values():
        page = "overview"
    if pipeline not in pipelines:
        pipeline = pipelines[0]
    return page, pipeline


initial_page, initial_pipeline = _initial(pn.state.session_args or {})
page_choice = pn.widgets.RadioButtonGroup(name="page", options=PAGES, value=initial_page, button_type="light",
                                          width=120 * len(PAGES))
pipeline_choice = pn.widgets.Select(name="pipeline", options=pipelines, value=initial_pipeline, width=220,
                                    visible=initial_page == "pipeline")
if pn.state.location is not None:
    pn.state.location.sync(page_choice, {"value": "page"})
    pn.state.location.sync(pipeline_choice, {"value": "pipeline"})
dark = pn.config.theme == "dark"
install_theme()  # every text colour and table stylesheet reads the theme's variables
theme_toggle = pn.widgets.Button(name="Light theme" if dark else "Dark theme", button_type="light", width=110)
# The theme applies when the page is built: switch by reloading the same URL with the other theme.
theme_toggle.js_on_click(code="""
    const url = new URL(window.location.href);
    url.searchParams.set('theme', url.searchParams.get('theme') === 'dark' ? 'default' : 'dark');
    window.location.href = url.toString();
""")
if dark:
    pn.state.curdoc.theme = "dark_minimal"  # the Bokeh charts and tables follow Panel's dark design
metrics_link = (
    f'<a href="{esc(f"http://{service.exporter.host}:{service.exporter.port}/metrics")}" target="_blank" '
    'style="color:var(--pw-link)">/metrics</a>'
    if service.exporter else ""
)
holder = pn.Column(sizing_mode="stretch_width")
current: dict[str, object] = {}
"""This session's page and, once the browser is connected, its periodic callback (the ticker)."""


def build(page: str, pipeline: str):
    if page == "aggregate":
        return AggregatePage.of(service)
    if page == "errors":
        return ErrorsPage(service.store, pipelines)
    if page == "pipeline":
        config = next(p for p in service.config.pipelines if p.name == pipeline)
        return PipelinePage(service.store, pipeline, service.sources, config)
    return OverviewPage(service.store)


def show(*_events) -> None:
    pipeline_choice.visible = page_choice.value == "pipeline"
    # What is shown; a pipeline value that is not one (an old `?pipeline=_aggregate` link, synced from the browser's
    # URL as it connects) changes nothing. Rebuilding the page then would add models the connecting browser misses.
    shown = (page_choice.value, pipeline_choice.value if page_choice.value == "pipeline" else None)
    if shown[1] not in (None, *pipelines):
        pipeline_choice.value = pipelines[0]  # shows it (this function again, by the watcher)
        return
    if current.get("shown") == shown:
        return
    if "page" in current:
        current["page"].close()
    page = build(page_choice.value, pipeline_choice.value)
    current["page"], current["shown"] = page, shown
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


show()
page_choice.param.watch(show, "value")
pipeline_choice.param.watch(show, "value")
pn.state.onload(start_ticking)
# `current` bound now: Bokeh clears this script's namespace before it calls the session's destroy callbacks.
pn.state.on_session_destroyed(lambda _context, current=current: current["page"].close())

pn.Column(
    pn.Row(pn.pane.HTML("<h2 style='margin:4px 0'>pipewatch</h2>", width=140), page_choice, pipeline_choice,
           theme_toggle, pn.pane.HTML(metrics_link, width=80), sizing_mode="stretch_width"),
    holder,
    sizing_mode="stretch_width",
).servable(title="pipewatch")

"""pipewatch's dashboard; each browser session runs this script and builds the one page its URL names.

The URL says what is shown, so a link shows the same page to someone else (docs/dashboard.md lists them:
`?page=pipeline&pipeline=NAME&section=flink`, `?page=alerts`, `&theme=dark`, and the older `?pipeline=NAME`).
The page is built in two steps: what the first paint needs now, the heavy parts (charts, tables, diagram) once
the browser shows it.
"""

from __future__ import annotations

import panel as pn

from apps.alerts_view import firing_badge
from apps.pages import PAGES, SECTIONS, Route, fit_section, pipeline_names, route, sections_of
from apps.shell import connection_watch, frame, metrics_link, theme_switch
from apps.theme import NAV_CSS
from apps.theme import install as install_theme
from pipewatch.service import get_service

pn.extension("tabulator", sizing_mode="stretch_width", notifications=False)
pn.config.reconnect = True  # a dropped websocket is re-opened (apps/shell.py: and a restarted server reloads the page)

service = get_service()
if not service.supervisor.running:  # served without app_hooks.py (e.g. `panel serve apps/main.py`)
    service.start_exporter()
    service.start_in_thread()

pipelines = pipeline_names(service)
shown = route(pn.state.session_args or {}, pipelines, service.sources)
_SUMMARY = "summary"  # the section choice's value for the pipeline's summary (no `section` in the URL)


def _section_options(pipeline: str) -> dict[str, str]:
    return {"Summary": _SUMMARY, **{SECTIONS[kind]: kind for kind in sections_of(service.sources, pipeline)}}


page_choice = pn.widgets.RadioButtonGroup(label="page", options={p.title: key for key, p in PAGES.items()},
                                          value=shown.page, color="default", orientation="vertical",
                                          sizing_mode="stretch_width", css_classes=["pw-nav-pages"],
                                          stylesheets=[NAV_CSS])
pipeline_choice = pn.widgets.Select(label="pipeline", options=pipelines, value=shown.pipeline,
                                    sizing_mode="stretch_width")
section_choice = pn.widgets.RadioButtonGroup(label="section", options=_section_options(shown.pipeline),
                                             value=shown.section or _SUMMARY, color="default",
                                             orientation="vertical", sizing_mode="stretch_width",
                                             visible=shown.page == "pipeline", css_classes=["pw-nav-sections"],
                                             stylesheets=[NAV_CSS])
holder = pn.Column(sizing_mode="stretch_width")
current: dict[str, object] = {}
"""This session's page, its route and, once the browser is connected, its periodic callback (the ticker)."""


def show(target: Route) -> None:
    if "page" in current:
        current["page"].close()
    page = PAGES[target.page].build(service, target)
    current["page"], current["route"] = page, target
    holder[:] = [page]
    if "ticker" in current:  # connected already: the rest at once, and push can start
        _complete(page)
        page.go_live()


dark = pn.config.theme == "dark"
install_theme()  # every text colour and table stylesheet reads the theme's variables
alerts_badge = pn.pane.HTML(firing_badge(service.alerts, dark), width=90, css_classes=["pw-header-alerts"])


def navigate(*_events) -> None:
    """A choice in the sidebar: show that page and put its URL in the address bar (keeping the theme)."""
    if current.get("navigating"):
        return
    current["navigating"] = True
    try:
        page, pipeline = page_choice.value, pipeline_choice.value
        options = _section_options(pipeline)
        if section_choice.options != options:
            section_choice.options = options
        section = fit_section(page, "" if section_choice.value == _SUMMARY else section_choice.value,
                              service.sources, pipeline)
        section_choice.value = section or _SUMMARY
        section_choice.visible = page == "pipeline"
    finally:
        current["navigating"] = False
    target = Route(page, pipeline, section)
    if target == current["route"]:
        return
    show(target)
    location = pn.state.location
    if location is not None:
        location.search = target.query(location.query_params)


def _complete(page) -> None:
    if hasattr(page, "complete"):
        page.complete()


def tick() -> None:
    with pn.io.hold():
        current["page"].refresh()
        badge = firing_badge(service.alerts, dark)
        if badge != alerts_badge.object:
            alerts_badge.object = badge


def start_ticking() -> None:
    # Only once the browser is connected: changes made between the page's first render and the
    # websocket connection never reach the browser, and a stale document stops updating.
    _complete(current["page"])
    tick()
    current["page"].go_live()
    # Bokeh's own periodic callback: Panel's wrapper also updates a busy indicator on every call, which
    # costs more than a quiet tick itself when a hundred sessions tick.
    current["ticker"] = pn.state.curdoc.add_periodic_callback(tick, 1000)


show(shown)
for widget in (page_choice, pipeline_choice, section_choice):
    widget.param.watch(navigate, "value")
pn.state.onload(start_ticking)
# `current` bound now: Bokeh clears this script's namespace before it calls the session's destroy callbacks.
pn.state.on_session_destroyed(lambda _context, current=current: current["page"].close())

frame(
    header=[pn.Row(pn.layout.HSpacer(), alerts_badge, metrics_link(service), theme_switch(dark), connection_watch(),
                   sizing_mode="stretch_width")],
    sidebar=[pn.pane.HTML("<b>Pages</b>", margin=(10, 10, 0, 10)), page_choice, pipeline_choice, section_choice],
    main=[holder],
).servable(title="pipewatch")

"""The frame around every page: a Panel template with the header (title, theme switch, /metrics, connection state)
and the sidebar (pages, pipeline, the pipeline's sections). Which page shows is apps/main.py's business."""

from __future__ import annotations

import uuid

import panel as pn
import param
from bokeh.models import CustomJS, Spacer
from bokeh.themes import Theme
from panel.theme.bootstrap import Bootstrap, BootstrapDarkTheme, BootstrapDefaultTheme

from apps.escape import esc
from apps.theme import DARK_CHARTS

_CONNECTION_JS = """
if (window.pwConnection != null) { return }  // once per page, also when a reconnection re-sends the document
const doc = session.document
const born = session.tags[0]
const banner = document.createElement("div")
banner.id = "pw-connection"
banner.setAttribute("role", "status")
banner.style.cssText = "position:fixed;top:10px;left:50%;transform:translateX(-50%);z-index:10000;display:none;" +
  "padding:6px 14px;border-radius:4px;font:14px sans-serif;background:#7a4a00;color:#fff;" +
  "box-shadow:0 2px 8px rgba(0,0,0,.35)"
document.body.appendChild(banner)
const state = window.pwConnection = {timer: null, since: null, event: null}
const probe_url = document.querySelector("script[src*='bokeh']")?.src
function show(name, text) {
  banner.dataset.state = name
  banner.textContent = text
  banner.style.display = name === "connected" ? "none" : "block"
}
show("connected", "")
function attempt() {
  const seconds = Math.round((Date.now() - state.since) / 1000)
  show("reconnecting", `Connection to the server lost ${seconds} s ago: reconnecting. ` +
       "What the page shows stopped updating then.")
  state.event?.reconnect()
  // A session the server no longer accepts (a token expired while it was down): load the page anew once it answers.
  if (Date.now() - state.since > 15000 && probe_url) {
    fetch(probe_url, {cache: "no-store"}).then((answer) => { if (answer.ok) { reload() } }).catch(() => {})
  }
}
function reload() {
  show("reloading", "Reconnected to a restarted server: loading the page anew.")
  window.location.reload()
}
doc.on_event("connection_lost", (_, event) => {
  state.event = event
  if (state.timer == null) {
    state.since = Date.now()
    attempt()
    state.timer = setInterval(attempt, 1000)
  }
})
doc.on_event("client_reconnected", () => {
  clearInterval(state.timer)
  state.timer = state.event = null
  // The same session: it goes on updating. A new one (the server restarted, or dropped the old session) was built
  // without this browser: the page loads anew from its URL, which says all it shows.
  const now = doc.get_model_by_name("pw-session")
  if (now == null || now.tags[0] !== born) { reload() } else { show("connected", "") }
})
// Back and forward: the URL changed without the page (navigation pushes the URL of what it shows).
window.addEventListener("popstate", () => window.location.reload())
"""


def connection_watch() -> pn.pane.Bokeh:
    """An invisible model naming this session, and the script that shows the connection's state and recovers it.

    Panel's `reconnect` re-opens a dropped websocket to the same session; after a server restart (or once the server
    dropped the session) the session it reaches is a new one, built without this browser: the page then reloads."""
    marker = Spacer(name="pw-session", tags=[uuid.uuid4().hex], width=0, height=0, visible=False)
    pn.state.curdoc.js_on_event("document_ready", CustomJS(args={"session": marker}, code=_CONNECTION_JS))
    return pn.pane.Bokeh(marker, width=0, height=0, margin=0)


def theme_switch(dark: bool) -> pn.widgets.Button:
    """The theme applies when the page is built: the switch reloads the same URL with the other theme."""
    button = pn.widgets.Button(label="Light theme" if dark else "Dark theme", color="light", width=110)
    button.js_on_click(code="""
        const url = new URL(window.location.href);
        url.searchParams.set('theme', url.searchParams.get('theme') === 'dark' ? 'default' : 'dark');
        window.location.href = url.toString();
    """)
    return button


def metrics_link(service) -> pn.pane.HTML:
    if service.exporter is None:
        return pn.pane.HTML("", width=0, margin=0)
    url = f"http://{service.exporter.host}:{service.exporter.port}/metrics"
    return pn.pane.HTML(f'<a href="{esc(url)}" target="_blank" style="color:inherit">/metrics</a>', width=70,
                        margin=(12, 10))


class _DarkTheme(BootstrapDarkTheme):
    bokeh_theme = param.ClassSelector(class_=(Theme, str), default=DARK_CHARTS)


class _Design(Bootstrap):
    """Panel's Bootstrap design, its dark theme drawing charts with apps/theme.DARK_CHARTS."""

    _themes = {"default": BootstrapDefaultTheme, "dark": _DarkTheme}


TEMPLATE = pn.template.BootstrapTemplate


def frame(header: list, sidebar: list, main: list) -> pn.template.BootstrapTemplate:
    """The template, in the theme the URL asks for (`&theme=dark`: Panel reads it, so widgets and charts follow)."""
    return TEMPLATE(
        title="pipewatch", header=header, sidebar=sidebar, main=main, sidebar_width=230,
        busy_indicator=None, design=_Design,
    )

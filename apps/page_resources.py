"""What a page's HTML makes the browser load: Bokeh's MathJax bundle left out.

Panel adds `bokeh-mathjax.min.js` (1.8 MB, the largest script of a page) to every page that holds an HTML pane, in
case a pane renders `$$` math. pipewatch's panes never do (`disable_math`: their text is escaped source strings,
shown as written), so each page would parse and run it for nothing. Panel has no switch for it: its page renderer
calls `bundle_resources` with the default `enable_mathjax='auto'`; the one internal touched is that call's name in
`panel.io.server`, here only.
"""

from __future__ import annotations

import functools

import panel.io.server as _panel_server


def leave_out_mathjax() -> None:
    """Every page the server renders from now on goes without the MathJax bundle (idempotent)."""
    bundle = _panel_server.bundle_resources
    if getattr(bundle, "keywords", {}).get("enable_mathjax") is False:
        return
    _panel_server.bundle_resources = functools.partial(bundle, enable_mathjax=False)

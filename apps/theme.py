"""The page's colours in each theme, legible everywhere (WCAG contrast of at least 4.5:1 for every text).

What a page shows is built once for every session (shared frames, tiles, cell templates), whatever its theme: its
text colours are CSS variables (apps/palette.text_colour), which the theme sets at the document's root and every shadow
root inherits. Tables draw in their own shadow roots with their own colours (SlickGrid's white rows, Tabulator's
theme), so each table also carries a stylesheet that takes its colours from the same variables. Bokeh charts
and the flow diagram draw on a canvas: their text colours come from `chart_colours`.
"""

from __future__ import annotations

from dataclasses import dataclass

import panel as pn
from bokeh.themes import Theme

from apps.palette import TEXT_SHADES


@dataclass(frozen=True)
class Colours:
    text: str
    muted: str
    """Secondary text (notes, column titles of the flow diagram, edge labels)."""
    background: str
    surface: str
    """Alternate table rows, table headers."""
    selected: str
    border: str
    link: str


LIGHT = Colours(text="#1f2328", muted="#57606a", background="#ffffff", surface="#f6f8fa", selected="#ddf4ff",
                border="#d0d7de", link="#0969da")
DARK = Colours(text="#e6edf3", muted="#9da5ae", background="#212529", surface="#2b3035", selected="#1f3a5f",
               border="#444c56", link="#58a6ff")
"""The dark theme's background is Panel's (its dark.css)."""

_CHART_LINES = {"color": "#e0e0e0", "alpha": 0.25}
DARK_CHARTS = Theme(json={"attrs": {
    "Plot": {"background_fill_color": DARK.surface, "border_fill_color": DARK.background,
             "outline_line_color": _CHART_LINES["color"], "outline_line_alpha": _CHART_LINES["alpha"]},
    "Grid": {"grid_line_color": _CHART_LINES["color"], "grid_line_alpha": _CHART_LINES["alpha"]},
    "Axis": {"major_tick_line_alpha": 0, "minor_tick_line_alpha": 0, "axis_line_alpha": 0,
             "major_label_text_color": DARK.text, "axis_label_text_color": DARK.text},
    "Legend": {"label_text_color": DARK.text, "border_line_alpha": 0, "background_fill_color": DARK.surface,
               "background_fill_alpha": 0.25},
    "BaseColorBar": {"title_text_color": DARK.text, "major_label_text_color": DARK.text,
                     "background_fill_color": DARK.background, "major_tick_line_alpha": 0, "bar_line_alpha": 0},
    "Title": {"text_color": DARK.text},
}})
"""The dark theme's charts: Panel's dark colours with the light theme's fonts and sizes. Panel's own dark Bokeh theme
(Bokeh's dark_minimal) sets every chart text larger and in another font, and the time axis' labels ran together."""


def is_dark() -> bool:
    """Whether this session shows the dark theme (`?theme=dark`)."""
    return pn.config.theme == "dark"


def colours(dark: bool | None = None) -> Colours:
    return DARK if (is_dark() if dark is None else dark) else LIGHT


def page_css(dark: bool) -> str:
    """The variables every text colour and table stylesheet reads, for the document's root."""
    c = colours(dark)
    shades = "".join(f"--pw-text-{colour.lstrip('#')}:{pair[1] if dark else pair[0]};"
                     for colour, pair in TEXT_SHADES.items())
    return (
        f":root{{{shades}--pw-fg:{c.text};--pw-muted:{c.muted};--pw-bg:{c.background};--pw-surface:{c.surface};"
        f"--pw-selected:{c.selected};--pw-border:{c.border};--pw-link:{c.link};}}"
        f"body{{color:var(--pw-fg);background-color:var(--pw-bg);}}"
        f"a:link,a:visited{{color:var(--pw-link);}}"
    )


TABLE_CSS = (
    ":host{--odd:var(--pw-surface,#f6f8fa);--selected:var(--pw-selected,#ddf4ff);--special:var(--pw-surface,#f6f8fa);"
    "--muted-text:var(--pw-muted,#57606a);color:var(--pw-fg,#1f2328);}"
    ".slick-row,.slick-row.even,.slick-viewport,.grid-canvas{background:var(--pw-bg,#ffffff);color:var(--pw-fg,#1f2328);}"
    ".slick-row.odd{background:var(--odd);}"
    ".slick-row.selected,.slick-cell.selected,.slick-row.ui-state-active{background:var(--selected);}"
    ".slick-header-columns,.slick-header-column,.slick-header-column:hover,.slick-header-column-active,"
    ".slick-headerrow,.slick-headerrow-column{background:var(--pw-surface,#f6f8fa);color:var(--pw-fg,#1f2328);"
    "border-color:var(--pw-border,#d0d7de);}"
    ".slick-cell{border-bottom-color:var(--pw-border,#d0d7de);}"
    "a:link,a:visited{color:var(--pw-link,#0969da);}"
)
"""A Bokeh DataTable's stylesheet (its `stylesheets`): rows, headers and selection in the theme's colours."""

TABULATOR_CSS = (
    ".tabulator,.tabulator .tabulator-tableholder,.tabulator .tabulator-table,.tabulator-row,"
    ".tabulator-row.tabulator-row-even,.tabulator .tabulator-footer,.tabulator .tabulator-footer .tabulator-page,"
    ".tabulator .tabulator-footer .tabulator-page-size{background-color:var(--pw-bg,#ffffff);"
    "color:var(--pw-fg,#1f2328);border-color:var(--pw-border,#d0d7de);}"
    ".tabulator-row.tabulator-row-odd{background-color:var(--pw-surface,#f6f8fa);}"
    ".tabulator-row.tabulator-selected,.tabulator-row.tabulator-selectable:hover{"
    "background-color:var(--pw-selected,#ddf4ff);color:var(--pw-fg,#1f2328);}"
    ".tabulator .tabulator-header,.tabulator .tabulator-header .tabulator-col,"
    ".tabulator .tabulator-header .tabulator-col .tabulator-col-content{background-color:var(--pw-surface,#f6f8fa);"
    "color:var(--pw-fg,#1f2328);border-color:var(--pw-border,#d0d7de);}"
    ".tabulator .tabulator-footer .tabulator-page.active{color:var(--pw-link,#0969da);}"
    ".tabulator .tabulator-placeholder .tabulator-placeholder-contents{color:var(--pw-muted,#57606a);}"
)
"""A Panel Tabulator's stylesheet, the same colours as the DataTables'."""


NAV_CSS = (".bk-btn-group .bk-btn.bk-active{background-color:var(--pw-selected);color:var(--pw-fg);font-weight:600;"
           "box-shadow:inset 4px 0 0 var(--pw-link);}")
"""The sidebar's page and section choices: the one shown stands out in both themes."""
TOOLBAR_CSS = ".bk-tool-overflow{color:var(--pw-muted,#57606a);}"
"""A chart toolbar's stylesheet: its overflow mark (`⋮`) is Bokeh's light grey otherwise (3.9:1 on white)."""


def install() -> None:
    """Give this session's page its theme's variables (call once per session, from the page script)."""
    css = page_css(is_dark())
    if css not in pn.config.global_css:
        pn.config.global_css = [*pn.config.global_css, css]


@dataclass(frozen=True)
class ChartColours:
    text: str
    muted: str
    background: str
    line: str
    """Arrows and edges of the flow diagram."""


def chart_colours(dark: bool | None = None) -> ChartColours:
    """Text colours for what Bokeh draws on its canvas (the flow diagram's labels, titles and edges)."""
    c = colours(dark)
    return ChartColours(text=c.text, muted=c.muted, background=c.background,
                        line="#8b949e" if (is_dark() if dark is None else dark) else "#57606a")

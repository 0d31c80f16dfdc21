"""Every place the code hands a string to the browser as HTML goes through apps/escape.py (issue #17).

A static check over the sources of apps/, monitoring/ and exporters/, read as Python syntax trees:
- no `<%= %>` in a table cell template: Bokeh prints it raw (`<%- %>` escapes);
- a Markdown pane only ever holds a constant (Markdown renders raw HTML, and a backtick in a name ends a
  code span);
- HTML built in an f-string, and any f-string set as an HTML pane's, a Div's or a LiveHTML's text, interpolates a
  model's field (an attribute, an item, a method's result) only through `esc()` or with a number format.
- escaping is `esc()` (apps/escape.py) everywhere, never `html.escape` directly;
- a chart's title or axis label (Bokeh reads `$$` there as TeX) holds a model's field only through `plain()`.
Plain local names (HTML the code built, its parts escaped) and calls of formatting functions (`clock(t)`,
`age(...)`) are the code's own text.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("apps", "monitoring", "exporters")
HELPERS = {"esc", "pipeline_href"}
_TAG = re.compile(r"</?(a|b|br|code|div|em|h[1-6]|i|img|li|p|small|span|strong|table|td|th|tr|ul)\b|&[a-z]+;")


def _sources() -> list[Path]:
    return sorted(p for folder in SCANNED for p in (ROOT / folder).rglob("*.py"))


def _is_helper(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Name) and node.func.id in HELPERS)
        or (isinstance(node.func, ast.Attribute) and node.func.attr in HELPERS))


def _constant(node: ast.AST | None) -> bool:
    """A string the code wrote itself: a literal, or an f-string without placeholders."""
    if isinstance(node, ast.Constant):
        return True
    return isinstance(node, ast.JoinedStr) and not any(isinstance(v, ast.FormattedValue) for v in node.values)


def _joined(node: ast.AST):
    """The f-strings inside `node`, not looking inside the escaping helper's arguments."""
    if _is_helper(node):
        return
    if isinstance(node, ast.JoinedStr):
        yield node
    for child in ast.iter_child_nodes(node):
        yield from _joined(child)


def _unescaped_fields(node: ast.JoinedStr):
    """Placeholders that interpolate a model's field (an attribute, an item, a method's result, an expression)
    as it is: not through the helper, not as a formatted number."""
    for value in node.values:
        if not isinstance(value, ast.FormattedValue) or value.format_spec is not None or _is_helper(value.value):
            continue
        own = isinstance(value.value, (ast.Name, ast.Constant)) or (
            isinstance(value.value, ast.Call) and isinstance(value.value.func, ast.Name))
        if not own:
            yield value


def _looks_like_html(node: ast.JoinedStr) -> bool:
    return any(isinstance(v, ast.Constant) and _TAG.search(str(v.value)) for v in node.values)


def _sink_value(node: ast.Call) -> ast.AST | None:
    """What a pane or Div call renders: its first argument, `object=` or `text=`."""
    if node.args:
        return node.args[0]
    return next((k.value for k in node.keywords if k.arg in ("object", "text")), None)


def _callee(node: ast.Call) -> str:
    return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")


def _chart_text(node: ast.AST) -> ast.AST | None:
    """What a node draws as a chart's title or axis label: set on `.title.text` or `.axis_label`, or given as a
    `title=`, `xlabel=` or `ylabel=` argument; None when it is `plain()` text or no such thing."""
    value = None
    if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Attribute) and (t.attr == "axis_label" or (
                t.attr == "text" and isinstance(t.value, ast.Attribute) and t.value.attr == "title"))
            for t in node.targets):
        value = node.value
    elif isinstance(node, ast.Call):
        value = next((k.value for k in node.keywords if k.arg in ("title", "xlabel", "ylabel")), None)
    is_plain = isinstance(value, ast.Call) and _callee(value) == "plain"
    return None if is_plain else value


def violations(source: str, name: str = "<source>") -> list[str]:
    tree = ast.parse(source)
    found: list[str] = []

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{name}:{node.lineno}: {what}: {ast.get_source_segment(source, node) or ''}"[:300])

    markdown_panes = {ast.unparse(t) for n in ast.walk(tree) if isinstance(n, ast.Assign)
                      and isinstance(n.value, ast.Call) and _callee(n.value) == "Markdown" for t in n.targets}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "<%=" in node.value:
            report(node, "raw <%= %> in a cell template (use <%- %>)")
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "html.escape" and not name.endswith("escape.py"):
            report(node, "html.escape outside apps/escape.py (use esc(): one helper, one behaviour)")
        if isinstance(node, ast.Call) and _callee(node) == "Markdown" and not _constant(_sink_value(node)):
            report(node, "a Markdown pane with a computed text (use an escaped HTML pane or Div)")
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "object"
                                                and ast.unparse(t.value) in markdown_panes for t in node.targets) \
                and not _constant(node.value):
            report(node, "a computed text set on a Markdown pane")
        direct = None
        if isinstance(node, ast.Call) and _callee(node) in ("HTML", "Div", "LiveHTML"):
            direct = _sink_value(node)
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Attribute) and t.attr in ("text", "object")
                and not (isinstance(t.value, ast.Attribute) and t.value.attr == "title") for t in node.targets):
            direct = node.value
        if direct is not None:
            for joined in _joined(direct):
                if not _looks_like_html(joined):  # (else reported below)
                    for placeholder in _unescaped_fields(joined):
                        report(placeholder, "a field set as HTML text without esc()")
        chart_text = _chart_text(node)
        if chart_text is not None:
            for joined in _joined(chart_text):
                for placeholder in _unescaped_fields(joined):
                    report(placeholder, "a field drawn in a chart's title or axis label without plain()")
        if isinstance(node, ast.JoinedStr) and _looks_like_html(node):
            for placeholder in _unescaped_fields(node):
                report(placeholder, "a field interpolated into HTML without esc()")
    return found


def test_no_source_string_reaches_html_unescaped():
    found = [v for path in _sources() for v in violations(path.read_text(encoding="utf-8"),
                                                             str(path.relative_to(ROOT)))]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("bug", [
    # the reported one: a dataset name in a Markdown title
    'self.title = pn.pane.Markdown("")\nself.title.object = f"Run `{row[\'run id\']}` of `{row[\'dataset\']}`"',
    'x = pn.pane.Markdown(f"### Kafka cluster `{cluster}`")',
    "x = HTMLTemplateFormatter(template='<span><%= value %></span>')",
    'x = pn.pane.HTML(f"<b>{job.name}</b>")',
    'x = pn.pane.HTML(f"Kafka cluster {self.cluster}")',
    'div.text = f"<b>{snapshot.version}</b>"',
    'x = Div(text="<i>" + f"{job.name}" + "</i>")',
    'x = LiveHTML("<i>" + f"{job.name}" + "</i>", name="flink-graph")',
    'parts.append(f\'<b style="color:red">{job.state}</b>\')',
    'rows = f"<td>{row[\'dataset\']}</td>"',
    'rows = f"<td>{s.health.upper()}</td>"',
    'x = "<b>" + html.escape(name) + "</b>"',
    'fig.title.text = f"Pipeline flow: {topology.pipeline}"',
    'fig = figure(title=f"{row.pipeline} · {agent}", height=150)',
    'fig.yaxis.axis_label = f"{metric.name}"',
])
def test_the_check_finds_each_kind_of_unescaped_sink(bug):
    assert violations(bug), bug


@pytest.mark.parametrize("fine", [
    'x = pn.pane.Markdown("### Consumer groups")',
    'x = pn.pane.HTML(f"<b>{esc(name)}</b>")',
    'div.text = f"<b>{esc(snapshot.version)}</b> {count:,} rows"',
    'x = Div(text="<em>No job to show.</em>")',
    'x = LiveHTML("<em>No summary yet.</em>", name="overview-tiles")',
    'parts.append(f\'<b style="color:{colour}">{esc(job.state)}</b> {age(t, now)}\')',
    "x = HTMLTemplateFormatter(template='<span><%- value %></span>')",
    'x = pn.pane.HTML(f"<h3>{heading}</h3> {clock(t)}")',  # names: HTML the code built
    'fig.title.text = plain(f"Pipeline flow: {topology.pipeline}")',  # drawn on the canvas, as written
    'fig = figure(title=title, height=150)',  # a name: the code's own text
    'label = f"{group.group_id} / {topic}"',  # not HTML
])
def test_the_check_passes_escaped_and_constant_text(fine):
    assert violations(fine) == [], fine


def test_escape_helpers():
    from apps.escape import choice_options, esc, pipeline_href

    assert esc('<img src=x onerror="a()">\'') == "&lt;img src=x onerror=&quot;a()&quot;&gt;&#x27;"
    assert pipeline_href("a&b #1/<x>") == "?page=pipeline&amp;pipeline=a%26b%20%231%2F%3Cx%3E"
    assert choice_options(["<b>x</b>", "plain"]) == {"&lt;b&gt;x&lt;/b&gt;": "<b>x</b>", "plain": "plain"}


def test_csv_cells_that_a_spreadsheet_would_run_start_with_a_quote():
    import pandas as pd

    from apps.escape import spreadsheet_safe

    frame = pd.DataFrame({"text": ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tcmd", "\rcmd", "safe", ""],
                          "n": [-1.5, 2, 3, 4, 5, 6, 7, 8]})
    safe = spreadsheet_safe(frame)
    assert list(safe["text"]) == ["'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "'\tcmd", "'\rcmd",
                                  "safe", ""]
    assert list(safe["n"]) == [-1.5, 2, 3, 4, 5, 6, 7, 8]  # numbers stay numbers
    assert frame["text"][0] == "=HYPERLINK(\"http://x\")"  # the shown frame is left as it is

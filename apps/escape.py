"""The one way a string from a monitored system reaches a page, a link or an exported file.

Group ids, job names, subjects, dataset names, payloads... are written by whoever runs those systems:
in HTML they are always text (`esc`), in a link always one encoded query value (`pipeline_href`), in a chart's
title or axis label always plain text (`plain`), and in a CSV never a spreadsheet formula (`spreadsheet_safe`).
tests/test_html_sinks.py checks the sources use them.
"""

from __future__ import annotations

import html
from urllib.parse import quote

import pandas as pd
from bokeh.models import PlainText

from monitoring.spreadsheet import spreadsheet_cell


def esc(value: object) -> str:
    """`value` as HTML text: also safe inside a quoted attribute (both quote kinds are escaped)."""
    return html.escape(str(value), quote=True)


def pipeline_href(name: str, section: str = "") -> str:
    """The link to a pipeline's page (or to one of its sections), for an href attribute (already HTML-escaped)."""
    link = f"?page=pipeline&pipeline={quote(name, safe='')}"
    return esc(f"{link}&section={quote(section, safe='')}" if section else link)


def plain(value: object) -> PlainText:
    """`value` for a Bokeh title or axis label, shown as written: Bokeh reads a string there holding `$$...$$` (or
    `\\[...\\]`, `\\(...\\)`) as TeX, and would draw a name like `c$$x^2$$` as a formula or as garbled markup."""
    return PlainText(text=str(value))


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells are all `spreadsheet_cell`s (numbers stay numbers)."""
    safe = frame.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column].dtype):
            safe[column] = safe[column].map(spreadsheet_cell)
    return safe


def choice_options(options: list[str]) -> dict[str, str]:
    """Options for a MultiChoice, label -> value: Bokeh's MultiChoice (Choices.js) shows its labels as HTML, so
    each label is its option escaped, which it then shows as written."""
    return {esc(option): option for option in options}

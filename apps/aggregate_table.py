"""How the aggregate page writes the combined rows (monitoring/aggregate.py): the table's columns and cells, the
totals line, the agents line and the Prometheus status."""

from __future__ import annotations

import math

from apps.escape import esc
from apps.format_templates import cell_template
from apps.palette import HEALTH_COLOURS, js_colour
from monitoring.aggregate import AgentLine, PrometheusStatus, kafka_total, watched
from monitoring.format import clock, count, rate
from monitoring.summary import PipelineSummary

_STATUS_NAMES = ("NOTFOUND", "OK", "WARN", "ERR")


def _cell(field: str, body: str) -> str:
    """A cell that names its column (`data-field`), so the page can be read cell by cell."""
    return f'<span class="pw-cell" data-field="{field}">{body}</span>'


_TEXT = "<%- value %>"
"""Escaped: reasons and names may come from other agents."""
_HEALTH = (f'<span class="pw-agg-health" data-health="<%- value %>" style="font-weight:bold;color:'
           f'<%- {js_colour(HEALTH_COLOURS)} %>"><%- value %></span>')
_SECONDS = cell_template("duration", blank_none=True)
"""None: the pipeline has no such source, a blank cell. NaN: it has the source and the value is unknown."""
_COUNT = cell_template("count", blank_none=True)
_RATE = cell_template("rate", blank_none=True)
COLUMNS = {  # field: (title, cell template, width)
    "agent": ("agent", _TEXT, 170), "pipeline": ("pipeline", _TEXT, 120), "health": ("health", _HEALTH, 90),
    "sources_down": ("sources down", _TEXT, 110), "lag": ("lag", _COUNT, 80), "max_lag": ("max lag", _SECONDS, 80),
    "lag_status": ("lag status", _TEXT, 75), "produce_rate": ("produce rate", _RATE, 90),
    "consume_rate": ("consume rate", _RATE, 90), "flink_running": ("Flink jobs running", _TEXT, 110),
    "checkpoint_age": ("checkpoint age", _SECONDS, 100), "registry": ("registry", _TEXT, 65),
    "change_rate": ("change rate", _RATE, 80), "last_update": ("last update", _TEXT, 95),
    "reason": ("reason", _TEXT, 420),
}
"""The table's columns (each cell's template wrapped by `cell_template`)."""


def cell_templates() -> dict[str, str]:
    """field -> the cell template naming its column."""
    return {field: _cell(field, body) for field, (_, body, _) in COLUMNS.items()}


def row_cells(row: PipelineSummary) -> dict[str, object]:
    """One pipeline's cells: numbers stay numeric (the table sorts them), None where the pipeline has no such source."""
    status = ""  # blank: the pipeline has no consumer group status (no Kafka, or not known)
    if not math.isnan(row.worst_status):
        code = int(row.worst_status)
        status = _STATUS_NAMES[code] if 0 <= code < len(_STATUS_NAMES) else str(code)
    running = "" if math.isnan(row.flink_jobs) else f"{row.flink_running:.0f} of {row.flink_jobs:.0f}"
    registry = "" if math.isnan(row.registry_up) else "up" if row.registry_up == 1 else "DOWN"
    return {
        "agent": row.instance, "pipeline": row.pipeline, "health": row.health,
        "sources_down": ", ".join(row.collectors_down), "lag": watched(row, "kafka", row.lag_messages),
        "max_lag": watched(row, "kafka", row.lag_seconds), "lag_status": status,
        "produce_rate": watched(row, "kafka", row.produce_rate),
        "consume_rate": watched(row, "kafka", row.consume_rate),
        "flink_running": running, "checkpoint_age": watched(row, "flink", row.checkpoint_age),
        "registry": registry, "change_rate": watched(row, "change_feed", row.change_rate),
        "last_update": clock(row.last_success), "reason": row.reason,
    }


def table_columns(rows: tuple[PipelineSummary, ...]) -> dict[str, list]:
    """The table's data, column by column."""
    cells = [row_cells(row) for row in rows]
    return {field: [row[field] for row in cells] for field in COLUMNS}


def totals_html(rows: tuple[PipelineSummary, ...]) -> str:
    healthy = sum(row.health == "ok" for row in rows)
    agents = len({(row.job, row.instance) for row in rows})
    lag, produce, consume = (_total(rows, field, write) for field, write in (
        ("lag_messages", count), ("produce_rate", rate), ("consume_rate", rate)))
    return (f'<div class="pw-agg-totals"><b>{len(rows):,}</b> pipelines on <b>{agents:,}</b> agents: '
            f"<b>{healthy:,}</b> ok, <b>{len(rows) - healthy:,}</b> not &middot; lag {lag} messages &middot; "
            f"produce {produce} &middot; consume {consume}</div>")


def _total(rows: tuple[PipelineSummary, ...], field: str, write) -> str:
    total, unknown = kafka_total(rows, field)
    if total is None:
        return "unknown"
    return write(total) + (f" (+ {unknown} pipeline(s) unknown)" if unknown else "")


def agents_html(agents: tuple[AgentLine, ...]) -> str:
    return " ".join(
        f'<span class="pw-agent" data-state="{esc(agent.state)}" style="margin-right:12px"'
        f' title="{esc(agent.detail)}">{esc(agent.label)}: {esc(agent.state.upper())}</span>'
        for agent in agents)


def status_html(prometheus: PrometheusStatus | None) -> str:
    """How current the Prometheus read-back is ("" without Prometheus)."""
    if prometheus is None:
        return ""
    if prometheus.measured_at is None:
        text = f"Prometheus at {esc(prometheus.url)}: no answer yet"
    else:
        text = f"Prometheus at {esc(prometheus.url)}: measured at {clock(prometheus.measured_at)}"
        if prometheus.stale is not None:
            text += f" (STALE: {esc(prometheus.stale)})"
    return f'<span class="pw-agg-status">{text}</span>'

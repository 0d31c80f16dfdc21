"""The aggregate page's content, combined once per process for every session that shows it.

Whenever one of the page's sources publishes (the evaluator's summaries, a remote agent's or Prometheus' reader)
or a reader's state changes, the rows are combined (monitoring/aggregate.py) and written (apps/aggregate_table.py)
once; each session compares `version` and re-renders only when what the page shows changed.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

from apps.aggregate_table import agents_html, status_html, table_columns, totals_html
from monitoring.aggregate import AgentLine, combine, inputs, readers
from monitoring.models.aggregate import RemoteAgentSnapshot
from monitoring.sources import DeclaredSource
from monitoring.store import Store
from monitoring.summary import PipelineSummary


@dataclass(frozen=True)
class Combined:
    """Every row the page shows now, built once per process per change of any of its sources."""

    version: int
    """Bumped only when what the page shows changed (rows, agents, status): sessions compare it."""
    rows: tuple[PipelineSummary, ...]
    columns: dict[str, list]
    """The table's data, column by column (each session copies the dict into its own data source)."""
    agents: tuple[AgentLine, ...]
    status: str
    totals: str
    agents_html: str
    remote: dict[str, RemoteAgentSnapshot]
    """url -> the remote agent's snapshot (for its pipelines' small charts)."""


class SharedAggregate:
    """The combined rows of one store (process), shared by every session."""

    def __init__(self, store: Store, sources: list[DeclaredSource], own_instances: frozenset[str]) -> None:
        self.store = store
        self.readers = readers(sources)
        """The aggregate readers (remote agents, Prometheus) among the declared sources."""
        self.own_instances = own_instances
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._content: tuple | None = None
        self._combined: Combined | None = None

    def current(self, now: float) -> Combined:
        key = inputs(self.store, self.readers, now)
        with self._lock:
            if key != self._key or self._combined is None:
                self._key = key
                self._build(now)
            assert self._combined is not None
            return self._combined

    def _build(self, now: float) -> None:
        combination = combine(self.store, self.readers, self.own_instances, now)
        rows, agents, status = combination.rows, combination.agents, status_html(combination.prometheus)
        # Compared as JSON: a NaN (unknown) is never equal to another NaN, None is.
        content = ([row.to_json() for row in rows], agents, status)
        if self._combined is not None and content == self._content:
            self._combined = dataclasses.replace(self._combined, rows=rows, agents=agents, remote=combination.remote)
            return
        self._content = content
        version = self._combined.version + 1 if self._combined is not None else 1
        self._combined = Combined(version, rows, table_columns(rows), agents, status, totals_html(rows),
                                  agents_html(agents), combination.remote)


_shared: dict[int, SharedAggregate] = {}
_shared_lock = threading.Lock()


def shared_aggregate(store: Store, sources: list[DeclaredSource],
                     own_instances: frozenset[str] = frozenset()) -> SharedAggregate:
    """The store's SharedAggregate (made by the first session that asks)."""
    with _shared_lock:
        found = _shared.get(id(store))
        if found is None or found.store is not store:
            found = _shared[id(store)] = SharedAggregate(store, sources, own_instances)
        return found

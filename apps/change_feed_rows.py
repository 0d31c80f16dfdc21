"""The change feed's rows as its table shows them, made once for every session that asks for the same.

Changed rows are user data: every value is text (the table's string cells escape it), never HTML. Sessions with the
same filters at the same position share one list of matching rows, so many viewers cost one filtering per change.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

from monitoring.format import millis_clock
from monitoring.store import FeedRow

COLUMNS = ["time", "entity", "event", "key", "fields", "payload"]
PAGE_ROWS = 25
EVENTS = ["insert", "update", "delete"]
_DEFAULT_FIELDS = 4
UNFILTERED = ((), (), "")
"""Entities, events and search text of a view without filters (the end of its filters key)."""
_matches: OrderedDict[tuple, list[dict[str, str]]] = OrderedDict()
_matches_lock = threading.Lock()
_texts: OrderedDict[tuple, dict[str, str]] = OrderedDict()
"""Each delivered row as the table shows it, made once for every session: (source, seq, delivered at) -> cells."""
_TEXTS_KEPT = 50_000


def rows_matching(key: tuple, recent: dict[str, list[FeedRow]], fields: dict[str, list[str]]) -> list[dict[str, str]]:
    """The rows a filters key (source, position, entities, events, search) selects, made once for every session
    asking for the same."""
    with _matches_lock:
        rows = _matches.get(key)
    if rows is None:
        rows = _matching(key[0], recent, fields, *key[2:])
        with _matches_lock:
            _matches[key] = rows
            while len(_matches) > 32:
                _matches.popitem(last=False)
    return rows


def page_columns(rows: list[dict[str, str]], page: int) -> dict[str, list[str]]:
    shown = rows[page * PAGE_ROWS:(page + 1) * PAGE_ROWS]
    return {column: [row[column] for row in shown] for column in COLUMNS}


def _matching(source: tuple[str, str], recent: dict[str, list[FeedRow]], fields: dict[str, list[str]],
              entities: tuple[str, ...], events: tuple[str, ...], search: str) -> list[dict[str, str]]:
    rows = [row for name, entity_rows in recent.items() if not entities or name in entities for row in entity_rows
            if not events or row.event_type in events]
    rows.sort(key=lambda row: row.seq, reverse=True)
    keys = [(source, row.seq, row.delivered_at) for row in rows]  # the delivery time tells two stores apart (tests)
    with _matches_lock:  # one lock for the lookups: this runs for every session on every push
        texts = [_texts.get(key) for key in keys]
    new = {key: _text(row, fields) for key, row, text in zip(keys, rows, texts, strict=True) if text is None}
    if new:
        with _matches_lock:
            _texts.update(new)
            while len(_texts) > _TEXTS_KEPT:
                _texts.popitem(last=False)
        texts = [text if text is not None else new[key] for key, text in zip(keys, texts, strict=True)]
    return [text for text in texts if search in text["_search"]] if search else texts


def _text(row: FeedRow, fields: dict[str, list[str]]) -> dict[str, str]:
    """One row's cells as the table shows them (plus the lower-cased payload the search looks in)."""
    payload = json.dumps(row.payload, ensure_ascii=False, default=str)
    shown = fields.get(row.entity) or list(row.payload)[:_DEFAULT_FIELDS]
    return {"time": millis_clock(row.changed_at), "entity": row.entity, "event": row.event_type, "key": row.key or "",
            "fields": ", ".join(f"{f}={row.payload.get(f)}" for f in shown), "payload": payload,
            "_search": payload.lower()}

"""The change feed's cards (one per entity: totals, rate, last change) and status line (connection, delivery
delay, backlog), as HTML."""

from __future__ import annotations

from apps.escape import esc
from apps.palette import BORDER, ERROR, entity_colour, text_colour
from monitoring.config import ChangeFeedSource
from monitoring.evaluation import delivery_delay
from monitoring.format import age, clock, count, duration, rate
from monitoring.health import State
from monitoring.store import Store


def _latest(store: Store, name: str, pipeline: str, *labels: str) -> float | None:
    point = store.latest(name, (pipeline, *labels))
    return None if point is None else point[1]


def cards_text(store: Store, source: tuple[str, str], entities: list[str], events: dict[str, list[str]],
               now: float) -> str:
    """A card per entity: totals by event type, rate and the last change's age."""
    _, recent = store.feed_recent(source)
    cards = []
    for name in entities:
        counts = {event: _latest(store, "db_change_events_total", source[0], name, event) for event in events[name]}
        changes = _latest(store, "db_change_feed_rate", source[0], name)
        rows = recent.get(name) or []
        last = rows[-1].changed_at if rows else None
        totals = " &middot; ".join(f"{count(n)} {event}s" for event, n in counts.items())
        rate_text = rate(changes)
        cards.append(
            f'<div class="pw-feed-card" data-entity="{esc(name)}" style="display:inline-block;'
            f"min-width:220px;margin:4px 8px 4px 0;padding:6px 10px;border:1px solid {BORDER};"
            f'border-left:6px solid {entity_colour(name)};border-radius:6px"><b>{esc(name)}</b><br>'
            f'<span class="pw-feed-totals">{totals}</span><br>'
            f"{rate_text} &middot; last change {age(last, now)}</div>")
    return "".join(cards)


def status_text(store: Store, source: tuple[str, str], config: ChangeFeedSource, state: State, seq: int,
                now: float) -> str:
    """The connection (or why it is down), the measured delay over the last changes and the backlog."""
    health = store.health().get(source)
    if state is State.UP:
        text = (f'<span class="pw-feed-connection" data-state="up">Listening on <code>{esc(config.channel)}'
                f"</code> (and reading every {config.poll_interval_seconds:g} s)</span>")
    else:
        text = (f'<span class="pw-feed-connection" data-state="{esc(state.value)}" style="color:{text_colour(ERROR)}">'
                f"<b>{esc(state.value.upper())}</b>: {esc(health.reason(now) if health else 'not started')}</span>")
    rows = store.feed_since(source, max(0, seq - 200))
    delay = delivery_delay(rows)
    if delay is not None:
        text += (f' &middot; <span class="pw-feed-delay">delay from change to delivery over the last '
                 f"{delay.changes:,}: median {duration(delay.median)}, p95 {duration(delay.p95)}, "
                 f"last delivery {clock(rows[-1].delivered_at)}</span>")
    backlog = _latest(store, "db_change_feed_backlog", source[0])
    if backlog:
        text += f" &middot; backlog {count(backlog)}"
    return text

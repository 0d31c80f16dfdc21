"""Mirror mode: a dashboard process that runs no collectors and shows what one `pipewatch agent` collects.

Details: docs/internals.md, "Mirror mode"."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from collectors.aggregate.remote_agents import RemoteAgentError, get_agent_json
from collectors.http import build_client
from monitoring.config import ChangeFeedSource, Config, Mirror
from monitoring.errors import ErrorEntry
from monitoring.health import CollectorHealth
from monitoring.json_numbers import from_json
from monitoring.runtime import Collector
from monitoring.sources import CHANGE_FEED, MIRROR_PIPELINE, MIRROR_SOURCE, collector_name
from monitoring.store import FeedRow, SeriesKey, Source, Store
from monitoring.wire import WireError, decode, series_id

STATE_PATH = "/api/v1/state"
MAX_FEED_ROWS_PER_ENTITY = ChangeFeedSource.model_fields["rows_per_entity"].metadata[-1].le
"""A copied feed's rows per entity when this process's config has no change feed for it: the config's own bound."""
MAX_FEED_ROWS = 1_000_000
"""A copied feed's rows in all when this process's config has no change feed for it."""
MAX_TEXT = 4096
"""Longest event message copied (a longer one is cut): the event log is shown whole on the pages."""


@dataclass
class _Answer:
    """One /api/v1/state answer, checked and decoded before anything of it is written."""

    reset: bool
    next: str
    agent: dict
    health: list[CollectorHealth]
    snapshots: list[tuple[Source, float, object]]
    series: list[tuple[SeriesKey, Source, int, list[float], list[float]]]
    series_ids: set[str] | None
    events: list[tuple[float, str, str, str, str]]
    errors: list[ErrorEntry] | None
    feeds: list[tuple[Source, int, int, list[FeedRow]]]


class MirrorCollector(Collector):
    name = MIRROR_SOURCE[1]

    def __init__(self, config: Mirror, local: Config | None = None) -> None:
        self.config = config
        self._feed_bounds: dict[Source, tuple[int, int]] = {}
        """source -> (rows per entity, rows) at most, from this process's config (what it would keep itself)."""
        for pipeline in local.pipelines if local is not None else ():
            feed = pipeline.change_feed
            if feed is not None:
                self._feed_bounds[(pipeline.name, collector_name(CHANGE_FEED))] = (feed.rows_per_entity,
                                                                     feed.rows_per_entity * len(feed.entities))
        self.url = config.url
        # The request's own timeout comes first, so a slow agent is reported as a timeout of the request.
        super().__init__(MIRROR_PIPELINE, config.url, config.interval_seconds, config.timeout_seconds + 2)
        self._client: httpx.AsyncClient | None = None
        self._cursor: str | None = None
        self._counts: dict[SeriesKey, int] = {}
        """Points the agent's series had ever received when last copied: only later ones are copied."""
        self._ids: dict[SeriesKey, str] = {}
        self._sources: set[Source] = set()
        """Sources whose series or snapshots were copied (dropped when the agent restarts)."""
        self._feeds: set[Source] = set()
        self.agent: dict | None = None
        """What the agent says of itself (version, host, started_at)."""
        self.resets = 0

    async def collect(self, store: Store) -> int:
        if self._client is None:
            self._client = build_client(self.url, self.config.basic_auth, self.config.tls,
                                        self.config.timeout_seconds, max_connections=1)
        body = await get_agent_json(self._client, STATE_PATH, [("cursor", self._cursor)] if self._cursor else None,
                                    self.config.max_answer_bytes)
        try:
            answer = _parse(body)
        except (KeyError, IndexError, TypeError, ValueError, WireError) as exc:  # (WireError is a ValueError)
            raise RemoteAgentError("protocol", f"GET {STATE_PATH}: the answer is malformed: {exc}") from None
        self._apply(store, answer)
        return 1

    def _apply(self, store: Store, answer: _Answer) -> None:
        clear = set()
        if answer.reset and self._cursor is not None:  # the agent restarted: what it had before is gone there
            for source in self._sources:
                store.remove_source(source)
            store.remove_keys(list(self._counts))
            self._counts.clear()
            self._sources.clear()
            clear = set(self._feeds)
            self.resets += 1
            store.add_event(MIRROR_PIPELINE, self.name, "warning",
                            f"the agent at {self.url} restarted: its state is copied again from scratch")
        self.agent = answer.agent
        for health in answer.health:
            if (health.pipeline, health.collector) != self.source:  # (an agent that mirrors another: not ours)
                store.set_health(health)
        for source, t, snapshot in answer.snapshots:
            if source[0] != MIRROR_PIPELINE:  # summaries and latencies: this process's evaluator makes its own
                store.publish_snapshot(source, snapshot, t)
                self._sources.add(source)
        gone: list[SeriesKey] = []
        if answer.series_ids is not None:
            for key in list(self._counts):
                ident = self._ids.get(key) or self._ids.setdefault(key, series_id(key))
                if ident not in answer.series_ids:
                    gone.append(key)
                    del self._counts[key]
                    self._ids.pop(key, None)
        rows = []
        for key, source, count, times, values in answer.series:
            known = self._counts.get(key)
            if known is not None and count < known:  # dropped and made again on the agent: its count began again
                gone.append(key)
                known = None
            take = min(len(times) if known is None else count - known, len(times), store.points_per_series)
            self._counts[key] = count
            self._sources.add(source)
            if take > 0:
                rows.append((source, key, times[-take:], values[-take:]))
        if gone:
            store.remove_keys(gone)
        if rows:
            store.append_series(rows)
        for t, pipeline, collector, severity, message in answer.events:
            store.add_event(pipeline, collector, severity, message if len(message) <= MAX_TEXT
                            else message[:MAX_TEXT - 1] + "…", t)
        if answer.errors is not None:
            store.replace_errors(answer.errors, keep=lambda e: (e.pipeline, e.component) == self.source)
        for source in clear - {feed[0] for feed in answer.feeds}:
            store.feed_extend(source, [], 1, 1, clear=True)
        for source, per_entity, capacity, feed_rows in answer.feeds:
            per_entity, capacity = self.feed_size(source, per_entity, capacity)
            store.feed_extend(source, [(r.entity, r.event_type, r.key, r.payload, r.changed_at, r.delivered_at)
                                       for r in feed_rows], per_entity, capacity, clear=source in clear)
            self._feeds.add(source)
        self._cursor = answer.next

    def feed_size(self, source: Source, per_entity: int, capacity: int) -> tuple[int, int]:
        """The agent's (rows per entity, rows) of a feed, no larger than this process's config allows."""
        most_per_entity, most = self._feed_bounds.get(source, (MAX_FEED_ROWS_PER_ENTITY, MAX_FEED_ROWS))
        return max(1, min(per_entity, most_per_entity)), max(1, min(capacity, most))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _parse(body: dict) -> _Answer:
    def source(entry: dict) -> Source:
        return (_str(entry["pipeline"]), _str(entry["collector"]))

    health = [decode(h) for h in body["health"]]
    if not all(isinstance(h, CollectorHealth) for h in health):
        raise WireError("health holds something that is not a collector's health")
    errors = None if body["errors"] is None else [decode(e) for e in body["errors"]]
    if errors is not None and not all(isinstance(e, ErrorEntry) for e in errors):
        raise WireError("errors holds something that is not an error entry")
    feeds = []
    for feed in body["feeds"]:
        rows = [decode(row) for row in feed["rows"]]
        if not all(isinstance(row, FeedRow) for row in rows):
            raise WireError("a feed holds something that is not a feed row")
        feeds.append((source(feed), _whole(feed["per_entity"]), _whole(feed["capacity"]), rows))
    series = []
    for entry in body["series"]:  # (tens of thousands a second at most: type checks kept cheap)
        times = [float(t) for t in entry["times"]]
        values = [v if type(v) is float else _value(v) for v in entry["values"]]
        labels = entry["labels"]
        if len(times) != len(values) or type(labels) is not list or not all(type(x) is str for x in labels):
            raise ValueError("a series entry is malformed")
        key = (_str(entry["name"]), tuple(labels))
        series.append((key, (_str(entry["pipeline"]), _str(entry["collector"])), _whole(entry["count"]), times,
                       values))
    ids = body["series_ids"]
    return _Answer(
        reset=body["reset"] is True, next=_str(body["next"]), agent=dict(body["agent"]), health=health,
        snapshots=[(source(s), float(s["time"]), decode(s["value"])) for s in body["snapshots"]],
        series=series, series_ids=None if ids is None else {_str(i) for i in ids},
        events=[(float(e["time"]), _str(e["pipeline"]), _str(e["collector"]), _str(e["severity"]), _str(e["message"]))
                for e in body["events"]],
        errors=errors, feeds=feeds)


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _whole(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise TypeError(f"expected a whole number, got {value!r}")
    return value


def _value(value: object) -> float:
    """A point's value as the API writes it (monitoring.json_numbers)."""
    number = from_json(value)
    if number is None:
        raise TypeError(f"expected a number, got {value!r}")
    return number

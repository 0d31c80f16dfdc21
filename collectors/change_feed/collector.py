"""The database change feed on PostgreSQL: inserts, updates and deletes of chosen tables, delivered exactly once to
the store's feed, woken by LISTEN/NOTIFY and polling as a safety net. ChangeFeedReader is what every dialect's
reader shares (delivery into the store, the series); mysql_reader.py reads MySQL and MariaDB. How exactly-once
holds across late commits, dropped connections and restarts is in docs/change-feed.md and docs/internals.md."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter, deque

import asyncpg

from collectors.change_feed import postgres as sql
from collectors.postgres import DATABASE_ERRORS, DatabaseError, classified
from monitoring.config import ChangeFeedSource
from monitoring.metrics import DELAY_BUCKETS, bucket_label
from monitoring.runtime import Collector
from monitoring.sources import CHANGE_FEED, collector_name
from monitoring.store import Store

log = logging.getLogger(__name__)

_BATCHES_PER_READ = 20
"""A read stops after this many full batches (the next one goes on at once): the page stays live."""
_BACKLOG_LIMIT = 100_000
_RATE_WINDOW_SECONDS = 10.0
_SERIES_EVERY_SECONDS = 1.0


class ChangeFeedReader(Collector):
    """What the readers of every SQL dialect share: delivery into the store's feed, the series, the pruning note."""

    name = collector_name(CHANGE_FEED)
    self_paced = True

    def __init__(self, pipeline: str, config: ChangeFeedSource) -> None:
        super().__init__(pipeline, config.target, config.poll_interval_seconds, config.timeout_seconds)
        self.config = config
        self.entities = [entity.name for entity in config.entities]
        self.events = {entity.name: list(entity.events) for entity in config.entities}
        """Event types captured per entity: the others have no series (not a measured 0)."""
        self._wake = asyncio.Event()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._buckets: dict[str, list[int]] = {e: [0] * (len(DELAY_BUCKETS) + 1) for e in self.entities}
        self._delay_sum: Counter[str] = Counter()
        self._unparsed: Counter[str] = Counter()
        """Delivered changes whose payload was not a JSON object pipewatch could read (delivered as text)."""
        self._recent: deque[tuple[float, str]] = deque()
        """(delivery time, entity) of the last rate window's deliveries."""
        self._backlog = 0
        self._series_written_at = -math.inf
        self._started = time.time()
        self._pruned_at = time.monotonic()
        self.prune_note: str | None = None
        self.delivered = 0
        self._pending: list = []
        """Rows read by the current read and not delivered yet: the reader's position is already past them, so
        they are delivered even when the read fails halfway (_finish)."""

    def _fill(self, store: Store, rows: list) -> None:
        """The newest rows of each entity, read when the reader starts: on the page, not counted."""
        if rows:
            store.feed_append(self.source, [_change(row, self.config.max_value_chars) for row in rows],
                              self.config.rows_per_entity, self.config.rows_per_entity * len(self.entities),
                              time.time())

    def _finish(self, store: Store) -> None:
        """Deliver what the read took (all of it, or what it took before it failed), and write the series when
        they are due."""
        rows, self._pending = self._pending, []
        now = time.time()
        if rows:
            self._deliver(store, rows, now)
        if now - self._series_written_at >= _SERIES_EVERY_SECONDS:
            self._write_series(store, now)

    # -- results ---------------------------------------------------------------------------------

    def _deliver(self, store: Store, rows: list, now: float) -> None:
        changes = [_change(row, self.config.max_value_chars) for row in rows]
        store.feed_append(self.source, changes, self.config.rows_per_entity,
                          self.config.rows_per_entity * len(self.entities), now)
        self.delivered += len(changes)
        for entity, event_type, _key, payload, changed_at in changes:
            self._counts[(entity, event_type)] += 1
            if UNPARSED in payload and len(payload) == 1:
                self._unparsed[entity] += 1
            delay = max(0.0, now - changed_at)
            buckets = self._buckets.setdefault(entity, [0] * (len(DELAY_BUCKETS) + 1))
            for index, bound in enumerate(DELAY_BUCKETS):
                if delay <= bound:
                    buckets[index] += 1
            buckets[-1] += 1
            self._delay_sum[entity] += delay
            self._recent.append((now, entity))

    def _write_series(self, store: Store, now: float) -> None:
        self._series_written_at = now
        while self._recent and self._recent[0][0] < now - _RATE_WINDOW_SECONDS:
            self._recent.popleft()
        per_entity = Counter(entity for _, entity in self._recent)
        # Over the window, or over the time since the reader started when that is shorter.
        window = min(_RATE_WINDOW_SECONDS, max(now - self._started, 1e-3))
        with store.cycle(self.source, now) as cycle:
            for entity in self.entities:
                for event_type in self.events[entity]:
                    cycle.set("db_change_events_total", (entity, event_type), self._counts[(entity, event_type)])
                buckets = self._buckets.setdefault(entity, [0] * (len(DELAY_BUCKETS) + 1))
                for bound, count in zip((*DELAY_BUCKETS, math.inf), buckets, strict=True):
                    cycle.set("db_change_feed_delay_seconds", (entity, bucket_label(bound)), count)
                cycle.set("db_change_feed_delay_seconds", (entity, "sum"), self._delay_sum[entity])
                cycle.set("db_change_feed_rate", (entity,), per_entity[entity] / window)
                cycle.set("db_change_feed_unparsed_total", (entity,), self._unparsed[entity])
            cycle.set("db_change_feed_backlog", (), self._backlog)


class ChangeFeedCollector(ChangeFeedReader):
    """The PostgreSQL reader."""

    def __init__(self, pipeline: str, config: ChangeFeedSource) -> None:
        super().__init__(pipeline, config)
        self._connection: asyncpg.Connection | None = None
        self._floor: int | None = None
        """Every row of a transaction older than this has been delivered (None: not started)."""
        self._ahead: dict[int, int] = {}
        """Delivered rows at or above the floor: id -> their transaction id."""

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    async def collect(self, store: Store) -> int:
        queries = 0
        connection = await self._connect()
        if self._floor is None:
            queries += await self._start(connection, store)
        else:
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_seconds)
            except TimeoutError:
                pass
        self._wake.clear()
        try:
            queries += await self._read(connection)
            if time.monotonic() - self._pruned_at >= self.config.prune_interval_seconds:
                queries += await self._prune(connection)
        except DATABASE_ERRORS as exc:
            self._finish(store)
            await self._drop_connection()
            raise self._failure(exc) from None
        except BaseException:
            self._finish(store)  # cancelled (a timeout, a stop) halfway
            raise
        self._finish(store)
        return queries

    # -- reading ---------------------------------------------------------------------------------

    def _failure(self, exc: BaseException) -> DatabaseError:
        return classified(exc, "run `pipewatch change-feed install --config FILE`",
                          "the role needs SELECT (and DELETE, for pruning) on the changelog")

    async def _connect(self) -> asyncpg.Connection:
        if self._connection is not None and not self._connection.is_closed():
            return self._connection
        try:
            connection = await asyncpg.connect(**self.config.connect_arguments(), timeout=self.config.timeout_seconds,
                                               server_settings={"application_name": "pipewatch change feed"})
            if self.config.listen:
                await connection.add_listener(self.config.channel, lambda *_: self._wake.set())
        except DATABASE_ERRORS as exc:
            raise self._failure(exc) from None
        self._connection = connection
        self._wake.set()  # read at once: notifications sent while disconnected are lost
        return connection

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    async def _start(self, connection: asyncpg.Connection, store: Store) -> int:
        """Begin at the present: the newest rows of each entity fill the page, without being counted."""
        try:
            async with connection.transaction(isolation="repeatable_read", readonly=True):
                floor = int(await connection.fetchval(sql.snapshot_floor()))
                rows = await connection.fetch(sql.recent(self.config), self.entities, self.config.rows_per_entity)
                visible = await connection.fetch(
                    f"SELECT id, xid::text AS xid FROM {sql.changelog(self.config)} WHERE xid >= $1::text::xid8",
                    str(floor))
        except asyncpg.UndefinedTableError:
            raise DatabaseError("not_installed", f"{sql.changelog(self.config)} does not exist: run "
                                f"`pipewatch change-feed install --config FILE` first") from None
        except DATABASE_ERRORS as exc:
            await self._drop_connection()
            raise self._failure(exc) from None
        self._floor = floor
        self._ahead = {row["id"]: int(row["xid"]) for row in visible}
        self._fill(store, rows)
        return 3

    async def _read(self, connection: asyncpg.Connection) -> int:
        """Read what is new into self._pending; returns the number of queries."""
        queries = 0
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            xmin = int(await connection.fetchval(sql.snapshot_floor()))
            queries += 1
            for _ in range(_BATCHES_PER_READ):
                batch = await connection.fetch(sql.read_new(self.config), str(self._floor), list(self._ahead),
                                               self.config.batch_size)
                queries += 1
                self._pending += batch
                for row in batch:
                    self._ahead[row["id"]] = int(row["xid"])
                if len(batch) < self.config.batch_size:
                    # Everything visible was read: rows of transactions older than xmin are all in.
                    self._advance(xmin)
                    self._backlog = 0
                    break
                # More to read: rows older than the last one's transaction are all in (ordered by xid).
                self._advance(min(xmin, int(batch[-1]["xid"])))
            else:
                self._backlog = await connection.fetchval(sql.backlog(self.config), str(self._floor),
                                                          list(self._ahead), _BACKLOG_LIMIT)
                queries += 1
                self._wake.set()  # carry on at once
        return queries

    def _advance(self, floor: int) -> None:
        if floor > self._floor:
            self._floor = floor
            self._ahead = {row_id: xid for row_id, xid in self._ahead.items() if xid >= floor}

    async def _prune(self, connection: asyncpg.Connection) -> int:
        self._pruned_at = time.monotonic()
        try:
            deleted = await connection.execute(sql.prune(self.config), self.config.retention_seconds, str(self._floor))
        except asyncpg.InsufficientPrivilegeError:
            self.prune_note = ("pruning is off: the role has no DELETE on the changelog; old rows stay until "
                               "someone deletes them")
            return 1
        self.prune_note = None
        log.debug("change feed: pruned %s", deleted)
        return 1


UNPARSED = "(raw JSON)"
"""The payload key of a change whose JSON could not be read: it holds the text as the changelog has it."""
_MAX_DEPTH = 100
"""Deeper payloads are delivered as text too: pages, /api/v1 and the wire encode payloads recursively."""


def _change(row, max_chars: int) -> tuple[str, str, str | None, dict, float]:
    """A changelog row (an asyncpg Record, or a dict from MySQL) as the store's change, long texts cut."""
    return (row["entity"], row["event_type"], _cut(row["row_key"], max_chars), _payload(row["payload"], max_chars),
            float(row["created_at"]))


def _payload(text: str, max_chars: int) -> dict:
    """The row as a dict, or {UNPARSED: text} when it cannot be one (one bad row never costs its batch); text values
    longer than max_chars cut (`_cut`)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested about 1,000 deep or more
        return {UNPARSED: _cut(text, max_chars)}
    if not isinstance(value, dict) or not _depth_within(value, _MAX_DEPTH):
        return {UNPARSED: _cut(text, max_chars)}
    if len(text) > max_chars:  # some value may be longer (a short text has none)
        value = _cut_values(value, max_chars)
    return value


def _cut(text: str | None, max_chars: int) -> str | None:
    if text is None or len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}… (cut: {len(text):,} characters)"


def _cut_values(value: object, max_chars: int) -> object:
    if isinstance(value, str):
        return _cut(value, max_chars)
    if isinstance(value, dict):
        return {key: _cut_values(item, max_chars) for key, item in value.items()}
    if isinstance(value, list):
        return [_cut_values(item, max_chars) for item in value]
    return value


def _depth_within(value: object, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True

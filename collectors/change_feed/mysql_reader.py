"""The change feed's reader on MySQL and MariaDB: polls the changelog every `poll_interval_seconds` (there is no
LISTEN/NOTIFY) and delivers every change exactly once.

AUTO_INCREMENT ids are taken at insert time and become visible at commit, so `id > last id` would skip a row
whose id was taken before another's but committed after it. The reader keeps a high mark (every id at or below
it was delivered, or is a known hole) and the holes themselves as id ranges. Holes are read again every poll
(`FOR UPDATE SKIP LOCKED`: committed rows come back, rows of open transactions are skipped, nothing waits) and
settled once no transaction holds one of their ids (`FOR UPDATE NOWAIT` succeeds) and they have been missing
for `gap_grace_seconds`: those ids were rolled back, or never used. The high mark and the holes live in the
reader, so a dropped connection or a restarted server resumes exactly where it stopped. docs/change-feed-mysql.md
has the whole design and what polling costs in delay.
"""

from __future__ import annotations

import asyncio
import logging
import time

import asyncmy
from asyncmy.cursors import DictCursor
from asyncmy.errors import MySQLError

from collectors.change_feed import mysql as sql
from collectors.change_feed.collector import ChangeFeedReader
from collectors.postgres import DatabaseError
from monitoring.config import ChangeFeedSource
from monitoring.store import Store

log = logging.getLogger(__name__)

DATABASE_ERRORS = (OSError, MySQLError, EOFError)
"""What a MySQL call raises when the source failed (asyncmy raises EOFError on some cut connections)."""
_BATCHES_PER_READ = 20
"""A read stops after this many full batches (the next one goes on at once): the page stays live."""
_BACKLOG_LIMIT = 100_000
_RANGES_PER_QUERY = 500
"""Holes re-read per query (two parameters each); more wait for the next poll."""
_SETTLES_PER_READ = 50
"""Holes past their grace checked with NOWAIT per read (one query each)."""
_PRUNE_ROUNDS = 20
"""Prune deletes up to mysql.PRUNE_BATCH rows per statement, at most this many statements per prune."""

_MISSING_TABLE = 1146
_ACCESS_DENIED = (1044, 1045, 1698)
_COMMAND_DENIED = (1142, 1143)
_REFUSED = 2003


def classified(exc: BaseException) -> DatabaseError:
    """A DatabaseError for a MySQL failure, with what to do about the common ones."""
    if isinstance(exc, DatabaseError):
        return exc
    code = exc.args[0] if isinstance(exc, MySQLError) and exc.args and isinstance(exc.args[0], int) else None
    text = exc.args[1] if code is not None and len(exc.args) > 1 else str(exc)
    message = str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__
    if code == _MISSING_TABLE:
        return DatabaseError("missing_table", f"{message} (run `pipewatch change-feed install --config FILE`)")
    if code in _ACCESS_DENIED:
        return DatabaseError("auth", message)
    if code in _COMMAND_DENIED:
        return DatabaseError("permission", f"{message} (the user needs SELECT and DELETE on the changelog)")
    if code == _REFUSED or isinstance(exc, ConnectionRefusedError):
        return DatabaseError("connection_refused", message)
    if isinstance(exc, (OSError, EOFError)) or (code is not None and 2000 <= code < 3000):
        return DatabaseError("connection", f"{type(exc).__name__}: {message}")
    return DatabaseError("database", f"{type(exc).__name__}: {message}")


class MySQLChangeFeedCollector(ChangeFeedReader):
    def __init__(self, pipeline: str, config: ChangeFeedSource) -> None:
        super().__init__(pipeline, config)
        self._connection: asyncmy.Connection | None = None
        self._high: int | None = None
        """Every id at or below it was delivered or is in a hole (None: not started)."""
        self._holes: list[list[float]] = []
        """Ids missing below the high mark, as [first id, last id, when first missed (monotonic)], by first id."""
        self.settled = 0
        """Ids found gone for good (rolled back, never used)."""
        self._read_at = -1.0
        """When the last read started (monotonic)."""

    @property
    def holes(self) -> list[tuple[int, int]]:
        return [(int(lo), int(hi)) for lo, hi, _ in self._holes]

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    async def collect(self, store: Store) -> int:
        queries = 0
        try:
            connection = await self._connect()
            if self._high is None:
                queries += await self._start(connection, store)
            else:
                if not self._wake.is_set():  # nothing can wake it sooner: MySQL has no LISTEN/NOTIFY
                    # A read every poll interval, the time the last one took included.
                    await asyncio.sleep(max(0.0, self._read_at + self.config.poll_interval_seconds
                                            - time.monotonic()))
                self._wake.clear()
                self._read_at = time.monotonic()
                queries += await self._read()
                if time.monotonic() - self._pruned_at >= self.config.prune_interval_seconds:
                    queries += await self._prune(connection)
        except DATABASE_ERRORS as exc:
            self._finish(store)  # what was read before the failure: the high mark and the holes are past it
            await self.close()
            raise classified(exc) from None
        except BaseException:
            self._finish(store)
            await self.close()  # cancelled (a timeout, a stop) mid-query: the connection's state is unknown
            raise
        self._finish(store)
        return queries

    async def _connect(self) -> asyncmy.Connection:
        if self._connection is not None:
            return self._connection
        connection = await asyncmy.connect(**sql.connect_arguments(self.config),
                                           connect_timeout=self.config.timeout_seconds)
        try:
            async with connection.cursor() as cursor:
                # Each statement sees what is committed when it starts; locking reads take no gap locks.
                await cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                # Only pruning can wait for a lock (the reads skip or refuse locked rows): never for long.
                await cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._wake.set()  # read at once after a reconnect
        return connection

    async def _fetch(self, query: str, *args) -> list[dict]:
        async with self._connection.cursor(DictCursor) as cursor:
            await cursor.execute(query, args)
            return list(await cursor.fetchall())

    async def _start(self, connection: asyncmy.Connection, store: Store) -> int:
        """Begin at the present: the newest rows of each entity fill the page, without being counted; ids missing
        among the newest `batch_size` (transactions still open) are holes, delivered when they commit."""
        newest = [row["id"] for row in await self._fetch(sql.newest_ids(self.config), self.config.batch_size)]
        recent = await self._fetch(sql.recent(self.config, len(self.entities)),
                                   *[value for entity in self.entities for value in (entity,
                                                                                     self.config.rows_per_entity)])
        now = time.monotonic()
        self._high = newest[0] if newest else 0
        self._holes = []
        for lower, upper in zip(reversed(newest[1:]), reversed(newest[:-1]), strict=True):
            if upper > lower + 1:
                self._holes.append([lower + 1, upper - 1, now])
        self._fill(store, recent)
        return 2

    async def _read(self) -> int:
        """Read what committed since into self._pending; returns the number of queries."""
        queries = await self._read_holes()
        for _ in range(_BATCHES_PER_READ):
            batch = await self._fetch(sql.read_new(self.config), self._high, self.config.batch_size)
            queries += 1
            now = time.monotonic()
            for row in batch:
                if row["id"] > self._high + 1:
                    self._holes.append([self._high + 1, row["id"] - 1, now])
                self._high = row["id"]
            self._pending += batch
            if len(batch) < self.config.batch_size:
                self._backlog = 0
                break
        else:
            rows = await self._fetch(sql.backlog(self.config), self._high, _BACKLOG_LIMIT)
            self._backlog = int(next(iter(rows[0].values())))
            queries += 1
            self._wake.set()  # carry on at once
        return queries

    async def _read_holes(self) -> int:
        """Rows committed in holes since the last read (into self._pending), and holes settled: every hole is
        read, oldest first. Returns the number of queries."""
        if not self._holes:
            return 0
        queries = 0
        checked = self._holes[:_RANGES_PER_QUERY]
        bounds = [int(value) for lo, hi, _ in checked for value in (lo, hi)]
        rows = await self._fetch(sql.read_gaps(self.config, len(checked)), *bounds, self.config.batch_size)
        queries += 1
        self._fill_holes(rows)
        if len(rows) == self.config.batch_size:
            self._wake.set()  # more committed in holes than one batch: carry on at once
        else:
            grace = time.monotonic() - self.config.gap_grace_seconds
            for hole in [hole for hole in self._holes if hole[2] <= grace][:_SETTLES_PER_READ]:
                lo, hi = int(hole[0]), int(hole[1])
                try:
                    rows = await self._fetch(sql.settle_gap(self.config), lo, hi, self.config.batch_size)
                except MySQLError as exc:
                    queries += 1
                    if exc.args and exc.args[0] in sql.LOCK_ERRORS:
                        continue  # a transaction holding one of its ids is still open
                    raise
                queries += 1
                self._fill_holes(rows)
                if len(rows) < self.config.batch_size:
                    # Nobody holds the rest, and they were missing longer than an insert takes: gone for good.
                    remaining = [h for h in self._holes if lo <= h[0] and h[1] <= hi]
                    self.settled += sum(int(h[1] - h[0]) + 1 for h in remaining)
                    self._holes = [h for h in self._holes if not (lo <= h[0] and h[1] <= hi)]
        return queries

    def _fill_holes(self, rows: list[dict]) -> None:
        """Take the ids of `rows` (read from holes) out of the holes; they are delivered with the read."""
        self._pending += rows
        for row in rows:
            row_id = row["id"]
            for index, (lo, hi, since) in enumerate(self._holes):
                if lo <= row_id <= hi:
                    pieces = [[lo, row_id - 1, since]] if lo < row_id else []
                    pieces += [[row_id + 1, hi, since]] if row_id < hi else []
                    self._holes[index:index + 1] = pieces
                    break

    async def _prune(self, connection: asyncmy.Connection) -> int:
        self._pruned_at = time.monotonic()
        # Below the oldest hole and below the newest delivered row: everything there was delivered.
        floor = min(int(self._holes[0][0]), self._high) if self._holes else self._high
        queries = 0
        try:
            for _ in range(_PRUNE_ROUNDS):
                ids = [row["id"] for row in await self._fetch(sql.prunable(self.config), floor,
                                                              self.config.retention_seconds)]
                queries += 1
                if ids:
                    async with connection.cursor() as cursor:
                        await cursor.execute(sql.prune(self.config, len(ids)), ids)
                    queries += 1
                if len(ids) < sql.PRUNE_BATCH:
                    break
        except MySQLError as exc:
            if exc.args and exc.args[0] in _COMMAND_DENIED:
                self.prune_note = ("pruning is off: the user has no DELETE on the changelog; old rows stay until "
                                   "someone deletes them")
                return queries + 1
            if exc.args and exc.args[0] in sql.LOCK_ERRORS:
                log.debug("change feed: pruning met a locked row; again in %s s", self.config.prune_interval_seconds)
                return queries + 1
            raise
        self.prune_note = None
        return queries


"""The hub: one bounded in-memory store shared by every collector, view and exporter in the process; collectors
write, apps and exporters read copies under one short lock. What it holds is in docs/internals.md."""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitoring.errors import DEFAULT_CAPACITY, ErrorEntry, ErrorRegistry, hint_for
from monitoring.health import CollectorHealth
from monitoring.metrics import CATALOGUE

log = logging.getLogger(__name__)

_INITIAL_POINTS = 16

SeriesKey = tuple[str, tuple[str, ...]]
"""(metric name, label values in the order the metric's spec lists its labels)."""

Source = tuple[str, str]
"""(pipeline, collector): who wrote a series, so its freshness follows that collector's health."""


class Series:
    """A ring of at most `capacity` (unix time, value) points.

    Its arrays start small and double until they reach the capacity, so memory follows the points
    actually held: a store full of young series costs little, a full one costs 16 bytes a point.
    """

    __slots__ = ("key", "source", "capacity", "_times", "_values", "count", "last_time", "last_value", "cycle",
                 "commit", "commit_start", "prev_commit", "prev_commit_start")

    def __init__(self, key: SeriesKey, source: Source, capacity: int) -> None:
        self.key = key
        self.source = source
        self.capacity = capacity
        size = min(capacity, _INITIAL_POINTS)
        self._times = np.empty(size, dtype=np.float64)
        self._values = np.empty(size, dtype=np.float64)
        self.count = 0
        """Points ever appended: the sequence number readers pass back to get only newer points."""
        self.last_time = math.nan
        self.last_value = math.nan
        """The newest point again, as Python floats: a scrape of 100k series reads it without numpy."""
        self.cycle = 0
        """The number of the last Store.cycle of its source that wrote it (0: none)."""
        self.commit = self.commit_start = self.prev_commit = self.prev_commit_start = 0
        """The store's commit number of the last two writes that appended to the series, and its count before
        each: a reader that saw the store up to commit C finds the points that came after (`start_after`)."""

    def append(self, t: float, value: float, commit: int = 0) -> None:
        if commit != self.commit:
            self.prev_commit, self.prev_commit_start = self.commit, self.commit_start
            self.commit, self.commit_start = commit, self.count
        size = len(self._times)
        if self.count == size < self.capacity:  # not wrapped yet: the points sit at [0, count)
            grown = min(self.capacity, size * 2)
            self._times = np.resize(self._times, grown)
            self._values = np.resize(self._values, grown)
            size = grown
        slot = self.count % size
        self._times[slot] = t
        self._values[slot] = value
        self.count += 1
        self.last_time = float(t)
        self.last_value = float(value)

    def latest(self) -> tuple[float, float] | None:
        return (self.last_time, self.last_value) if self.count else None

    def since(self, seen: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Copies of the points after the first `seen` ones (at most `capacity`), oldest first."""
        count, size = self.count, len(self._times)
        new = min(count - max(seen, 0), size, count)
        if new <= 0:
            return count, np.empty(0), np.empty(0)
        start = (count - new) % size
        end = start + new
        if end <= size:
            return count, self._times[start:end].copy(), self._values[start:end].copy()
        end -= size  # wrapped: the ring's tail, then its head
        return (count, np.concatenate((self._times[start:], self._times[:end])),
                np.concatenate((self._values[start:], self._values[:end])))

    def start_after(self, commit: int) -> int:
        """A count at or below the series' count as of the store's commit `commit`: every point after it came
        later. Exact when at most two writes since `commit` appended to it; else the oldest point held."""
        if self.commit <= commit:
            return self.count
        if self.prev_commit <= commit:
            return self.commit_start
        return self.count - min(self.count, len(self._times))

    @property
    def nbytes(self) -> int:
        return self._times.nbytes + self._values.nbytes


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    time: float
    pipeline: str
    collector: str
    severity: str  # "info" | "warning" | "error"
    message: str


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One change of a watched table, as the change feed delivered it."""

    seq: int
    """Position in the feed of its source: readers ask for the rows after the last seq they saw."""
    entity: str
    event_type: str
    key: str | None
    payload: dict[str, Any]
    """The row's columns (after the change; before it, for a delete). Never modified after delivery."""
    changed_at: float
    delivered_at: float


class _Feed:
    """The newest rows of a source's change feed: `per_entity` for each entity, and the last rows in
    delivery order for readers that follow along."""

    def __init__(self, per_entity: int, capacity: int) -> None:
        self.per_entity = per_entity
        self.by_entity: dict[str, deque[FeedRow]] = {}
        self.log: deque[FeedRow] = deque(maxlen=capacity)
        self.seq = 0


@dataclass(slots=True)
class Changes:
    """What changed in a store after a commit number (Store.changes_since)."""

    instance: str
    commit: int
    series_generation: int
    series: list[tuple[SeriesKey, Source, int, list[float], list[float]]]
    """(key, source, count, times, values): the series' newest points, `count` the number it ever received."""
    snapshots: list[tuple[Source, float, Any]]
    cut: bool
    """True when some series' new points were more than the answer could hold (their oldest were left out)."""


@dataclass(slots=True)
class Delta:
    """New points of one series since a reader's last look."""

    key: SeriesKey
    count: int
    times: np.ndarray
    values: np.ndarray


class Store:
    def __init__(self, points_per_series: int = 720, max_series: int = 100_000, events: int = 2000,
                 errors: int = DEFAULT_CAPACITY) -> None:
        self.points_per_series = points_per_series
        self.max_series = max_series
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, Series] = {}
        self._source_series: dict[Source, dict[SeriesKey, Series]] = {}
        """Each source's series: a cycle finds its stale series without a scan of all."""
        self._columns: dict[tuple[Source, str], _Column] = {}
        """Each source's last set_column rows of a metric, resolved to their series (see _column)."""
        self._cycles = 0
        self._removals = 0
        """Bumped whenever a series is removed: a resolved column may hold it."""
        self._snapshots: dict[Source, tuple[float, Any]] = {}
        self._health: dict[Source, CollectorHealth] = {}
        self._events: deque[Event] = deque(maxlen=events)
        self._feeds: dict[Source, _Feed] = {}
        self._feed_listeners: dict[Source, list[Callable[[], None]]] = {}
        self._event_seq = 0
        self._errors = ErrorRegistry(errors)
        self._refused_keys = 0
        self.series_generation = 0
        """Bumped whenever a series is created or removed, so views know to rediscover lines."""
        self.instance = uuid.uuid4().hex
        """This store's identity: a reader's position in another store (an agent that restarted) is no position."""
        self._commit = 0
        """Numbers the writes of points and snapshots, so a reader asks for what changed after the n-th one."""
        self._snapshot_commits: dict[Source, int] = {}

    # -- writing (collectors, runtime) -----------------------------------------------------------

    @contextmanager
    def cycle(self, source: Source, t: float | None = None) -> Iterator[CycleWriter]:
        """Write one collection cycle's measurements for a source.

        When the block finishes without an exception, the source's series that the cycle neither
        wrote nor retained are removed: a deleted group or topic disappears at once.
        """
        writer = CycleWriter(self, source, time.time() if t is None else t)
        yield writer
        with self._lock:  # one lock for the whole cycle: readers see all of it or none of it
            self._cycles += 1
            self._commit += 1
            t, cycle, commit, series_of = writer.t, self._cycles, self._commit, self._series.get
            for key, value in writer.points:
                series = series_of(key) or self._create_locked(source, key)
                if series is not None:
                    series.append(t, value, commit)
                    series.cycle = cycle
            for name, labels, values, only_changes in writer.columns:
                self._write_column(source, name, labels, values, only_changes, t, cycle, commit)
            series = self._source_series.get(source, {})
            stale = [key for key, s in series.items() if s.cycle != cycle and not writer.retains(key)]
            for key in stale:
                del self._series[key]
                del series[key]
            if stale:
                self._removals += 1
                self.series_generation += 1
                # A metric this cycle wrote no rows of keeps no resolution: it would hold the removed series.
                written = {name for name, *_ in writer.columns}
                for key in [k for k in self._columns if k[0] == source and k[1] not in written]:
                    del self._columns[key]

    def _write_column(self, source: Source, name: str, labels: tuple[tuple[str, ...], ...], values: list[float],
                      only_changes: bool, t: float, cycle: int, commit: int) -> None:
        for series, value in zip(self._column(source, name, labels), values, strict=True):
            if series is None:
                continue  # refused: the store is full
            series.cycle = cycle
            last = series.last_value
            if only_changes and series.count and (last == value or (last != last and value != value)):
                continue  # unchanged (NaN after NaN too)
            series.append(t, value, commit)

    def _column(self, source: Source, name: str, labels: tuple[tuple[str, ...], ...]) -> list[Series | None]:
        """The series of a metric's rows (None where the store is full), created where missing.

        The resolution is kept per (source, metric) and reused while the rows' labels are equal
        and no series was removed: comparing tens of thousands of label tuples (mostly the same
        objects) costs a fraction of building and looking up each row's key."""
        column = self._columns.get((source, name))
        if column is not None and column.removals == self._removals and column.labels == labels:
            return column.series
        pipeline, series_of = source[0], self._series.get
        series = [series_of(key) or self._create_locked(source, key)
                  for key in [(name, (pipeline, *row)) for row in labels]]
        self._columns[(source, name)] = _Column(labels, series, self._removals)
        return series

    def append(self, source: Source, name: str, labels: tuple[str, ...], value: float, t: float) -> None:
        with self._lock:
            self._commit += 1
            self._append_locked(source, name, labels, value, t)

    def _append_locked(self, source: Source, name: str, labels: tuple[str, ...], value: float, t: float) -> None:
        key = (name, labels)
        series = self._series.get(key) or self._create_locked(source, key)
        if series is not None:
            series.append(t, value, self._commit)

    def _create_locked(self, source: Source, key: SeriesKey) -> Series | None:
        """A new series, or None (logged) when the store is full."""
        check_key(*key)
        if len(self._series) >= self.max_series:
            self._refused_keys += 1
            if self._refused_keys in (1, 1000) or self._refused_keys % 100_000 == 0:
                log.warning("store is full (%d series): refused new series %s%s (%d refused so far)",
                            self.max_series, key[0], key[1], self._refused_keys)
            return None
        series = self._series[key] = Series(key, source, self.points_per_series)
        self._source_series.setdefault(source, {})[key] = series
        self.series_generation += 1
        return series

    def append_many(self, source: Source, name: str, points: list[tuple[tuple[str, ...], float, float]]) -> None:
        """Append (labels, time, value) points of one metric under one lock (history loaded in bulk)."""
        with self._lock:
            self._commit += 1
            for labels, t, value in points:
                self._append_locked(source, name, labels, value, t)

    def append_series(self, rows: list[tuple[Source, SeriesKey, list[float], list[float]]]) -> None:
        """Append each row's points (times and values, oldest first) to its series, under one lock (a mirror
        copying another store's points with their own times)."""
        with self._lock:
            self._commit += 1
            for source, (name, labels), times, values in rows:
                for t, value in zip(times, values, strict=True):  # equal: the mirror checks them
                    self._append_locked(source, name, labels, value, t)

    def remove_keys(self, keys: list[SeriesKey]) -> None:
        """Remove these series (those that exist)."""
        with self._lock:
            removed = False
            for key in keys:
                series = self._series.pop(key, None)
                if series is not None:
                    removed = True
                    self._source_series.get(series.source, {}).pop(key, None)
            if removed:
                self._removals += 1  # the column caches hold series objects: resolve them again
                self.series_generation += 1

    def remove_source(self, source: Source) -> None:
        with self._lock:
            keys = self._source_series.pop(source, {})
            for key in keys:
                del self._series[key]
            self._snapshots.pop(source, None)
            self._snapshot_commits.pop(source, None)
            for column in [column for column in self._columns if column[0] == source]:
                del self._columns[column]
            if keys:
                self._removals += 1
                self.series_generation += 1

    def publish_snapshot(self, source: Source, snapshot: Any, t: float | None = None) -> None:
        with self._lock:
            self._commit += 1
            self._snapshots[source] = (time.time() if t is None else t, snapshot)
            self._snapshot_commits[source] = self._commit

    def set_health(self, health: CollectorHealth) -> None:
        with self._lock:
            self._health[(health.pipeline, health.collector)] = health

    def add_event(self, pipeline: str, collector: str, severity: str, message: str, t: float | None = None) -> Event:
        with self._lock:
            self._event_seq += 1
            event = Event(self._event_seq, time.time() if t is None else t, pipeline, collector, severity, message)
            self._events.append(event)
            return event

    def record_error(self, pipeline: str, component: str, category: str, message: str, severity: str = "error",
                     target: str = "", hint: str | None = None, t: float | None = None, count: int = 1) -> ErrorEntry:
        """One more occurrence (or `count`) of an error; `hint` None derives it from the error (errors.hint_for)."""
        if hint is None:
            hint = hint_for(category, message, target, component)  # outside the lock: a dozen regular expressions
        t = time.time() if t is None else t
        with self._lock:
            return self._errors.record(pipeline, component, category, message, severity, target, hint, t, count)

    def feed_append(self, source: Source, rows: list[tuple[str, str, str | None, dict[str, Any], float]],
                    per_entity: int, capacity: int, delivered_at: float) -> int:
        """Add delivered changes (entity, event type, key, payload, changed at); returns the last seq."""
        delivered = [(entity, event_type, key, payload, changed_at, delivered_at)
                     for entity, event_type, key, payload, changed_at in rows]
        return self.feed_extend(source, delivered, per_entity, capacity)

    def feed_extend(self, source: Source, rows: list[tuple[str, str, str | None, dict[str, Any], float, float]],
                    per_entity: int, capacity: int, clear: bool = False) -> int:
        """feed_append with each row's own delivery time (a mirror copying another store's feed); `clear` first
        drops the rows held (their seq numbers are not reused). Returns the last seq."""
        with self._lock:
            feed = self._feeds.get(source)
            if feed is None:
                feed = self._feeds[source] = _Feed(per_entity, capacity)
            if clear:
                feed.by_entity.clear()
                feed.log.clear()
            for entity, event_type, key, payload, changed_at, delivered_at in rows:
                feed.seq += 1
                row = FeedRow(feed.seq, entity, event_type, key, payload, changed_at, delivered_at)
                recent = feed.by_entity.get(entity)
                if recent is None:
                    recent = feed.by_entity[entity] = deque(maxlen=feed.per_entity)
                recent.append(row)
                feed.log.append(row)
            seq = feed.seq
            listeners = list(self._feed_listeners.get(source, ()))
        for listener in listeners:  # outside the lock: a listener may read the feed
            try:
                listener()
            except Exception:  # a reader's failure must not fail the writer (the change feed's collector)
                log.exception("feed listener %r failed", listener)
        return seq

    def on_feed(self, source: Source, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` (on the writer's thread, so it must only hand over, e.g. schedule a callback on its own
        event loop) each time rows are appended to the source's feed; returns the function that unsubscribes."""
        with self._lock:
            self._feed_listeners.setdefault(source, []).append(listener)

        def unsubscribe() -> None:
            with self._lock:
                listeners = self._feed_listeners.get(source, [])
                if listener in listeners:
                    listeners.remove(listener)

        return unsubscribe

    # -- reading (views, exporters) --------------------------------------------------------------

    def feed_position(self, source: Source) -> int:
        """The seq of the last row delivered to the source's feed (0: none yet)."""
        with self._lock:
            feed = self._feeds.get(source)
            return feed.seq if feed is not None else 0

    def feed_since(self, source: Source, seq: int) -> list[FeedRow]:
        """Rows delivered after `seq` that the log still holds, oldest first."""
        with self._lock:
            feed = self._feeds.get(source)
            if feed is None:
                return []
            new: list[FeedRow] = []
            for row in reversed(feed.log):
                if row.seq <= seq:
                    break
                new.append(row)
            return new[::-1]

    def feeds(self) -> dict[Source, tuple[int, int, int]]:
        """Every feed: source -> (last seq, rows kept per entity, rows kept in delivery order)."""
        with self._lock:
            return {source: (feed.seq, feed.per_entity, feed.log.maxlen or 0) for source, feed in self._feeds.items()}

    def feed_held_since(self, source: Source, seq: int) -> list[FeedRow]:
        """Every row held after `seq` (those of the delivery log and each entity's newest), oldest first: what
        a copy of the feed needs, quiet entities' rows included although the log has moved past them."""
        with self._lock:
            feed = self._feeds.get(source)
            if feed is None:
                return []
            rows: dict[int, FeedRow] = {}
            for held in (feed.log, *feed.by_entity.values()):
                for row in reversed(held):
                    if row.seq <= seq:
                        break
                    rows[row.seq] = row
        return [rows[n] for n in sorted(rows)]

    def feed_recent(self, source: Source) -> tuple[int, dict[str, list[FeedRow]]]:
        """The newest rows of every entity (what a view starts from) and the feed's last seq."""
        with self._lock:
            feed = self._feeds.get(source)
            if feed is None:
                return 0, {}
            return feed.seq, {entity: list(rows) for entity, rows in feed.by_entity.items()}


    def keys(self, name: str | None = None, where: Callable[[SeriesKey], bool] | None = None) -> list[SeriesKey]:
        with self._lock:
            return [
                key for key in self._series
                if (name is None or key[0] == name) and (where is None or where(key))
            ]

    def latest(self, name: str, labels: tuple[str, ...]) -> tuple[float, float] | None:
        with self._lock:
            series = self._series.get((name, labels))
            return series.latest() if series else None

    def latest_values(self, names: set[str] | None = None) -> list[tuple[SeriesKey, Source, float, float]]:
        """(key, source, time, value) of the newest point of every series (of the given names)."""
        with self._lock:
            if names is None:
                return [(key, s.source, s.last_time, s.last_value) for key, s in self._series.items() if s.count]
            return [(key, s.source, s.last_time, s.last_value) for key, s in self._series.items()
                    if s.count and key[0] in names]

    def series_info(self, where: Callable[[SeriesKey], bool]) -> list[tuple[SeriesKey, Source, int, float, float]]:
        """(key, source, count, newest time, newest value) of every matching series, under one lock: the
        count is the sequence number a reader passes back to `since` to get only newer points."""
        with self._lock:
            return [(key, s.source, s.count, s.last_time, s.last_value) for key, s in self._series.items()
                    if where(key)]

    def since(self, key: SeriesKey, seen: int = 0) -> Delta | None:
        """New points of a series after the reader's `seen` count; None if the series is gone."""
        with self._lock:
            series = self._series.get(key)
            if series is None:
                return None
            count, times, values = series.since(seen)
        return Delta(key, count, times, values)

    def snapshot(self, source: Source) -> tuple[float, Any] | None:
        with self._lock:
            return self._snapshots.get(source)

    def health(self) -> dict[Source, CollectorHealth]:
        with self._lock:
            return dict(self._health)

    def events_since(self, seq: int = 0, limit: int | None = None) -> list[Event]:
        with self._lock:
            events = [event for event in self._events if event.seq > seq]
        return events[-limit:] if limit else events

    @property
    def errors_generation(self) -> int:
        """Changes whenever an error is recorded: a view that saw this value has nothing new to show."""
        return self._errors.generation

    def errors(self) -> list[ErrorEntry]:
        """Every error in the registry, the most recently seen first."""
        with self._lock:
            return self._errors.entries()

    def replace_errors(self, entries: list[ErrorEntry], keep: Callable[[ErrorEntry], bool]) -> None:
        """Make the registry hold `entries` and those of its own that `keep` (a mirror copying another's)."""
        with self._lock:
            self._errors.replace([*entries, *(e for e in self._errors.entries() if keep(e))])

    def changes_since(self, commit: int, max_points: int) -> Changes:
        """What was written after the store's commit number `commit` (0: everything held): every series that
        got points, with those points (at most `max_points` in all beyond one a series: the newest of each
        series are kept), and every snapshot published since. Under one lock, so the answer's `commit` is
        exactly where the next reader goes on from."""
        with self._lock:
            changed = [(series, series.start_after(commit)) for series in self._series.values()
                       if series.commit > commit and series.count]
            wanted = sum(min(series.count - start, len(series._times)) for series, start in changed)
            cap = max(1, max_points // len(changed)) if wanted > max_points else None
            rows = []
            for series, start in changed:
                if series.count - start == 1:  # the usual case (one cycle since the last look): no numpy copies
                    rows.append((series.key, series.source, series.count, [series.last_time], [series.last_value]))
                    continue
                count, times, values = series.since(start)
                if cap is not None and len(times) > cap:
                    times, values = times[-cap:], values[-cap:]
                rows.append((series.key, series.source, count, times.tolist(), values.tolist()))
            snapshots = [(source, entry[0], entry[1]) for source, entry in self._snapshots.items()
                         if self._snapshot_commits.get(source, 0) > commit]
            return Changes(self.instance, self._commit, self.series_generation, rows, snapshots,
                           cut=cap is not None)

    def series_keys(self) -> list[tuple[SeriesKey, Source]]:
        with self._lock:
            return [(key, series.source) for key, series in self._series.items()]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "series": len(self._series),
                "points": sum(min(s.count, s.capacity) for s in self._series.values()),
                "bytes": sum(s.nbytes for s in self._series.values()),
                "events": len(self._events),
                "errors": len(self._errors),
                "refused_series": self._refused_keys,
            }


def check_key(name: str, labels: tuple[str, ...]) -> None:
    """Refuse a metric name missing from the catalogue or the wrong number of label values."""
    spec = CATALOGUE.get(name)
    if spec is None:
        raise KeyError(f"metric {name!r} is not in the catalogue")
    expected = len(spec.labels) + (1 if spec.type == "histogram" else 0)
    if len(labels) != expected:
        raise ValueError(f"{name} takes labels {spec.labels}" + (" and a bucket" if spec.type == "histogram" else "")
                         + f", got {labels}")


@dataclass(slots=True)
class _Column:
    """The series a cycle's set_column rows of one metric went to, valid while `removals` is current."""

    labels: tuple[tuple[str, ...], ...]
    series: list[Series | None]
    removals: int


@dataclass
class CycleWriter:
    """Collects one cycle's writes for a source; see Store.cycle."""

    store: Store
    source: Source
    t: float
    points: list[tuple[SeriesKey, float]] = field(default_factory=list)
    columns: list[tuple[str, tuple[tuple[str, ...], ...], list[float], bool]] = field(default_factory=list)
    """(metric, labels of each row, values, only_changes) of each set_column."""
    _retained: list[Callable[[SeriesKey], bool]] = field(default_factory=list)

    def set(self, name: str, labels: tuple[str, ...], value: float | None) -> None:
        """Record a measured value; None (unknown) records NaN so the gap is visible in history."""
        key = (name, (self.source[0], *labels))
        check_key(*key)
        self.points.append((key, math.nan if value is None else float(value)))

    def set_many(self, name: str, rows: list[tuple[tuple[str, ...], float | None]], only_changes: bool = False) -> None:
        """`set_column` for (labels, value) rows."""
        if rows:
            labels, values = zip(*rows, strict=True)
            self.set_column(name, labels, values, only_changes)

    def set_column(self, name: str, labels: Sequence[tuple[str, ...]], values: Sequence[float | None],
                   only_changes: bool = False) -> None:
        """`set` for many rows of one metric, the labels of row i in labels[i] and its value in
        values[i]: the metric is looked up once, and the rows' series are found again without a
        lookup per row while their labels stay the same from cycle to cycle (Store._column), which
        at tens of thousands of series per cycle is most of what `set` costs.

        only_changes: a row whose value equals its series' newest one adds no point (the series is
        kept, its newest point still the current value), for values that rarely change (a
        partition's leader, replica counts): thousands of points a cycle saved, but their history
        holds the changes only, so they suit no chart of points over time."""
        if not labels:
            return
        if len(labels) != len(values):
            raise ValueError(f"{name}: {len(labels)} rows of labels but {len(values)} values")
        pipeline = self.source[0]
        check_key(name, (pipeline, *labels[0]))
        width = len(labels[0])
        for row in labels:
            if len(row) != width:
                check_key(name, (pipeline, *row))  # raises, naming the labels
        self.columns.append((name, tuple(labels), [math.nan if v is None else float(v) for v in values], only_changes))

    def retain(self, predicate: Callable[[SeriesKey], bool]) -> None:
        """Keep series matching predicate although not written this cycle (their source part failed)."""
        self._retained.append(predicate)

    def retains(self, key: SeriesKey) -> bool:
        return any(predicate(key) for predicate in self._retained)

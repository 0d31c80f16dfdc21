"""The collector runtime: every collector runs in its own task on its own interval, with a timeout and backoff, so
one slow or failing source never stops or delays another; it writes each cycle's result (docs/internals.md)."""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import gc
import logging
import random
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from monitoring.cycle import CycleResult
from monitoring.health import CollectorHealth, State, categorize, describe
from monitoring.store import Store

log = logging.getLogger(__name__)

_HEARTBEAT_SECONDS = 0.1
_STALL_LIMIT_SECONDS = 30.0
"""The event loop counts as stuck (the agent is not alive) when its heartbeat is this late."""


class Collector(abc.ABC):
    """A source of measurements. Subclasses read their source in `fetch()` and know nothing of the store's
    readers; the few that copy another store's content (a mirror) or pace themselves (the change feed)
    override `collect()` instead."""

    name: str
    """The `collector` label: "kafka", "flink", ...; unique within a pipeline."""
    self_paced = False
    """True for a collector whose collect() waits for its source itself (the change feed waits for a
    notification): the supervisor then runs it again at once instead of sleeping out the interval."""

    def __init__(self, pipeline: str, target: str, interval: float, timeout: float) -> None:
        self.pipeline = pipeline
        self.target = target
        self.interval = interval
        self.timeout = timeout

    @property
    def source(self) -> tuple[str, str]:
        return (self.pipeline, self.name)

    async def fetch(self) -> CycleResult:
        """Read one cycle from the source and return it; the runtime writes it (write_result)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither fetch() nor collect()")

    def on_failure(self, exc: BaseException) -> CycleResult | None:
        """What a cycle that failed with `exc` still writes, or None (nothing): e.g. a registry that is down
        says `schema_registry_up 0`. Its `write` must be None (a Store.cycle would remove the series it does
        not write). Called for every failure, a timeout's or a stop's cancellation included."""
        return None

    async def collect(self, store: Store) -> int:
        """Run one collection cycle (fetch, then write_result); return the number of requests sent to the source."""
        try:
            result = await self.fetch()
        except BaseException as exc:
            partial = self.on_failure(exc)
            if partial is not None:
                write_result(store, self, partial)
            raise
        write_result(store, self, result)
        return result.requests

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called once when the runtime stops."""


def write_result(store: Store, collector: Collector, result: CycleResult) -> None:
    """Write one cycle's result, in the same order for every collector: the cycle's series (one Store.cycle),
    appended points, the snapshot, the source's failures into the error registry, the events. Health is the
    supervisor's, after this."""
    source, t = collector.source, result.measured_at
    with gc_paused():
        if result.write is not None:
            with store.cycle(source, t) as cycle:
                result.write(cycle)
        for appended in result.appended:
            store.append_many(source, appended.metric, list(appended.points))
    if result.snapshot is not None:
        store.publish_snapshot(source, result.snapshot, t)
    for failure in result.failures:
        store.record_error(collector.pipeline, collector.name, failure.category, failure.message, failure.severity,
                           collector.target, failure.hint, t if failure.t is None else failure.t)
    for event in result.events:
        store.add_event(collector.pipeline, collector.name, event.severity, event.message,
                        t if event.t is None else event.t)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection in the block, which must not await (no other task runs in it).

    A large cycle's writes allocate hundreds of thousands of short-lived objects (rows, labels): each
    700 net allocations would start a young collection, and what survives ten of those moves on until
    a full collection traverses every object of the process, the store's series included. Paused, the
    objects still alive at the end are examined once, at the next collection. The pause is
    process-wide (the exporter's thread too) and lasts only the block."""
    if not gc.isenabled():  # paused by someone else: theirs to resume
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Supervisor:
    def __init__(self, store: Store, collectors: list[Collector], max_backoff: float = 60.0,
                 background: dict[str, Callable[[], Coroutine[Any, Any, None]]] | None = None) -> None:
        self.store = store
        self.collectors = collectors
        self.background = background or {}
        """Tasks that run beside the collectors (by name), e.g. the evaluator: started and stopped with them."""
        self.max_backoff = max_backoff
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._heartbeat: float | None = None
        self.stall_limit = _STALL_LIMIT_SECONDS
        for collector in collectors:
            store.set_health(CollectorHealth(collector.pipeline, collector.name, collector.target, collector.interval))

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    def start(self) -> None:
        """Start one task per collector on the running event loop."""
        if self.running:
            return
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._supervise(collector), name=f"pipewatch:{collector.pipeline}:{collector.name}")
            for collector in self.collectors
        ]
        self._tasks.append(asyncio.create_task(self._beat(), name="pipewatch:heartbeat"))
        self._tasks += [asyncio.create_task(run(), name=f"pipewatch:{name}") for name, run in self.background.items()]

    def liveness(self) -> str | None:
        """None while the collectors' event loop turns; else what is wrong (for /healthz)."""
        if self._heartbeat is None or self._stopping:
            return None
        late = time.monotonic() - self._heartbeat
        if late > self.stall_limit:
            return f"event loop blocked: no heartbeat for {late:.0f} s"
        ended = [task.get_name() for task in self._tasks if task.done()]
        return f"tasks ended: {', '.join(ended)}" if ended else None

    async def _beat(self) -> None:
        while True:
            self._heartbeat = time.monotonic()
            await asyncio.sleep(_HEARTBEAT_SECONDS)

    def cancel(self) -> None:
        """Cancel the collector tasks without waiting (for shutdown paths that cannot await)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()

    async def stop(self) -> None:
        self.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for collector in self.collectors:
            try:
                await asyncio.wait_for(collector.close(), timeout=5)
            except Exception as exc:  # closing is best effort: report, never block shutdown
                log.warning("closing %s/%s failed: %s", collector.pipeline, collector.name, describe(exc))

    async def _supervise(self, collector: Collector) -> None:
        while not self._stopping:
            delay = await self.run_once(collector)
            await asyncio.sleep(delay)

    async def run_once(self, collector: Collector) -> float:
        """Run one cycle, record its outcome, and return how long to wait before the next."""
        source = collector.source
        before = self.store.health()[source]
        started_wall, started = time.time(), time.monotonic()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the run finishes, and the supervisor would never stop.
            async with asyncio.timeout(collector.timeout):
                requests = await collector.collect(self.store)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, TimeoutError) and time.monotonic() - started >= collector.timeout:
                exc = TimeoutError(f"run took longer than the {collector.timeout:g} s timeout")
            category, message = categorize(exc), describe(exc)
            failures = before.consecutive_failures + 1
            errors = dict(before.errors_by_category)
            errors[category] = errors.get(category, 0) + 1
            after = dataclasses.replace(
                before, state=State.DOWN, last_attempt=started_wall, last_duration=time.monotonic() - started,
                last_error=message, error_category=category, consecutive_failures=failures,
                runs=before.runs + 1, errors_by_category=errors,
            )
            self.store.set_health(after)
            # Every failed run is an occurrence in the error registry, not only a change of state.
            self.store.record_error(collector.pipeline, collector.name, category, message, "error",
                                    collector.target, t=time.time())
            if before.state is not State.DOWN or before.error_category != category:
                self.store.add_event(collector.pipeline, collector.name, "error",
                                     f"{collector.name} collector for {collector.target} is down: "
                                     f"{category}: {message}")
                log.warning("%s/%s down: %s: %s", collector.pipeline, collector.name, category, message)
            # The exponent is capped: 2 ** 1024 overflows a float after ~1,000 failures in a row.
            backoff = min(self.max_backoff, collector.interval * 2.0 ** min(failures - 1, 60))
            return backoff * random.uniform(0.5, 1.0)  # jitter spreads retries of many collectors
        duration = time.monotonic() - started
        after = dataclasses.replace(
            before, state=State.UP, last_success=time.time(), last_attempt=started_wall, last_duration=duration,
            last_error=None, error_category=None, consecutive_failures=0, runs=before.runs + 1, requests=requests,
        )
        self.store.set_health(after)
        if before.state is State.DOWN:
            self.store.add_event(collector.pipeline, collector.name, "info",
                                 f"{collector.name} collector for {collector.target} recovered")
            log.info("%s/%s recovered", collector.pipeline, collector.name)
        return 0.0 if collector.self_paced else max(0.0, collector.interval - duration)

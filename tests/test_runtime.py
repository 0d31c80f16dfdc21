"""The collector runtime: timeouts, backoff, isolation between collectors, recovery, staleness, shutdown,
and the error categories health reports."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import ssl
import time

import pytest

from monitoring import runtime
from monitoring.cycle import Appended, CycleEvent, CycleResult, SourceFailure
from monitoring.health import CollectorHealth, State, categorize
from monitoring.runtime import Collector, Supervisor
from monitoring.store import Store
from tests.services import async_wait_until


class FakeCollector(Collector):
    """Returns one series per run (written by the runtime); counts runs and closes. Subclasses change what a
    run does."""

    name = "fake"

    def __init__(self, pipeline: str, interval: float = 0.05, timeout: float = 2.0, requests: int = 3) -> None:
        super().__init__(pipeline, f"fake://{pipeline}", interval, timeout)
        self.requests = requests
        self.started = 0
        self.completed = 0
        self.closed = 0

    async def fetch(self) -> CycleResult:
        self.started += 1
        await self.work()
        value = self.completed
        self.completed += 1
        return CycleResult(time.time(), self.requests,
                           lambda cycle: cycle.set("kafka_topic_partition_current_offset", ("local", "t", "0"), value))

    async def work(self) -> None:
        return None

    async def close(self) -> None:
        self.closed += 1


class HangingCollector(FakeCollector):
    """Never finishes a run by itself: only the supervisor's timeout (or stop) ends it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cancelled = 0
        self.hanging = asyncio.Event()

    async def work(self) -> None:
        self.hanging.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


class FailingCollector(FakeCollector):
    """Raises `error` while `failures_left` > 0 (forever if None), then succeeds."""

    def __init__(self, *args, error: BaseException | None = None, failures_left: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.error = error or ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        self.failures_left = failures_left

    async def work(self) -> None:
        if self.failures_left is None or self.failures_left > 0:
            if self.failures_left is not None:
                self.failures_left -= 1
            raise self.error


class BadCloseCollector(FakeCollector):
    async def close(self) -> None:
        self.closed += 1
        raise RuntimeError("close failed")


def _health(store: Store, collector: Collector) -> CollectorHealth:
    return store.health()[collector.source]


async def _stop(supervisor: Supervisor, timeout: float = 5.0) -> bool:
    """supervisor.stop(), bounded so a lost cancellation cannot hang the test run.

    True if stop() finished by itself. Otherwise (see test_stop_requested_as_a_run_finishes_still_stops)
    the tasks are cancelled again until stop() returns, and False is returned.
    """
    tasks = list(supervisor._tasks)
    stopping = asyncio.ensure_future(supervisor.stop())
    done, _ = await asyncio.wait({stopping}, timeout=timeout)
    if done:
        stopping.result()
        return True
    while not stopping.done():
        for task in tasks:
            task.cancel()
        await asyncio.wait({stopping}, timeout=0.5)
    stopping.result()
    return False


# -- one cycle: a collector's result, written by the runtime ---------------------------------------


class RecordingStore(Store):
    """A store that notes the order in which the runtime writes into it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def cycle(self, source, t=None):
        self.calls.append("cycle")
        return super().cycle(source, t)

    def append_many(self, source, name, points) -> None:
        self.calls.append("append_many")
        super().append_many(source, name, points)

    def publish_snapshot(self, source, snapshot, t=None) -> None:
        self.calls.append("publish_snapshot")
        super().publish_snapshot(source, snapshot, t)

    def record_error(self, *args, **kwargs):
        self.calls.append("record_error")
        return super().record_error(*args, **kwargs)

    def add_event(self, *args, **kwargs):
        self.calls.append("add_event")
        return super().add_event(*args, **kwargs)

    def set_health(self, health: CollectorHealth) -> None:
        self.calls.append(f"health:{health.state.value}")
        super().set_health(health)


class ResultCollector(Collector):
    """Returns the results it is given, one a run; raises `error` instead when it is set (after which
    `on_failure` returns `partial`)."""

    name = "fake"

    def __init__(self, pipeline: str, results: list[CycleResult] = (), error: BaseException | None = None,
                 partial: CycleResult | None = None) -> None:
        super().__init__(pipeline, f"fake://{pipeline}", 1.0, 1.0)
        self.results = list(results)
        self.error = error
        self.partial = partial
        self.failed_with: list[BaseException] = []

    async def fetch(self) -> CycleResult:
        if self.error is not None:
            raise self.error
        return self.results.pop(0)

    def on_failure(self, exc: BaseException) -> CycleResult | None:
        self.failed_with.append(exc)
        return self.partial


def _offsets(store: Store, pipeline: str) -> dict[str, float]:
    return {key[1][3]: store.latest(*key)[1] for key in store.keys("kafka_topic_partition_current_offset")
            if key[1][0] == pipeline}


async def test_a_cycle_result_is_written_in_one_order_series_snapshot_failures_events_health():
    store = RecordingStore()
    calls = store.calls

    def write(cycle) -> None:
        calls.append("write")
        cycle.set("kafka_topic_partition_current_offset", ("local", "t", "0"), 10)
        cycle.set_column("kafka_topic_partition_current_offset", [("local", "t", "1"), ("local", "t", "2")], [11, None])

    result = CycleResult(
        measured_at=100.0, requests=7, write=write, snapshot={"picture": "of the source"},
        appended=(Appended("profiling_column_metric", [(("orders", "d", "c", "mean"), 40.0, 1.5),
                                                       (("orders", "d", "c", "mean"), 60.0, 2.5)]),),
        failures=(SourceFailure("connection_refused", "broker 2 (k2:9092): connection refused"),
                  SourceFailure("job_failure", "job j: NullPointerException", "error", "fix the job", t=90.0)),
        events=(CycleEvent("info", "subject s registered"), CycleEvent("error", "job j failed", t=95.0)),
    )
    collector = ResultCollector("orders", [result])
    supervisor = Supervisor(store, [collector])
    calls.clear()

    await supervisor.run_once(collector)

    assert calls == ["cycle", "write", "append_many", "publish_snapshot", "record_error", "record_error",
                     "add_event", "add_event", "health:up"]
    assert store.latest("kafka_topic_partition_current_offset", ("orders", "local", "t", "0")) == (100.0, 10.0)
    assert store.latest("kafka_topic_partition_current_offset", ("orders", "local", "t", "1")) == (100.0, 11.0)
    unknown = store.latest("kafka_topic_partition_current_offset", ("orders", "local", "t", "2"))
    assert unknown[0] == 100.0 and unknown[1] != unknown[1]  # None: NaN, the gap visible
    history = store.since(("profiling_column_metric", ("orders", "d", "c", "mean")))
    assert history.times.tolist() == [40.0, 60.0] and history.values.tolist() == [1.5, 2.5]
    assert store.snapshot(collector.source) == (100.0, {"picture": "of the source"})
    errors = {e.category: e for e in store.errors()}
    assert set(errors) == {"connection_refused", "job_failure"}
    warning, error = errors["connection_refused"], errors["job_failure"]
    assert (warning.pipeline, warning.component, warning.severity, warning.target, warning.last_seen, warning.count) \
        == ("orders", "fake", "warning", "fake://orders", 100.0, 1)
    assert warning.message == "broker 2 (k2:9092): connection refused"
    assert (error.severity, error.hint, error.last_seen, error.message) == ("error", "fix the job", 90.0,
                                                                            "job j: NullPointerException")
    events = store.events_since(0)
    assert [(e.pipeline, e.collector, e.severity, e.message, e.time) for e in events] == [
        ("orders", "fake", "info", "subject s registered", 100.0), ("orders", "fake", "error", "job j failed", 95.0)]
    health = _health(store, collector)
    assert health.state is State.UP and health.requests == 7 and health.runs == 1


async def test_a_cycle_removes_the_series_it_neither_wrote_nor_retained():
    store = Store()

    def write(*partitions: str, retain: str | None = None):
        def written(cycle) -> None:
            for partition in partitions:
                cycle.set("kafka_topic_partition_current_offset", ("local", "t", partition), 1)
            if retain is not None:
                cycle.retain(lambda key: key[1][3] == retain)
        return written

    collector = ResultCollector("orders", [CycleResult(1.0, write=write("0", "1", "2")),
                                           CycleResult(2.0, write=write("0", retain="1"))])
    supervisor = Supervisor(store, [collector])
    await supervisor.run_once(collector)
    assert sorted(_offsets(store, "orders")) == ["0", "1", "2"]
    await supervisor.run_once(collector)
    assert sorted(_offsets(store, "orders")) == ["0", "1"]  # 2 neither written nor retained: gone
    assert store.latest("kafka_topic_partition_current_offset", ("orders", "local", "t", "1")) == (1.0, 1.0)


async def test_a_failed_cycle_writes_only_its_on_failure_result_and_marks_only_itself_down():
    store = RecordingStore()
    first = CycleResult(1.0, 2, lambda cycle: cycle.set("kafka_topic_partition_current_offset", ("local", "t", "0"), 5),
                        snapshot="first")
    failing = ResultCollector("orders", [first])
    healthy = FakeCollector("payments")
    supervisor = Supervisor(store, [failing, healthy])
    await supervisor.run_once(failing)

    # The source goes away: the cycle fails, and what the collector still has to say is written as it is
    # (points appended, no Store.cycle: the series of the last good cycle are kept), then it is down.
    error = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    failing.error = error
    failing.partial = CycleResult(
        3.0, appended=(Appended("kafka_topic_partition_current_offset", [(("orders", "local", "t", "9"), 3.0, 0.0)]),),
        failures=(SourceFailure("timeout", "GET /subjects: no answer within 1 s", t=2.5),))
    store.calls.clear()
    await supervisor.run_once(failing)
    await supervisor.run_once(healthy)

    assert failing.failed_with == [error]
    assert store.calls[:4] == ["append_many", "record_error", "health:down", "record_error"]
    assert _offsets(store, "orders") == {"0": 5.0, "9": 0.0}  # the last good cycle's series kept
    assert store.snapshot(failing.source) == (1.0, "first")  # no new snapshot
    assert _health(store, failing).state is State.DOWN and _health(store, failing).requests == 2
    assert _health(store, healthy).state is State.UP and _offsets(store, "payments") == {"0": 0.0}
    # The partial's failure is a warning; the failure that ended the cycle is the supervisor's, recorded once.
    assert sorted((e.category, e.severity, e.count) for e in store.errors()) == [
        ("connection_refused", "error", 1), ("timeout", "warning", 1)]
    assert [e.severity for e in store.events_since(0)] == ["error"]


async def test_a_timed_out_cycle_gets_its_on_failure_result_too():
    store = Store()

    class Hangs(ResultCollector):
        async def fetch(self) -> CycleResult:
            await asyncio.Event().wait()
            raise AssertionError("not reached")

    collector = Hangs("orders", partial=CycleResult(
        5.0, appended=(Appended("kafka_topic_partition_current_offset", [(("orders", "local", "t", "0"), 5.0, 0.0)]),)))
    collector.timeout = 0.05
    await Supervisor(store, [collector]).run_once(collector)
    assert [type(exc) for exc in collector.failed_with] == [asyncio.CancelledError]  # the timeout's cancellation
    assert _offsets(store, "orders") == {"0": 0.0}
    assert _health(store, collector).error_category == "timeout"


async def test_a_collector_without_fetch_or_collect_fails_its_cycle():
    class Nothing(Collector):
        name = "nothing"

    store = Store()
    collector = Nothing("orders", "nowhere", 1.0, 1.0)
    await Supervisor(store, [collector]).run_once(collector)
    assert _health(store, collector).state is State.DOWN
    assert "implements neither fetch() nor collect()" in _health(store, collector).last_error


# -- timeout ---------------------------------------------------------------------------------------


async def test_run_that_exceeds_its_timeout_marks_the_collector_down_with_category_timeout():
    store = Store()
    collector = HangingCollector("orders", interval=1.0, timeout=0.2)
    supervisor = Supervisor(store, [collector], max_backoff=10)
    assert _health(store, collector).state is State.STARTING

    delay = await supervisor.run_once(collector)

    health = _health(store, collector)
    assert health.state is State.DOWN
    assert health.error_category == "timeout"
    assert health.last_error == "TimeoutError: run took longer than the 0.2 s timeout"
    assert health.consecutive_failures == 1 and health.runs == 1
    assert health.errors_by_category == {"timeout": 1}
    assert health.last_duration >= 0.15
    assert health.last_success is None
    assert collector.cancelled == 1  # the run was cancelled, not left running in the background
    assert 0.5 <= delay <= 1.0
    (event,) = store.events_since(0)
    assert event.severity == "error" and event.pipeline == "orders" and event.collector == "fake"
    assert "is down: timeout" in event.message and "fake://orders" in event.message


async def test_timeout_error_raised_by_the_collector_itself_keeps_its_own_message():
    # A collector whose own request timed out well within the run timeout must not be reported
    # as having exceeded the run timeout (asyncio.TimeoutError is TimeoutError on Python 3.11).
    store = Store()
    collector = FailingCollector("orders", interval=1.0, timeout=30.0,
                                 error=TimeoutError("metadata request to broker 1 timed out"))
    supervisor = Supervisor(store, [collector])
    await supervisor.run_once(collector)
    health = _health(store, collector)
    assert health.state is State.DOWN and health.error_category == "timeout"
    assert health.last_error == "TimeoutError: metadata request to broker 1 timed out", health.last_error


# -- backoff ---------------------------------------------------------------------------------------


async def test_failing_collector_backs_off_exponentially_up_to_max_backoff(monkeypatch):
    store = Store()
    collector = FailingCollector("orders", interval=1.0, timeout=1.0)
    supervisor = Supervisor(store, [collector], max_backoff=4.0)
    jitter_ranges = []

    def uniform(a: float, b: float) -> float:
        jitter_ranges.append((a, b))
        return 0.75

    monkeypatch.setattr(runtime.random, "uniform", uniform)
    delays, failures = [], []
    for _ in range(6):
        delays.append(await supervisor.run_once(collector))
        failures.append(_health(store, collector).consecutive_failures)
    assert failures == [1, 2, 3, 4, 5, 6]
    assert delays == [0.75, 1.5, 3.0, 3.0, 3.0, 3.0]  # 1, 2, 4, 4, 4, 4 s times the jitter factor
    assert jitter_ranges == [(0.5, 1.0)] * 6
    health = _health(store, collector)
    assert health.errors_by_category == {"connection_refused": 6}
    assert health.runs == 6
    # One "down" event for the outage, not one per failed run.
    assert [e.severity for e in store.events_since(0)] == ["error"]


async def test_backoff_jitter_stays_between_half_and_full_backoff():
    store = Store()
    collector = FailingCollector("orders", interval=0.5, timeout=1.0)
    supervisor = Supervisor(store, [collector], max_backoff=3.0)
    for failures in range(1, 41):
        delay = await supervisor.run_once(collector)
        backoff = min(3.0, 0.5 * 2 ** (failures - 1))
        assert 0.5 * backoff <= delay <= backoff, (failures, delay)


async def test_backoff_after_very_many_failures_is_still_capped():
    # A source down for a long time (over 1024 consecutive failures: ~17 h at a 60 s cap) must keep
    # being retried every max_backoff: an uncapped interval * 2 ** (failures - 1) overflows a float,
    # and the OverflowError would end the collector's task.
    store = Store()
    collector = FailingCollector("orders", interval=5.0, timeout=1.0)
    supervisor = Supervisor(store, [collector], max_backoff=60.0)
    store.set_health(dataclasses.replace(_health(store, collector), state=State.DOWN,
                                         error_category="connection_refused", consecutive_failures=1100))
    try:
        delay = await supervisor.run_once(collector)
    except OverflowError as exc:
        pytest.fail(f"run_once raised {exc!r} after 1101 consecutive failures instead of backing off 30-60 s")
    assert 30.0 <= delay <= 60.0
    assert _health(store, collector).consecutive_failures == 1101


async def test_success_waits_for_the_rest_of_the_interval():
    store = Store()
    collector = FakeCollector("orders", interval=2.0, requests=7)
    supervisor = Supervisor(store, [collector])
    delay = await supervisor.run_once(collector)
    health = _health(store, collector)
    assert health.state is State.UP and health.requests == 7 and health.runs == 1
    assert delay == pytest.approx(2.0 - health.last_duration)
    assert store.events_since(0) == []  # STARTING -> UP is not an event


# -- isolation -------------------------------------------------------------------------------------


async def test_hanging_and_failing_collectors_do_not_delay_a_fast_one():
    store = Store()
    fast = FakeCollector("fast", interval=0.02, timeout=1.0)
    slow = HangingCollector("slow", interval=0.05, timeout=2.0)
    failing = FailingCollector("failing", interval=0.02, timeout=1.0)
    supervisor = Supervisor(store, [slow, failing, fast], max_backoff=0.1)
    supervisor.start()
    try:
        await async_wait_until(lambda: fast.completed >= 10, timeout=1.5, what="10 fast runs")
        # All of those completed while the slow collector's first run was still hanging.
        assert slow.hanging.is_set()
        assert _health(store, slow).runs == 0 and _health(store, slow).state is State.STARTING
        assert _health(store, fast).state is State.UP
        assert _health(store, failing).state is State.DOWN

        await async_wait_until(lambda: _health(store, slow).state is State.DOWN, timeout=10,
                               what="slow collector timed out")
        assert _health(store, slow).error_category == "timeout"
        await async_wait_until(lambda: slow.started == 2, timeout=5, what="slow collector's second run")
        runs_at_second_hang = fast.completed
        await async_wait_until(lambda: fast.completed >= runs_at_second_hang + 10, timeout=1.5,
                               what="10 more fast runs while the slow one hangs again")
        assert _health(store, slow).runs == 1
        assert _health(store, fast).state is State.UP and _health(store, fast).consecutive_failures == 0
    finally:
        await _stop(supervisor)


# -- recovery --------------------------------------------------------------------------------------


async def test_recovery_after_failures_sets_up_and_emits_recovered():
    store = Store()
    collector = FailingCollector("orders", interval=1.0, timeout=1.0, failures_left=3)
    supervisor = Supervisor(store, [collector], max_backoff=10)
    for _ in range(3):
        await supervisor.run_once(collector)
    assert _health(store, collector).state is State.DOWN
    assert _health(store, collector).consecutive_failures == 3

    await supervisor.run_once(collector)

    health = _health(store, collector)
    assert health.state is State.UP
    assert health.consecutive_failures == 0
    assert health.last_error is None and health.error_category is None
    assert health.last_success is not None and health.runs == 4
    assert health.errors_by_category == {"connection_refused": 3}  # history stays
    events = store.events_since(0)
    assert [e.severity for e in events] == ["error", "info"]
    assert "is down: connection_refused" in events[0].message
    assert events[1].message == "fake collector for fake://orders recovered"


async def test_supervised_collector_recovers_by_itself():
    store = Store()
    collector = FailingCollector("orders", interval=0.02, timeout=1.0, failures_left=4)
    supervisor = Supervisor(store, [collector], max_backoff=0.05)
    supervisor.start()
    try:
        await async_wait_until(lambda: _health(store, collector).state is State.UP, timeout=5, what="recovery")
    finally:
        await _stop(supervisor)
    assert _health(store, collector).runs >= 5
    assert _health(store, collector).errors_by_category == {"connection_refused": 4}
    events = store.events_since(0)
    assert [e.severity for e in events] == ["error", "info"]
    assert events[-1].message == "fake collector for fake://orders recovered"


async def test_change_of_error_category_is_a_new_event():
    store = Store()
    collector = FailingCollector("orders", interval=1.0, timeout=1.0)
    supervisor = Supervisor(store, [collector])
    await supervisor.run_once(collector)
    await supervisor.run_once(collector)
    collector.error = ssl.SSLError(1, "certificate verify failed")
    await supervisor.run_once(collector)
    assert [e.message.split(": ")[0] for e in store.events_since(0)] == [
        "fake collector for fake://orders is down", "fake collector for fake://orders is down"]
    assert _health(store, collector).errors_by_category == {"connection_refused": 2, "tls": 1}


# -- staleness -------------------------------------------------------------------------------------


def test_up_collector_with_an_old_success_is_stale():
    health = CollectorHealth("orders", "kafka", "k:9092", interval=5.0, state=State.UP, last_success=1000.0)
    assert health.stale_after == 15.0
    assert health.effective_state(now=1010.0) is State.UP
    assert health.effective_state(now=1015.0) is State.UP
    assert health.effective_state(now=1015.5) is State.STALE
    assert health.reason(now=1016.0) == "no successful run for 16 s (expected every 5 s)"
    assert health.reason(now=1001.0) == "ok"


def test_stale_after_is_at_least_ten_seconds():
    health = CollectorHealth("orders", "kafka", "k:9092", interval=0.5, state=State.UP, last_success=1000.0)
    assert health.stale_after == 10.0
    assert health.effective_state(now=1009.9) is State.UP
    assert health.effective_state(now=1010.1) is State.STALE


def test_down_and_starting_are_never_stale():
    down = CollectorHealth("orders", "kafka", "k", 5.0, state=State.DOWN, last_success=0.0, last_error="E: x",
                           error_category="connection")
    assert down.effective_state(now=1e9) is State.DOWN
    assert down.reason(now=1e9) == "connection: E: x"
    starting = CollectorHealth("orders", "kafka", "k", 5.0)
    assert starting.effective_state(now=1e9) is State.STARTING
    assert starting.reason(now=1e9) == "first collection not finished yet"


async def test_health_written_by_a_successful_run_goes_stale_later():
    store = Store()
    collector = FakeCollector("orders", interval=5.0)
    await Supervisor(store, [collector]).run_once(collector)
    health = _health(store, collector)
    assert health.effective_state(now=health.last_success + 1) is State.UP
    assert health.effective_state(now=health.last_success + 15.01) is State.STALE


# -- shutdown --------------------------------------------------------------------------------------


async def test_stop_cancels_tasks_and_closes_every_collector():
    store = Store()
    hanging = HangingCollector("slow", interval=0.05, timeout=30.0)
    idle = FakeCollector("idle", interval=30.0)
    bad_close = BadCloseCollector("bad", interval=30.0)
    supervisor = Supervisor(store, [hanging, bad_close, idle])
    supervisor.start()
    supervisor.start()  # idempotent while running
    await async_wait_until(lambda: hanging.hanging.is_set() and idle.completed == 1 and bad_close.completed == 1,
                           timeout=5, what="collectors running")
    assert supervisor.running
    assert sorted(t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("pipewatch:")) == [
        "pipewatch:bad:fake", "pipewatch:heartbeat", "pipewatch:idle:fake", "pipewatch:slow:fake"]
    assert supervisor.liveness() is None

    assert await _stop(supervisor), "stop() did not return by itself"

    assert not supervisor.running
    assert hanging.cancelled == 1 and hanging.started == 1
    assert (hanging.closed, bad_close.closed, idle.closed) == (1, 1, 1)  # a failing close does not skip the rest
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("pipewatch:")] == []


async def test_stop_requested_as_a_run_finishes_still_stops():
    # stop() called at the moment a run completes (e.g. SIGTERM handled right then) must still stop
    # the collector. On Python 3.11, asyncio.wait_for around the run returns the finished run's
    # result and swallows the cancellation, so the collector's loop would run on and stop() would
    # never return. The stop is requested from inside the second run, which hits that window exactly.
    store = Store()
    stopping: list[asyncio.Future] = []

    class StopsDuringSecondRun(FakeCollector):
        async def work(self) -> None:
            if self.started == 2:
                stopping.append(asyncio.ensure_future(supervisor.stop()))

    collector = StopsDuringSecondRun("orders", interval=0.01)
    supervisor = Supervisor(store, [collector])
    supervisor.start()
    tasks_before = list(supervisor._tasks)
    await async_wait_until(lambda: stopping, timeout=5, what="stop requested during the second run")
    done, _ = await asyncio.wait(stopping, timeout=3)
    if not done:  # clean up the runaway task before failing
        while not stopping[0].done():
            for task in tasks_before:
                task.cancel()
            await asyncio.wait(stopping, timeout=0.5)
    extra_runs = collector.completed - 2
    assert done, f"stop() did not return within 3 s; the collector ran {extra_runs} more times after stop()"
    assert collector.completed == 2 and collector.closed == 1


async def test_one_task_per_collector_named_after_it():
    store = Store()
    a, b = FakeCollector("a", interval=10), FakeCollector("b", interval=10)
    supervisor = Supervisor(store, [a, b])
    supervisor.start()
    try:
        await async_wait_until(lambda: a.completed == 1 and b.completed == 1, timeout=5, what="one run each")
        assert sorted(t.get_name() for t in supervisor._tasks) == [
            "pipewatch:a:fake", "pipewatch:b:fake", "pipewatch:heartbeat"]
    finally:
        await _stop(supervisor)


async def test_liveness_reports_a_blocked_event_loop_and_an_ended_task():
    store = Store()
    collector = FakeCollector("a", interval=10)
    supervisor = Supervisor(store, [collector])
    supervisor.stall_limit = 0.2
    supervisor.start()
    try:
        await async_wait_until(lambda: collector.completed == 1, timeout=5, what="first run")
        assert supervisor.liveness() is None
        time.sleep(0.5)  # the fault under test: code that blocks the event loop (no heartbeat can run)
        blocked = supervisor.liveness()
        assert blocked is not None and blocked.startswith("event loop blocked: no heartbeat for")
        await async_wait_until(lambda: supervisor.liveness() is None, timeout=5, what="heartbeat again")
        supervisor._tasks[0].cancel()  # a collector task that ends while the supervisor is not stopping
        await async_wait_until(lambda: supervisor.liveness() is not None, timeout=5, what="ended task noticed")
        assert supervisor.liveness() == "tasks ended: pipewatch:a:fake"
    finally:
        await _stop(supervisor)
    assert supervisor.liveness() is None  # stopped on purpose


# -- error categories ------------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "category"), [
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "connection_refused"),
    (OSError(errno.ECONNREFUSED, "Connection refused"), "connection_refused"),
    (TimeoutError("timed out"), "timeout"),
    (TimeoutError(), "timeout"),
    (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "tls"),
    (ssl.SSLCertVerificationError(1, "certificate verify failed"), "tls"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable"),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), "unreachable"),
    (ConnectionResetError(errno.ECONNRESET, "reset"), "connection"),
    (OSError(errno.EACCES, "denied"), "os_error"),
    (ValueError("bad value"), "internal"),
    (RuntimeError("boom"), "internal"),
    (KeyError("x"), "internal"),
])
def test_categorize(error, category):
    assert categorize(error) == category


def test_categorize_kafka_errors():
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, UnknownTopicOrPartitionError

    assert categorize(KafkaConnectionError("x")) == "connection"
    assert categorize(NodeNotReadyError("x")) == "connection"
    assert categorize(KafkaTimeoutError("x")) == "timeout"
    assert categorize(UnknownTopicOrPartitionError("x")) == "kafka_protocol"

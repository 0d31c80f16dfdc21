"""Sessions per server process: CPU and memory of 1, 25 and 100 open pages of a pipeline's Kafka section, against
raw Bokeh.

Set-up: a pipeline fed every second from two Kafka clusters (two local Tansu brokers, each with an `orders` topic
of 6 partitions, a producer writing 20 records a second and two consumer groups committing every second, one slower
than the producer so its lag grows) and two schema registries (the tests' stand-in with three subjects), all
collected every second (`interval_seconds: 1`). The real `panel serve apps/` serves it with the session flags
pipewatch uses (pipewatch/service.py). The traffic runs throughout, baseline included. The viewers open the
pipeline's Kafka section (`?page=pipeline&pipeline=orders&section=kafka`), the view with the most live lines since
the pipeline page became a summary with one view per source: per cluster lag (group x topic), lag seconds (group)
and rates (produced to the topic, consumed by each group), 7 lines, 14 in all; besides its charts it has per
cluster a status line and the groups, partitions, topics and brokers tables, which pipewatch redraws every 5 s or
when a source's health changes (apps/views.py, DETAIL_SECONDS). pipewatch's charts stream their lines through one
shared message a second for all the sessions that show the same lines (apps/shared_lines.py); each session still
ticks once a second on its own.

The baseline (bench/baseline_app/main.py) is a minimal raw-Bokeh app served the same way: 6
figures with the same lines per figure, one point streamed into every line each second with the
same rollover (720), in one document hold per tick from Bokeh's periodic callback, as pipewatch
ticks. It has no collectors, tables or status lines: the floor of what live charts cost when
each session streams its own.

Viewers are headless websocket clients of the Bokeh protocol in this process (bench/viewers.py):
each opens a session as a browser does and counts what it receives. For each app: its server's
CPU with no session (pipewatch's collectors and exporter run in that process), then 1, 25 and 100
open sessions: once every viewer has its document and the sessions have caught up (while the server
builds new sessions the open ones' ticks wait, and their backlog arrives afterwards: measuring starts
once the viewers receive about as many points a second as there are lines, after at least 5 s, or after
120 s), a window over which
CPU is read from /proc/PID/stat (user + system time of the whole process, % of one core) and RSS
from /proc/PID/status at its end; the viewers' counts over the same window give the PATCH-DOC
messages, streamed points and bytes each session received per second. Then every viewer closes
its websocket, and after the unused-session lifetime plus a check interval and a margin the
server's RSS and the sessions it destroyed (its log's "Session ... destroyed" lines, PANEL_LOG_LEVEL=info)
are read.
Server, viewers, brokers, registries and traffic share the machine's cores.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "bench")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from viewers import BokehViewer, cpu_seconds, rss_mb  # noqa: E402

from monitoring.traffic import parse_pattern  # noqa: E402
from pipewatch import demo  # noqa: E402
from pipewatch.local.broker import LocalBroker, free_port  # noqa: E402
from pipewatch.service import CHECK_UNUSED_SESSIONS_MS, UNUSED_SESSION_LIFETIME_MS  # noqa: E402
from tests.schema_registry_standin import SchemaRegistryStandIn  # noqa: E402
from tests.services import PanelServer  # noqa: E402

SESSIONS = (1, 25, 100)
QUICK_SESSIONS = (1, 10)
WINDOW, QUICK_WINDOW = 30.0, 10.0
WARM_UP = 5.0
RATE = 20
"""Records a second produced to each cluster."""
CLUSTERS = ("east", "west")
REGISTRIES = ("primary", "secondary")
GROUPS = {"order-processor": 0.8, "order-audit": 10.0}
"""Consumer groups and their capacity as a multiple of the produce rate."""
LINES = (2, 2, 3) * len(CLUSTERS)
"""Lines per live chart of the Kafka section: per cluster lag (group x topic), lag seconds (group) and rates
(produced to the topic, consumed by each group)."""
SETTLE_LIMIT = 120.0
"""After the sessions are destroyed, wait at most this long for the server's CPU to come back to its idle (it
destroys the sessions' documents and collects their garbage in the meantime)."""
ROLLOVER = 720
PAGE = {"page": "pipeline", "pipeline": "orders", "section": "kafka"}
"""The URL query of the page the viewers open (the baseline app has one page)."""
OPENING = 10
"""Sessions opening at once: more only queue in the server (and their tokens can expire there)."""
ROUNDS = 2
"""Rounds of opening and closing the most sessions; a second round shows whether memory left behind by the
first is reused (it takes as long again to build the sessions)."""
PIPEWATCH, BASELINE = "pipewatch", "raw Bokeh (baseline)"
GOAL_RATIO, GOAL_CORE = 1.5, 100.0
_DESTROYED = re.compile(r"Session \d+ destroyed")
_CREATED = re.compile(r"Session \d+ launching")
_LOG_SESSIONS = {"PANEL_LOG_LEVEL": "info"}
"""Panel then logs each session's creation and destruction (and nothing per tick)."""


def _config(workdir: Path, brokers: list[LocalBroker], registries: list[SchemaRegistryStandIn],
            metrics_port: int) -> Path:
    kafka = "".join(
        f"      - bootstrap_servers: [\"{broker.bootstrap}\"]\n"
        f"        cluster: {cluster}\n"
        "        interval_seconds: 1\n"
        for cluster, broker in zip(CLUSTERS, brokers, strict=True))
    registry = "".join(
        f"      - url: {standin.url}\n"
        f"        registry: {name}\n"
        "        interval_seconds: 1\n"
        for name, standin in zip(REGISTRIES, registries, strict=True))
    config = workdir / "sessions.yml"
    config.write_text(
        "pipelines:\n"
        "  - name: orders\n"
        "    kafka:\n" + kafka +
        "    schema_registry:\n" + registry +
        "runtime:\n"
        "  max_backoff_seconds: 1\n"
        "exporter:\n"
        "  host: 127.0.0.1\n"
        f"  port: {metrics_port}\n", encoding="utf-8")
    return config


class _Traffic:
    """A producer and the consumer groups on every broker, on a thread and event loop of their own."""

    def __init__(self, brokers: list[LocalBroker]) -> None:
        self.brokers = brokers
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="bench-traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._create_topics(), self._loop).result(60)
        self._done = asyncio.run_coroutine_threadsafe(self._run(), self._loop)

    async def _create_topics(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        for broker in self.brokers:
            admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
            await admin.start()
            try:
                await admin.create_topics([NewTopic(demo.TOPIC, demo.PARTITIONS, 1)])
            finally:
                await admin.close()

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        pattern = parse_pattern(f"base={RATE}/s")
        tasks = []
        for broker in self.brokers:  # the demo's own producer and consumers
            tasks.append(asyncio.create_task(demo._produce(broker.bootstrap, pattern, time.time(), self._stop)))
            tasks += [asyncio.create_task(demo._consume(broker.bootstrap, group, RATE * capacity, self._stop))
                      for group, capacity in GROUPS.items()]
        await self._stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            try:
                self._done.result(30)
            except Exception:  # noqa: BLE001 - stopping: the brokers go next anyway
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def _metrics(port: int) -> str:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return ""


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.5)


def _pipeline_ready(metrics_port: int, registries: list[SchemaRegistryStandIn]) -> None:
    """Every collector up, every registry with a failed-requests series, rates known: every chart has lines."""
    for standin in registries:
        standin.failure = (500, 50001, "bench: one failure at start, for the failed-requests chart")
    def counted() -> bool:
        errors = [line for line in _metrics(metrics_port).splitlines()
                  if line.startswith("schema_registry_errors_total{")]
        return all(any(f'registry="{name}"' in line for line in errors) for name in REGISTRIES)

    _wait_for(counted, 60, "a failed request counted by every registry collector")
    for standin in registries:
        standin.failure = None

    def up() -> bool:
        text = _metrics(metrics_port)
        ups = [line for line in text.splitlines() if line.startswith("pipewatch_collector_up{")]
        return (len(ups) == len(CLUSTERS) + len(REGISTRIES)
                and all(float(line.rsplit(" ", 1)[1]) == 1 for line in ups)
                and text.count("kafka_consumergroup_consume_rate{") == len(CLUSTERS) * len(GROUPS))

    _wait_for(up, 90, "every collector up and every consume rate known")


async def _open(viewers: list[BokehViewer], tasks: list[asyncio.Task], port: int, app: str, count: int,
                stop: asyncio.Event) -> float:
    """Open sessions until there are `count`; returns the seconds until all of them had their document."""
    started = time.monotonic()
    new = [BokehViewer(port, app, arguments=PAGE if app == "apps" else None) for _ in range(count - len(viewers))]
    deadline = started + 1800
    for viewer in new:  # at most OPENING sessions waiting for their document at once, as browsers arriving
        while sum(not v.pulled.is_set() for v in viewers) >= OPENING:
            if time.monotonic() > deadline:
                raise RuntimeError("sessions were not built within 1,800 s")
            ended = [t for t in tasks if t.done()]
            if ended:
                raise RuntimeError(f"a viewer ended before its document: {ended[0].exception()!r}")
            await asyncio.sleep(0.1)
        viewers.append(viewer)
        tasks.append(asyncio.create_task(viewer.run(stop)))
    while not all(v.pulled.is_set() for v in new):
        failed = [t for t in tasks if t.done()]
        if failed:
            raise RuntimeError(f"a viewer ended before its document: {failed[0].exception()!r}")
        if time.monotonic() > deadline:
            raise RuntimeError("not every session got its document within 1,800 s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def _window(viewers: list[BokehViewer], pid: int, seconds: float) -> dict:
    before = [v.counters() for v in viewers]
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    after = [v.counters() for v in viewers]
    elapsed = t1 - t0
    per = len(viewers) * elapsed

    def rate(key: str) -> float:
        return sum(a[key] - b[key] for a, b in zip(after, before, strict=True)) / per if viewers else 0.0

    streams = sum(a["events"]["ColumnsStreamed"] - b["events"]["ColumnsStreamed"]
                  for a, b in zip(after, before, strict=True))
    events = sum(sum(a["events"].values()) - sum(b["events"].values()) for a, b in zip(after, before, strict=True))
    return {"cpu": (cpu1 - cpu0) / elapsed * 100, "rss": rss_mb(pid), "seconds": elapsed,
            "patches": rate("patches"), "points": rate("points"), "kbytes": rate("bytes") / 1000,
            "streams": streams / per if viewers else 0.0, "other_events": (events - streams) / per if viewers else 0.0,
            "lines": max((a["sources"] for a in after), default=0)}


async def _caught_up(viewers: list[BokehViewer], pid: int, limit: float = 120.0) -> float | None:
    """Wait until the sessions receive points as fast as they are made (one a line a second, within 25%): while
    the server builds new sessions the others' ticks wait, and their backlog arrives afterwards (one stream
    carrying many points). Returns the seconds it took, None if they had not caught up after `limit`."""
    started = time.monotonic()
    await asyncio.sleep(WARM_UP)
    while time.monotonic() - started < limit:
        sample = await _window(viewers, pid, 3.0)
        if sample["lines"] and 0.75 * sample["lines"] <= sample["points"] <= 1.25 * sample["lines"]:
            return time.monotonic() - started
    return None


def _destroyed(server: PanelServer) -> tuple[int, int]:
    log = server.log_path.read_text(errors="replace")
    return len(_CREATED.findall(log)), len(_DESTROYED.findall(log))


async def _sweep(name: str, server: PanelServer, app: str, counts: tuple[int, ...], window: float, progress,
                 rounds: int = 2) -> dict:
    pid = server.proc.pid
    out: dict = {"app": name, "rows": [], "build": {}}
    await asyncio.sleep(WARM_UP)
    idle = await _window([], pid, window)
    out["idle"] = idle
    progress(f"  {name}: no session: CPU {idle['cpu']:.1f}% of a core, RSS {idle['rss']:.0f} MB")
    stop = asyncio.Event()
    viewers: list[BokehViewer] = []
    tasks: list[asyncio.Task] = []
    for count in counts:
        build = await _open(viewers, tasks, server.port, app, count, stop)
        caught_up = await _caught_up(viewers, pid)
        row = {"sessions": count, "build": build, "caught_up": caught_up, **await _window(viewers, pid, window)}
        out["rows"].append(row)
        progress(f"  {name}: {count:>3} session(s) (built in {build:.1f} s, caught up after "
                 f"{'more than 120' if row['caught_up'] is None else format(row['caught_up'], '.0f')} s): "
                 f"CPU {row['cpu']:.1f}% of a core, "
                 f"RSS {row['rss']:.0f} MB; per session per second {row['patches']:.2f} PATCH-DOC, "
                 f"{row['streams']:.1f} streamed updates, {row['points']:.1f} points, {row['other_events']:.1f} other "
                 f"events, {row['kbytes']:.1f} kB; {row['lines']} lines streamed to")
    lifetime = (UNUSED_SESSION_LIFETIME_MS + CHECK_UNUSED_SESSIONS_MS) / 1000 + 5
    closed_rounds = []
    for round_ in range(1, rounds + 1):
        if round_ == 2:  # the same sessions again: is the memory of the first round reused?
            viewers, tasks, stop = [], [], asyncio.Event()
            await _open(viewers, tasks, server.port, app, counts[-1], stop)
            await asyncio.sleep(WARM_UP)
            peak = rss_mb(pid)
        else:
            peak = out["rows"][-1]["rss"]
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        closed_at = time.monotonic()
        await asyncio.sleep(lifetime)
        settled = None
        while time.monotonic() - closed_at < lifetime + SETTLE_LIMIT:
            if (await _window([], pid, 5.0))["cpu"] <= idle["cpu"] + 2:
                settled = time.monotonic() - closed_at
                break
        created, destroyed = _destroyed(server)
        closed = await _window([], pid, min(window, 10.0))
        closed_rounds.append({"peak": peak, "rss": closed["rss"], "cpu": closed["cpu"], "created": created,
                              "destroyed": destroyed, "settled": settled})
        idle_after = (format(settled, '.0f') if settled is not None
                      else 'more than ' + format(lifetime + SETTLE_LIMIT, '.0f'))
        progress(f"  {name}: round {round_}: {counts[-1]} sessions closed; CPU back to idle after "
                 f"{idle_after}"
                 f" s; then RSS {closed['rss']:.0f} MB (peak {peak:.0f}), CPU {closed['cpu']:.1f}%, sessions "
                 f"created {created}, destroyed {destroyed}")
    out["closed"] = closed_rounds
    return out


def run(quick: bool = False, progress=print) -> dict:
    started = time.perf_counter()
    counts = QUICK_SESSIONS if quick else SESSIONS
    window = QUICK_WINDOW if quick else WINDOW
    apps: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="pipewatch-bench-sessions-") as workdir:
        work = Path(workdir)
        brokers = [LocalBroker(work) for _ in CLUSTERS]
        registries = [SchemaRegistryStandIn() for _ in REGISTRIES]
        traffic = None
        try:
            for broker in brokers:
                broker.start()
            for standin in registries:
                standin.start()
                for subject in ("orders-value", "payments-value", "customers-value"):
                    standin.register(subject, '{"type": "string"}')
            traffic = _Traffic(brokers)
            traffic.start()
            metrics_port = free_port()
            server = PanelServer(work, _config(work, brokers, registries, metrics_port), env=_LOG_SESSIONS)
            try:
                server.start()
                _pipeline_ready(metrics_port, registries)
                apps.append(asyncio.run(_sweep(PIPEWATCH, server, "apps", counts, window, progress, rounds=ROUNDS)))
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\nserver log tail:\n{server.log_path.read_text()[-4000:]}") from None
            finally:
                server.stop()
            baseline = PanelServer(work, None, app_dir=ROOT / "bench" / "baseline_app",
                                   env={**_LOG_SESSIONS, "BASELINE_LINES": ",".join(map(str, LINES)),
                                        "BASELINE_ROLLOVER": str(ROLLOVER)})
            try:
                baseline.start()
                apps.append(asyncio.run(_sweep(BASELINE, baseline, "baseline_app", counts, window, progress, rounds=1)))
            finally:
                baseline.stop()
        finally:
            if traffic is not None:
                traffic.stop()
            for standin in registries:
                standin.stop()
            for broker in brokers:
                broker.stop()
    return {"apps": apps, "window": window, "seconds": time.perf_counter() - started,
            "lifetime_ms": UNUSED_SESSION_LIFETIME_MS, "check_ms": CHECK_UNUSED_SESSIONS_MS}


def table(result: dict) -> tuple[list[str], list[list[str]]]:
    header = ["app", "sessions", "server CPU (% of one core)", "RSS (MB)", "PATCH-DOC /session/s",
              "streamed updates /session/s", "points /session/s", "other events /session/s", "kB /session/s",
              "time to open (s)", "caught up after (s)"]
    rows = []
    for app in result["apps"]:
        idle = app["idle"]
        rows.append([app["app"], "0", f"{idle['cpu']:.1f}", f"{idle['rss']:,.0f}", "", "", "", "", "", "", ""])
        for r in app["rows"]:
            rows.append([app["app"], str(r["sessions"]), f"{r['cpu']:.1f}", f"{r['rss']:,.0f}", f"{r['patches']:.2f}",
                         f"{r['streams']:.1f}", f"{r['points']:.1f}", f"{r['other_events']:.1f}",
                         f"{r['kbytes']:.1f}", f"{r['build']:.1f}",
                         "over 120" if r["caught_up"] is None else f"{r['caught_up']:.0f}"])
        for number, closed in enumerate(app["closed"], 1):
            rows.append([app["app"], f"0 (round {number} closed)", f"{closed['cpu']:.1f}", f"{closed['rss']:,.0f}",
                         "", "", "", "", "", "", ""])
    return header, rows


def _verdict(met: bool) -> str:
    return "met" if met else "not met"


def interpretation(result: dict) -> list[str]:
    by = {app["app"]: app for app in result["apps"]}
    mine, base = by.get(PIPEWATCH), by.get(BASELINE)
    if mine is None or base is None:
        return ["- Incomplete run: one of the apps was not measured."]
    lines = []
    rows = {r["sessions"]: r for r in mine["rows"]}
    base_rows = {r["sessions"]: r for r in base["rows"]}
    idle = mine["idle"]["cpu"]
    ratios = []
    for count in sorted(rows):
        a, b = rows[count], base_rows.get(count)
        if b is None:
            continue
        page, base_page = a["cpu"] - idle, b["cpu"] - base["idle"]["cpu"]
        ratios.append((count, a["cpu"] / b["cpu"] if b["cpu"] > 0 else float("inf"),
                       page / base_page if base_page > 0 else float("inf")))
        lines.append(
            f"- {count} session(s): pipewatch's server used {a['cpu']:.1f}% of one core, of which "
            f"{idle:.1f}% its collectors and exporter use with no session open (so {page:.1f}% for the pages), "
            f"against {b['cpu']:.1f}% for the raw-Bokeh baseline ({b['cpu'] - base['idle']['cpu']:.1f}% above its "
            f"idle); each pipewatch session received {a['patches']:.2f} PATCH-DOC messages, {a['streams']:.1f} "
            f"streamed updates ({a['points']:.1f} points, {a['lines']} lines) and {a['other_events']:.1f} other "
            f"events a second ({a['kbytes']:.1f} kB), each baseline session {b['patches']:.2f}, {b['streams']:.1f} "
            f"({b['points']:.1f} points, {b['lines']} lines), {b['other_events']:.1f} ({b['kbytes']:.1f} kB).")
    slow = [(n, r["patches"]) for n, r in sorted(rows.items()) if r["patches"] < 0.9]
    if slow:
        lines.append(
            "- Not every tick reached pipewatch's sessions each second: "
            + ", ".join(f"{p:.2f} PATCH-DOC a second per session at {n}" for n, p in slow)
            + " (the points still arrived, several per update): the server could not run every session's tick "
            "every second, so it did less work than a second-by-second page needs and its CPU figure there "
            "understates what that load costs.")
    if ratios:
        whole = all(r <= GOAL_RATIO for _, r, _ in ratios)
        pages = all(r <= GOAL_RATIO for _, _, r in ratios)
        lines.append(
            f"- **Goal: CPU within {GOAL_RATIO:g}x of the baseline at each session count.** Whole server process: "
            f"{_verdict(whole)} ({', '.join(f'{r:.2f}x at {n}' for n, r, _ in ratios)}). The pages alone (CPU "
            f"above each server's no-session idle, which for pipewatch is its collectors): {_verdict(pages)} "
            f"({', '.join(f'{r:.2f}x at {n}' for n, _, r in ratios)}).")
    top = rows.get(max(rows)) if rows else None
    if top is not None:
        kept_up = top["patches"] >= 0.9
        verdict = _verdict(top['cpu'] < GOAL_CORE and kept_up)
        lines.append(f"- **Goal: {max(rows)} sessions under one core.** {verdict}: "
                     f"{top['cpu']:.1f}% of one core for the whole pipewatch process (collectors included)"
                     + ("." if kept_up else
                        f", but its sessions got {top['patches']:.2f} of their one update a second: the server was at "
                        "its limit (one core for the interpreter, the viewers and the rest on the other), "
                        "not under it."))
    closed = mine["closed"]
    if closed:
        first, second = closed[0], closed[-1]
        before = mine["idle"]["rss"]
        all_gone = all(c["created"] == c["destroyed"] for c in closed)
        growth = first["peak"] - before
        returned = first["peak"] - first["rss"]
        reused = second["rss"] - first["rss"]
        met = all_gone and reused < 0.1 * max(growth, 1.0)
        reuse = ("what the first round left is reused, not leaked" if reused < 0.1 * max(growth, 1.0)
                 else "the second round left more behind than the first")
        idle_again = ("the no-session idle again" if first["cpu"] <= mine["idle"]["cpu"] + 2
                      else "above the no-session idle")
        lines.append(
            f"- **Goal: memory returned when sessions close.** {_verdict(met)}. With "
            f"`--unused-session-lifetime {result['lifetime_ms']}` and `--check-unused-sessions {result['check_ms']}`, "
            f"the server had destroyed {first['destroyed']} of the {first['created']} sessions it created "
            f"and its CPU was back to idle {_settled(first)} after the viewers closed (it keeps the sessions for the "
            f"lifetime, then destroys their documents and collects their garbage)"
            + (f" ({second['destroyed']} of {second['created']} in all after the second round)" if len(closed) > 1
               else "")
            + f". RSS went from {before:,.0f} MB with no session to {first['peak']:,.0f} MB with {max(rows)} and "
            f"down to {first['rss']:,.0f} MB after they closed ({returned:,.0f} of the {growth:,.0f} MB given back "
            f"to the system; the server runs with `PYTHONMALLOC=malloc` and trims its heap after sessions close)"
            + (f"; a second round of {max(rows)} sessions peaked at {second['peak']:,.0f} MB and left "
               f"{second['rss']:,.0f} MB ({reused:+,.0f} MB against the first round): {reuse}" if len(closed) > 1
               else "")
            + f". The server's CPU after closing, {first['cpu']:.1f}% of a core, is {idle_again} "
            f"({mine['idle']['cpu']:.1f}%).")
        b_first = base["closed"][0]
        lines.append(
            f"- The baseline, for comparison: {base['idle']['rss']:,.0f} MB with no session, {b_first['peak']:,.0f} "
            f"MB with {max(rows)}, {b_first['rss']:,.0f} MB after they closed ({b_first['destroyed']} of "
            f"{b_first['created']} sessions destroyed, CPU back to idle {_settled(b_first)} after they closed).")
    return lines


def _settled(closed: dict) -> str:
    settled = closed.get("settled")
    return f"not within {SETTLE_LIMIT:.0f} s" if settled is None else f"{settled:.0f} s"


if __name__ == "__main__":
    out = run(quick="--quick" in sys.argv)
    for row in table(out)[1]:
        print("  ".join(row))
    print("\n".join(interpretation(out)))

"""Soak: the demo pipeline for hours with pages open and faults on a schedule; the agent and the dashboard sampled.

Not in `make test` nor in bench/run.py (issue #22 asks for two hours per page count). The pipeline is `make demo`'s,
built here from the same parts so the faults can reach them: the local broker, PostgreSQL (profiling history and
runs, the shop tables under the change feed), Flink where Java is installed, the schema-registry stand-in, the demo's
producer and consumers. `panel serve apps/` (the dashboard, with its collectors) and `pipewatch agent` each watch it.
Playwright's Chromium keeps N pages open (pipeline, overview, aggregate in turn) and times three new pipeline
pages opened in turn two minutes in and three at the end (`page_opens`). Every `--fault-every` minutes the
next fault of FAULTS; every `--sample-seconds` each process's RSS, CPU, open descriptors and threads, its exported
series (/metrics lines) and the TCP connections to the dashboard's port (`sessions`: a page's websocket and,
until Tornado closes them after an idle hour, its HTTP keep-alive connections) are recorded. At the end the
traffic stops and each process is held against the sources (`truth` in the results): the changes its feed counted
against the changelog's rows written since both readers ran (nothing lost through the faults, nothing twice), and
the demo topic's lag per group and partition against the broker's high watermarks and committed offsets (exact).

    .venv/bin/python bench/bench_soak.py --minutes 120 --pages 1,10          # the issue's run
    .venv/bin/python bench/bench_soak.py --minutes 8 --pages 1 --fault-every 1.5 --sample-seconds 15 --small

`--small` sets every memory bound low (docs/memory.md) so they are all reached within minutes. Results: JSON and a PNG
of the curves per page count in `--out` (default docs/soak/).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import psutil  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from bench.bench_page_open import PAGES as OPEN_PAGES  # noqa: E402
from bench.bench_page_open import open_page  # noqa: E402
from collectors.change_feed import postgres as change_feed_postgres  # noqa: E402
from monitoring.config import ChangeFeedSource  # noqa: E402
from pipewatch import demo  # noqa: E402
from pipewatch.local.broker import LocalBroker, free_port, port_open  # noqa: E402
from pipewatch.local.flink import FlinkUnavailable, LocalFlink  # noqa: E402
from pipewatch.local.postgres import LocalPostgres  # noqa: E402
from pipewatch.samples import feed as feed_sample  # noqa: E402
from pipewatch.samples.profiling import ProfilingSample  # noqa: E402
from pipewatch.service import SERVE_ENV, SERVE_SESSION_ARGS  # noqa: E402
from tests.schema_registry_standin import SchemaRegistryStandIn  # noqa: E402
from tests.services import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

PAGES = ("?page=pipeline&pipeline=orders", "?page=overview", "?page=aggregate")
OPEN_AFTER_SECONDS = 120.0
OPEN_BEFORE_END_SECONDS = 90.0
OPENS_PER_PROBE = 3
"""When new pages are opened and timed (one after another): two minutes in, and at the end (issue #22: as fast
after hours)."""
FAULTS = ("broker", "postgres", "flink_taskmanager", "registry")
FAULT_SECONDS = 20.0
"""How long a source stays down (the registry answers 503 for as long)."""
SMALL = {"store": "  points_per_series: 60\n  events: 50\n  errors: 50\n",
         "change_feed": "      rows_per_entity: 20\n",
         "profiling": "      runs_with_metrics: 5\n      max_runs: 100\n      max_drift_events: 100\n"}


class Pipeline:
    """The demo's parts, started here so that faults can stop and start them."""

    def __init__(self, workdir: Path, small: bool) -> None:
        self.workdir = workdir
        self.broker = LocalBroker(workdir, port=free_port())
        self.postgres = LocalPostgres(workdir)
        self.registry = SchemaRegistryStandIn()
        self.flink: LocalFlink | None = None
        self.small = small
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.feed_mark: int | None = None
        """The changelog's newest id when the shop began writing: every change after it is the feed's to count."""

    def start(self) -> None:
        self.broker.start()
        self.postgres.start()
        self.registry.start()
        self.registry.register("orders-value", '{"type": "record", "name": "Order", "fields": []}')
        self.sample = ProfilingSample(self.postgres.dsn, seed=1)
        asyncio.run(demo._profiling_history(self.sample))
        asyncio.run(demo._install_feed(ChangeFeedSource.model_validate(
            {"dsn": self.postgres.dsn, "entities": feed_sample.ENTITIES})))
        try:
            self.flink = LocalFlink(self.workdir)
            self.flink.start()
            for kind in ("steady", "failing"):
                self.flink.submit(kind)
        except (FlinkUnavailable, RuntimeError) as exc:
            print(f"  no Flink: {exc}", flush=True)
            if self.flink is not None:
                self.flink.stop()
            self.flink = None
        self.origin = time.time()
        self.pattern = demo.parse_pattern("base=50/s;1m-2m:400%;every=5m")
        asyncio.run(self._create_topic())
        base = self.pattern.base_rate
        self._run_on_thread([
            lambda stop: demo._produce(self.broker.bootstrap, self.pattern, self.origin, stop),
            lambda stop: demo._consume(self.broker.bootstrap, demo.LAGGING_GROUP, base * demo.LAGGING_CAPACITY, stop),
            lambda stop: demo._consume(self.broker.bootstrap, demo.KEEPING_UP_GROUP, base * demo.KEEPING_UP_CAPACITY,
                                       stop),
            lambda stop: demo._profile(self.sample, stop)])

    def start_feed_writes(self) -> None:
        """The shop's writes under the change feed, from a mark: call once the processes' feed readers run (each
        begins at the present), so that they count exactly the changes after the mark."""
        self.feed_mark = asyncio.run(_changelog_newest_id(self.postgres.dsn))
        self._run_on_thread([lambda stop: feed_sample.shop(self.sample.dsn, stop)])

    def stop_traffic(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        if any(thread.is_alive() for thread in self._threads):  # the truth needs sources that no longer change
            raise RuntimeError("the pipeline's producer, consumers or shop did not stop within 30 s")

    def config(self, metrics_port: int) -> Path:
        path = demo._write_config(self.workdir, self.broker.bootstrap, self.postgres.dsn,
                                  self.flink.rest_url if self.flink else None, metrics_port,
                                  "base=50/s;1m-2m:400%;every=5m", self.origin)
        text = path.read_text(encoding="utf-8")
        text = text.replace("    traffic:\n", f"    schema_registry:\n      url: {self.registry.url}\n"
                                              "      interval_seconds: 2\n    traffic:\n")
        if self.small:
            for section in ("change_feed", "profiling"):
                text = text.replace(f"    {section}:\n", f"    {section}:\n{SMALL[section]}")
            text += f"store:\n{SMALL['store']}"
        target = self.workdir / f"pipewatch-{metrics_port}.yml"
        target.write_text(text, encoding="utf-8")
        return target

    async def _create_topic(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=self.broker.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(demo.TOPIC, demo.PARTITIONS, 1)])
        finally:
            await admin.close()

    def _run_on_thread(self, clients) -> None:
        thread = threading.Thread(target=lambda: asyncio.run(self._run_clients(clients)), daemon=True)
        thread.start()
        self._threads.append(thread)

    async def _run_clients(self, clients) -> None:
        stop = asyncio.Event()

        async def watch() -> None:
            while not self._stop.is_set():
                await asyncio.sleep(0.5)
            stop.set()

        async def resilient(make) -> None:  # a fault ends a client: start it again once the source is back
            while not stop.is_set():
                try:
                    await make()
                except Exception:  # noqa: BLE001 - whatever the fault made it raise
                    await asyncio.sleep(1)

        await asyncio.gather(watch(), *(resilient(functools.partial(client, stop)) for client in clients))

    def fault(self, kind: str) -> None:
        """Take one part down for FAULT_SECONDS and bring it back (the broker comes back empty: its storage is
        memory, so the topic is created again, as an operator would)."""
        if kind == "broker":
            self.broker.stop()
            time.sleep(FAULT_SECONDS)
            self.broker.start()
            asyncio.run(self._create_topic())
        elif kind == "postgres":
            self.postgres.stop()
            time.sleep(FAULT_SECONDS)
            self.postgres.start()
        elif kind == "flink_taskmanager" and self.flink is not None:
            os.killpg(self.flink._procs["taskmanager"].pid, signal.SIGKILL)
            self.flink._procs["taskmanager"].wait()
            time.sleep(FAULT_SECONDS)
            self.flink.start()  # starts the role that is gone and waits for it to register
        elif kind == "registry":
            self.registry.failure = (503, 50301, "stand-in failing on purpose")
            time.sleep(FAULT_SECONDS)
            self.registry.failure = None

    def stop(self) -> None:
        self.stop_traffic()
        if self.flink is not None:
            self.flink.stop()
        self.registry.stop()
        self.broker.stop()
        self.postgres.close()


_CHANGELOG = change_feed_postgres.changelog(ChangeFeedSource.model_validate(
    {"dsn": "postgresql://localhost/demo", "entities": feed_sample.ENTITIES}))
"""The demo's changelog (its default schema and table)."""
TRUTH_SECONDS = 120.0
"""After the traffic stops, how long each process may take to show the truth (a cycle after the last commits)."""


async def _changelog_newest_id(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(f"SELECT coalesce(max(id), 0) FROM {_CHANGELOG}")
    finally:
        await connection.close()


async def _changelog_rows_after(dsn: str, mark: int) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(f"SELECT count(*) FROM {_CHANGELOG} WHERE id > $1", mark)
    finally:
        await connection.close()


async def _kafka_lag(bootstrap: str) -> dict[str, int]:
    """Each demo group's lag per partition of the topic, from the broker: its high watermark minus the group's
    committed offset ("group/partition": records), for the partitions the group has committed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    partitions = [TopicPartition(demo.TOPIC, n) for n in range(demo.PARTITIONS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        lag = {}
        for group in (demo.LAGGING_GROUP, demo.KEEPING_UP_GROUP):
            committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
            for partition in partitions:
                offset = committed.get(partition)
                if offset is not None and offset.offset >= 0:
                    lag[f"{group}/{partition.partition}"] = ends[partition] - offset.offset
        return lag
    finally:
        await consumer.stop()
        await admin.close()


def _exported(metrics_port: int) -> tuple[float | None, dict[str, int]]:
    """What a process exports: the changes its feed counted, and the demo topic's lag per group and partition."""
    try:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=20).text
    except httpx.HTTPError:
        return None, {}
    counted, lag = 0.0, {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "db_change_events_total":
                counted += sample.value
            elif sample.name == "kafka_consumergroup_lag" and sample.labels.get("topic") == demo.TOPIC:
                lag[f"{sample.labels['consumergroup']}/{sample.labels['partition']}"] = int(sample.value)
    return counted, lag


def _feed_reader_up(metrics_port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=20).text
        except httpx.HTTPError:
            text = ""
        if any(sample.labels.get("collector") == "change_feed" and sample.value == 1
               for family in text_string_to_metric_families(text) if family.name == "pipewatch_collector_up"
               for sample in family.samples):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the change feed's reader of the process exporting on {metrics_port} did not come up")


def _truth(pipeline: Pipeline, metrics_ports: dict[str, int]) -> dict:
    """Stop the traffic, then compare what each process shows with the sources: the changes its feed counted with
    the changelog's rows after the mark (nothing lost, nothing twice), and the demo topic's lag per group and
    partition with the broker's (exact)."""
    pipeline.stop_traffic()
    feed = asyncio.run(_changelog_rows_after(pipeline.postgres.dsn, pipeline.feed_mark))
    lag = asyncio.run(_kafka_lag(pipeline.broker.bootstrap))
    out = {}
    for name, port in metrics_ports.items():
        deadline = time.monotonic() + TRUTH_SECONDS
        while True:
            counted, exported = _exported(port)
            exact = counted == feed and exported == lag
            if exact or time.monotonic() > deadline:
                break
            time.sleep(1)  # polling a process that collects on its own schedule
        out[name] = {"feed_counted": counted, "feed_truth": feed, "kafka_lag": exported, "kafka_truth": lag,
                     "exact": exact}
        print(f"  truth, {name}: feed counted {counted} of {feed} changes; Kafka lag "
              f"{'exact' if exported == lag else f'{exported} against {lag}'}", flush=True)
    return out


def _inject(pipeline: Pipeline, fault: dict, started: float) -> None:
    """One fault; a part that did not come back is recorded (and the soak goes on without it)."""
    try:
        pipeline.fault(fault["kind"])
    except Exception as exc:  # noqa: BLE001 - reported in the results, not fatal to the run
        fault["error"] = f"{type(exc).__name__}: {exc}"
        print(f"  fault {fault['kind']}: not recovered: {fault['error'][:200]}", flush=True)
    fault["until"] = time.time() - started


def _start(args: list[str], config: Path, log: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(args, cwd=ROOT, env={**env, "PIPEWATCH_CONFIG": str(config)}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} not listening on {port} (exit code {proc.poll()})")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _series(metrics_port: int) -> int | None:
    """Samples the process exports: its store's series (and a few of its own)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=20).text
    except httpx.HTTPError:
        return None
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def _sample(proc: psutil.Process, metrics_port: int, port: int | None) -> dict:
    with proc.oneshot():
        row = {"rss_mb": proc.memory_info().rss / 2**20, "cpu_percent": proc.cpu_percent(None),
               "fds": proc.num_fds(), "threads": proc.num_threads()}
    row["series"] = _series(metrics_port)
    if port is not None:
        row["sessions"] = sum(1 for c in proc.net_connections("tcp")
                              if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
    return row


async def _browse(url: str, pages: int, until: float, opens: list[dict]) -> None:
    """Keep `pages` pages open until `until`; OPENS_PER_PROBE new pipeline pages opened (and closed) in turn
    OPEN_AFTER_SECONDS after the start and OPEN_BEFORE_END_SECONDS before the end, their times to first view and to
    everything drawn in `opens`."""
    from playwright.async_api import async_playwright

    started = time.time()
    probes = [started + OPEN_AFTER_SECONDS]
    if until - OPEN_BEFORE_END_SECONDS > probes[0]:
        probes.append(until - OPEN_BEFORE_END_SECONDS)
    query, first, everything = OPEN_PAGES["pipeline"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for n in range(pages):
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                await page.goto(url + PAGES[n % len(PAGES)], timeout=180_000)
            while time.time() < until:
                if probes and time.time() >= probes[0]:
                    probes.pop(0)
                    for _ in range(OPENS_PER_PROBE):
                        t = time.time() - started
                        first_s, everything_s = await open_page(browser, url + query, first, everything)
                        opens.append({"t": t, "first_view_s": first_s, "everything_s": everything_s})
                        print(f"  a pipeline page opened at {t / 60:.1f} min: first view {first_s:.2f} s, "
                              f"everything {everything_s:.2f} s", flush=True)
                await asyncio.sleep(1)
        finally:
            await browser.close()


def run(minutes: float, pages: int, fault_every: float, sample_seconds: float, small: bool) -> dict:
    # Each process with the environment pipewatch gives it: SERVE_ENV for `panel serve apps/` only (the agent runs
    # with CPython's allocator, as `pipewatch agent` does).
    agent_env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env = {**agent_env, **SERVE_ENV}
    with tempfile.TemporaryDirectory(prefix="pipewatch-soak-") as tmp:
        workdir = Path(tmp)
        pipeline = Pipeline(workdir, small)
        dashboard = agent = None
        try:
            print("  starting the pipeline ...", flush=True)
            pipeline.start()
            port, dash_metrics, agent_metrics = free_port(), free_port(), free_port()
            dashboard = _start([sys.executable, "-m", "panel", "serve", str(ROOT / "apps"), "--address", "127.0.0.1",
                                "--port", str(port), "--allow-websocket-origin", f"127.0.0.1:{port}",
                                *SERVE_SESSION_ARGS], pipeline.config(dash_metrics), workdir / "dashboard.log", env)
            agent = _start([sys.executable, "-c", "import sys; from pipewatch.cli import main; sys.exit(main())",
                            "agent"], pipeline.config(agent_metrics), workdir / "agent.log", agent_env)
            _wait_port(port, dashboard, "the dashboard")
            _wait_port(agent_metrics, agent, "the agent's exporter")
            for metrics_port in (dash_metrics, agent_metrics):
                _feed_reader_up(metrics_port)
            pipeline.start_feed_writes()
            started = time.time()
            until = started + minutes * 60
            opens: list[dict] = []
            browser = threading.Thread(target=lambda: asyncio.run(
                _browse(f"http://127.0.0.1:{port}/apps", pages, until, opens)), daemon=True)
            browser.start()
            processes = {"dashboard": psutil.Process(dashboard.pid), "agent": psutil.Process(agent.pid)}
            for proc in processes.values():
                proc.cpu_percent(None)
            samples: list[dict] = []
            faults: list[dict] = []
            next_fault, fault_index, faulting = started + fault_every * 60, 0, None
            next_sample = started
            while time.time() < until:
                now = time.time()
                if now >= next_sample:
                    row = {"t": now - started,
                           "dashboard": _sample(processes["dashboard"], dash_metrics, port),
                           "agent": _sample(processes["agent"], agent_metrics, None)}
                    samples.append(row)
                    print(f"  {row['t']:6.0f} s  dashboard {row['dashboard']['rss_mb']:.1f} MB "
                          f"{row['dashboard']['cpu_percent']:.0f}% fds {row['dashboard']['fds']} "
                          f"sessions {row['dashboard'].get('sessions')}  agent {row['agent']['rss_mb']:.1f} MB "
                          f"{row['agent']['cpu_percent']:.0f}% fds {row['agent']['fds']}", flush=True)
                    next_sample += sample_seconds
                if now >= next_fault and (faulting is None or not faulting.is_alive()):
                    kind = FAULTS[fault_index % len(FAULTS)]
                    fault_index += 1
                    print(f"  fault: {kind}", flush=True)
                    fault = {"kind": kind, "t": now - started}
                    faults.append(fault)
                    faulting = threading.Thread(target=_inject, args=(pipeline, fault, started), daemon=True)
                    faulting.start()  # on its own thread: the sampling goes on through the fault
                    next_fault += fault_every * 60
                time.sleep(0.5)
            browser.join(60)
            if faulting is not None:
                faulting.join(180)
            for name, proc in (("dashboard", dashboard), ("agent", agent)):
                if proc.poll() is not None:
                    raise RuntimeError(f"the {name} exited during the soak with {proc.returncode}")
            truth = _truth(pipeline, {"dashboard": dash_metrics, "agent": agent_metrics})
        finally:
            for proc in (dashboard, agent):
                if proc is not None:
                    _stop(proc)
            pipeline.stop()
    return {"minutes": minutes, "pages": pages, "small": small, "samples": samples, "faults": faults, "truth": truth,
            "page_opens": opens,
            "flink": pipeline.flink is not None, "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}


def slope_mb_per_hour(result: dict, process: str, after_fraction: float = 0.5) -> float:
    """Least-squares RSS slope over the second half of the run (after warm-up)."""
    rows = [r for r in result["samples"] if r["t"] >= result["samples"][-1]["t"] * after_fraction]
    if len(rows) < 2:
        return float("nan")
    ts = [r["t"] / 3600 for r in rows]
    ys = [r[process]["rss_mb"] for r in rows]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / den if den else float("nan")


def plot(result: dict, png: Path) -> None:
    """The curves as a PNG: a Bokeh page drawn by the system Chromium (no plotting package beyond Bokeh)."""
    from bokeh.io import save
    from bokeh.layouts import gridplot
    from bokeh.models import BoxAnnotation
    from bokeh.plotting import figure

    figures = []
    for key, title in (("rss_mb", "RSS (MB)"), ("cpu_percent", "CPU (%)"), ("fds", "open descriptors"),
                       ("threads", "threads"), ("series", "exported samples"), ("sessions", "dashboard connections")):
        fig = figure(title=title, width=560, height=260, x_axis_label="minutes")
        for process, colour in (("dashboard", "#1f77b4"), ("agent", "#d62728")):
            points = [(r["t"] / 60, r[process].get(key)) for r in result["samples"] if r[process].get(key) is not None]
            if points:
                fig.line([p[0] for p in points], [p[1] for p in points], color=colour, legend_label=process,
                         line_width=2)
        for fault in result["faults"]:
            fig.add_layout(BoxAnnotation(left=fault["t"] / 60, right=fault.get("until", fault["t"]) / 60,
                                         fill_alpha=0.15, fill_color="#999999"))
        fig.legend.location = "top_left"
        figures.append(fig)
    html = png.with_suffix(".html")
    save(gridplot(figures, ncols=2), filename=str(html), resources="inline",
         title=f"pipewatch soak, {result['pages']} pages")

    async def shoot() -> None:
        from playwright.async_api import async_playwright

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1160, "height": 860})
            await page.goto(html.as_uri())
            await page.locator("canvas").first.wait_for()
            await page.screenshot(path=str(png), full_page=True)
            await browser.close()

    asyncio.run(shoot())
    html.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=120.0, help="per page count (default 120)")
    parser.add_argument("--pages", default="1,10", help="page counts, one run each (default 1,10)")
    parser.add_argument("--fault-every", type=float, default=15.0, help="minutes between faults (default 15)")
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument("--small", action="store_true", help="every memory bound low (reached within minutes)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "soak")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for pages in (int(p) for p in args.pages.split(",")):
        print(f"soak: {pages} page(s), {args.minutes:g} min, a fault every {args.fault_every:g} min", flush=True)
        result = run(args.minutes, pages, args.fault_every, args.sample_seconds, args.small)
        for process in ("dashboard", "agent"):
            result[f"{process}_rss_slope_mb_per_hour"] = slope_mb_per_hour(result, process)
            print(f"  {process}: RSS slope over the second half {result[f'{process}_rss_slope_mb_per_hour']:.1f} "
                  "MB/h", flush=True)
        stem = args.out / f"soak-{pages}-pages"
        stem.with_suffix(".json").write_text(json.dumps(result, indent=1), encoding="utf-8")
        plot(result, stem.with_suffix(".png"))
        print(f"  wrote {stem}.json and {stem}.png", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`pipewatch demo`: an embedded pipeline made of real parts, watched by the real app.

A local Kafka-protocol broker, a producer following a traffic pattern, a consumer group whose
capacity is below the burst rate (it falls behind during bursts and catches up after), a second
group that keeps up; a local PostgreSQL holding two weeks of ProfileMesh profiling history, with
a new profiling run written every few seconds, and TPC-H-like shop tables written at a varying rate
and watched by the change feed; where Java 17 is installed, a local Flink cluster
running a backpressured streaming job and a job that keeps failing; and `panel serve apps/` with
the exporter. Ctrl-C stops all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import asyncpg
import httpx

from collectors.change_feed import postgres as change_feed_postgres
from monitoring.config import ChangeFeedSource
from monitoring.traffic import PatternError, TrafficPattern, parse_pattern
from pipewatch.local.broker import LocalBroker, port_open
from pipewatch.local.flink import FlinkUnavailable, LocalFlink
from pipewatch.local.postgres import LocalPostgres
from pipewatch.samples import feed as feed_sample
from pipewatch.samples.profiling import ProfilingSample
from pipewatch.service import SERVE_ENV, SERVE_HEALTH_ARGS, SERVE_SESSION_ARGS

log = logging.getLogger("pipewatch.demo")

TOPIC = "orders"
PARTITIONS = 6
LAGGING_GROUP, LAGGING_CAPACITY = "order-processor", 2.0  # x base rate: below a 400% burst, above base
KEEPING_UP_GROUP, KEEPING_UP_CAPACITY = "order-audit", 10.0
PROFILING_HISTORY_RUNS, PROFILING_HISTORY_DAYS, PROFILING_EVERY_SECONDS = 400, 14.0, 5.0
KAFKA_INTERVAL_SECONDS = 2.0
"""The demo's Kafka collection interval (the default is 5 s): half the requests of the 1 s it was, whose cost to the
local broker grows with its in-memory log (docs/benchmarks.md)."""
CONSUMER_SETTINGS: dict[str, int] = {}
COMMIT_EVERY_SECONDS = 1.0
_APPS_DIR = Path(__file__).resolve().parent.parent / "apps"
_SERVER_START_SECONDS = 120.0  # Panel and Bokeh imports take several seconds on a busy two-core machine
_FLINK_START_SECONDS = 240.0  # about 10 s on an idle two-core machine; a minute and more when it is busy
_SLOW_STAGE_SECONDS = 30.0  # each stage takes a few seconds on an idle machine


def run_demo(port: int, metrics_port: int, pattern_text: str, verbose: bool = False) -> int:
    """verbose: the libraries' and the dashboard server's INFO and DEBUG logs too (`--log-level DEBUG`)."""
    try:
        pattern = parse_pattern(pattern_text)
    except PatternError as exc:
        print(f"pipewatch demo: bad --pattern: {exc}", file=sys.stderr)
        return 2
    for name, taken in (("dashboard", port), ("metrics", metrics_port)):
        if port_open(taken):
            print(f"pipewatch demo: the {name} port {taken} is already in use; pick another with "
                  f"--{'port' if name == 'dashboard' else 'metrics-port'}", file=sys.stderr)
            return 1
    print("pipewatch demo: starting a broker, PostgreSQL, Flink and the dashboard (half a minute or so)...",
          flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="pipewatch-demo-"))
    broker = LocalBroker(workdir, port=9092 if not port_open(9092) else None)
    postgres = LocalPostgres(workdir)
    flink: LocalFlink | None = None
    server: subprocess.Popen[bytes] | None = None
    try:
        with _said_if_slow("the broker"):
            broker.start()
        with _said_if_slow("PostgreSQL"):
            postgres.start()
            sample = ProfilingSample(postgres.dsn, seed=1)
            asyncio.run(_profiling_history(sample))
            feed = ChangeFeedSource.model_validate({"dsn": postgres.dsn, "entities": feed_sample.ENTITIES})
            asyncio.run(_install_feed(feed))
        try:
            flink = LocalFlink(workdir)
        except FlinkUnavailable as exc:
            print(f"pipewatch demo: no Flink cluster: {exc}", flush=True)
        if flink is not None:
            try:
                with _said_if_slow("Flink"):
                    flink.start(timeout=_FLINK_START_SECONDS)
                    for kind in ("steady", "failing"):
                        flink.submit(kind)
            except (RuntimeError, httpx.HTTPError) as exc:  # the rest of the demo is worth running without it
                reason = str(exc).splitlines()[0]  # a crashed JVM's message ends with its log's tail: that stays there
                reason = reason.split(": ", 1)[0] if len(str(exc).splitlines()) > 1 else reason
                print(f"pipewatch demo: no Flink cluster: {reason} (logs in {flink.log_dir})", flush=True)
                flink.stop()
                flink = None
        # The pattern's time 0, in the config too: the page draws the bursts where the producer makes them.
        traffic_origin = time.time()
        config = _write_config(workdir, broker.bootstrap, postgres.dsn, flink.rest_url if flink else None, metrics_port,
                               pattern_text, traffic_origin)
        server = subprocess.Popen(
            [sys.executable, "-m", "panel", "serve", str(_APPS_DIR), "--address", "127.0.0.1", "--port", str(port),
             "--allow-websocket-origin", f"127.0.0.1:{port}", "--allow-websocket-origin", f"localhost:{port}",
             "--log-level", "debug" if verbose else "warning", *SERVE_SESSION_ARGS, *SERVE_HEALTH_ARGS],
            env={**os.environ, **SERVE_ENV, "PIPEWATCH_CONFIG": str(config),
                 "PIPEWATCH_LOG_LEVEL": "DEBUG" if verbose else "WARNING"},  # the banner says what runs
            stdout=None if verbose else subprocess.DEVNULL,  # Bokeh prints there; warnings and errors go to stderr
            start_new_session=True,
        )
        with _said_if_slow("the dashboard"):
            started = _wait_for_ports(server, (port, metrics_port), _SERVER_START_SECONDS)
        if not started:
            print(f"pipewatch demo: the dashboard server did not start within {_SERVER_START_SECONDS:g} s "
                  f"(exit code {server.poll()}); run with --log-level DEBUG to see why", file=sys.stderr, flush=True)
            return 1
        print(_banner(port, metrics_port, broker.bootstrap, postgres.dsn, flink.rest_url if flink else None,
                      pattern_text, config), flush=True)
        asyncio.run(_traffic(broker.bootstrap, pattern, traffic_origin, server, sample))
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        broker.stop()
        postgres.close()
        if flink is not None:
            flink.stop()
        shutil.rmtree(workdir, ignore_errors=True)  # the data, logs and config of this run: nothing left in /tmp
        print("pipewatch demo stopped: broker, PostgreSQL, Flink, producer, consumers and server are gone.", flush=True)
    return 0 if server is None or server.returncode in (0, -signal.SIGTERM, None) else 1


@contextlib.contextmanager
def _said_if_slow(what: str):
    """A start stage that takes far longer than usual (a busy machine) says so once: never a silent terminal."""
    notice = threading.Timer(_SLOW_STAGE_SECONDS, lambda: print(
        f"pipewatch demo: still starting {what} after {_SLOW_STAGE_SECONDS:g} s (a busy machine?)...", flush=True))
    notice.daemon = True
    notice.start()
    try:
        yield
    finally:
        notice.cancel()


def _wait_for_ports(server: subprocess.Popen[bytes], ports: tuple[int, ...], seconds: float) -> bool:
    """Whether the server listens on every port before `seconds` pass (False at once if it exits)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        if all(port_open(port) for port in ports):
            return True
        time.sleep(0.2)  # polling interval of the deadline loop above
    return False


def _banner(port: int, metrics_port: int, bootstrap: str, dsn: str, flink_url: str | None, pattern_text: str,
            config: Path) -> str:
    """What runs, where to look, how to stop: the one thing the demo prints (the libraries' logs stay quiet)."""
    dashboard = f"http://127.0.0.1:{port}/apps"
    flink = (f"  flink:     {flink_url}  Flink's own UI: a backpressured job and one that keeps failing\n"
             if flink_url else "")
    return (f"\npipewatch demo: a local pipeline, watched live\n"
            f"  dashboard: {dashboard}\n"
            f"  pipeline:  {dashboard}?page=pipeline&pipeline={TOPIC}\n"
            f"  metrics:   http://127.0.0.1:{metrics_port}/metrics\n"
            f"  JSON API:  http://127.0.0.1:{metrics_port}/api/v1/pipelines\n"
            f"  broker:    {bootstrap}  topic {TOPIC!r} ({PARTITIONS} partitions), a producer at {pattern_text},\n"
            f"             group {LAGGING_GROUP!r} falls behind in bursts, {KEEPING_UP_GROUP!r} keeps up\n"
            f"  postgres:  {dsn}\n"
            f"             ProfileMesh tables (a new run every {PROFILING_EVERY_SECONDS:g} s), shop tables under a"
            f" change feed\n"
            f"{flink}"
            f"  config:    {config}\n"
            f"Ctrl-C stops everything.\n")


def _write_config(workdir: Path, bootstrap: str, dsn: str, flink_url: str | None, metrics_port: int,
                  pattern_text: str, traffic_origin: float) -> Path:
    flink = (f"    flink:\n      rest_url: {flink_url}\n      cluster: demo\n      interval_seconds: 2\n"
             if flink_url else "")
    path = workdir / "demo.yml"
    path.write_text(
        "pipelines:\n"
        "  - name: orders\n"
        "    kafka:\n"
        f"      bootstrap_servers: [\"{bootstrap}\"]\n"
        "      cluster: demo\n"
        "      consumer_groups: [\".*\"]\n"
        f"      interval_seconds: {KAFKA_INTERVAL_SECONDS:g}\n"
        f"{flink}"
        "    traffic:\n"
        f"      pattern: {json.dumps(pattern_text)}\n"
        f"      started_at: {traffic_origin!r}\n"
        "    profiling:\n"
        f"      dsn: \"{dsn}\"\n"
        "      interval_seconds: 2\n"
        "    change_feed:\n"
        f"      dsn: \"{dsn}\"\n"
        f"      entities: {json.dumps(feed_sample.ENTITIES)}\n"
        "exporter:\n"
        "  host: 127.0.0.1\n"
        f"  port: {metrics_port}\n",
        encoding="utf-8",
    )
    return path


async def _profiling_history(sample: ProfilingSample) -> None:
    connection = await asyncpg.connect(sample.dsn)
    try:
        await sample.create_tables(connection)
        await sample.write_history(connection, PROFILING_HISTORY_RUNS, PROFILING_HISTORY_DAYS)
    finally:
        await connection.close()


async def _install_feed(feed: ChangeFeedSource) -> None:
    connection = await asyncpg.connect(feed.dsn.get_secret_value())
    try:
        await feed_sample.create_tables(connection)
        async with connection.transaction():
            for statement in change_feed_postgres.install(feed):
                await connection.execute(statement)
    finally:
        await connection.close()


async def _profile(sample: ProfilingSample, stop: asyncio.Event) -> None:
    """A profiling run every few seconds, as a busy profiler would write them."""
    connection = await asyncpg.connect(sample.dsn)
    try:
        while not stop.is_set():
            await asyncio.sleep(PROFILING_EVERY_SECONDS)
            await sample.write_run(connection)
    finally:
        await connection.close()


async def _traffic(bootstrap: str, pattern: TrafficPattern, origin: float, server: subprocess.Popen[bytes],
                   sample: ProfilingSample) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    finally:
        await admin.close()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(_produce(bootstrap, pattern, origin, stop)),
        asyncio.create_task(_consume(bootstrap, LAGGING_GROUP, pattern.base_rate * LAGGING_CAPACITY, stop)),
        asyncio.create_task(_consume(bootstrap, KEEPING_UP_GROUP, pattern.base_rate * KEEPING_UP_CAPACITY, stop)),
        asyncio.create_task(_watch_server(server, stop)),
        asyncio.create_task(_profile(sample, stop)),
        asyncio.create_task(feed_sample.shop(sample.dsn, stop)),
    ]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _watch_server(server: subprocess.Popen[bytes], stop: asyncio.Event) -> None:
    while server.poll() is None:
        await asyncio.sleep(0.5)
    print(f"pipewatch demo: the dashboard server exited with code {server.returncode}", file=sys.stderr)
    stop.set()


async def _produce(bootstrap: str, pattern: TrafficPattern, origin: float, stop: asyncio.Event) -> None:
    """Produce at the pattern's rate, one record per request (the local broker reports exact high
    watermarks only for single-record batches). The pattern's time runs from `origin` (Unix time, as
    the config tells the page), not from when the producer got going."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    sent, due, last = 0, 0.0, time.monotonic()
    try:
        while not stop.is_set():
            now = time.monotonic()
            due += pattern.rate_at(time.time() - origin) * (now - last)
            last = now
            while sent < int(due) and not stop.is_set():  # behind (a slow broker): still stop when told
                await producer.send_and_wait(TOPIC, f'{{"order": {sent}}}'.encode(), partition=sent % PARTITIONS)
                sent += 1
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, group: str, capacity: float, stop: asyncio.Event) -> None:
    """Consume at most `capacity` messages per second and commit every COMMIT_EVERY_SECONDS."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", client_id=f"demo-{group}", **CONSUMER_SETTINGS)
    await consumer.start()
    allowance, last, last_commit = 0.0, time.monotonic(), time.monotonic()
    try:
        while not stop.is_set():
            now = time.monotonic()
            allowance = min(allowance + capacity * (now - last), capacity)  # at most one second of work banked
            last = now
            if allowance >= 1:
                batch = await consumer.getmany(timeout_ms=100, max_records=int(allowance))
                allowance -= sum(len(records) for records in batch.values())
            else:
                await asyncio.sleep(0.05)
            if now - last_commit >= COMMIT_EVERY_SECONDS:
                await consumer.commit()
                last_commit = now
    finally:
        await consumer.stop()

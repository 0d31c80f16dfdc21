"""Flink collection: requests and time per cycle for 1, 10 and 50 running jobs, and the scrape of their series.

A local cluster cannot hold 50 jobs on this machine, so the jobs are served by a replay of the
answers recorded from a real Flink 2.3 cluster (tests/flink_responses/flink-2.3.json): the steady
job (4 vertices) cloned N times under new job ids, by a small HTTP server in its own process on
loopback, so the client's CPU is measured alone. One more row runs against a real local cluster
with one job, to show the replay is in the same range. Two strategies, 8 requests in flight:

- FlinkCollector: pipewatch's collector. The job plan, checkpoint config and each vertex's list of
  metric names are read once per job; backpressure at most every 10 s; exceptions when restarts move.
- the baseline: the same collector forgetting all of that every cycle (every read every time),
  what a stateless scraper of the REST API does.

Per scenario: one warm-up cycle, then timed cycles (medians). Then the exporter serves the store
the collector filled; scrape time is the median of 5 GETs of /metrics over loopback.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from collectors.flink.collector import FlinkCollector  # noqa: E402
from exporters.server import start_exporter  # noqa: E402
from monitoring.config import FlinkSource  # noqa: E402
from monitoring.runtime import Supervisor  # noqa: E402
from monitoring.store import Store  # noqa: E402
from pipewatch.local.broker import free_port, port_open  # noqa: E402
from pipewatch.local.flink import FlinkUnavailable, LocalFlink  # noqa: E402

COLLECTOR_NAME = "FlinkCollector"
BASELINE_NAME = "no caching (baseline)"
JOBS = (1, 10, 50)
QUICK_JOBS = (1, 10)
CYCLES, QUICK_CYCLES = 5, 3
RECORDING = ROOT / "tests" / "flink_responses" / "flink-2.3.json"

_SERVER = r"""
import json, socket, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, jobs, recording = int(sys.argv[1]), int(sys.argv[2]), json.load(open(sys.argv[3]))
answers, steady = recording["responses"], recording["steady"]
ids = [f"{i:032x}" for i in range(1, jobs + 1)]
overview = next(v for k, v in answers.items() if k == "/jobs/overview")
template = next(j for j in overview["jobs"] if j["jid"] == steady)
listing = {"jobs": [dict(template, jid=jid, name=f"job {i}") for i, jid in enumerate(ids)]}

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body: two writes
    def log_message(self, *args):
        pass
    def do_GET(self):
        path = self.path
        if path == "/jobs/overview":
            body = listing
        else:
            jid = next((j for j in ids if j in path), None)
            key = path.replace(jid, steady) if jid else path
            body = answers.get(key)
            if isinstance(body, dict) and "jid" in body and jid:
                body = dict(body, jid=jid)
        data = json.dumps(body if body is not None else {"errors": ["not recorded: " + path]}).encode()
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
server.serve_forever()
"""


class _NoCaching(FlinkCollector):
    async def collect(self, store):
        self._jobs.clear()
        self._backpressure.clear()
        return await super().collect(store)


async def _measure(kind: type[FlinkCollector], url: str, cycles: int) -> dict:
    collector = kind("bench", FlinkSource(rest_url=url, cluster="bench", timeout_seconds=30))
    store = Store()
    supervisor = Supervisor(store, [collector])  # health, so the exporter serves the series as fresh
    try:
        await supervisor.run_once(collector)  # warm-up: connections, and what the collector reads once
        rows = []
        for _ in range(cycles):
            wall, cpu = time.perf_counter(), time.process_time()
            await supervisor.run_once(collector)
            rows.append((store.health()[collector.source].requests, time.perf_counter() - wall,
                         time.process_time() - cpu))
    finally:
        await collector.close()
    jobs = sum(1 for j in store.snapshot(collector.source)[1].jobs if j.detailed)
    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        scrapes = []
        with httpx.Client(timeout=30) as scraper:  # one client, as Prometheus keeps its connection
            for _ in range(5):
                started = time.perf_counter()
                text = scraper.get(exporter.url).text
                scrapes.append(time.perf_counter() - started)
    finally:
        exporter.stop()
    return {"requests": statistics.median(r for r, _, _ in rows),
            "wall_ms": statistics.median(w for _, w, _ in rows) * 1000,
            "cpu_ms": statistics.median(c for _, _, c in rows) * 1000, "cycles": cycles, "jobs": jobs,
            "series": sum(1 for line in text.splitlines() if line.startswith("flink_")),
            "scrape_ms": statistics.median(scrapes) * 1000}


def run(quick: bool = False, progress=print) -> dict:
    started = time.perf_counter()
    cycles = QUICK_CYCLES if quick else CYCLES
    rows = []
    for jobs in (QUICK_JOBS if quick else JOBS):
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", _SERVER, str(port), str(jobs), str(RECORDING)])
        try:
            deadline = time.monotonic() + 30
            while not port_open(port):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the replay server did not start")
                time.sleep(0.05)
            for name, kind in ((COLLECTOR_NAME, FlinkCollector), (BASELINE_NAME, _NoCaching)):
                result = asyncio.run(_measure(kind, f"http://127.0.0.1:{port}", cycles))
                assert result["jobs"] == jobs, result
                rows.append({"source": f"replay, {jobs} job(s)", "strategy": name, **result})
                progress(_line(rows[-1]))
        finally:
            server.terminate()
            server.wait(timeout=10)
    try:
        with tempfile.TemporaryDirectory(prefix="pipewatch-bench-flink-") as workdir:
            cluster = LocalFlink(Path(workdir), slots=1).start()
            try:
                _wait_for_metrics(cluster.rest_url, cluster.submit("steady"))
                for name, kind in ((COLLECTOR_NAME, FlinkCollector), (BASELINE_NAME, _NoCaching)):
                    result = asyncio.run(_measure(kind, cluster.rest_url, cycles))
                    rows.append({"source": "real cluster, 1 job", "strategy": name, **result})
                    progress(_line(rows[-1]))
            finally:
                cluster.stop()
    except FlinkUnavailable as exc:
        progress(f"  real cluster skipped: {exc}")
    return {"rows": rows, "seconds": time.perf_counter() - started}


def _wait_for_metrics(url: str, job_id: str, timeout: float = 60.0) -> None:
    """Until every vertex of the job runs and reports metrics (the measured cycles then read real ones)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/jobs/{job_id}", timeout=10).json()
        vertices = job.get("vertices") or []
        if vertices and all(v["status"] == "RUNNING" for v in vertices) and all(
                httpx.get(f"{url}/jobs/{job_id}/vertices/{v['id']}/subtasks/metrics", timeout=10).json()
                for v in vertices):
            return
        time.sleep(0.2)
    raise RuntimeError(f"job {job_id} did not report metrics within {timeout:g} s")


def _line(row: dict) -> str:
    return (f"  {row['source']:<22} {row['strategy']:<24} {row['requests']:>6.0f} requests/cycle "
            f"{row['wall_ms']:>8.1f} ms (cpu {row['cpu_ms']:.1f} ms); {row['series']:,} series, "
            f"scrape {row['scrape_ms']:.1f} ms")


def table(result: dict) -> tuple[list[str], list[list[str]]]:
    header = ["jobs served by", "strategy", "requests/cycle", "cycle time, median (ms)", "client CPU/cycle (ms)",
              "cycles timed", "flink series", "scrape, median (ms)"]
    rows = [[r["source"], r["strategy"], f"{r['requests']:,.0f}", f"{r['wall_ms']:,.1f}", f"{r['cpu_ms']:,.1f}",
             str(r["cycles"]), f"{r['series']:,}", f"{r['scrape_ms']:,.1f}"] for r in result["rows"]]
    return header, rows


def interpretation(result: dict) -> list[str]:
    lines = []
    by = {(r["source"], r["strategy"]): r for r in result["rows"]}
    for source in dict.fromkeys(r["source"] for r in result["rows"]):
        mine, base = by[(source, COLLECTOR_NAME)], by[(source, BASELINE_NAME)]
        lines.append(f"- {source}: {mine['requests']:,.0f} requests a cycle in {mine['wall_ms']:,.0f} ms against "
                     f"{base['requests']:,.0f} in {base['wall_ms']:,.0f} ms without caching; the exporter serves its "
                     f"{mine['series']:,} Flink series in {mine['scrape_ms']:,.1f} ms.")
    lines.append("- Requests grow with jobs and vertices (2 per vertex: metrics and watermarks), not with subtasks: "
                 "the aggregated endpoint sums or maxes the subtasks on the jobmanager.")
    return lines


if __name__ == "__main__":
    out = run(quick="--quick" in sys.argv)
    for row in table(out)[1]:
        print("  ".join(row))
    print(json.dumps({"seconds": out["seconds"]}))

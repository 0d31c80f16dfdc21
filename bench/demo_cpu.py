"""What each process of a running `pipewatch demo` costs: CPU % of one core per role over a window.

    .venv/bin/python bench/demo_cpu.py PID [PID ...] [--seconds 60] [--windows 1]

PID is a `pipewatch demo` process (several: each measured over the same windows, side by side). Its descendants
are sorted into roles by their command line (broker, Flink jobmanager and taskmanager, PostgreSQL, the dashboard
server, and the demo process itself, which runs the producer, the two consumer groups, the profiling writer and
the shop's writes). Results go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import time

import psutil

ROLES = (
    ("broker (tansu)", lambda cmd: "tansu" in cmd),
    ("Flink jobmanager", lambda cmd: "java" in cmd and "StandaloneSessionClusterEntrypoint" in cmd),
    ("Flink taskmanager", lambda cmd: "java" in cmd and "TaskManagerRunner" in cmd),
    ("PostgreSQL", lambda cmd: "postgres" in cmd.split(" ")[0]),
    ("dashboard (panel serve)", lambda cmd: "panel" in cmd and "serve" in cmd),
)


def role(process: psutil.Process, demo_pid: int) -> str:
    if process.pid == demo_pid:
        return "demo (producer, consumers, writers)"
    try:
        cmd = " ".join(process.cmdline())
    except psutil.Error:
        return "other"
    return next((name for name, matches in ROLES if matches(cmd)), f"other ({cmd[:40]})")


def _postgres(demo: psutil.Process) -> list[psutil.Process]:
    """The demo's PostgreSQL: pg_ctl daemonizes it, so it is found by its data directory, not as a child."""
    workdirs = {part for child in demo.children(recursive=True) for part in _cmdline(child).split()
                if "pipewatch-demo-" in part}
    postmasters = [p for p in psutil.process_iter() if "postgres -D" in _cmdline(p)
                   and any(w.split("/pipewatch-demo-")[1].split("/")[0] in _cmdline(p) for w in workdirs)]
    return [process for p in postmasters for process in (p, *p.children(recursive=True))]


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def cpu_times(demo: psutil.Process) -> dict[int, tuple[str, float]]:
    seen = {}
    for process in [demo, *demo.children(recursive=True), *_postgres(demo)]:
        try:
            times = process.cpu_times()
            seen[process.pid] = (role(process, demo.pid), times.user + times.system)
        except psutil.Error:
            pass
    return seen


def measure(pids: list[int], seconds: float) -> list[dict[str, float]]:
    demos = [psutil.Process(pid) for pid in pids]
    before, started = [cpu_times(demo) for demo in demos], time.monotonic()
    time.sleep(seconds)  # the measurement window itself, not a synchronisation
    after, elapsed = [cpu_times(demo) for demo in demos], time.monotonic() - started
    results = []
    for earlier, later in zip(before, after, strict=True):
        by_role: dict[str, float] = {}
        for process_id, (name, total) in later.items():
            by_role[name] = by_role.get(name, 0.0) + total - earlier.get(process_id, (name, 0.0))[1]
        results.append({name: 100 * spent / elapsed for name, spent in sorted(by_role.items())})
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("pids", type=int, nargs="+")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--windows", type=int, default=1)
    args = parser.parse_args()
    for window in range(args.windows):
        results = measure(args.pids, args.seconds)
        print(f"window {window + 1} ({args.seconds:g} s), load average {os.getloadavg()[0]:.1f}")
        names = sorted({name for result in results for name in result})
        print(f"  {'process':40s} " + " ".join(f"{pid:>10d}" for pid in args.pids))
        for name in names:
            print(f"  {name:40s} " + " ".join(f"{result.get(name, 0.0):9.1f}%" for result in results))
        print(f"  {'total':40s} " + " ".join(f"{sum(result.values()):9.1f}%" for result in results), flush=True)


if __name__ == "__main__":
    main()

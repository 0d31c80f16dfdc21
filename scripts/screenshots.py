"""Retake the README's screenshots: the demo's pipeline page during a burst, light and dark.

    .venv/bin/python scripts/screenshots.py [--port 5306] [--metrics-port 9306] [--running]

Starts `pipewatch demo` on those ports (or, with --running, uses the demo already running there), waits until
the lagging group falls behind in a burst, opens the pipeline page in the system Chromium (Playwright) in both
themes and writes docs/screenshot.png and docs/screenshot-dark.png (the first 1,520 px of a 1,400 px wide
window); then stops the demo it started with Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1400, 1520


def _poll(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)  # polling interval of the deadline loop
    raise SystemExit(f"screenshots: gave up waiting for {what} after {seconds:g} s")


def _lag(metrics_url: str) -> float:
    try:
        text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    except OSError:
        return 0.0
    found = re.search(r'^kafka_consumergroup_group_sum_lag\{[^}]*consumergroup="order-processor"[^}]*\} (\S+)$', text,
                      re.M)
    return float(found.group(1)) if found else 0.0


_FLOW_DRAWN = """() => {
    const doc = window.Bokeh && Bokeh.documents[0];
    const nodes = doc && [...doc._all_models.values()].find((m) => m.name === "flow-nodes");
    return nodes != null && nodes.data.id.length >= 4;
}"""


def shoot(url: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.goto(url, timeout=600_000, wait_until="commit")  # a busy machine takes minutes
            page.locator(".pw-health").first.wait_for(timeout=600_000)
            # The flow diagram's boxes (drawn on its canvas, after the first paint), then the charts' first points.
            page.wait_for_function(_FLOW_DRAWN, timeout=600_000)
            page.wait_for_timeout(3000)  # two ticks: the live charts have drawn their first points
            page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": WIDTH, "height": HEIGHT})
        finally:
            browser.close()


def _shoot_both(args: argparse.Namespace) -> None:
    _poll(lambda: _lag(f"http://127.0.0.1:{args.metrics_port}/metrics") >= args.min_lag, 400,
          "the lagging group to fall behind in a burst")
    page = f"http://127.0.0.1:{args.port}/apps?page=pipeline&pipeline=orders"
    for theme, name in (("default", "screenshot.png"), ("dark", "screenshot-dark.png")):
        shoot(f"{page}&theme={theme}", ROOT / "docs" / name)
        print(f"wrote docs/{name}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=5306)
    parser.add_argument("--metrics-port", type=int, default=9306)
    parser.add_argument("--min-lag", type=float, default=500, help="lag of order-processor to wait for (messages)")
    parser.add_argument("--running", action="store_true", help="use the demo already running on those ports")
    args = parser.parse_args()
    if args.running:
        _shoot_both(args)
        return 0
    demo = subprocess.Popen([sys.executable, "-m", "pipewatch.cli", "demo", "--port", str(args.port),
                             "--metrics-port", str(args.metrics_port)], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _poll(lambda: "Ctrl-C stops everything." in (demo.stdout.readline() or "") or demo.poll() is not None, 600,
              "the demo's banner")
        if demo.poll() is not None:
            raise SystemExit(f"screenshots: the demo exited with code {demo.returncode}")
        _shoot_both(args)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
            demo.communicate(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Real services for the tests, started on free loopback ports and stopped by their own pid."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from pipewatch.local.broker import free_port, port_open


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError as exc:  # predicates may assert to explain what they saw
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}" + (f": {last_error}" if last_error else ""))


async def async_wait_until(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05,
                           what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")




class PanelServer:
    """`panel serve apps/` as a user runs it, with PIPEWATCH_CONFIG naming the config."""

    def __init__(self, workdir: Path, config: Path | None, port: int | None = None, app_dir: Path | None = None,
                 env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        """args: more `panel serve` options (e.g. --basic-auth)."""
        self.workdir, self.config, self.args = workdir, config, args
        self.port = port or free_port()
        self.app_dir = app_dir or Path(__file__).resolve().parent.parent / "apps"
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.app_dir.name}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"panel-{self.port}.log"

    def start(self, timeout: float = 60.0) -> None:
        import sys

        from pipewatch.service import SERVE_ENV, SERVE_SESSION_ARGS

        repo = Path(__file__).resolve().parent.parent
        env = {**os.environ, **SERVE_ENV, **self.env}
        if self.config is not None:
            env["PIPEWATCH_CONFIG"] = str(self.config)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "panel", "serve", str(self.app_dir), "--address", "127.0.0.1",
                 "--port", str(self.port), "--allow-websocket-origin", f"127.0.0.1:{self.port}", *SERVE_SESSION_ARGS,
                 *self.args],
                env=env, cwd=repo, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"panel serve exited with {self.proc.returncode}: "
                                     f"{self.log_path.read_text()[-2000:]}")
            # Only the port: a GET of the app would open (and leave behind) a session of its own.
            return port_open(self.port)

        wait_until(ready, timeout, interval=0.2, what=f"panel serve on {self.port}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def run_async(coroutine):
    """Run a coroutine to completion from sync code that may sit inside a running loop
    (Playwright's sync API keeps one in the test's thread)."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class LocalPrometheus:
    """A real Prometheus server (the Debian package's binary) with a config written by the test."""

    def __init__(self, workdir: Path, config: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(config, encoding="utf-8")
        self.log_path = workdir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> LocalPrometheus:
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                ["prometheus", f"--config.file={self.config_path}", f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"], stdout=log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            if self._process.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            return port_open(self.port) and _http_status(f"{self.url}/-/ready") == 200

        wait_until(ready, timeout, what="prometheus to be ready")
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


class LocalAlertmanager:
    """A real Alertmanager (Debian's prometheus-alertmanager) on a free port, without gossip, routing every alert
    to a receiver that sends nothing: a test asks its API what it holds."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config_path = workdir / "alertmanager.yml"
        self.config_path.write_text('route: {receiver: "null"}\nreceivers: [{name: "null"}]\n', encoding="utf-8")
        self.log_path = workdir / "alertmanager.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> LocalAlertmanager:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        assert binary, "prometheus-alertmanager is missing: install the Debian package (make test does)"
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                [binary, f"--config.file={self.config_path}", f"--storage.path={self.workdir / 'am-data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
                stdout=log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            if self._process.poll() is not None:
                raise AssertionError(f"alertmanager exited: {self.log_path.read_text()[-2000:]}")
            return port_open(self.port) and _http_status(f"{self.url}/-/ready") == 200

        wait_until(ready, timeout, what="alertmanager to be ready")
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def _http_status(url: str) -> int | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def send_json(handler: BaseHTTPRequestHandler, status: int, body: object) -> None:
    """Answer an http.server request with `body` as JSON (the tests' HTTP stand-ins)."""
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)

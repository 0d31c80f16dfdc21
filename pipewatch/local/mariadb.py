"""A local MariaDB for the tests and the benchmark: Debian's mariadb-server binaries, run as our own process.

Data, socket and pid file in a directory of its own, TCP on a free loopback port; stopped by its process id.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from pipewatch.local.broker import free_port

_READY_SECONDS = 30.0


def _binary(name: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)),
                                      None)
    if path is None:
        raise RuntimeError(f"{name} not found: install Debian's mariadb-server (scripts/system-deps.sh does)")
    return path


class LocalMariaDB:
    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir).resolve()
        self.datadir = self.workdir / "mariadb-data"
        self.socket = self.workdir / "mariadb.sock"
        self.port = free_port()
        self.database = "pipewatch"
        self._process: subprocess.Popen | None = None

    @property
    def dsn(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> LocalMariaDB:
        """Start the server (initialising the data directory the first time); again after stop(): same data."""
        if self._process is not None and self._process.poll() is None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        user = ["--user=root"] if os.geteuid() == 0 else []
        if not self.datadir.exists():
            subprocess.run([_binary("mariadb-install-db"), "--no-defaults", f"--datadir={self.datadir}",
                            "--auth-root-authentication-method=normal", "--skip-test-db", *user],
                           check=True, capture_output=True, timeout=120)
        log = open(self.workdir / "mariadb.log", "ab")  # noqa: SIM115  (the server's, closed with it)
        self._process = subprocess.Popen(
            [_binary("mariadbd"), "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.workdir / 'mariadb.pid'}",
             "--skip-name-resolve", "--innodb-buffer-pool-size=64M", "--skip-log-bin", *user],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait_ready()
        if not (self.datadir / self.database).exists():
            self.sql(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = (self.workdir / "mariadb.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"mariadbd exited with {self._process.returncode}:\n{tail}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mariadbd did not listen on 127.0.0.1:{self.port} within {_READY_SECONDS:.0f} s")

    def sql(self, statement: str) -> str:
        """Run one statement with the command-line client (through the socket), as root."""
        done = subprocess.run([_binary("mariadb"), f"--socket={self.socket}", "-uroot", "-N", "-B", "-e", statement],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb: {done.stderr.strip()}")
        return done.stdout

    def stop(self) -> None:
        """Stop the server for a while (open connections are cut); start() brings it back with the same data."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    close = stop

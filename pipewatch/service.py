"""The process-wide assembly: one store, its collectors' supervisor and the exporter.

Every entry point (the agent, the Panel server's hooks, tests) builds exactly one Service per
process; every browser session reads the same store.

The pages learn their sections from the config's declared sources (monitoring/sources.py), never from
collector objects. In mirror mode (`mirror:` in the config, for the dashboard only) no source's collector is built:
one MirrorCollector (collectors/aggregate/mirror.py) copies what the agent collects instead, and the exporter stays
off (Prometheus scrapes the agent; N dashboard processes on one host would also fight over its port).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from urllib.parse import urlsplit

from collectors import build_collectors
from exporters.notify import Notifier
from exporters.server import ExporterServer, default_allowed_hosts, start_exporter
from monitoring.alerts.engine import AlertEngine
from monitoring.config import Config, config_path_from_env, load_config
from monitoring.evaluation import Evaluator
from monitoring.health import CollectorHealth
from monitoring.runtime import Supervisor
from monitoring.sources import declared_sources
from monitoring.store import Store

log = logging.getLogger(__name__)

UNUSED_SESSION_LIFETIME_MS = 10_000
"""`panel serve --unused-session-lifetime`: a session without a browser connection for this long is
destroyed (its periodic tick stops and its memory is freed). Bokeh's default is 15 s. It must cover
the time between a page's HTML response and its websocket connection (the browser loading and
running the page's scripts: about 1 s on loopback in the browser tests, a few seconds for a first
load of the ~4 MB of scripts over a slow link), since a session never connected is destroyed after
it too. Panel does not reconnect a dropped websocket to the same session (`reconnect` is off), so
waiting longer keeps nothing alive that could come back; each second a closed tab's session lives
costs one more tick of its page."""
CHECK_UNUSED_SESSIONS_MS = 2_000
"""`panel serve --check-unused-sessions`: how often the server looks for such sessions (default 17 s)."""
SERVE_SESSION_ARGS = ("--unused-session-lifetime", str(UNUSED_SESSION_LIFETIME_MS),
                      "--check-unused-sessions", str(CHECK_UNUSED_SESSIONS_MS))
"""The session flags every `panel serve apps/` pipewatch starts uses (the demo, the tests, the benchmark)."""
SERVE_HEALTH_ARGS = ("--liveness", "--liveness-endpoint", "healthz")
"""Panel's liveness endpoint as `/healthz`, like the agent's: service managers probe it, and a second dashboard
started on the same port recognises the first (pipewatch/ports.py)."""
SERVE_ENV = {"PYTHONMALLOC": "malloc"}
"""The environment every `panel serve apps/` pipewatch starts adds: Python objects from the C allocator rather than
CPython's own arenas, so the memory closed sessions freed can go back to the system (apps/app_hooks.py trims the
heap after they close). With 25 pipeline pages opened and closed, 221 of the 369 MB they took went back, against
8 MB with CPython's allocator, whose arenas are returned only when wholly empty."""


class Service:
    def __init__(self, config: Config, mirror: bool = True) -> None:
        """mirror: follow the config's `mirror:` when it has one (False: run the collectors regardless, as the
        agent does, whose store the mirrors copy)."""
        self.config = config
        self.started_at = time.time()
        self.mirror = mirror and config.mirror is not None
        settings = config.store
        self.store = Store(settings.points_per_series, settings.max_series, settings.events, settings.errors)
        self.sources = declared_sources(config)
        """Every source the config declares: what the pages show."""
        self.evaluator = Evaluator(self.store, [p.name for p in config.pipelines], write_series=not self.mirror)
        if self.mirror:
            from collectors.aggregate.mirror import MirrorCollector

            for source in self.sources:  # "starting" until the agent's own health arrives
                self.store.set_health(CollectorHealth(source.pipeline, source.collector, source.target,
                                                      source.interval))
            self.collectors = [MirrorCollector(config.mirror, config)]
        else:
            self.collectors = build_collectors(config)
        """The collectors this process runs: one per declared source, or a mirror's one MirrorCollector."""
        self.notifier: Notifier | None = None
        self.alerts: AlertEngine | None = None
        """Alerts are evaluated where the collectors run: in a mirror the agent does it (and notifies once)."""
        background = {"evaluation": self.evaluator.run}
        if not self.mirror:
            self.notifier = Notifier(config.alerts, self.store)
            self.alerts = AlertEngine(config.alerts, self.store, [p.name for p in config.pipelines],
                                      outbox=self.notifier.submit)
            background["alerts"] = self.alerts.run
        self.supervisor = Supervisor(self.store, self.collectors, config.runtime.max_backoff_seconds,
                                     background=background)
        self.exporter: ExporterServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start_in_thread(self) -> None:
        """Run the collectors on an event loop of their own thread.

        In the Panel server every browser session runs on Bokeh's event loop: collectors sharing it would
        wait behind the sessions' updates (a change feed with a hundred viewers starved its own reader).
        On their own thread they only share the interpreter; the store is the only thing both sides touch.
        """
        if self._thread is not None:
            return
        if self.notifier is not None:
            self.notifier.start()
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.call_soon(self.supervisor.start)
        self._thread = threading.Thread(target=loop.run_forever, name="pipewatch-collectors", daemon=True)
        self._thread.start()

    def stop_thread(self, timeout: float = 15.0) -> None:
        """Stop the collectors started by start_in_thread, close their connections, and end the thread."""
        if self._thread is None or self._loop is None:
            return
        loop = self._loop
        try:
            asyncio.run_coroutine_threadsafe(self.supervisor.stop(), loop).result(timeout)
        except TimeoutError:  # stop what can be stopped; the thread is a daemon and dies with the process
            log.warning("collectors did not stop within %g s", timeout)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            loop.close()
        self._thread, self._loop = None, None
        if self.notifier is not None:
            self.notifier.stop()

    def start(self) -> None:
        """Start the exporter and the collectors; call on the running event loop that will run them."""
        self.start_exporter()
        if self.notifier is not None:
            self.notifier.start()
        self.supervisor.start()

    def start_exporter(self) -> None:
        """Serve /metrics (on its own thread); raises OSError naming host:port if it cannot listen."""
        settings = self.config.exporter
        if self.mirror:  # the agent exports what it collects; a mirror serving it again would count it twice
            log.info("mirror mode: no exporter in this process (the agent at %s serves /metrics and /api/v1)",
                     self.config.mirror.url)
            return
        if settings.enabled and self.exporter is None:
            hosts = settings.allowed_hosts  # by default also the name the config's mirrors reach the agent by
            if hosts is None:
                mirror = [urlsplit(str(self.config.mirror.url)).hostname or ""] if self.config.mirror else []
                hosts = default_allowed_hosts(settings.host, mirror)
            self.exporter = start_exporter(self.store, settings.host, settings.port, basic_auth=settings.basic_auth,
                                           api_auth=settings.api_auth, allowed_hosts=hosts, tls=settings.tls,
                                           liveness=self.supervisor.liveness,
                                           started_at=self.started_at, alerts=self.alerts)

    async def stop(self) -> None:
        await self.supervisor.stop()
        if self.notifier is not None:
            self.notifier.stop()
        self.stop_exporter()

    def stop_exporter(self) -> None:
        if self.exporter is not None:
            self.exporter.stop()
            self.exporter = None


_service: Service | None = None


def get_service() -> Service:
    """The process's Service, configured from PIPEWATCH_CONFIG on first use (not started)."""
    global _service
    if _service is None:
        _service = Service(load_config(config_path_from_env()))
    return _service


def existing_service() -> Service | None:
    """The process's Service if one was built, without building one."""
    return _service


"""Server lifecycle hooks of the `panel serve apps/` directory app.

The collectors, the store and the exporter are process-wide: started once when the server loads,
stopped when it unloads. The collectors run on a thread and event loop of their own, so the sessions'
work on Bokeh's loop never delays a collection. Browser sessions only build views over the shared store.
"""

from __future__ import annotations

import errno
import gc
import logging
import os
import sys

from bokeh.core.validation import silence
from bokeh.core.validation.warnings import MISSING_RENDERERS
from tornado.ioloop import IOLoop

from apps.page_resources import leave_out_mathjax
from monitoring.config import ConfigError
from pipewatch import heap
from pipewatch.cli import LOG_LEVELS, set_own_log_level
from pipewatch.ports import PORT_TAKEN_EXIT, port_taken_message
from pipewatch.service import existing_service, get_service

log = logging.getLogger("pipewatch.app")


def on_server_loaded(server_context) -> None:
    # A live chart is drawn before its first data: its lines are added when they arrive, not a mistake to warn of.
    silence(MISSING_RENDERERS, True)
    leave_out_mathjax()
    heap.pin_thresholds()  # before the collectors allocate: their buffers otherwise fragment the heap for good
    if os.environ.get("PIPEWATCH_LOG_LEVEL") in LOG_LEVELS:  # `pipewatch dashboard --log-level`, the demo's
        set_own_log_level(os.environ["PIPEWATCH_LOG_LEVEL"])
    try:
        service = get_service()
        service.start_exporter()
    except (ConfigError, OSError) as exc:
        # A bad config or a taken port must stop the server at start, not leave a blank app running.
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            settings = get_service().config.exporter
            exc = port_taken_message("pipewatch dashboard", "the exporter's address (exporter.host, exporter.port)",
                                     settings.host, settings.port, "Stop that process first, or give this dashboard "
                                     "another exporter.port (or `mirror:` an agent) in its config.")
        print(f"pipewatch: cannot start\n{exc}", file=sys.stderr, flush=True)
        raise SystemExit(PORT_TAKEN_EXIT) from None
    service.start_in_thread()
    _warm_up()
    _freeze_what_lives_forever()
    if service.mirror:
        log.info("pipewatch mirror started: showing what the agent at %s collects (%d sources)",
                 service.config.mirror.url, len(service.sources))
    else:
        log.info("pipewatch runtime started: %d collectors", len(service.supervisor.collectors))


def _warm_up() -> None:
    """What the first page opened would otherwise wait for, done while nobody waits: importing the pages' modules,
    Panel's first `extension` call (HoloViews' backend and Panel's signatures) and compiling the template."""
    import panel as pn

    import apps.pages  # noqa: F401
    import apps.views  # noqa: F401
    from apps.shell import TEMPLATE

    pn.extension("tabulator", notifications=False)
    TEMPLATE(title="pipewatch")


def _freeze_what_lives_forever() -> None:
    """Leave the objects made so far (modules, classes, the warm-up's compiled templates: most of what the process
    holds) out of every later garbage collection: a full collection traverses every tracked object on the server's
    one thread, and with them it paused every page's updates for hundreds of milliseconds, every few seconds under
    load (docs/benchmarks.md, change feed). They are never garbage."""
    gc.collect()
    gc.freeze()


def on_server_unloaded(server_context) -> None:
    service = existing_service()
    if service is None:  # the server never got as far as building it (e.g. a bad config)
        return
    service.stop_exporter()
    service.stop_thread()


_TRIM_DELAY_SECONDS = 2.0
_trim_pending = False


def on_session_destroyed(session_context) -> None:
    # Once the sessions that closed together are gone: collect their cycles, then hand the heap pages they leave
    # free back to the system (glibc keeps them otherwise; CPython's own small-object arenas go back when empty).
    global _trim_pending
    if not _trim_pending:
        _trim_pending = True
        IOLoop.current().call_later(_TRIM_DELAY_SECONDS, _return_freed_memory)


def _return_freed_memory() -> None:
    global _trim_pending
    _trim_pending = False
    gc.collect()
    heap.trim()

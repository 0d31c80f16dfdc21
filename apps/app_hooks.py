"""Server lifecycle hooks of the `panel serve apps/` directory app.

The collectors, the store and the exporter are process-wide: started once when the server loads,
stopped when it unloads. The collectors run on a thread and event loop of their own, so the sessions'
work on Bokeh's loop never delays a collection. Browser sessions only build views over the shared store.
"""

from __future__ import annotations

import logging
import sys

from monitoring.config import ConfigError
from monitoring.service import existing_service, get_service

log = logging.getLogger("pipewatch.app")


def on_server_loaded(server_context) -> None:
    try:
        service = get_service()
        service.start_exporter()
    except (ConfigError, OSError) as exc:
        # A bad config or a taken port must stop the server at start, not leave a blank app running.
        print(f"pipewatch: cannot start\n{exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    service.start_in_thread()
    if service.mirror:
        log.info("pipewatch mirror started: showing what the agent at %s collects (%d sources)",
                 service.config.mirror.url, len(service.collectors))
    else:
        log.info("pipewatch runtime started: %d collectors", len(service.supervisor.collectors))


def on_server_unloaded(server_context) -> None:
    service = existing_service()
    if service is None:  # the server never got as far as building it (e.g. a bad config)
        return
    service.stop_exporter()
    service.stop_thread()

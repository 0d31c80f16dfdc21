"""The process-wide service: collectors on a thread and event loop of their own (as the Panel server runs them)."""

from __future__ import annotations

import threading
import time

from monitoring.config import load_config
from monitoring.health import State
from pipewatch.service import Service
from tests.kafka_util import commit, create_topic, produce
from tests.services import run_async, wait_until


def test_collectors_run_on_their_own_thread_and_stop_with_it(broker, tmp_path):
    run_async(create_topic(broker.bootstrap, "events", 1))
    run_async(produce(broker.bootstrap, "events", {0: 5}))
    run_async(commit(broker.bootstrap, "loader", "events", {0: 2}))
    config = tmp_path / "pipewatch.yml"
    config.write_text(f"pipelines:\n  - name: orders\n    kafka: {{bootstrap_servers: ['{broker.bootstrap}'], "
                      f"cluster: local, interval_seconds: 0.2}}\nexporter: {{enabled: false}}\n")
    service = Service(load_config(config, environ={}))
    service.start_in_thread()
    service.start_in_thread()  # idempotent
    try:
        assert [t.name for t in threading.enumerate()].count("pipewatch-collectors") == 1
        wait_until(lambda: service.store.health()[("orders", "kafka")].runs >= 3, 20, what="three runs")
        assert service.store.health()[("orders", "kafka")].state is State.UP
        assert service.store.latest("kafka_consumergroup_lag", ("orders", "local", "loader", "events", "0"))[1] == 3
        assert service.supervisor.liveness() is None
    finally:
        started = time.monotonic()
        service.stop_thread()
        stopping = time.monotonic() - started
    assert stopping < 5, f"stop_thread took {stopping:.1f} s (its timeout is 15 s: the collectors did not stop)"
    assert "pipewatch-collectors" not in [t.name for t in threading.enumerate()]
    assert not service.supervisor.running
    runs = service.store.health()[("orders", "kafka")].runs
    run_async(produce(broker.bootstrap, "events", {0: 1}))
    assert service.store.health()[("orders", "kafka")].runs == runs  # stopped: no more runs
    service.stop_thread()  # harmless when stopped

"""Two `panel serve apps/` processes in mirror mode on one `pipewatch agent` (as behind a load balancer), in a real
browser: both show the agent's exact partition lag, then the broker's outage with the agent's reason, its recovery,
and the agent's own stop (the copy marked stale, the mirror down)."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.kafka_util import commit, create_topic, produce
from tests.services import run_async, wait_until
from tests.test_app_browser import partition_column, serving
from tests.test_json_api import Agent, _agent_config

pytestmark = pytest.mark.browser


def _kafka_reason(agent: Agent) -> str | None:
    try:
        body = httpx.get(f"{agent.url}/api/v1/pipelines", timeout=5).json()
    except httpx.HTTPError:
        return None
    (health,) = body["pipelines"][0]["collector_health"]
    return health["reason"] if health["state"] == "down" else None


def test_two_mirror_processes_show_the_agents_lag_outage_and_recovery(broker, tmp_path, chromium):
    run_async(create_topic(broker.bootstrap, "payments", 3))
    run_async(produce(broker.bootstrap, "payments", {0: 10, 1: 7, 2: 5}))
    run_async(commit(broker.bootstrap, "billing", "payments", {0: 4, 1: 7}))
    # One config file for all three processes: the agent ignores `mirror:`, the dashboards follow it (and start no
    # exporter, so they do not fight over its port).
    agent = Agent(tmp_path, _agent_config(broker.bootstrap, "orders", "billing", auth=False)
                  + "mirror: 'http://127.0.0.1:{PORT}'\n").start()
    pages = [chromium.new_page(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    for page in pages:
        page.errors = []
        page.on("pageerror", lambda error, page=page: page.errors.append(str(error)))
    try:
        with serving(tmp_path, agent.config, pages[0]) as first, serving(tmp_path, agent.config, pages[1]) as second:
            for page, server in zip(pages, (first, second), strict=True):
                page.goto(f"{server.url}?page=pipeline&pipeline=orders&section=kafka")

            def partitions(page):
                return partition_column(page, "lag")

            def badge(page, collector: str):
                return page.locator(f'.pw-health[data-collector="{collector}"]')

            for page in pages:
                expect(partitions(page)).to_have_text(["6", "0", "unknown"], timeout=60_000)
                expect(badge(page, "kafka")).to_have_attribute("data-state", "up")
                expect(badge(page, "mirror")).to_have_attribute("data-state", "up")
                expect(page.get_by_text("/metrics")).to_have_count(0)  # no exporter in a mirror

            # The broker stops: the agent's collector goes down, and both pages show its reason.
            broker.stop()
            wait_until(lambda: _kafka_reason(agent), 30, what="the agent's kafka down")

            def shows_the_agents_reason(page) -> bool:
                reason = _kafka_reason(agent)  # (the category may change between attempts: compare with the latest)
                return bool(reason) and reason.split(": ")[0] in badge(page, "kafka").inner_text()

            for page in pages:
                expect(badge(page, "kafka")).to_have_attribute("data-state", "down", timeout=30_000)
                wait_until(lambda page=page: shows_the_agents_reason(page), 30, interval=0.5,
                           what="the agent's reason on the page")
                expect(page.locator(".pw-stale")).to_contain_text("STALE")

            # Back (empty, in-memory): both follow the agent's recovery.
            broker.start()
            run_async(create_topic(broker.bootstrap, "payments", 3))
            run_async(produce(broker.bootstrap, "payments", {0: 3, 1: 3, 2: 3}))
            run_async(commit(broker.bootstrap, "billing", "payments", {0: 1, 1: 2, 2: 3}))
            for page in pages:
                expect(badge(page, "kafka")).to_have_attribute("data-state", "up", timeout=60_000)
                expect(partitions(page)).to_have_text(["2", "1", "0"], timeout=30_000)
                expect(page.locator(".pw-stale")).to_have_count(0)

            # The agent itself stops: the mirror is down with the reason, and what it copied turns stale (not fresh).
            agent.stop()
            for page in pages:
                expect(badge(page, "mirror")).to_have_attribute("data-state", "down", timeout=30_000)
                expect(badge(page, "mirror")).to_contain_text("connection_refused", timeout=10_000)
                expect(badge(page, "kafka")).to_have_attribute("data-state", "stale", timeout=30_000)
                expect(badge(page, "kafka")).to_contain_text("no successful run for")
                expect(page.locator(".pw-stale")).to_contain_text("the collector is stale")
            for page in pages:
                assert page.errors == []
    finally:
        agent.stop()
        for page in pages:
            page.close()

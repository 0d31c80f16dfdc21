"""The dashboard as a whole in a real browser: navigation, shareable URLs, theme, overview tiles."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.kafka_util import commit, create_topic, produce
from tests.services import free_port, run_async
from tests.test_app_browser import group_column, serving

pytestmark = pytest.mark.browser


def _config(tmp_path, bootstrap: str) -> str:
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        + "".join(
            f"  - name: {name}\n"
            "    kafka:\n"
            f"      bootstrap_servers: [\"{bootstrap}\"]\n"
            "      cluster: local\n"
            f"      consumer_groups: [\"{group}\"]\n"
            "      interval_seconds: 0.5\n"
            for name, group in (("orders", "billing"), ("audit", "auditor")))
        + "runtime:\n  max_backoff_seconds: 1\n"
        f"exporter:\n  host: 127.0.0.1\n  port: {free_port()}\n"
    )
    return config


def _fact(page, pipeline: str, fact: str):
    return page.locator(f'.pw-tile[data-pipeline="{pipeline}"] tr[data-fact="{fact}"] .v')


def test_overview_navigation_shareable_urls_theme_and_a_source_going_down_and_back(broker, tmp_path, browser_page):
    run_async(create_topic(broker.bootstrap, "payments", 3))
    run_async(produce(broker.bootstrap, "payments", {0: 10, 1: 7, 2: 5}))
    run_async(commit(broker.bootstrap, "billing", "payments", {0: 4, 1: 7, 2: 5}))
    run_async(commit(broker.bootstrap, "auditor", "payments", {0: 10, 1: 0, 2: 5}))
    with serving(tmp_path, _config(tmp_path, broker.bootstrap), browser_page) as server:
        page = browser_page
        page.goto(server.url)  # no parameters: the overview
        tile = page.locator('.pw-tile[data-pipeline="orders"]')
        expect(tile).to_have_attribute("data-health", "ok", timeout=30_000)
        expect(_fact(page, "orders", "max lag")).to_contain_text("6 messages", timeout=30_000)
        expect(_fact(page, "audit", "max lag")).to_contain_text("7 messages", timeout=30_000)
        expect(_fact(page, "orders", "total lag")).to_have_text("6 messages")
        expect(_fact(page, "orders", "lag status")).not_to_have_text("unknown", timeout=30_000)

        # A tile's link opens its pipeline; the URL names page and pipeline.
        page.locator('.pw-tile[data-pipeline="audit"] a[href*="page=pipeline"]').click()
        expect(page).to_have_url(f"{server.url}?page=pipeline&pipeline=audit", timeout=30_000)
        expect(page.locator('.pw-health[data-collector="kafka"]')).to_have_attribute("data-state", "up", timeout=30_000)
        expect(page.locator(".pw-latency")).to_be_visible(timeout=30_000)

        # The summary links into the pipeline's sections; the sidebar opens them in place and the URL follows.
        expect(page.locator('.pw-section-link[data-section="kafka"]')).to_have_attribute(
            "href", "?page=pipeline&pipeline=audit&section=kafka")
        page.get_by_role("button", name="Kafka", exact=True).click()
        expect(page).to_have_url(f"{server.url}?page=pipeline&pipeline=audit&section=kafka", timeout=30_000)
        groups = group_column(page, "group")
        expect(groups.first).to_have_text("auditor", timeout=30_000)

        # Choosing another pipeline keeps the section and changes the URL; that URL opened anew shows the same page.
        page.get_by_label("pipeline", exact=True).select_option("orders")
        expect(page).to_have_url(f"{server.url}?page=pipeline&pipeline=orders&section=kafka", timeout=30_000)
        expect(groups.first).to_have_text("billing", timeout=30_000)
        shared = page.context.browser.new_page()
        shared.goto(page.url)
        expect(shared.get_by_label("pipeline", exact=True)).to_have_value("orders", timeout=30_000)
        expect(group_column(shared, "group").first).to_have_text("billing", timeout=30_000)
        shared.close()
        page.bring_to_front()  # a page behind another gets no animation frames, which clicks wait for

        # Back to the overview by the page buttons; the browser's Back button returns to the section.
        page.get_by_role("button", name="Overview").click()
        expect(page).to_have_url(f"{server.url}?page=overview&pipeline=orders", timeout=30_000)
        expect(tile).to_have_attribute("data-health", "ok", timeout=30_000)
        page.go_back()
        expect(page).to_have_url(f"{server.url}?page=pipeline&pipeline=orders&section=kafka", timeout=30_000)
        expect(groups.first).to_have_text("billing", timeout=30_000)
        page.get_by_role("button", name="Overview").click()
        expect(page).to_have_url(f"{server.url}?page=overview&pipeline=orders", timeout=30_000)
        expect(tile).to_have_attribute("data-health", "ok", timeout=30_000)

        # Dark theme: the same page, reloaded with theme=dark; and back.
        light_background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        page.get_by_role("button", name="Dark theme").click()
        expect(page).to_have_url(f"{server.url}?page=overview&pipeline=orders&theme=dark", timeout=30_000)
        expect(page.get_by_role("button", name="Light theme")).to_be_visible(timeout=30_000)
        expect(tile).to_have_attribute("data-health", "ok", timeout=30_000)
        dark_background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        assert dark_background != light_background
        assert sum(int(c) for c in dark_background.strip("rgba()").split(",")[:3]) < 3 * 80, dark_background
        page.get_by_role("button", name="Light theme").click()
        expect(page.get_by_role("button", name="Dark theme")).to_be_visible(timeout=30_000)

        # The broker goes away: both tiles say down, why, and show no number they no longer know.
        broker.stop()
        expect(tile).to_have_attribute("data-health", "down", timeout=30_000)
        expect(tile.locator(".pw-reason")).to_contain_text("kafka down", timeout=30_000)
        expect(_fact(page, "orders", "max lag")).to_have_text("unknown, unknown")
        expect(_fact(page, "orders", "produce")).to_have_text("unknown")

        # It comes back (empty, in memory): the tiles recover by themselves with the new numbers.
        broker.start()
        run_async(create_topic(broker.bootstrap, "payments", 3))
        run_async(produce(broker.bootstrap, "payments", {0: 3, 1: 3, 2: 3}))
        run_async(commit(broker.bootstrap, "billing", "payments", {0: 1, 1: 2, 2: 3}))
        expect(tile).to_have_attribute("data-health", "ok", timeout=60_000)
        expect(_fact(page, "orders", "max lag")).to_contain_text("2 messages", timeout=30_000)
        expect(_fact(page, "orders", "total lag")).to_have_text("3 messages")
        expect(tile.locator(".pw-reason")).to_have_count(0)
        assert page.errors == []


def test_expected_traffic_bursts_are_drawn_on_the_throughput_chart(broker, tmp_path, browser_page):
    import time
    from datetime import UTC, datetime

    run_async(create_topic(broker.bootstrap, "payments", 1))
    origin = time.time() - 70  # the pattern's first burst (60 s to 120 s) runs now
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        "  - name: orders\n"
        "    kafka:\n"
        f"      bootstrap_servers: [\"{broker.bootstrap}\"]\n"
        "      interval_seconds: 0.5\n"
        "    traffic:\n"
        "      pattern: \"base=10/s;60s-120s:300%;every=300s\"\n"
        f"      started_at: \"{datetime.fromtimestamp(origin, UTC).isoformat()}\"\n"
        f"exporter:\n  host: 127.0.0.1\n  port: {free_port()}\n"
    )
    with serving(tmp_path, config, browser_page) as server:
        page = browser_page
        page.goto(f"{server.url}?page=pipeline&pipeline=orders")
        phase = page.locator(".pw-traffic")
        expect(phase).to_have_attribute("data-phase", "burst 300%", timeout=30_000)
        expect(phase).to_contain_text("30 messages/s expected")
        bursts = page.evaluate("""() => {
            const doc = Bokeh.documents[0];
            const r = [...doc._all_models.values()].find((m) => m.name === "traffic-bursts");
            return {left: [...r.data_source.data.left], right: [...r.data_source.data.right]};
        }""")
        # Every burst from four hours back to one period ahead: here the current one and the next.
        expected = [(origin + 60) * 1000, (origin + 360) * 1000]
        assert [round(v) for v in bursts["left"]] == [round(v) for v in expected]
        assert [round(v - 60_000) for v in bursts["right"]] == [round(v) for v in expected]
        assert page.errors == []

"""The alerts page in a real browser: a rule over a real broker's lag fires, the header and the overview tile count
it, and a signed-in user (Panel's --basic-auth) silences it from the page; the agent's /api/v1/alerts records who
and why. Without a signed-in user the page offers no silencing."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml
from playwright.sync_api import expect

from tests.kafka_util import commit, create_topic, produce
from tests.services import free_port, run_async
from tests.test_app_browser import serving

pytestmark = pytest.mark.browser
GROUP = "orders-loader"


def _config(tmp_path, bootstrap: str, port: int):
    path = tmp_path / "pipewatch.yml"
    path.write_text(yaml.safe_dump({
        "pipelines": [{"name": "orders", "kafka": {"bootstrap_servers": [bootstrap], "cluster": "local",
                                                   "interval_seconds": 0.5}}],
        "exporter": {"host": "127.0.0.1", "port": port},
        "alerts": {"defaults": False, "evaluation_interval": 0.5, "rules": [
            {"name": "OrdersLagHigh", "metric": "kafka_consumergroup_lag", "labels": {"consumergroup": "orders-.*"},
             "op": ">", "threshold": 100, "for": "1s", "severity": "critical",
             "summary": "{consumergroup} lags {value} messages on {topic}/{partition}"}]}}))
    return path


@pytest.mark.parametrize("theme", ["default", "dark"])
def test_a_signed_in_user_silences_a_firing_alert_from_the_page(broker, tmp_path, browser_page, theme):
    run_async(create_topic(broker.bootstrap, "orders", 1))
    run_async(produce(broker.bootstrap, "orders", {0: 250}))
    run_async(commit(broker.bootstrap, GROUP, "orders", {0: 10}))
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"ana": "s3cret-pass"}))
    port = free_port()
    args = ("--basic-auth", str(users), "--cookie-secret", "a-test-cookie-secret-of-some-length")
    with serving(tmp_path, _config(tmp_path, broker.bootstrap, port), browser_page, args) as server:
        page = browser_page
        page.set_default_navigation_timeout(90_000)  # a login and two page loads on a busy CI machine
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto(f"{server.url}?theme={theme}", timeout=90_000)
        page.fill("input[name=username]", "ana")
        page.fill("input[name=password]", "s3cret-pass")
        page.locator("button[type=submit], input[type=submit]").first.click()
        page.wait_for_url(f"{server.url}**", timeout=30_000)
        tile_count = page.locator('.pw-tile[data-pipeline="orders"] .pw-tile-alerts')
        expect(tile_count).to_have_attribute("data-firing", "1", timeout=30_000)
        expect(page.locator(".pw-alerts-badge")).to_have_attribute("data-firing", "1", timeout=30_000)
        page.locator(".pw-alerts-badge").click()
        expect(page.locator(".pw-alerts-count")).to_have_attribute("data-firing", "1", timeout=30_000)
        expect(page.locator(".pw-alert-state").first).to_have_text("firing", timeout=30_000)
        row = page.locator(".tabulator-row", has_text=f"{GROUP} lags 240 messages on orders/0").first
        expect(row).to_be_visible(timeout=30_000)
        page.screenshot(path=str(tmp_path / f"alerts-{theme}.png"), full_page=True)

        target = page.locator(".pw-silence-target select")
        target.select_option(label=f"alert: {GROUP} lags 240 messages on orders/0 [orders]")
        page.locator(".pw-silence-reason input").fill("replaying <b>orders</b> on purpose")
        page.locator(".pw-silence-button button").click()
        expect(page.locator(".pw-silenced")).to_contain_text(f"Silenced {GROUP} lags 240 messages", timeout=30_000)
        expect(page.locator(".pw-alerts-badge")).to_have_attribute("data-firing", "0", timeout=30_000)
        silences = page.locator(".tabulator-row", has_text="replaying <b>orders</b> on purpose")
        expect(silences.first).to_be_visible(timeout=30_000)  # shown as text, never as HTML
        page.screenshot(path=str(tmp_path / f"alerts-silenced-{theme}.png"), full_page=True)

        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=10).json()
        (silence,) = answer["silences"]
        assert (silence["created_by"], silence["comment"], silence["rule"]) == (
            "ana", "replaying <b>orders</b> on purpose", "OrdersLagHigh")
        assert 3590 <= silence["ends_at"] - silence["starts_at"] <= 3610
        assert [a["silenced_by"] for a in answer["active"]] == [silence["id"]]
        # Panel's login page and its dark theme name stylesheets on a CDN, unreachable here: only those may fail.
        assert not [url for url in failed if url.startswith("http://127.0.0.1")], failed
        assert [e for e in page.errors if "ERR_NAME_NOT_RESOLVED" not in e] == [], failed


def test_without_a_signed_in_user_the_page_offers_no_silencing(broker, tmp_path, browser_page):
    run_async(create_topic(broker.bootstrap, "orders", 1))
    with serving(tmp_path, _config(tmp_path, broker.bootstrap, free_port()), browser_page) as server:
        page = browser_page
        page.goto(f"{server.url}?page=alerts", timeout=90_000)
        expect(page.locator(".pw-alerts-count")).to_be_visible(timeout=30_000)
        expect(page.locator(".pw-silence-message")).to_contain_text("Silencing needs a signed-in user")
        expect(page.locator(".pw-silence-button button")).to_be_disabled()

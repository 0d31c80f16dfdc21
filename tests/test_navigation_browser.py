"""Navigation, page size and reconnection in a real browser (system Chromium), fed by a real broker."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.kafka_util import commit, create_topic, produce
from tests.services import PanelServer, free_port, run_async
from tests.test_app_browser import group_column, partition_column, serving
from tests.test_hostile_browser import _screenshot

pytestmark = pytest.mark.browser

SCREEN = {"width": 1280, "height": 800}
MAX_SCREENS = 3
"""No default view is taller than this many screens (issue #18)."""


def content_height(page) -> int:
    """The height of what the page shows: the template scrolls its main area, not the document."""
    return page.evaluate("""() => {
        const main = document.querySelector("#main");
        const below = main ? main.getBoundingClientRect().top + main.scrollHeight : 0;
        return Math.max(document.documentElement.scrollHeight, below);
    }""")


def assert_fits(page, what: str) -> None:
    """The view, drawn at 1280x800, is at most MAX_SCREENS screens tall."""
    size = page.viewport_size
    page.set_viewport_size(SCREEN)
    try:
        height = content_height(page)
        assert height <= MAX_SCREENS * SCREEN["height"], f"{what} is {height} px tall at 1280x800"
    finally:
        page.set_viewport_size(size)


def assert_no_mathjax(page, what: str) -> None:
    """The page loaded BokehJS but not its 1.8 MB MathJax bundle: no pane of pipewatch renders math
    (apps/page_resources.py)."""
    scripts = page.evaluate("() => [...document.scripts].map((s) => s.src).filter((src) => src)")
    assert any("/static/js/bokeh.min.js" in src for src in scripts), f"{what}: BokehJS not among {scripts}"
    assert not [src for src in scripts if "mathjax" in src.lower()], f"{what} loads MathJax: {scripts}"


def _config(tmp_path, bootstrap: str):
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        "  - name: orders\n"
        "    kafka:\n"
        f"      bootstrap_servers: [\"{bootstrap}\"]\n"
        "      cluster: local\n"
        "      interval_seconds: 0.5\n"
        "runtime:\n  max_backoff_seconds: 1\n"
        f"exporter:\n  host: 127.0.0.1\n  port: {free_port()}\n"
    )
    return config


def _seed(bootstrap: str) -> None:
    run_async(create_topic(bootstrap, "payments", 25))
    run_async(produce(bootstrap, "payments", {p: 10 + p for p in range(25)}))
    run_async(commit(bootstrap, "billing", "payments", {p: 3 for p in range(25)}))


@pytest.mark.timeout(600)  # every view, opened anew
def test_each_view_has_its_url_old_urls_still_open_and_no_default_view_is_taller_than_three_screens(
        broker, tmp_path, browser_page):
    _seed(broker.bootstrap)
    with serving(tmp_path, _config(tmp_path, broker.bootstrap), browser_page) as server:
        page = browser_page
        page.set_viewport_size(SCREEN)
        page.set_default_navigation_timeout(120_000)
        # Every default view, drawn with its data (25 partitions: the partition table's first page is full).
        views = {
            "?page=overview": '.pw-tile[data-pipeline="orders"]',
            "?page=pipeline&pipeline=orders": ".pw-latency",
            "?page=pipeline&pipeline=orders&section=kafka": ".pw-table-partitions-table",
            "?page=aggregate": ".pw-health, .slick-cell",
            "?page=errors": ".pw-errors",
        }
        for query, shown in views.items():
            themes = ("default", "dark") if "pipeline=" in query else ("default",)  # (the page's size is the same)
            for theme in themes:
                page.goto(f"{server.url}{query}&theme={theme}")
                expect(page.locator(shown).first).to_be_visible(timeout=60_000)
                if "section=kafka" in query:
                    expect(partition_column(page, "group")).to_have_count(20, timeout=30_000)
                    expect(page.locator("canvas").first).to_be_visible(timeout=30_000)
                assert_fits(page, f"{query} ({theme})")
                assert_no_mathjax(page, query)
                _screenshot(page, str(tmp_path / f"view-{len(query)}-{theme}.png"))
        # Older links: a pipeline by name alone opens its summary; a section the pipeline has not, the summary too.
        page.goto(f"{server.url}?pipeline=orders")
        expect(page.locator(".pw-latency")).to_be_visible(timeout=60_000)
        expect(page.locator('.pw-section-link[data-section="kafka"]')).to_be_visible()
        page.goto(f"{server.url}?page=pipeline&pipeline=orders&section=flink")
        expect(page.locator(".pw-latency")).to_be_visible(timeout=60_000)
        expect(page.get_by_role("button", name="Flink", exact=True)).to_have_count(0)  # it has no Flink section
        assert page.errors == []


@pytest.mark.timeout(600)  # a server started twice
def test_an_open_page_recovers_by_itself_when_the_server_restarts(broker, tmp_path, browser_page):
    _seed(broker.bootstrap)
    config = _config(tmp_path, broker.bootstrap)
    server = PanelServer(tmp_path, config)
    server.start()
    page = browser_page
    page.set_default_navigation_timeout(120_000)  # (a machine shared with others: a server's first page is slow)
    try:
        page.goto(f"{server.url}?page=pipeline&pipeline=orders&section=kafka")
        lag = group_column(page, "lag")
        expect(lag).to_have_text(["475"], timeout=60_000)  # 10..34 produced, 3 committed, in each of 25
        banner = page.locator("#pw-connection")
        expect(banner).to_have_attribute("data-state", "connected", timeout=30_000)
        expect(banner).to_be_hidden()

        server.stop()  # the page stays open: it says the connection is lost and keeps trying
        expect(banner).to_have_attribute("data-state", "reconnecting", timeout=30_000)
        expect(banner).to_contain_text("Connection to the server lost")
        expect(banner).to_be_visible()

        server.start()  # the same port: the page finds the new server, loads anew and follows it live
        expect(banner).to_be_hidden(timeout=90_000)
        expect(lag).to_have_text(["475"], timeout=60_000)
        run_async(produce(broker.bootstrap, "payments", {0: 100}))
        expect(lag).to_have_text(["575"], timeout=60_000)  # live updates resumed without a hand on the page
        expect(page).to_have_url(f"{server.url}?page=pipeline&pipeline=orders&section=kafka")
        # (The browser logs each refused connection while the server is down.)
        refused = ("websocket", "failed to load resource", "err_connection_refused", "could not open websocket")
        assert [e for e in page.errors if not any(s in e.lower() for s in refused)] == []
    finally:
        server.stop()

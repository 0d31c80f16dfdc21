"""In a real browser (system Chromium): the report file opens offline with its charts, and the live page's flow
diagram follows the pipeline in place and its Report button downloads the file."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.report import render_report
from monitoring.report import gather_report
from tests.kafka_util import commit, create_topic, produce
from tests.services import free_port, run_async, wait_until
from tests.test_app_browser import serving
from tests.test_report import NOW, _Pipeline, _store

pytestmark = pytest.mark.browser

_PLOTS = """() => {
    const out = {};
    for (const doc of Bokeh.documents) {
        for (const m of doc._all_models.values()) {
            if (m.toolbar && m.name) out[m.name] = [...new Set(m.toolbar.tools.map((t) => t.type))].sort();
        }
    }
    return out;
}"""
_FLOW = """() => {
    for (const doc of Bokeh.documents) {
        const nodes = doc.get_model_by_name("flow-nodes");
        if (nodes) {
            const d = nodes.data, out = {};
            for (let i = 0; i < d.id.length; i++) out[d.id[i]] = [d.state[i], d.rate[i]];
            return out;
        }
    }
    return null;
}"""




def test_report_file_opens_offline_and_its_charts_render(tmp_path, chromium):
    path = tmp_path / "report.html"
    path.write_text(render_report(gather_report(_store(), [_Pipeline()], now=NOW)), encoding="utf-8")
    context = chromium.new_context(offline=True, viewport={"width": 1300, "height": 900})
    requests, errors = [], []
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file://")
                  else (requests.append(route.request.url), route.abort()))
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.goto(path.as_uri())
    plots = wait_until(lambda: (p := page.evaluate(_PLOTS)) and len(p) >= 4 and p, 30, interval=0.2,
                       what="the report's Bokeh figures")
    assert set(plots) == {"flow-orders", "orders-throughput", "orders-lag", "orders-latency"}
    for name, tools in plots.items():
        assert {"HoverTool", "WheelZoomTool", "PanTool"} <= set(tools), (name, tools)
    flow = page.evaluate(_FLOW)
    assert flow["job:local/enrich"] == ["ok", "in 50 / out 49 records/s"]
    assert flow["group:local/audit"][0] == "error"
    expect(page.locator("canvas").first).to_be_visible()
    assert page.locator("canvas").count() >= 4  # every figure drew itself
    expect(page.locator("td[data-fact='consumer lag']")).to_have_text("1,244 messages")
    assert requests == [] and errors == []


def test_live_page_flow_diagram_follows_the_pipeline_and_the_report_button_downloads(broker, tmp_path, chromium):
    run_async(create_topic(broker.bootstrap, "payments", 2))
    run_async(produce(broker.bootstrap, "payments", {0: 10, 1: 7}))
    run_async(commit(broker.bootstrap, "billing", "payments", {0: 4, 1: 7}))
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n  - name: orders\n"
        f"    kafka: {{bootstrap_servers: ['{broker.bootstrap}'], cluster: local, interval_seconds: 0.5}}\n"
        "    flow:\n      edges: [{from: 'topic:payments', to: 'sink:warehouse.payments'}]\n"
        "runtime: {max_backoff_seconds: 1}\n"
        f"exporter: {{port: {free_port()}}}\n"
    )
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    with serving(tmp_path, config, page) as server:
        page.goto(f"{server.url}?pipeline=orders")

        def flow():
            return page.evaluate(_FLOW) or {}

        wait_until(lambda: "group:local/billing" in flow(), 30, interval=0.2, what="the billing group in the diagram")
        nodes = flow()
        assert nodes["topic:local/payments"][0] == "ok"
        assert nodes["group:local/billing"][0] == "ok"
        assert nodes["sink:warehouse.payments"] == ["unknown", "unknown"]

        with page.expect_download(timeout=60_000) as download:
            page.get_by_role("button", name="Report").click()
        assert download.value.suggested_filename.startswith("pipewatch-report-")
        report = open(download.value.path(), encoding="utf-8").read()
        assert "<td data-fact='consumer lag'>6 messages</td>" in report

        # The broker stops: the same boxes turn down in place, with the reason.
        broker.stop()
        wait_until(lambda: flow().get("group:local/billing", [""])[0] == "down", 30, interval=0.2,
                   what="the billing group to be shown down")
        assert flow()["topic:local/payments"] == ["down", "unknown"]

        # It comes back (empty, in memory; the same offsets again, or the group's rewind would be an error):
        # the boxes recover by themselves.
        broker.start()
        run_async(create_topic(broker.bootstrap, "payments", 2))
        run_async(produce(broker.bootstrap, "payments", {0: 10, 1: 7}))
        run_async(commit(broker.bootstrap, "billing", "payments", {0: 4, 1: 7}))
        wait_until(lambda: flow().get("group:local/billing", [""])[0] == "ok", 60, interval=0.2,
                   what="the billing group to be shown up again")
        assert flow()["topic:local/payments"][0] == "ok"
        assert page.errors == []

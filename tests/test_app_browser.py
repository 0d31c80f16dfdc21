"""The dashboard in a real browser (system Chromium via Playwright), fed by a real broker."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from contextlib import closing, contextmanager
from itertools import pairwise
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect
from prometheus_client.parser import text_string_to_metric_families

from tests.kafka_util import commit, create_topic, produce
from tests.services import LocalPrometheus, PanelServer, free_port, run_async, wait_until

pytestmark = pytest.mark.browser


def _line_times(page, name: str, label: str) -> list[float]:
    """The times of one line of a live chart in the browser's Bokeh document."""
    return page.evaluate(
        """([name, label]) => {
            for (const doc of Bokeh.documents) {
                for (const chart of [...doc._all_models.values()].filter((m) => m.name === name)) {
                    for (const r of chart.renderers.filter((r) => r.name === label)) {
                        return [...r.data_source.data.t];
                    }
                }
            }
            return [];
        }""",
        [name, label],
    )


def _chart_lines(page, name: str) -> dict[str, float]:
    """Visible lines of a live chart in the browser's Bokeh document: label -> last y value."""
    return page.evaluate(
        """(name) => {
            const out = {};
            for (const doc of Bokeh.documents) {
                for (const chart of [...doc._all_models.values()].filter((m) => m.name === name)) {
                    for (const r of chart.renderers.filter((r) => r.visible)) {
                        const y = r.data_source.data.y;
                        out[r.name] = y.length ? y[y.length - 1] : null;
                    }
                }
            }
            return out;
        }""",
        name,
    )


@contextmanager
def serving(tmp_path: Path, config: Path, page, args: tuple[str, ...] = ()):
    """`panel serve apps/` for one test; a failed assertion adds a screenshot, browser errors and the server log."""
    server = PanelServer(tmp_path, config, args=args)
    server.start()
    try:
        yield server
    except (AssertionError, PlaywrightError) as exc:  # (a locator's timeout is a PlaywrightError)
        shot = tmp_path / "failure.png"
        try:
            page.screenshot(path=str(shot), full_page=True, timeout=15_000)
        except PlaywrightError as failure:  # (e.g. a font that never loads): the test's own error matters more
            shot = f"none ({failure.message.splitlines()[0]})"
        raise AssertionError(f"{exc}\nscreenshot: {shot}\nbrowser errors: {page.errors}\n"
                             f"server log tail:\n{server.log_path.read_text()[-3000:]}") from None
    finally:
        server.stop()


def _metric(url: str, name: str, labels: dict[str, str]) -> float | None:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_page_shows_exact_lag_live_updates_and_source_down_then_up(broker, tmp_path, browser_page):
    run_async(create_topic(broker.bootstrap, "payments", 3))
    run_async(produce(broker.bootstrap, "payments", {0: 10, 1: 7, 2: 5}))
    run_async(commit(broker.bootstrap, "billing", "payments", {0: 4, 1: 7}))
    metrics_port = free_port()
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        "  - name: orders\n"
        "    kafka:\n"
        f"      bootstrap_servers: [\"{broker.bootstrap}\"]\n"
        "      cluster: local\n"
        "      interval_seconds: 0.5\n"
        "runtime:\n"
        "  max_backoff_seconds: 1\n"
        "exporter:\n"
        "  host: 127.0.0.1\n"
        f"  port: {metrics_port}\n"
    )
    with serving(tmp_path, config, browser_page) as server:
        page = browser_page
        line_updates = _patch_ids(page, '"pw-line-')
        page.goto(f"{server.url}?page=pipeline&pipeline=orders&section=kafka")
        # Partitions table, most lagging first; partition 2 has no commit: unknown, not 0.
        expect(page.get_by_text("Partitions (the 1,000 most lagging)")).to_be_visible(timeout=30_000)
        expect(partition_column(page, "lag")).to_have_text(["6", "0", "unknown"], timeout=30_000)
        expect(partition_column(page, "committed")).to_have_text(["4", "7", "unknown"])
        expect(partition_column(page, "high watermark")).to_have_text(["10", "7", "5"])
        expect(group_column(page, "lag")).to_have_text(["6"])
        expect(group_column(page, "state")).to_have_text(["Empty"])
        expect(page.locator('.pw-health[data-collector="kafka"]')).to_have_attribute("data-state", "up")

        # The exporter serves the same numbers alongside the app.
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        labels = {"pipeline": "orders", "cluster": "local", "consumergroup": "billing", "topic": "payments"}
        assert _metric(metrics_url, "kafka_consumergroup_lag", {**labels, "partition": "0"}) == 6
        assert _metric(metrics_url, "kafka_consumergroup_lag", {**labels, "partition": "2"}) is None

        # New records show up in the open page without a reload.
        run_async(produce(broker.bootstrap, "payments", {0: 5}))
        expect(partition_column(page, "lag")).to_have_text(["11", "0", "unknown"], timeout=30_000)
        # The live chart streamed the same value: its one line (billing / payments) ends at 11.
        try:
            wait_until(lambda: _chart_lines(page, "lag-chart") == {"billing / payments": 11.0}, 10)
        except AssertionError:
            raise AssertionError(f"lag chart lines: {_chart_lines(page, 'lag-chart')}") from None

        # A second viewer of the page: the charts' new points reach both in one update made once (the same
        # message), and both hold the same points of the line, each once and in order: the one that came later
        # got them whole from the store, the first one got the shared updates since.
        other = page.context.browser.new_page()
        other_errors: list[str] = []
        other.on("pageerror", lambda error: other_errors.append(str(error)))
        other_updates = _patch_ids(other, '"pw-line-')
        other.goto(f"{server.url}?page=pipeline&pipeline=orders&section=kafka")
        wait_until(lambda: _chart_lines(other, "lag-chart") == {"billing / payments": 11.0}, 30,
                   what="the second page's lag chart at 11")

        def one_update_for_both() -> set[str]:
            for view in (page, other):
                view.evaluate("0")  # lets Playwright hand over the frames received meanwhile
            return line_updates & other_updates

        wait_until(one_update_for_both, 15, what="one chart update sent to both sessions")
        shown = {}

        def same_points() -> bool:
            shown.update({view: _line_times(view, "lag-chart", "billing / payments") for view in (page, other)})
            return len(shown[page]) >= 5 and shown[page] == shown[other]

        try:
            wait_until(same_points, 15)
        except AssertionError:
            raise AssertionError(f"the two pages' points differ: {shown}") from None
        assert all(a < b for a, b in pairwise(shown[page])), shown[page]
        assert other_errors == [], other_errors
        other.close()

        # Broker gone: the page says so (down, with the reason) and marks the data stale.
        broker.stop()
        expect(page.locator('.pw-health[data-collector="kafka"]')).to_have_attribute("data-state", "down",
                                                                                      timeout=30_000)
        expect(page.locator(".pw-stale")).to_contain_text("STALE")
        assert _metric(metrics_url, "pipewatch_collector_up", {"pipeline": "orders", "collector": "kafka"}) == 0
        assert _metric(metrics_url, "kafka_consumergroup_lag", {**labels, "partition": "0"}) is None

        # Broker back (empty, in-memory): the collector recovers by itself and the page follows.
        broker.start()
        run_async(create_topic(broker.bootstrap, "payments", 3))
        run_async(produce(broker.bootstrap, "payments", {0: 3, 1: 3, 2: 3}))
        run_async(commit(broker.bootstrap, "billing", "payments", {0: 1, 1: 2, 2: 3}))
        expect(page.locator('.pw-health[data-collector="kafka"]')).to_have_attribute("data-state", "up",
                                                                                      timeout=60_000)
        expect(partition_column(page, "lag")).to_have_text(["2", "1", "0"], timeout=30_000)
        expect(page.locator(".pw-stale")).to_have_count(0)
        assert page.errors == []


def test_schema_registry_section_shows_subjects_changes_and_outage(registry, tmp_path, browser_page):
    from tests.test_schema_registry import _seed

    _seed(registry)
    metrics_port = free_port()
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        "  - name: catalog\n"
        "    schema_registry:\n"
        f"      url: {registry.url}\n"
        "      registry: main\n"
        "      interval_seconds: 0.5\n"
        "      inventory_refresh_seconds: 0.5\n"
        "runtime:\n"
        "  max_backoff_seconds: 1\n"
        "exporter:\n"
        f"  port: {metrics_port}\n"
    )
    with serving(tmp_path, config, browser_page) as server:
        page = browser_page
        page.goto(f"{server.url}?page=pipeline&pipeline=catalog&section=schema_registry")
        from apps.registry_view import _CHANGE_COLUMNS, _SUBJECT_COLUMNS

        def subjects(field: str):
            return live_column(page, "subjects-table", _SUBJECT_COLUMNS, field)

        expect(subjects("subject")).to_have_text(["audit-value", "inventory-value", "orders-value"], timeout=30_000)
        expect(subjects("versions")).to_have_text(["1", "1", "2"])
        expect(subjects("compatibility")).to_have_text(["BACKWARD (global)", "NONE", "BACKWARD (global)"])
        expect(page.locator(".pw-registry-facts")).to_contain_text("3 subjects")
        expect(page.locator('.pw-health[data-collector="schema_registry"]')).to_have_attribute("data-state", "up")

        registry.register("orders-value", '{"type":"record","name":"Order","fields":[]}')
        expect(live_column(page, "registry-changes-table", _CHANGE_COLUMNS, "change").first).to_have_text(
            "main: subject orders-value: version 3 registered (schema id 4)", timeout=30_000)
        expect(subjects("versions")).to_have_text(["1", "1", "3"])

        registry.failure = (500, 50001, "Error in the backend data store")
        expect(page.locator(".pw-registry-down")).to_contain_text("HTTP 500, error 50001", timeout=30_000)
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        assert _metric(metrics_url, "schema_registry_up", {"pipeline": "catalog", "registry": "main"}) == 0
        registry.failure = None
        expect(page.locator('.pw-health[data-collector="schema_registry"]')).to_have_attribute(
            "data-state", "up", timeout=30_000)
        expect(page.locator(".pw-registry-down")).to_have_count(0)
        assert page.errors == []


def test_profiling_section_shows_kpis_runs_live_and_exports_what_it_shows(postgres, pg_schema, tmp_path, browser_page):
    import io

    import asyncpg
    import pandas as pd

    from tests.profiling_util import ProfilerTables, utc
    from tests.test_profiling import _seed

    async def seed() -> None:
        connection = await asyncpg.connect(postgres.dsn)
        try:
            await _seed(await ProfilerTables(connection, pg_schema).create())
        finally:
            await connection.close()

    async def one_more_run() -> None:
        connection = await asyncpg.connect(postgres.dsn)
        try:
            await ProfilerTables(connection, pg_schema).run("invoices", utc(0), rows=77, run_id="run-live")
        finally:
            await connection.close()

    run_async(seed())
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        "  - name: warehouse\n"
        "    profiling:\n"
        f"      dsn: \"{postgres.dsn}\"\n"
        f"      schema: {pg_schema}\n"
        "      interval_seconds: 0.5\n"
        "exporter:\n"
        f"  port: {free_port()}\n"
    )
    with serving(tmp_path, config, browser_page) as server:
        page = browser_page
        page.goto(f"{server.url}?page=pipeline&pipeline=warehouse&section=profiling")
        expect(page.locator('.pw-kpi[data-kpi="runs"] .pw-kpi-value')).to_have_text("4", timeout=30_000)
        expect(page.locator('.pw-kpi[data-kpi="failure rate"] .pw-kpi-value')).to_have_text("25.0%")
        runs = page.locator(".tabulator").filter(has=page.locator('[tabulator-field="run id"]'))
        expect(runs.locator('.tabulator-row [tabulator-field="dataset"]')).to_have_text(
            ["orders", "orders", "orders", "customers", "customers", "orders"])

        run_async(one_more_run())  # shows up without a reload
        expect(runs.locator('.tabulator-row [tabulator-field="run id"]').first).to_have_text("run-live",
                                                                                           timeout=30_000)
        expect(page.locator('.pw-kpi[data-kpi="runs"] .pw-kpi-value')).to_have_text("5")

        with page.expect_download() as download:
            page.get_by_text("Runs as CSV").click()
        exported = pd.read_csv(io.StringIO(open(download.value.path()).read()))
        shown = runs.locator('.tabulator-row [tabulator-field="run id"]').all_inner_texts()
        assert list(exported["run id"]) == shown and len(shown) == 7
        assert page.errors == []


def test_flink_section_shows_jobs_graph_and_exceptions(flink, tmp_path, browser_page):
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        "  - name: streams\n"
        "    flink:\n"
        f"      rest_url: {flink.cluster.rest_url}\n"
        "      cluster: local\n"
        "      interval_seconds: 1\n"
        "      backpressure_refresh_seconds: 1\n"
        "exporter:\n"
        f"  port: {free_port()}\n"
    )
    with serving(tmp_path, config, browser_page) as server:
        page = browser_page
        page.goto(f"{server.url}?page=pipeline&pipeline=streams&section=flink")
        from apps.flink_view import _EXCEPTION_COLUMNS, _JOB_COLUMNS

        expect(live_column(page, "flink-jobs-table", _JOB_COLUMNS, "job")).to_have_text(
            sorted(["pipewatch steady job", "pipewatch failing job"]), timeout=30_000)
        # Rows are in job-name order (above); the failing job restarts every 2 s, so only the steady one is
        # RUNNING at every moment.
        steady_state = live_column(page, "flink-jobs-table", _JOB_COLUMNS, "state").nth(1)
        expect(steady_state.locator('.pw-job-state[data-state="RUNNING"]')).to_have_text("RUNNING")
        # The steady job in detail: its source is backpressured by the slow map.
        page.locator("select").filter(has=page.locator("option", has_text="pipewatch steady job")).select_option(
            label=f"pipewatch steady job ({flink.steady[:8]})")
        expect(page.locator(".pw-flink-job")).to_contain_text("checkpoints every 2.0 s", timeout=10_000)
        expect(page.locator('.pw-vertex[data-vertex="Source: orders source"]')).to_have_attribute(
            "data-backpressure", "HIGH", timeout=30_000)
        expect(page.locator('.pw-vertex[data-vertex="enrich (slow)"]')).to_be_visible()
        def exceptions(field: str):
            return live_column(page, "flink-exceptions-table", _EXCEPTION_COLUMNS, field)

        expect(exceptions("category").first).to_have_text("user code: arithmetic", timeout=30_000)
        expect(exceptions("exception").first).to_have_text("java.lang.ArithmeticException: / by zero")
        wait_until(lambda: _chart_lines(page, "flink-throughput-chart").get("enrich (slow)"), 30,
                   what="a throughput line for the slow vertex")
        assert page.errors == []


def test_change_feed_shows_a_new_row_live_and_payloads_as_text(postgres, pg_schema, tmp_path, browser_page):
    import asyncpg

    from tests.test_change_feed import _setup

    feed = run_async(_setup(postgres.dsn, pg_schema))

    async def write(statement: str, *args) -> None:
        connection = await asyncpg.connect(postgres.dsn)
        try:
            await connection.execute(statement, *args)
        finally:
            await connection.close()

    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        "  - name: shop\n"
        "    change_feed:\n"
        f"      dsn: \"{postgres.dsn}\"\n"
        f"      schema: {pg_schema}\n"
        f"      channel: {feed.channel}\n"
        "      entities:\n"
        "        - {name: Order, table: orders, key: order_key, fields: [status, note]}\n"
        "        - {name: Order Item, table: order items, key: id, events: [insert]}\n"
        "exporter:\n"
        f"  port: {free_port()}\n"
    )
    page = browser_page
    other = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})  # a second viewer: its own session
    other_errors: list[str] = []
    other.on("pageerror", lambda error: other_errors.append(str(error)))
    feed_patches = {page: _patch_ids(page, "-rows\""), other: _patch_ids(other, "-rows\"")}  # the table's rows
    card_patches = {page: _patch_ids(page, "-cards\""), other: _patch_ids(other, "-cards\"")}
    with serving(tmp_path, config, browser_page) as server, closing(other):
        for viewer in (page, other):
            viewer.goto(f"{server.url}?page=pipeline&pipeline=shop&section=change_feed")
            expect(viewer.locator('.pw-feed-connection[data-state="up"]')).to_be_visible(timeout=30_000)
        run_async(write(f'INSERT INTO "{pg_schema}".orders VALUES (42, \'new\', 5, $1)',
                        "<script>window.pwned=1</script>"))
        newest = page.locator(".slick-row").first  # the feed's table: columns time, entity, event, key, fields, ...
        expect(newest.locator(".slick-cell.l3")).to_have_text("42", timeout=10_000)
        expect(newest.locator(".slick-cell.l4")).to_have_text("status=new, note=<script>window.pwned=1</script>")
        assert page.evaluate("window.pwned") is None  # shown as text, never run
        expect(page.locator('.pw-feed-card[data-entity="Order"] .pw-feed-totals')).to_contain_text("1 inserts",
                                                                                                   timeout=10_000)
        # A full page (25 rows) stays 25 rows as changes arrive: the newest still comes first.
        run_async(write(f"INSERT INTO \"{pg_schema}\".orders SELECT g, 'bulk', 1, '' FROM generate_series(100, 129) g"))
        expect(newest.locator(".slick-cell.l3")).to_have_text("129", timeout=10_000)
        other_newest = other.locator(".slick-row").first
        expect(other_newest.locator(".slick-cell.l3")).to_have_text("129", timeout=10_000)
        # Both sessions got the same update, serialized once (one message id): the shared path, not one each.
        wait_until(lambda: feed_patches[page] & feed_patches[other], 10, what="one feed update sent to both sessions")
        # So are the cards, whose totals both show.
        expect(other.locator('.pw-feed-card[data-entity="Order"] .pw-feed-totals')).to_contain_text("31 inserts")
        expect(page.locator('.pw-feed-card[data-entity="Order"] .pw-feed-totals')).to_contain_text("31 inserts")
        assert card_patches[page] & card_patches[other]

        # A viewer that searches leaves the shared updates and comes back to them when it stops.
        other.bring_to_front()
        search = other.get_by_label("Search in the changed rows")
        search.fill("bulk")
        run_async(write(f'INSERT INTO "{pg_schema}".orders VALUES (130, \'late\', 1, \'\')'))
        expect(newest.locator(".slick-cell.l3")).to_have_text("130", timeout=10_000)
        expect(other_newest.locator(".slick-cell.l3")).to_have_text("129")
        expect(other.locator(".slick-row")).to_have_count(25)
        search.fill("")
        expect(other_newest.locator(".slick-cell.l3")).to_have_text("130", timeout=10_000)
        run_async(write(f'INSERT INTO "{pg_schema}".orders VALUES (131, \'late\', 1, \'\')'))
        for viewer in (page, other):
            expect(viewer.locator(".slick-row").first.locator(".slick-cell.l3")).to_have_text("131", timeout=10_000)

        # Away and back in the same session: the rebuilt table (the same shared ids) follows again.
        page.bring_to_front()
        page.get_by_role("button", name="Overview", exact=True).click()
        expect(page.locator(".pw-tile").first).to_be_visible(timeout=30_000)
        page.get_by_role("button", name="Pipeline", exact=True).click()  # its summary, then the section
        page.get_by_role("button", name="Change feed", exact=True).click()
        expect(newest.locator(".slick-cell.l3")).to_have_text("131", timeout=30_000)
        run_async(write(f'INSERT INTO "{pg_schema}".orders VALUES (132, \'late\', 1, \'\')'))
        for viewer in (page, other):
            expect(viewer.locator(".slick-row").first.locator(".slick-cell.l3")).to_have_text("132", timeout=10_000)
        assert page.errors == [] and other_errors == []


def _patch_ids(page, marker: str) -> set[str]:
    """Message ids of the PATCH-DOC messages the page's websocket receives whose content holds `marker` (a shared
    model id's prefix: the change feed's table, live chart lines)."""
    ids: set[str] = set()
    frames: list = []

    def received(payload) -> None:
        frames.append(payload)
        # A Bokeh message is a header, metadata and content frame (then any buffers): a content frame that changes
        # a shared model belongs to the header two frames before it.
        if len(frames) >= 3 and isinstance(payload, str) and marker in payload and isinstance(frames[-3], str):
            header = json.loads(frames[-3]) if frames[-3].startswith("{") else {}
            if header.get("msgtype") == "PATCH-DOC":
                ids.add(header["msgid"])
        del frames[:-3]

    page.on("websocket", lambda socket: socket.on("framereceived", received))
    return ids


def test_aggregate_page_combines_this_app_and_another_agent_through_prometheus(broker, tmp_path, browser_page):
    import socket

    run_async(create_topic(broker.bootstrap, "payments", 3))
    run_async(produce(broker.bootstrap, "payments", {0: 10, 1: 7, 2: 5}))
    run_async(commit(broker.bootstrap, "billing", "payments", {0: 4, 1: 7}))  # lag 6 + 0 (partition 2: no commit)
    run_async(commit(broker.bootstrap, "audit", "payments", {0: 9, 1: 7, 2: 2}))  # lag 1 + 0 + 3
    app_metrics, agent_metrics = free_port(), free_port()
    (tmp_path / "prometheus").mkdir()
    prometheus = LocalPrometheus(tmp_path / "prometheus", json.dumps({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "pipewatch", "static_configs": [
            {"targets": [f"127.0.0.1:{app_metrics}", f"127.0.0.1:{agent_metrics}"]}]}],
    }))
    kafka = f"{{bootstrap_servers: ['{broker.bootstrap}'], cluster: local, interval_seconds: 0.5"
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        f"pipelines:\n  - name: orders\n    kafka: {kafka}, consumer_groups: [billing]}}\n"
        f"exporter: {{host: 127.0.0.1, port: {app_metrics}}}\n"
        f"prometheus: {{url: '{prometheus.url}', selector: 'job=\"pipewatch\"', interval_seconds: 1}}\n"
    )
    agent_config = tmp_path / "agent.yml"
    agent_config.write_text(
        f"pipelines:\n  - name: audit\n    kafka: {kafka}, consumer_groups: [audit]}}\n"
        f"exporter: {{host: 127.0.0.1, port: {agent_metrics}}}\n"
    )
    agent = subprocess.Popen([sys.executable, "-m", "pipewatch.cli", "agent", "--config", str(agent_config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    prometheus.start()
    try:
        with serving(tmp_path, config, browser_page) as server:
            page = browser_page
            page.goto(f"{server.url}?pipeline=_aggregate")
            rows = page.locator(".slick-row").filter(has=page.locator('[data-field="agent"]'))
            expect(rows).to_have_count(2, timeout=60_000)
            by_pipeline = _aggregate_rows_once_ok(rows)
            # The app's own pipeline comes from this process, not a second time from Prometheus' scrape of it.
            assert by_pipeline == {
                "orders": {"agent": socket.gethostname(), "health": "ok", "lag": "6",
                           "checkpoint_age": "", "registry": "", "sources_down": ""},
                "audit": {"agent": f"127.0.0.1:{agent_metrics}", "health": "ok", "lag": "4",
                          "checkpoint_age": "", "registry": "", "sources_down": ""},
            }
            totals = page.locator(".pw-agg-totals")
            expect(totals).to_contain_text("2 pipelines on 2 agents: 2 ok, 0 not")
            expect(totals).to_contain_text("lag 10 messages")
            expect(page.locator('.pw-health[data-collector="prometheus"]')).to_have_attribute("data-state", "up")

            # The other agent stops: its pipeline stays on the page, marked agent down with the reason.
            agent.terminate()
            agent.wait(timeout=30)
            audit = rows.filter(has=page.locator('[data-field="pipeline"]', has_text="audit"))
            expect(audit.locator(_aggregate_cell("health"))).to_have_text("agent down", timeout=30_000)
            expect(audit.locator(_aggregate_cell("reason"))).to_have_text(
                f"Prometheus cannot scrape the agent at 127.0.0.1:{agent_metrics} (up = 0)")
            expect(audit.locator(_aggregate_cell("lag"))).to_have_text("unknown")
            expect(totals).to_contain_text("1 ok, 1 not")
            expect(totals).to_contain_text("lag 6 (+ 1 pipeline(s) unknown) messages")  # never a partial sum as whole
            assert page.errors == []
    finally:
        if agent.poll() is None:
            agent.terminate()
            agent.wait(timeout=30)
        prometheus.stop()


def _aggregate_rows_once_ok(rows) -> dict[str, dict[str, str]]:
    """The aggregate table's rows (pipeline -> cells shown) once every row is ok with a known lag."""
    shown: dict[str, dict[str, str]] = {}

    def all_ok() -> bool:
        shown.clear()
        for i in range(rows.count()):
            row = rows.nth(i)
            shown[row.locator(_aggregate_cell("pipeline")).inner_text()] = {
                field: row.locator(_aggregate_cell(field)).inner_text()
                for field in ("agent", "health", "lag", "checkpoint_age", "registry", "sources_down")}
        return all(r["health"] == "ok" and r["lag"] not in ("unknown", "") for r in shown.values())

    wait_until(all_ok, 60, interval=0.5, what="every pipeline ok with its lag")
    return shown


def live_column(page, table: str, columns, field: str):
    """The cells of one column of a live table (apps/widgets.LiveTable named `table`), top to bottom.
    SlickGrid numbers the columns; `columns` is the view's column dict."""
    return page.locator(f".pw-table-{table} .slick-row .slick-cell.l{list(columns).index(field)}")


def partition_column(page, field: str):
    from apps.views import _PARTITION_COLUMNS

    return live_column(page, "partitions-table", _PARTITION_COLUMNS, field)


def group_column(page, field: str):
    from apps.views import _GROUP_COLUMNS

    return live_column(page, "groups-table", _GROUP_COLUMNS, field)


def _aggregate_cell(field: str) -> str:
    """A cell of the aggregate table by its field (SlickGrid numbers the columns; an empty cell has no content)."""
    from apps.aggregate_table import COLUMNS

    return f".slick-cell.l{list(COLUMNS).index(field)}"


def _small_multiples(page) -> dict[str, float | None]:
    """The aggregate page's small charts in the browser: line name (pipeline @ agent) -> last y value."""
    return page.evaluate(
        """() => {
            const out = {};
            for (const doc of Bokeh.documents) {
                for (const chart of [...doc._all_models.values()].filter((m) => m.name === "small-multiple")) {
                    for (const r of chart.renderers) {
                        const y = r.data_source.data.y;
                        out[r.name] = y.length ? y[y.length - 1] : null;
                    }
                }
            }
            return out;
        }"""
    )


def test_aggregate_page_combines_a_local_pipeline_and_a_remote_agent_through_its_json_api(broker, tmp_path,
                                                                                          browser_page):
    import socket

    run_async(create_topic(broker.bootstrap, "payments", 3))
    run_async(produce(broker.bootstrap, "payments", {0: 10, 1: 7, 2: 5}))
    run_async(commit(broker.bootstrap, "billing", "payments", {0: 4, 1: 7}))  # lag 6 + 0 (partition 2: no commit)
    run_async(commit(broker.bootstrap, "audit", "payments", {0: 9, 1: 7, 2: 2}))  # lag 1 + 0 + 3
    app_metrics, agent_port = free_port(), free_port()
    agent_url = f"http://127.0.0.1:{agent_port}"
    kafka = f"{{bootstrap_servers: ['{broker.bootstrap}'], cluster: local, interval_seconds: 0.5"
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        f"pipelines:\n  - name: orders\n    kafka: {kafka}, consumer_groups: [billing]}}\n"
        f"exporter: {{host: 127.0.0.1, port: {app_metrics}}}\n"
        f"remote_agents:\n  - {{url: '{agent_url}', basic_auth: {{username: reader, password: s3cret}}, "
        "interval_seconds: 0.5, timeout_seconds: 2}\n"
        "runtime: {max_backoff_seconds: 1}\n"
    )
    agent_config = tmp_path / "agent.yml"
    agent_config.write_text(
        f"pipelines:\n  - name: audit\n    kafka: {kafka}, consumer_groups: [audit]}}\n"
        f"exporter: {{host: 127.0.0.1, port: {agent_port}, basic_auth: {{username: reader, password: s3cret}}}}\n"
    )
    agent = subprocess.Popen([sys.executable, "-m", "pipewatch.cli", "agent", "--config", str(agent_config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        with serving(tmp_path, config, browser_page) as server:
            page = browser_page
            page.goto(f"{server.url}?page=aggregate")
            rows = page.locator(".slick-row").filter(has=page.locator('[data-field="agent"]'))
            expect(rows).to_have_count(2, timeout=60_000)
            by_pipeline = _aggregate_rows_once_ok(rows)
            assert by_pipeline == {
                "orders": {"agent": socket.gethostname(), "health": "ok", "lag": "6",
                           "checkpoint_age": "", "registry": "", "sources_down": ""},
                "audit": {"agent": agent_url, "health": "ok", "lag": "4",
                          "checkpoint_age": "", "registry": "", "sources_down": ""},
            }
            totals = page.locator(".pw-agg-totals")
            expect(totals).to_contain_text("2 pipelines on 2 agents: 2 ok, 0 not")
            expect(totals).to_contain_text("lag 10 messages")
            expect(page.locator(f'.pw-health[data-collector="remote:127.0.0.1:{agent_port}"]')).to_have_attribute(
                "data-state", "up")
            # A small chart per pipeline: this process's lag from its own series, the agent's from its series API.
            wanted = {f"orders @ {socket.gethostname()}": 6.0, f"audit @ {agent_url}": 4.0}
            wait_until(lambda: _small_multiples(page) == wanted, 30, what=f"small charts ending at {wanted}")

            # The table sorts in the browser: by lag, ascending then descending (rows in their on-screen order).
            def on_screen() -> list[str]:
                placed = [(rows.nth(i).bounding_box()["y"],
                           rows.nth(i).locator(_aggregate_cell("pipeline")).inner_text())
                          for i in range(rows.count())]
                return [pipeline for _, pipeline in sorted(placed)]

            header = page.locator(".slick-header-column", has_text="lag").first
            header.click()
            wait_until(lambda: on_screen() == ["audit", "orders"], 10, what="rows sorted by lag, ascending")
            header.click()
            wait_until(lambda: on_screen() == ["orders", "audit"], 10, what="rows sorted by lag, descending")

            # The other agent stops: its pipeline stays on the page, marked agent down with the reason.
            agent.terminate()
            agent.wait(timeout=30)
            audit = rows.filter(has=page.locator('[data-field="pipeline"]', has_text="audit"))
            expect(audit.locator(_aggregate_cell("health"))).to_have_text("agent down", timeout=30_000)
            expect(audit.locator(_aggregate_cell("reason"))).to_contain_text(
                f"agent at {agent_url} not answering: connection_refused: GET /api/v1/")
            expect(audit.locator(_aggregate_cell("lag"))).to_have_text("unknown")
            expect(totals).to_contain_text("1 ok, 1 not")
            expect(totals).to_contain_text("lag 6 (+ 1 pipeline(s) unknown) messages")  # never a partial sum as whole
            expect(page.locator(f'.pw-health[data-collector="remote:127.0.0.1:{agent_port}"]')).to_have_attribute(
                "data-state", "down")
            assert page.errors == []
    finally:
        if agent.poll() is None:
            agent.terminate()
            agent.wait(timeout=30)


def test_errors_page_shows_a_real_collector_failure_growing_and_filters_it(registry, tmp_path, browser_page):
    from tests.test_schema_registry import _seed

    _seed(registry)
    # A registry that is up but fails one subject's reads: a warning, while the refused Kafka port is an error.
    registry.path_failures["/subjects/orders-value/versions/latest"] = (500, 50002, "Operation timed out")
    closed = free_port()  # nothing listens there
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        "  - name: orders\n"
        "    kafka:\n"
        f"      bootstrap_servers: [\"127.0.0.1:{closed}\"]\n"
        "      interval_seconds: 0.5\n"
        "      timeout_seconds: 10\n"
        "  - name: catalog\n"
        "    schema_registry:\n"
        f"      url: {registry.url}\n"
        "      interval_seconds: 0.5\n"
        "runtime:\n"
        "  max_backoff_seconds: 1\n"
        "exporter:\n"
        f"  port: {free_port()}\n"
    )
    with serving(tmp_path, config, browser_page) as server:
        page = browser_page
        page.goto(f"{server.url}?page=errors")
        errors = page.locator(".tabulator").filter(has=page.locator('[tabulator-field="hint"]'))
        rows = errors.locator(".tabulator-row")
        kafka = rows.filter(has=page.locator('[tabulator-field="component"]', has_text="kafka"))
        expect(kafka).to_have_count(1, timeout=30_000)
        expect(kafka.locator('[tabulator-field="pipeline"]')).to_have_text("orders")
        expect(kafka.locator('[tabulator-field="category"]')).to_have_text("connection_refused")
        expect(kafka.locator(".pw-error-severity")).to_have_attribute("data-severity", "error")
        expect(kafka.locator('[tabulator-field="message"]')).to_have_text(
            f"ConnectionRefusedError: no bootstrap server reachable (127.0.0.1:{closed}: connection refused)")
        expect(kafka.locator('[tabulator-field="hint"]')).to_have_text(
            f"Nothing accepts connections at 127.0.0.1:{closed}: check the host and port in the config and that the "
            "service is running and listening there.")
        # Every failed run counts: the count grows while the page is open.
        first = int(kafka.locator('[tabulator-field="count"]').inner_text())
        assert first >= 1
        wait_until(lambda: int(kafka.locator('[tabulator-field="count"]').inner_text()) > first, 30,
                   what="the Kafka error's count to grow")
        registry_row = rows.filter(has=page.locator('[tabulator-field="component"]', has_text="schema_registry"))
        expect(registry_row.locator('[tabulator-field="category"]')).to_have_text("server_error", timeout=30_000)
        expect(page.locator(".pw-errors-count")).to_have_attribute("data-shown", "2")

        page.locator(".pw-errors-severity select").select_option("warning")
        expect(rows).to_have_count(1, timeout=10_000)
        expect(rows.locator('[tabulator-field="component"]')).to_have_text("schema_registry")
        expect(rows.locator('[tabulator-field="pipeline"]')).to_have_text("catalog")
        expect(rows.locator(".pw-error-severity")).to_have_attribute("data-severity", "warning")
        expect(rows.locator('[tabulator-field="message"]')).to_have_text(
            "RegistryError: GET /subjects/orders-value/versions/latest: HTTP 500, error 50002: Operation timed out")
        expect(rows.locator('[tabulator-field="hint"]')).to_contain_text(
            f"Error 50002: the registry at {registry.url} timed out waiting for its backing store")
        expect(page.locator(".pw-errors-count")).to_have_attribute("data-shown", "1")

        page.locator(".pw-errors-severity select").select_option("all")
        expect(rows).to_have_count(2, timeout=10_000)
        page.locator(".pw-errors-component select").select_option("kafka")
        expect(rows).to_have_count(1, timeout=10_000)
        expect(rows.locator('[tabulator-field="component"]')).to_have_text("kafka")
        page.locator(".pw-errors-component select").select_option("all")
        expect(rows).to_have_count(2, timeout=10_000)
        page.locator(".pw-errors-pipeline select").select_option("catalog")
        expect(rows).to_have_count(1, timeout=10_000)
        expect(rows.locator('[tabulator-field="component"]')).to_have_text("schema_registry")
        assert page.errors == []

"""Hostile strings from every source reach every page as text, and never run (issue #17).

One `panel serve` for every page. The monitored systems are real where they can be (the broker, PostgreSQL
with ProfileMesh tables and a change feed, the schema-registry stand-in); Flink answers with its recorded
2.3 REST answers (tests/flink_responses) served from a small local HTTP server, with hostile job and
vertex names and exception messages. Each name carries an HTML payload that sets `window.__pwned` if the
browser ever parses it as markup; the test asserts the literal string is on the page as text and that
`window.__pwned` stays undefined, after opening each page and each drill-down and after selecting rows.

Pages: the overview (dark and light) and its link, the pipeline page with every section (light, then dark), the
Flink jobs, the consumer group and a profiling run drilled into, rows of a live table, of the profiling tables and
of the change feed selected, the report downloaded and opened from its file, the aggregate and errors pages (dark
and light). Screenshots of the pipeline page: /tmp/hostile-light.png and /tmp/hostile-dark.png.

A hostile client id and host (a group member's, in the group drill-down's members table): the local broker (Tansu)
answers DescribeGroups with empty client ids and hosts (see tests/test_kafka_depth.py), so no member's client id can
come through it. The second test takes a snapshot from the real broker, puts a hostile member into it, and serves it
from a real Api (as an agent does) to a dashboard in mirror mode.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote

import pytest
from playwright.sync_api import expect

from apps.pages import SECTIONS
from tests.kafka_util import commit, create_topic, produce
from tests.services import free_port, run_async, send_json, wait_until
from tests.test_app_browser import serving
from tests.test_change_feed import _install as install_feed

pytestmark = pytest.mark.browser

IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=1</script>"
PIPELINE = "ops.team-1_x"  # (pipeline names are validated config: [A-Za-z0-9_.-])
GROUP = f"billing{IMG}' onmouseover='window.__pwned=1"  # (quotes too: attributes)
STEADY_JOB = f"steady {IMG}"
FAILING_JOB = f"failing {SCRIPT}"
VERTEX = f"enrich {IMG}"
EXCEPTION = f"/ by {SCRIPT}"
SUBJECT = f"orders{IMG}"
REGISTRY_ERROR = f"Operation timed out {SCRIPT}"
DATASET = f"d`{IMG}`"  # the reported one: a backtick ended the Markdown code span around it
ENVIRONMENT = IMG
TABLE = f"t{SCRIPT}"
COLUMN = f"c{IMG}$$x^2$$"  # (TeX: Bokeh draws a title or axis label holding it as a formula)
FEED_KEY = f"k{IMG}"
FEED_VALUE = f"=1+1{SCRIPT}"

WAIT = 30_000
"""Milliseconds a step may take (Playwright's `expect` waits 5 s by default: too short on a busy machine)."""

_RECORDED = json.loads((Path(__file__).parent / "flink_responses" / "flink-2.3.json").read_text())


class FakeFlink:
    """Flink's recorded REST answers, with hostile names and messages written into them (or other `names`: the
    recorded name -> the one served)."""

    def __init__(self, names: dict[str, str] | None = None) -> None:
        text = json.dumps(_RECORDED["responses"])
        if names is None:
            names = {"pipewatch steady job": STEADY_JOB, "pipewatch failing job": FAILING_JOB,
                     "enrich (slow)": VERTEX, "/ by zero": EXCEPTION}
        for old, new in names.items():
            text = text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1])
        self.responses = {unquote(key): value for key, value in json.loads(text).items()}
        responses = self.responses

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                params = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(query, keep_blank_values=True)))
                key = unquote(path.removeprefix("/v1")) + (f"?{params}" if params else "")
                status, body = (200, responses[key]) if key in responses else (
                    404, {"errors": [f"org.apache.flink.runtime.rest.NotFoundException: {key}"]})
                send_json(self, status, body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_flink():
    flink = FakeFlink()
    yield flink
    flink.stop()


_PAGE_TEXT = """() => {
    // Every text node of the page, inside Panel's and Bokeh's shadow roots too; not scripts' and styles' own text
    // (the document's JSON is in a script: the strings are there as data, which proves nothing).
    const parts = [];
    const visit = (root) => {
        const walker = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
        for (let node = walker.currentNode; node; node = walker.nextNode()) {
            if (node.nodeType === Node.TEXT_NODE) {
                const parent = node.parentNode && node.parentNode.nodeName;
                if (parent !== "SCRIPT" && parent !== "STYLE") parts.push(node.data);
            } else if (node.shadowRoot) {
                visit(node.shadowRoot);
            }
        }
    };
    visit(document.documentElement);
    return parts.join("");
}"""
_MARKUP = """() => {
    // Elements a hostile string would have made had it been parsed as HTML, anywhere (shadow roots too).
    let found = 0;
    const visit = (root) => {
        for (const el of root.querySelectorAll("*")) {
            if ([...el.attributes].some((a) => a.name.startsWith("on") && a.value.includes("__pwned"))
                || (el.nodeName === "SCRIPT" && el.type !== "application/json"  // (a report's document: data)
                    && el.textContent.includes("__pwned"))) found++;
            if (el.shadowRoot) visit(el.shadowRoot);
        }
    };
    visit(document);
    return found;
}"""


def _shows(page, *strings: str, timeout: float = 30.0) -> None:
    """Each string is on the page as text, and nothing hostile ran or was parsed as markup."""
    missing: list[str] = []

    def all_there() -> bool:
        text = page.evaluate(_PAGE_TEXT)
        missing[:] = [s for s in strings if s not in text]
        return not missing

    try:
        wait_until(all_there, timeout, interval=0.25, what="the hostile strings shown as text")
    except AssertionError:
        raise AssertionError(f"not on the page as text: {missing}") from None
    _never_ran(page)


_TEX = """() => {
    // Chart titles and axis labels Bokeh would read as TeX: a plain string holding a TeX delimiter.
    if (typeof Bokeh === "undefined") return [];
    const tex = /\\$\\$|\\\\\\[|\\\\\\(/;
    return Bokeh.documents.flatMap((doc) => [...doc.all_models])
        .map((m) => m.type === "Title" ? m.text : m.type.endsWith("Axis") ? m.axis_label : null)
        .filter((text) => typeof text === "string" && tex.test(text));
}"""


def _never_ran(page) -> None:
    assert page.evaluate("typeof window.__pwned") == "undefined", "a hostile string ran as a script"
    assert page.evaluate(_MARKUP) == 0, "a hostile string was parsed as markup"
    assert page.evaluate(_TEX) == [], "a hostile string would be drawn as TeX"


def _choose(page, value: str) -> None:
    """Pick the option `value` of the select that has it, as a user does (the select's change event), from the
    page's script: a CSS selector for an option whose value is hostile markup would need escaping of its own."""
    assert page.evaluate("""(value) => {
        const visit = (root) => {
            for (const el of root.querySelectorAll("*")) {
                if (el.nodeName === "SELECT" && [...el.options].some((o) => o.value === value)) return el;
                const inner = el.shadowRoot && visit(el.shadowRoot);
                if (inner) return inner;
            }
            return null;
        };
        const select = visit(document);
        if (!select) return false;
        select.value = value;
        select.dispatchEvent(new Event("change", {bubbles: true}));
        return true;
    }""", value), f"no select offers {value!r}"


def _click(page, selector: str, text: str) -> None:
    """Click the element matching `selector` whose text is exactly `text` (from the page's script, see `_choose`)."""
    assert page.evaluate("""([selector, text]) => {
        const visit = (root) => {
            for (const el of root.querySelectorAll(selector)) if (el.textContent === text) return el;
            for (const el of root.querySelectorAll("*")) {
                const inner = el.shadowRoot && visit(el.shadowRoot);
                if (inner) return inner;
            }
            return null;
        };
        const found = visit(document);
        if (!found) return false;
        found.click();
        return true;
    }""", [selector, text]), f"nothing matches {selector} with {text!r}"


_CHOICES = """() => {
    const labels = [];
    const visit = (root) => {
        for (const el of root.querySelectorAll(".choices__item--choice")) labels.push(el.textContent);
        for (const el of root.querySelectorAll("*")) if (el.shadowRoot) visit(el.shadowRoot);
    };
    visit(document);
    return labels.sort();
}"""


def _drill_down(page, section: str, group: str) -> None:
    """A section's drill-downs: each Flink job (its facts and graph), the group, a profiling run; rows selected."""
    if section == "flink":
        _choose(page, f"{STEADY_JOB} ({_RECORDED['steady'][:8]})")
        expect(page.locator(".pw-vertex", has_text=VERTEX)).to_be_visible(timeout=WAIT)
        _shows(page, VERTEX)
        _choose(page, f"{FAILING_JOB} ({_RECORDED['failing'][:8]})")
        expect(page.locator(".pw-flink-job")).to_contain_text("RESTARTING", timeout=WAIT)
        _shows(page, FAILING_JOB, EXCEPTION)
    elif section == "kafka":
        _choose(page, group)
        expect(page.locator(".pw-table-members-table")).to_be_visible(timeout=WAIT)
        _shows(page, group)
        _click(page, ".slick-cell", group)  # a row of a live table (the groups') selected
    elif section == "profiling":
        _click(page, '.tabulator-row [tabulator-field="run id"]', "run-new")
        title = f"Column metrics of run run-new of {DATASET}"
        expect(page.locator(".pw-run-title")).to_contain_text(title, timeout=WAIT)
        # The run detail (the drift table has a "metric" column too, not a "value" one).
        detail = page.locator(".tabulator").filter(has=page.locator('[tabulator-field="value"]'))
        expect(detail.locator('.tabulator-row [tabulator-field="column"]')).to_have_text([COLUMN], timeout=WAIT)
        _click(page, '.tabulator-row [tabulator-field="table"]', TABLE)  # a drift alert's row
        # The filters' options (Choices.js draws their labels as HTML: escaped, they read as written).
        assert {DATASET, ENVIRONMENT} <= set(page.evaluate(_CHOICES))
        _shows(page, DATASET, ENVIRONMENT, COLUMN)
        # The selected run stays selected when the page shows the collector's next snapshot (of the same runs).
        status = 'Bokeh.documents[0].get_model_by_name("profiling-status").text'
        shown = page.evaluate(status)
        page.wait_for_function(f"(shown) => {status} !== shown", arg=shown, timeout=WAIT)
        expect(page.locator(".pw-run-title")).to_contain_text(title, timeout=WAIT)
    elif section == "change_feed":
        _click(page, ".slick-cell", FEED_KEY)  # a change-feed row
        _shows(page, FEED_KEY)
    _never_ran(page)


def _screenshot(page, path: str) -> None:
    """The whole page, through the DevTools protocol (Playwright's own waits for web fonts, which never load
    offline)."""
    import base64

    session = page.context.new_cdp_session(page)
    shot = session.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    Path(path).write_bytes(base64.b64decode(shot["data"]))
    session.detach()


async def _group_as_stored(bootstrap: str) -> str:
    """The group id as the broker lists it: the local broker (Tansu) stores <, > and " percent-encoded, so that is
    what any client, pipewatch included, reads back."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (group,) = [g for g, _ in await admin.list_consumer_groups() if g.startswith("billing")]
        return group
    finally:
        await admin.close()


async def _seed_postgres(dsn: str, schema: str):
    import asyncpg

    from monitoring.config import ChangeFeedSource
    from tests.profiling_util import ProfilerTables, utc

    connection = await asyncpg.connect(dsn)
    try:
        tables = await ProfilerTables(connection, schema).create()
        for hours, run_id in ((30, "run-old"), (1, "run-new")):
            await tables.run(DATASET, utc(hours), environment=ENVIRONMENT, run_id=run_id)
            await tables.metric(run_id, DATASET, COLUMN, "mean", "1.5" if hours > 1 else "2.5", utc(hours))
        await tables.drift(TABLE, COLUMN, "mean", 1.5, 2.5, "high", utc(1))
        await tables.state(TABLE, "full", utc(1), reason=f"changed {SCRIPT}", rows=10)
        await connection.execute(f'CREATE TABLE "{schema}".notes (k text PRIMARY KEY, v text)')
    finally:
        await connection.close()
    feed = ChangeFeedSource.model_validate({
        "dsn": dsn, "schema": schema, "channel": schema.lower(), "poll_interval_seconds": 0.5,
        "entities": [{"name": "Note", "table": "notes", "key": "k", "fields": ["v"]}]})
    await install_feed(dsn, feed)
    return feed


async def _insert_note(dsn: str, schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f'INSERT INTO "{schema}".notes VALUES ($1, $2)', FEED_KEY, FEED_VALUE)
    finally:
        await connection.close()


@pytest.mark.timeout(600)  # every page and section, in both themes
def test_hostile_strings_from_every_source_show_as_text_on_every_page(broker, registry, fake_flink, postgres,
                                                                      pg_schema, tmp_path, browser_page):
    from tests.test_schema_registry import AVRO

    run_async(create_topic(broker.bootstrap, "payments", 1))
    run_async(produce(broker.bootstrap, "payments", {0: 3}))
    run_async(commit(broker.bootstrap, GROUP, "payments", {0: 1}))
    group = run_async(_group_as_stored(broker.bootstrap))
    assert "onerror=" in group and "'" in group
    registry.register(SUBJECT, AVRO)
    registry.register("orders-value", AVRO)
    registry.path_failures["/subjects/orders-value/versions/latest"] = (500, 50002, REGISTRY_ERROR)
    feed = run_async(_seed_postgres(postgres.dsn, pg_schema))
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        f"  - name: {json.dumps(PIPELINE)}\n"
        "    kafka:\n"
        f"      bootstrap_servers: [\"{broker.bootstrap}\"]\n"
        "      interval_seconds: 0.5\n"
        "    schema_registry:\n"
        f"      url: {registry.url}\n"
        "      interval_seconds: 0.5\n"
        "      inventory_refresh_seconds: 0.5\n"
        "    flink:\n"
        f"      rest_url: {fake_flink.url}\n"
        "      interval_seconds: 1\n"
        "    profiling:\n"
        f"      dsn: \"{postgres.dsn}\"\n"
        f"      schema: {pg_schema}\n"
        "      interval_seconds: 0.5\n"
        "    change_feed:\n"
        f"      dsn: \"{postgres.dsn}\"\n"
        f"      schema: {pg_schema}\n"
        f"      channel: {feed.channel}\n"
        "      entities:\n"
        "        - {name: Note, table: notes, key: k, fields: [v]}\n"
        "runtime:\n"
        "  max_backoff_seconds: 1\n"
        "exporter:\n"
        f"  port: {free_port()}\n"
    )
    page = browser_page
    page.set_default_timeout(WAIT)
    with serving(tmp_path, config, page) as server:
        run_async(_insert_note(postgres.dsn, pg_schema))  # the feed delivers it while the pages open
        # Overview, light and dark: the pipeline's tile, its link carrying the name URL-encoded.
        page.goto(f"{server.url}?page=overview&theme=dark")
        _shows(page, PIPELINE, timeout=60)
        page.goto(f"{server.url}?page=overview")
        _shows(page, PIPELINE)
        link = page.locator(".pw-tile a").first
        expect(link).to_have_attribute("href", f"?page=pipeline&pipeline={PIPELINE}", timeout=WAIT)
        link.click()

        # The pipeline's summary, then every section (Kafka, schema registry, Flink, profiling, change feed) by its
        # link, which carries the hostile name URL-encoded.
        expect(page.locator(".pw-health").first).to_be_visible(timeout=2 * WAIT)
        shown_in = {"kafka": (group,), "schema_registry": (SUBJECT, REGISTRY_ERROR),
                    "flink": (STEADY_JOB, FAILING_JOB, EXCEPTION),
                    "profiling": (DATASET, ENVIRONMENT, TABLE, COLUMN, f"changed {SCRIPT}"),
                    "change_feed": (FEED_KEY, f"v={FEED_VALUE}")}
        summary = page.url
        for section in shown_in:
            expect(page.locator(f'.pw-section-link[data-section="{section}"]')).to_have_attribute(
                "href", f"?page=pipeline&pipeline={PIPELINE}&section={section}", timeout=WAIT)
        page.locator('.pw-section-link[data-section="kafka"]').click()  # a link: the section's page, anew
        for section, strings in shown_in.items():
            if section != "kafka":  # the sidebar: the next section in place
                page.get_by_role("button", name=SECTIONS[section], exact=True).click()
            expect(page).to_have_url(f"{server.url}?page=pipeline&pipeline={PIPELINE}&section={section}",
                                     timeout=WAIT)
            _shows(page, *strings, timeout=60)
            _drill_down(page, section, group)
            _screenshot(page, f"/tmp/hostile-light-{section}.png")

        # The report, downloaded from the summary and opened from its file (below).
        page.goto(summary)
        with page.expect_download(timeout=2 * WAIT) as download:
            page.get_by_role("button", name="Report").click()
        report = tmp_path / "report.html"
        download.value.save_as(report)
        _never_ran(page)

        # The same sections in the dark theme.
        page.goto(f"{server.url}?page=pipeline&pipeline={PIPELINE}&theme=dark")
        for section, strings in shown_in.items():
            page.get_by_role("button", name=SECTIONS[section], exact=True).click()
            _shows(page, *strings, timeout=60)
            _screenshot(page, f"/tmp/hostile-dark-{section}.png")

        # The aggregate and errors pages, dark and light.
        for theme in ("dark", "default"):
            page.goto(f"{server.url}?page=aggregate&theme={theme}")
            _shows(page, PIPELINE)
            page.goto(f"{server.url}?page=errors&theme={theme}")
            _shows(page, PIPELINE, REGISTRY_ERROR)
            page.locator(".pw-errors-pipeline select").select_option(PIPELINE)
            _shows(page, REGISTRY_ERROR)

        page.goto(report.as_uri())
        _shows(page, PIPELINE, STEADY_JOB, FAILING_JOB, REGISTRY_ERROR, timeout=10)
        assert page.errors == []


CLIENT_ID = IMG
CLIENT_HOST = SCRIPT


def test_a_hostile_client_id_and_host_show_as_text_in_the_group_drill_down(broker, tmp_path, browser_page):
    """An agent whose snapshot (the real broker's, with a hostile member put in) a mirror dashboard copies: the
    members table shows the member's client id and host as text, and neither runs, in the light and dark themes."""
    import dataclasses
    import time

    from apps.views import _MEMBER_COLUMNS, _PARTITION_COLUMNS
    from collectors.aggregate.mirror import STATE_PATH
    from collectors.kafka.collector import KafkaCollector
    from exporters.api import Api
    from monitoring.config import KafkaSource
    from monitoring.health import CollectorHealth, State
    from monitoring.models.kafka import Member
    from monitoring.store import Store
    from tests.hostile_server import HostileAgent
    from tests.test_app_browser import live_column

    run_async(create_topic(broker.bootstrap, "payments", 1))
    run_async(produce(broker.bootstrap, "payments", {0: 3}))
    run_async(commit(broker.bootstrap, "billing", "payments", {0: 1}))
    collected = Store()

    async def collect() -> None:
        collector = KafkaCollector("orders", KafkaSource(bootstrap_servers=[broker.bootstrap]))
        try:
            await collector.collect(collected)
        finally:
            await collector.close()

    run_async(collect())
    t, snapshot = collected.snapshot(("orders", "kafka"))
    (group,) = snapshot.groups
    assert group.group_id == "billing" and group.members == ()  # (Tansu: no live member, no client id)
    member = Member("consumer-1-5a7c", CLIENT_ID, CLIENT_HOST, (("payments", 0),))
    group = dataclasses.replace(group, state="Stable", members=(member,),
                                partitions=tuple(dataclasses.replace(p, owner=member.label) for p in group.partitions))
    store = Store()
    store.publish_snapshot(("orders", "kafka"), dataclasses.replace(snapshot, groups=(group,)), t)
    store.set_health(CollectorHealth("orders", "kafka", broker.bootstrap, 600.0, state=State.UP,
                                     last_success=time.time(), runs=1))
    page = browser_page
    page.set_default_timeout(WAIT)
    with HostileAgent() as agent:
        agent.serve_api(Api(store, time.time()), STATE_PATH)
        config = tmp_path / "pipewatch.yml"
        config.write_text(  # (the dashboard runs no collector: the broker is only the pipeline's declared source)
            "pipelines:\n"
            "  - name: orders\n"
            "    kafka:\n"
            f"      bootstrap_servers: [\"{broker.bootstrap}\"]\n"
            f"mirror: {agent.url}\n")
        with serving(tmp_path, config, page) as server:
            for theme in ("default", "dark"):
                page.goto(f"{server.url}?page=pipeline&pipeline=orders&section=kafka&theme={theme}")
                expect(page.locator('.pw-health[data-collector="mirror"]')).to_have_attribute(
                    "data-state", "up", timeout=2 * WAIT)
                page.get_by_label("Drill down into").select_option("billing")
                members = page.locator(".pw-table-members-table")
                expect(live_column(page, "members-table", _MEMBER_COLUMNS, "client id")).to_have_text([CLIENT_ID])
                expect(live_column(page, "members-table", _MEMBER_COLUMNS, "host")).to_have_text([CLIENT_HOST])
                expect(live_column(page, "partitions-table", _PARTITION_COLUMNS, "owner")).to_have_text(
                    [f"{CLIENT_ID}@{CLIENT_HOST}"])
                expect(members.get_by_text(CLIENT_ID, exact=True)).to_be_visible()
                expect(members.get_by_text(CLIENT_HOST, exact=True)).to_be_visible()
                expect(members.locator("img")).to_have_count(0)
                expect(members.locator("script")).to_have_count(0)
                expect(page.locator("img[onerror]")).to_have_count(0)
                _never_ran(page)  # window.__pwned undefined; no element with an on* or script from a payload
            assert any(path == STATE_PATH for path, _ in agent.requests)
        assert page.errors == []

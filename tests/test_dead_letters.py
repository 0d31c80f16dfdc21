"""Dead letters as data quality, against a real Kafka-protocol broker: known counts produced to a pipeline's input
and dead-letter topics between two cycles give exact counts, rates and the invalid ratio; a pipeline that declares
no dead-letter topic gets no series and no value."""

from __future__ import annotations

import math

import httpx
import pytest
from playwright.sync_api import expect

from apps.dead_letter_view import DeadLetterView
from apps.overview_view import tiles_html
from collectors.kafka.collector import KafkaCollector
from exporters.server import start_exporter
from monitoring.config import KafkaSource
from monitoring.evaluation import Evaluator
from monitoring.format import rate as format_rate
from monitoring.models.kafka import KafkaSnapshot
from monitoring.runtime import Supervisor
from monitoring.store import Store
from tests.kafka_util import commit, create_topic, produce
from tests.services import free_port, run_async
from tests.test_app_browser import serving
from tests.test_exporter import _samples


def _collector(pipeline: str, bootstrap: str, **settings) -> KafkaCollector:
    # A rate window shorter than a cycle: each cycle's rates cover exactly the time since the one before.
    return KafkaCollector(pipeline, KafkaSource(bootstrap_servers=[bootstrap], cluster="local", interval_seconds=0.2,
                                                timeout_seconds=5, rate_window_seconds=0.001,
                                                consumer_groups=["billing"], **settings))


def _value(store: Store, name: str, *labels: str) -> float | None:
    point = store.latest(name, labels)
    return None if point is None else point[1]


async def test_dead_letter_rate_and_invalid_ratio_from_known_counts(broker):
    bootstrap = broker.bootstrap
    for topic, partitions in (("orders.raw", 2), ("orders.dlq", 1), ("audit", 1)):
        await create_topic(bootstrap, topic, partitions)
    await produce(bootstrap, "orders.raw", {0: 10, 1: 10})
    await produce(bootstrap, "orders.dlq", {0: 1})
    await produce(bootstrap, "audit", {0: 4})
    await commit(bootstrap, "billing", "orders.raw", {0: 10, 1: 10})  # the group's topics are the input by default

    store = Store()
    declared = _collector("orders", bootstrap, dead_letter_topics=[r"orders\.dlq.*"])
    silent = _collector("plain", bootstrap)  # the same cluster, no dead-letter topic declared
    supervisor = Supervisor(store, [declared, silent])
    evaluator = Evaluator(store, ["orders", "plain"])
    try:
        for collector in (declared, silent):
            await supervisor.run_once(collector)
        evaluator.evaluate()
        first: KafkaSnapshot = store.snapshot(("orders", "kafka"))[1]
        assert first.dead_letters.topics == ("orders.dlq",) and first.dead_letters.input_topics == ("orders.raw",)
        assert first.dead_letters.records is None  # no earlier sample: not measurable, not 0
        assert math.isnan(_value(store, "kafka_dead_letter_rate", "orders", "local"))
        assert math.isnan(_value(store, "pipewatch_pipeline_invalid_ratio", "orders"))

        # Within one window: 40 input records, 3 dead letters, and 2 on a dead-letter topic created meanwhile
        # (the first dead letter often creates its topic); the audit topic is no one's input.
        await produce(bootstrap, "orders.raw", {0: 25, 1: 15})
        await produce(bootstrap, "orders.dlq", {0: 3})
        await create_topic(bootstrap, "orders.dlq.v2", 1)
        await produce(bootstrap, "orders.dlq.v2", {0: 2})
        await produce(bootstrap, "audit", {0: 7})
        for collector in (declared, silent):
            await supervisor.run_once(collector)
        summaries = {s.pipeline: s for s in evaluator.evaluate()}
    finally:
        for collector in (declared, silent):
            await collector.close()

    dead = store.snapshot(("orders", "kafka"))[1].dead_letters
    assert dead.topics == ("orders.dlq", "orders.dlq.v2") and dead.input_topics == ("orders.raw",)
    assert (dead.records, dead.input_records) == (5, 40)
    window = dead.window_seconds
    assert 0 < window < 30
    rate, input_rate = 5 / window, 40 / window
    assert _value(store, "kafka_dead_letter_rate", "orders", "local") == rate
    assert _value(store, "kafka_dead_letter_input_rate", "orders", "local") == input_rate
    assert _value(store, "pipewatch_pipeline_dead_letter_rate", "orders") == rate
    assert _value(store, "pipewatch_pipeline_invalid_ratio", "orders") == rate / input_rate
    assert math.isclose(rate / input_rate, 0.125, rel_tol=1e-12)
    assert summaries["orders"].dead_letter_rate == rate and summaries["orders"].invalid_ratio == rate / input_rate

    # Nothing invented where no dead-letter topic is declared.
    assert store.snapshot(("plain", "kafka"))[1].dead_letters is None
    for name in ("kafka_dead_letter_rate", "kafka_dead_letter_input_rate", "pipewatch_pipeline_dead_letter_rate",
                 "pipewatch_pipeline_invalid_ratio"):
        assert store.keys(name, where=lambda key: key[1][0] == "plain") == []
    assert math.isnan(summaries["plain"].dead_letter_rate) and math.isnan(summaries["plain"].invalid_ratio)
    assert summaries["plain"].to_json()["invalid_ratio"] is None

    # The page's section and the overview's tile show these values, and nothing for the silent pipeline.
    view = DeadLetterView(store, "orders")
    assert view.line.text.startswith(f'<span class="pw-dead-letters" data-rate="{rate}">Dead letters now: '
                                      f"<b>{format_rate(rate, ' records/s')}</b>, <b>13 %</b> of the input</span>")
    assert ('data-cluster="local" style="font-size:90%;opacity:.8">local: dead-letter topics orders.dlq, '
            "orders.dlq.v2; input orders.raw</div>") in view.line.text
    assert [len(store.keys(where=chart.select)) for chart in view.charts] == [1, 1]  # one line each
    tiles = tiles_html((summaries["orders"], summaries["plain"]))
    orders_tile, plain_tile = tiles.split('data-pipeline="plain"')
    assert (f'<tr data-fact="dead letters"><td style="opacity:.75;padding-right:10px">dead letters</td>'
            f'<td class="v"><b>{format_rate(rate)}, 13 % of input</b></td></tr>') in orders_tile
    assert "dead letters" not in plain_tile

    exporter = start_exporter(store, "127.0.0.1", 0)
    try:
        samples = _samples(httpx.get(exporter.url, timeout=10).text)
    finally:
        exporter.stop()
    assert samples[("pipewatch_pipeline_invalid_ratio", frozenset({("pipeline", "orders")}))] == rate / input_rate
    assert samples[("kafka_dead_letter_rate", frozenset({("pipeline", "orders"), ("cluster", "local")}))] == rate
    assert not [key for key in samples if key[0].startswith(("pipewatch_pipeline_invalid", "kafka_dead_letter"))
                and ("pipeline", "plain") in key[1]]


async def test_declared_input_topics_and_an_input_of_zero(broker):
    bootstrap = broker.bootstrap
    for topic in ("clicks", "clicks.dlq"):
        await create_topic(bootstrap, topic, 1)
    store = Store()
    collector = _collector("web", bootstrap, dead_letter_topics=["clicks.dlq"], input_topics=["clicks.*"])
    supervisor = Supervisor(store, [collector])
    evaluator = Evaluator(store, ["web"])
    try:
        await supervisor.run_once(collector)
        await produce(bootstrap, "clicks.dlq", {0: 2})  # dead letters while nothing came in: no share of 0
        await supervisor.run_once(collector)
        (summary,) = evaluator.evaluate()
        dead = store.snapshot(("web", "kafka"))[1].dead_letters
        assert dead.input_topics == ("clicks",)  # the pattern matches clicks.dlq too: dead letters are never input
        assert (dead.records, dead.input_records) == (2, 0)
        assert _value(store, "kafka_dead_letter_input_rate", "web", "local") == 0
        assert summary.dead_letter_rate == 2 / dead.window_seconds and math.isnan(summary.invalid_ratio)
        assert math.isnan(_value(store, "pipewatch_pipeline_invalid_ratio", "web"))

        await produce(bootstrap, "clicks", {0: 8})
        await produce(bootstrap, "clicks.dlq", {0: 2})
        await supervisor.run_once(collector)
        (summary,) = evaluator.evaluate()
        dead = store.snapshot(("web", "kafka"))[1].dead_letters
        assert (dead.records, dead.input_records) == (2, 8)
        assert summary.invalid_ratio == (2 / dead.window_seconds) / (8 / dead.window_seconds)
    finally:
        await collector.close()


@pytest.mark.browser
def test_dead_letters_in_a_real_browser_tile_and_section_light_and_dark(broker, tmp_path, browser_page):
    """The tile's value as the browser shows it, then the section in both themes."""
    bootstrap = broker.bootstrap
    for topic in ("orders.raw", "orders.dlq"):
        run_async(create_topic(bootstrap, topic, 1))
    run_async(commit(bootstrap, "billing", "orders.raw", {0: 0}))
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        + "".join(f"  - name: {name}\n    kafka:\n      bootstrap_servers: [\"{bootstrap}\"]\n      cluster: local\n"
                  f"      consumer_groups: [billing]\n      interval_seconds: 0.5\n      rate_window_seconds: 10\n"
                  + (f"      dead_letter_topics: [{dead}]\n" if dead else "")
                  for name, dead in (("orders", "'orders\\.dlq'"), ("audit", None)))
        + f"runtime:\n  max_backoff_seconds: 1\nexporter:\n  host: 127.0.0.1\n  port: {free_port()}\n")
    with serving(tmp_path, config, browser_page) as server:
        page = browser_page
        page.goto(server.url, timeout=90_000)  # (a loaded machine: the first load builds the app)
        fact = page.locator('.pw-tile[data-pipeline="orders"] tr[data-fact="dead letters"] .v')
        expect(fact).to_have_text("0/s, unknown of input", timeout=30_000)  # no input yet: no share
        expect(page.locator('.pw-tile[data-pipeline="audit"]')).to_be_visible()
        expect(page.locator('.pw-tile[data-pipeline="audit"] tr[data-fact="dead letters"]')).to_have_count(0)
        # 20 records in, 1 dead letter, all within one 10 s window: 5 % for as long as the window holds both.
        run_async(produce(bootstrap, "orders.raw", {0: 20}))
        run_async(produce(bootstrap, "orders.dlq", {0: 1}))
        expect(fact).to_contain_text(", 5.0 % of input", timeout=30_000)

        page.locator('.pw-tile[data-pipeline="orders"] a[href*="page=pipeline"]').click(timeout=90_000)
        expect(page).to_have_url(f"{server.url}?page=pipeline&pipeline=orders", timeout=30_000)
        line = page.locator(".pw-dead-letter-topics")
        expect(line).to_have_text("local: dead-letter topics orders.dlq; input orders.raw", timeout=120_000)
        expect(page.locator(".pw-dead-letters")).to_contain_text("of the input")
        for theme in ("light", "dark"):
            if theme == "dark":  # the same page in the dark theme (test_dashboard_browser clicks its button)
                page.goto(f"{server.url}?page=pipeline&pipeline=orders&theme=dark", timeout=120_000)
                expect(page.get_by_role("button", name="Light theme")).to_be_visible(timeout=120_000)
            section = page.get_by_text("Data quality: dead letters")
            expect(section).to_be_visible(timeout=90_000)
            expect(line).to_have_text("local: dead-letter topics orders.dlq; input orders.raw", timeout=120_000)
        page.goto(f"{server.url}?page=pipeline&pipeline=audit", timeout=90_000)
        expect(page.locator('.pw-health[data-collector="kafka"]')).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Data quality: dead letters")).to_have_count(0)

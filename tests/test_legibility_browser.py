"""Every page legible in both themes, every number formatted, measured in a real browser (issue #18).

One `panel serve` over real sources where they can be (the broker, PostgreSQL with ProfileMesh tables and a change
feed, the schema-registry stand-in) and Flink's recorded REST answers (tests/test_hostile_browser.FakeFlink). On
every page (overview, pipeline page with every section and its drill-downs, aggregate, errors), light and dark:

- the WCAG contrast ratio of every visible text against its effective background (the first opaque background
  up its ancestors, through shadow roots, with every translucent one and the element's opacity composited) is at
  least 4.5; so is that of the text the charts and the flow diagram draw on their canvas, read from their models;
- no text shows a raw float (`1.2120161056518`, `7.000e+5`), and the charts' axes and hovers write values as
  monitoring/format.py does (asked of the browser's own formatter models).

Screenshots: /tmp/pipewatch-legibility-<page>-<theme>.png.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.kafka_util import commit, create_topic, produce
from tests.services import free_port, run_async, wait_until
from tests.test_app_browser import live_column, serving
from tests.test_hostile_browser import FakeFlink, _choose, _screenshot

pytestmark = pytest.mark.browser

WAIT = 30_000
MINIMUM = 4.5
"""WCAG 2 AA for normal text (1.4.3); every text here is held to it, large or not."""

_AUDIT = """() => {
    const ctx = document.createElement("canvas").getContext("2d");
    const rgba = (colour) => {
        ctx.fillStyle = "#000000";
        ctx.fillStyle = colour;
        const s = ctx.fillStyle;
        if (s.startsWith("#")) return [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16)).concat([1]);
        let m = s.match(/^rgba?\\(([^)]*)\\)$/);
        if (m) { const p = m[1].split(",").map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; }
        m = s.match(/^color\\(srgb ([\\d.e-]+) ([\\d.e-]+) ([\\d.e-]+)(?: \\/ ([\\d.e-]+))?\\)$/);
        if (m) return [m[1] * 255, m[2] * 255, m[3] * 255, m[4] === undefined ? 1 : Number(m[4])];
        throw new Error("cannot read the colour " + colour + " (" + s + ")");
    };
    const over = (top, bottom) => {
        const a = top[3];
        return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
    };
    const luminance = (c) => {
        const [r, g, b] = c.slice(0, 3).map((v) => {
            v /= 255;
            return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const ratio = (a, b) => {
        const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
        return (hi + 0.05) / (lo + 0.05);
    };
    const parentOf = (node) => {
        if (node.assignedSlot) return node.assignedSlot;
        const parent = node.parentNode;
        if (parent instanceof ShadowRoot) return parent.host;
        return parent && parent.nodeType === Node.ELEMENT_NODE ? parent : null;
    };
    const name = (el) => {
        const parts = [];
        for (let node = el; node && parts.length < 5; node = parentOf(node)) {
            let part = node.nodeName.toLowerCase();
            const classes = [...node.classList].filter((c) => !c.startsWith("bk-panel-models")).slice(0, 3);
            if (classes.length) part += "." + classes.join(".");
            for (const a of node.attributes) {
                if (a.name.startsWith("data-") || a.name === "tabulator-field") part += `[${a.name}="${a.value}"]`;
            }
            parts.push(part);
        }
        return parts.join(" < ");
    };
    // The colour behind an element: its own and its ancestors' backgrounds down to the first opaque one (the
    // browser's canvas, white, when none is), each translucent one composited over what lies behind it.
    const background = (el) => {
        const layers = [];
        let opacity = 1;
        for (let node = el; node; node = parentOf(node)) {
            const style = getComputedStyle(node);
            opacity *= Number(style.opacity);
            const colour = rgba(style.backgroundColor);
            if (colour[3] > 0) layers.push(colour);
            if (colour[3] >= 1) break;
        }
        let base = [255, 255, 255, 1];
        for (const layer of layers.reverse()) base = over(layer, base);
        return [base, opacity];
    };
    const disabled = (el) => {
        for (let node = el; node; node = parentOf(node)) {
            if (node.disabled || node.getAttribute("aria-disabled") === "true"
                || node.classList.contains("bk-disabled")) return true;
        }
        return false;
    };
    const texts = [];
    const visit = (root) => {
        for (const el of root.querySelectorAll("*")) {
            if (el.shadowRoot) visit(el.shadowRoot);
            if (["SCRIPT", "STYLE", "TITLE", "OPTION", "NOSCRIPT", "TEMPLATE"].includes(el.nodeName)) continue;
            let text = "";
            if (el.nodeName === "SELECT") text = el.selectedOptions.length ? el.selectedOptions[0].text : "";
            else if (el.nodeName === "INPUT" && ["text", "search", "number", ""].includes(el.type)) text = el.value;
            else for (const child of el.childNodes) if (child.nodeType === Node.TEXT_NODE) text += child.data;
            text = text.trim();
            if (!text) continue;
            const box = el.getBoundingClientRect();
            if (box.width < 1 || box.height < 1) continue;
            if (!el.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
            if (disabled(el)) continue;
            const style = getComputedStyle(el);
            const [behind, opacity] = background(el);
            const colour = rgba(style.color);
            const shown = over([colour[0], colour[1], colour[2], colour[3] * opacity], behind);
            texts.push({element: name(el), text: text.slice(0, 60), colour: style.color,
                        background: "rgb(" + behind.slice(0, 3).map(Math.round).join(",") + ")",
                        ratio: ratio(shown, behind)});
        }
    };
    visit(document);

    // Text the charts and the flow diagram draw on their canvas: read from their models (no DOM to measure).
    const models = [...Bokeh.documents[0]._all_models.values()];
    const value = (v) => (v && typeof v === "object" && "value" in v) ? v.value : v;
    const fill = (colour, alpha, base) => over(rgba(colour).slice(0, 3).concat([(alpha ?? 1) * rgba(colour)[3]]), base);
    const page = background(document.body)[0];
    const canvas = [];
    const check = (what, colour, behind) => {
        if (colour === null || colour === undefined) return;
        canvas.push({element: what, text: "", colour: String(colour),
                     background: "rgb(" + behind.slice(0, 3).map(Math.round).join(",") + ")",
                     ratio: ratio(over(rgba(colour), behind), behind)});
    };
    for (const plot of models.filter((m) => m.type === "Plot" || m.type === "Figure")) {
        if (!plot.visible) continue;
        const chart = `chart "${plot.title ? plot.title.text : plot.name}"`;
        const border = fill(plot.border_fill_color ?? "#ffffff", plot.border_fill_alpha, page);
        const inner = fill(plot.background_fill_color ?? "#ffffff", plot.background_fill_alpha, border);
        if (plot.title && plot.title.text) check(chart + " title", plot.title.text_color, border);
        for (const axis of [...plot.left, ...plot.below, ...plot.right, ...plot.above]) {
            if (axis.major_label_text_color !== undefined && axis.visible) {
                check(chart + " axis tick labels", axis.major_label_text_color, border);
                if (axis.axis_label) check(chart + " axis label", axis.axis_label_text_color, border);
            }
            if (axis.type === "Legend" && axis.visible && axis.items.some((item) => item.visible)) {
                const behind = fill(axis.background_fill_color ?? "#ffffff", axis.background_fill_alpha, border);
                check(chart + " legend", axis.label_text_color, behind);
            }
        }
        for (const r of plot.renderers) {
            if (r.type === "LabelSet" && r.visible) check(chart + " labels", value(r.text_color), inner);
            if (r.type !== "GlyphRenderer" || !r.visible || r.glyph.type !== "Text") continue;
            const data = r.data_source.data;
            const rows = (data[Object.keys(data)[0]] || []).length;
            if (!rows) continue;
            // A text drawn inside a box of the same rows (the flow diagram's node labels) lies on the box's fill.
            const box = plot.renderers.find((o) => o.type === "GlyphRenderer" && o.visible && o.glyph.type === "Rect"
                                                 && o.data_source === r.data_source);
            for (let i = 0; i < rows; i++) {
                const colour = r.glyph.text_color.field ? data[r.glyph.text_color.field][i] : value(r.glyph.text_color);
                let behind = inner;
                if (box) {
                    const boxFill = box.glyph.fill_color.field ? data[box.glyph.fill_color.field][i]
                                                               : value(box.glyph.fill_color);
                    behind = fill(boxFill, value(box.glyph.fill_alpha), inner);
                }
                const label = data[r.glyph.text.field] ? data[r.glyph.text.field][i] : value(r.glyph.text);
                check(`${chart} text "${label}"`, colour, behind);
            }
        }
    }
    return texts.concat(canvas);
}"""

_RAW_NUMBER = re.compile(r"(?<![\d.:\w-])\d+\.\d{3,}(?![\d.])|\d(?:\.\d+)?e[+-]\d")
"""A number nobody formatted: three or more decimals (`1.2120161056518`; not a time `14:03:27.042` or an
address), or an exponent (`7.000e+5`)."""


def _audit(page, where: str) -> list[dict]:
    """Every text's contrast on the page; the failures named (element path, text, colours, ratio)."""
    shown = page.evaluate(_AUDIT)
    assert len(shown) > 20, f"{where}: only {len(shown)} texts found"
    return [dict(entry, where=where) for entry in shown]


def _report(failures: list[dict]) -> str:
    return "\n".join(f"{f['where']}: {f['ratio']:.2f}:1 {f['colour']} on {f['background']}: {f['element']}"
                     f" {f['text']!r}" for f in failures)


_CHART_FONTS = """() => {
    // The fonts and sizes of each named chart's title, axes and legends, by the models the browser draws.
    const value = (v) => (v && typeof v === "object" && "value" in v) ? v.value : v;
    const fonts = {};
    for (const plot of [...Bokeh.documents[0]._all_models.values()]) {
        if ((plot.type !== "Plot" && plot.type !== "Figure") || !plot.visible || !plot.name) continue;
        const parts = [...plot.left, ...plot.below, ...plot.right, ...plot.above];
        fonts[plot.name] = [plot.title ? [value(plot.title.text_font), value(plot.title.text_font_size)] : null,
            ...parts.filter((p) => p.major_label_text_font_size !== undefined).map((a) => [
                value(a.major_label_text_font), value(a.major_label_text_font_size), value(a.axis_label_text_font),
                value(a.axis_label_text_font_size)]),
            ...parts.filter((p) => p.type === "Legend").map((l) => [value(l.label_text_font),
                                                                    value(l.label_text_font_size)])];
    }
    return fonts;
}"""

_DRAWN_TICKS = """(name) => {
    // The y axis ticks a chart draws now (from its axis view) and the labels its formatter writes for them.
    const plot = [...Bokeh.documents[0]._all_models.values()].find((m) => m.name === name);
    const axis = plot.left[0];
    const ticks = Bokeh.index.find_one(axis).tick_coords.major[1];
    return {ticks, labels: ticks.map((tick) => axis.formatter.compute(tick))};
}"""


_LEGENDS_OUTSIDE = """() => {
    // Legends drawn partly outside their chart (over the chart beside it): chart name, legend box, chart width.
    const outside = [];
    for (const plot of [...Bokeh.documents[0]._all_models.values()]) {
        if ((plot.type !== "Plot" && plot.type !== "Figure") || !plot.visible || !plot.name) continue;
        const width = Bokeh.index.find_one(plot).el.getBoundingClientRect().width;
        for (const legend of [...plot.below, ...plot.center, ...plot.right, ...plot.above]) {
            if (legend.type !== "Legend" || !legend.visible) continue;
            const box = Bokeh.index.find_one(legend).bbox;
            if (box.width === 0) continue;  // (nothing to draw: no line yet)
            if (box.x < 0 || box.x + box.width > width + 0.5) outside.push([plot.name, box.x, box.width, width]);
        }
    }
    return outside;
}"""


_TITLES_CUT = """() => {
    // Chart titles wider than their chart's plot area, where Bokeh cuts them off: name, title, widths.
    const context = document.createElement("canvas").getContext("2d");
    const cut = [];
    for (const plot of [...Bokeh.documents[0]._all_models.values()]) {
        if ((plot.type !== "Plot" && plot.type !== "Figure") || !plot.visible || !plot.title) continue;
        const title = plot.title;
        const text = typeof title.text === "string" ? title.text : title.text.text;
        if (!text) continue;
        context.font = `${title.text_font_style} ${title.text_font_size} ${title.text_font}`;
        const width = context.measureText(text).width;
        const room = Bokeh.index.find_one(plot).frame.bbox.width;
        if (width > room) cut.push([plot.name, text, Math.round(width), Math.round(room)]);
    }
    return cut;
}"""


def _ticks_drawn(page, names: tuple[str, ...], whole: tuple[str, ...]) -> list[str]:
    """The charts whose y axis draws a label twice, or a tick below zero (these are never negative), or, for those
    in `whole` (counts), a tick between whole numbers."""
    wrong = []
    for name in names:
        drawn = page.evaluate(_DRAWN_TICKS, name)
        ticks, labels = drawn["ticks"], drawn["labels"]
        if len(set(labels)) != len(labels) or min(ticks) < 0 or (name in whole and any(t % 1 for t in ticks)):
            wrong.append(f"chart {name}: y ticks {ticks} labelled {labels}")
    return wrong


_AXIS_TEXT = """(cases) => {
    // What each chart's y axis and hover write for the given values, by the browser's own formatter models.
    const out = {};
    const models = [...Bokeh.documents[0]._all_models.values()];
    for (const [name, values] of Object.entries(cases)) {
        const plot = models.find((m) => m.name === name);
        if (!plot) { out[name] = null; continue; }
        const formatter = plot.left[0].formatter;
        const hover = plot.toolbar.tools.find((t) => t.type === "HoverTool");
        const custom = hover && Object.values(hover.formatters || {}).find((f) => f.type === "CustomJSHover");
        out[name] = {
            axis: values.map((v) => formatter.compute(v)),
            hover: custom ? values.map((v) => custom.format(v, "", {})) : null,
        };
    }
    return out;
}"""


async def _seed_postgres(dsn: str, schema: str):
    import asyncpg

    from tests.profiling_util import ProfilerTables
    from tests.test_change_feed import _setup
    from tests.test_profiling import _seed

    connection = await asyncpg.connect(dsn)
    try:
        await _seed(await ProfilerTables(connection, schema).create())
    finally:
        await connection.close()
    return await _setup(dsn, f"{schema}_feed")


async def _changes(dsn: str, schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"INSERT INTO \"{schema}\".orders SELECT g, 'new', g * 1.25, 'first order' "
                                 "FROM generate_series(1, 30) g")
        await connection.execute(f'UPDATE "{schema}".orders SET status = \'paid\' WHERE order_key < 5')
    finally:
        await connection.close()


@pytest.mark.timeout(900)  # twenty page loads of a pipeline with every source, on a busy two-core machine
def test_every_page_is_legible_in_both_themes_and_shows_every_number_formatted(broker, registry, postgres, pg_schema,
                                                                               tmp_path, browser_page):
    from apps.views import _GROUP_COLUMNS
    from tests.test_schema_registry import AVRO

    run_async(create_topic(broker.bootstrap, "payments", 3))
    run_async(produce(broker.bootstrap, "payments", {0: 1500, 1: 700, 2: 5}))
    run_async(commit(broker.bootstrap, "billing", "payments", {0: 4, 1: 7}))
    registry.register("orders-value", AVRO)
    registry.register("payments-value", AVRO)
    feed = run_async(_seed_postgres(postgres.dsn, pg_schema))
    flink = FakeFlink(names={})
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n"
        "  - name: orders\n"
        "    kafka:\n"
        f"      bootstrap_servers: [\"{broker.bootstrap}\"]\n"
        "      interval_seconds: 0.5\n"
        "    schema_registry:\n"
        f"      url: {registry.url}\n"
        "      interval_seconds: 0.5\n"
        "    flink:\n"
        f"      rest_url: {flink.url}\n"
        "      interval_seconds: 1\n"
        "    profiling:\n"
        f"      dsn: \"{postgres.dsn}\"\n"
        f"      schema: {pg_schema}\n"
        "      interval_seconds: 0.5\n"
        "    change_feed:\n"
        f"      dsn: \"{postgres.dsn}\"\n"
        f"      schema: {pg_schema}_feed\n"
        f"      channel: {feed.channel}\n"
        "      entities:\n"
        "        - {name: Order, table: orders, key: order_key}\n"
        "        - {name: Order Item, table: order items, key: id, events: [insert]}\n"
        "  - name: audit\n"
        "    kafka:\n"
        f"      bootstrap_servers: [\"127.0.0.1:{free_port()}\"]\n"  # nothing listens: down, an error to list
        "      interval_seconds: 0.5\n"
        "runtime:\n"
        "  max_backoff_seconds: 1\n"
        "exporter:\n"
        f"  port: {free_port()}\n"
    )
    page = browser_page
    page.set_default_timeout(WAIT)
    shown: list[dict] = []
    unformatted: list[str] = []
    chart_fonts: dict[str, dict] = {}
    legends_outside: list[str] = []
    titles_cut: list[str] = []

    def open_view(query: str, theme: str) -> None:
        page.goto(f"{server.url}?{query}&theme={theme}", wait_until="commit", timeout=4 * WAIT)

    def section(kind: str, theme: str) -> None:
        open_view(f"page=pipeline&pipeline=orders&section={kind}", theme)
        expect(page.locator(f'.pw-health[data-collector="{kind}"]')).to_have_attribute("data-state", "up",
                                                                                       timeout=2 * WAIT)

    def audit(where: str, theme: str) -> None:
        shown.extend(_audit(page, f"{where} ({theme})"))
        # Each chart's legends within the chart: the latency chart's nine lines' legend drew over the lag chart's.
        legends_outside.extend(f"{where} ({theme}): {entry}" for entry in page.evaluate(_LEGENDS_OUTSIDE))
        titles_cut.extend(f"{where} ({theme}): {entry}" for entry in page.evaluate(_TITLES_CUT))
        _screenshot(page, f"/tmp/pipewatch-legibility-{where.replace(' ', '-')}-{theme}.png")

    try:
        with serving(tmp_path, config, page) as server:
            for theme in ("default", "dark"):
                open_view("page=overview", theme)
                expect(page.locator('.pw-tile[data-pipeline="orders"] tr[data-fact="max lag"] .v')).to_contain_text(
                    "1,496 messages", timeout=2 * WAIT)
                expect(page.locator('.pw-tile[data-pipeline="audit"]')).to_have_attribute("data-health", "down")
                audit("overview", theme)

                # The pipeline's summary: every source's health, the flow diagram, the charts.
                open_view("page=pipeline&pipeline=orders", theme)
                for collector in ("kafka", "schema_registry", "flink", "profiling", "change_feed"):
                    expect(page.locator(f'.pw-health[data-collector="{collector}"]')).to_have_attribute(
                        "data-state", "up", timeout=2 * WAIT)
                wait_until(lambda: page.evaluate(_FLOW_NODES) >= 4, 30, what="the flow diagram's nodes")
                audit("pipeline summary", theme)
                chart_fonts[theme] = page.evaluate(_CHART_FONTS)
                if theme == "default":
                    unformatted += _charts_written(page, ("pipeline-latency", "pipeline-throughput", "pipeline-lag"))
                    unformatted += _ticks_drawn(page, ("pipeline-throughput", "pipeline-lag"), whole=("pipeline-lag",))

                # Each section, with its tables filled and a drill-down open.
                section("change_feed", theme)
                if theme == "default":  # changes once the feed listens (it delivers what arrives from then on)
                    expect(page.locator('.pw-feed-connection[data-state="up"]')).to_be_visible(timeout=WAIT)
                    run_async(_changes(postgres.dsn, f"{pg_schema}_feed"))
                expect(page.locator('.pw-feed-card[data-entity="Order"] .pw-feed-totals')).to_contain_text(
                    "30 inserts", timeout=WAIT)
                audit("change feed", theme)

                section("kafka", theme)
                expect(live_column(page, "groups-table", _GROUP_COLUMNS, "lag")).to_have_text(["2,189"], timeout=WAIT)
                _choose(page, "billing")  # a group's members and partitions
                audit("kafka", theme)
                if theme == "default":
                    unformatted += _group_durations(page)

                section("schema_registry", theme)
                expect(page.locator(".pw-table-subjects-table .slick-row")).to_have_count(2, timeout=WAIT)
                audit("schema registry", theme)

                section("flink", theme)
                expect(page.locator(".pw-table-flink-jobs-table .slick-row")).to_have_count(2, timeout=WAIT)
                expect(page.locator(".pw-vertex").first).to_be_visible(timeout=WAIT)  # a job's graph
                audit("flink", theme)
                if theme == "default":
                    unformatted += _charts_written(page, ("flink-checkpoint-size-chart",))

                section("profiling", theme)
                page.locator('.tabulator-row [tabulator-field="run id"]').first.click()  # a run's metrics
                expect(page.locator(".pw-run-title")).to_contain_text("Column metrics of run", timeout=WAIT)
                audit("profiling", theme)

                open_view("page=aggregate", theme)
                rows = page.locator(".slick-row").filter(has=page.locator('[data-field="agent"]'))
                expect(rows).to_have_count(2, timeout=2 * WAIT)
                expect(page.locator(".pw-agg-totals")).to_contain_text("1 ok, 1 not")
                audit("aggregate", theme)

                open_view("page=errors", theme)
                errors = page.locator(".tabulator").filter(has=page.locator('[tabulator-field="hint"]'))
                expect(errors.locator(".tabulator-row").first).to_be_visible(timeout=2 * WAIT)
                audit("errors", theme)

                open_view("page=alerts", theme)
                expect(page.locator(".pw-alerts-summary")).to_be_visible(timeout=2 * WAIT)
                audit("alerts", theme)
            unformatted += [f"{s['where']}: {s['element']} {s['text']!r}" for s in shown
                            if _RAW_NUMBER.search(s["text"])]
            assert not unformatted, "numbers shown unformatted:\n" + "\n".join(unformatted)
            failures = [s for s in shown if s["ratio"] < MINIMUM]
            assert not failures, (f"{len(failures)} of {len(shown)} texts below {MINIMUM}:1\n"
                                  + _report(failures))
            # The dark theme draws its charts' text in the light theme's fonts and sizes (Panel's dark Bokeh theme
            # made it larger, and the time axis' labels ran together).
            assert {"pipeline-latency", "pipeline-throughput", "pipeline-lag"} <= set(chart_fonts["default"])
            assert chart_fonts["dark"] == chart_fonts["default"]
            assert not legends_outside, "legends drawn outside their chart:\n" + "\n".join(legends_outside)
            assert not titles_cut, "chart titles cut off:\n" + "\n".join(titles_cut)
            assert page.errors == []
    finally:
        flink.stop()


_FLOW_NODES = """() => {
    const source = [...Bokeh.documents[0]._all_models.values()].find((m) => m.name === "flow-nodes");
    return source ? source.data.id.length : 0;
}"""


_WRITTEN = {
    "pipeline-latency": ([0, 0.35, 52.3, 78, 700_000], ["0 s", "350 ms", "52 s", "1 min 18 s", "8 d 2 h"]),
    "pipeline-throughput": ([0, 57.4, 1234], ["0/s", "57/s", "1.2k/s"]),
    "pipeline-lag": ([0, 1496, 2_500_000], ["0", "1,496", "2,500,000"]),
    "flink-checkpoint-size-chart": ([512, 243e6], ["512 B", "243 MB"]),
}
"""Values a chart's y axis and hover get, and what monitoring/format.py writes for them."""


def _charts_written(page, names: tuple[str, ...]) -> list[str]:
    """What the charts' axes and hovers write, where it is not as monitoring/format.py writes it."""
    written = page.evaluate(_AXIS_TEXT, {name: _WRITTEN[name][0] for name in names})
    return [f"chart {name}: {written.get(name)} instead of {_WRITTEN[name][1]}" for name in names
            if written.get(name) != {"axis": _WRITTEN[name][1], "hover": _WRITTEN[name][1]}]


def _group_durations(page) -> list[str]:
    """The text the groups table shows for lag seconds and catch-up, where it is not a duration as format.py's."""
    from apps.views import _GROUP_COLUMNS

    duration = re.compile(r"^(unknown|unbounded|not catching up|\d+ ms|\d\.\d s|\d+ s|\d+ min( \d+ s)?|"
                          r"\d+ h( \d+ min)?|[\d,]+ d( \d+ h)?)$")
    return [f"group table {field}: {text!r}" for field in ("lag seconds", "catch-up")
            for text in live_column(page, "groups-table", _GROUP_COLUMNS, field).all_inner_texts()
            if not duration.match(text)]

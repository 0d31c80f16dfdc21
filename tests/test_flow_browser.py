"""The flow diagram as Chromium draws it, at 3 nodes and at 30 (many topics, jobs and groups) from a real broker:
the geometry is read back from the document's glyph data and the browser's own text measurements, and no edge
passes through a box that is not its end, no two labels overlap, every label stays in its box, the figure is drawn
one pixel per unit, and the medallion bands hold their own nodes with their health, their text legible (WCAG
contrast) in both themes. Screenshots: /tmp/flow-3-{light,dark}.png and /tmp/flow-30-{light,dark}.png."""

from __future__ import annotations

import base64
import itertools
from pathlib import Path

import pytest

from monitoring.flow_layout import Rect, rects_overlap, segment_hits_rect
from tests.kafka_util import commit, create_topic, produce
from tests.services import free_port, run_async, wait_until
from tests.test_app_browser import serving

pytestmark = pytest.mark.browser

_GEOMETRY = """() => {
    if (typeof Bokeh === "undefined") return null;
    for (const doc of Bokeh.documents) {
        const plot = doc.get_model_by_name("flow-diagram");
        if (!plot) continue;
        const plain = (d) => {
            const out = {};
            for (const k of Object.keys(d)) out[k] = Array.from(d[k], (v) => typeof v === "object" && v !== null
                                                                     ? Array.from(v) : v);
            return out;
        };
        const source = (name) => plain(doc.get_model_by_name(name).data);
        const ctx = document.createElement("canvas").getContext("2d");
        const fonts = {};
        for (const r of plot.renderers) {
            const g = r.glyph;
            if (g && g.type === "Text") {
                const key = r.data_source.name + ":" + (typeof g.text === "object" ? g.text.field : g.text);
                const value = (p) => (typeof p === "object" && p !== null && "value" in p) ? p.value : p;
                fonts[key] = {font: `${value(g.text_font_style)} ${value(g.text_font_size)} ${value(g.text_font)}`,
                              colour: value(g.text_color)};
            }
        }
        const measure = (texts, font) => texts.map((t) => {
            ctx.font = font;
            const m = ctx.measureText(t);
            return [m.width, m.fontBoundingBoxAscent + m.fontBoundingBoxDescent];
        });
        const nodes = source("flow-nodes"), bands = source("flow-bands");
        const edges = [source("flow-edges"), source("flow-hint-edges")];
        const view = Bokeh.index.find_one(plot);
        const band_glyph = plot.renderers.find((r) => r.name === "flow-band-areas").glyph;
        return {
            nodes, bands, edges, fonts,
            labels: measure(nodes.label, fonts["flow-nodes:label"].font),
            lines: measure(nodes.line, fonts["flow-nodes:line"].font),
            rates: edges.map((e) => measure(e.rate, fonts["flow-edges:rate"].font)),
            titles: measure(bands.title, fonts["flow-bands:title"].font),
            band_lines: measure(bands.line, fonts["flow-bands:line"].font),
            scale: [view.frame.x_scale.compute(100) - view.frame.x_scale.compute(0),
                    view.frame.y_scale.compute(100) - view.frame.y_scale.compute(0)],
            frame: [view.frame.bbox.width, view.frame.bbox.height],
            background: plot.background_fill_color, band_alpha: band_glyph.fill_alpha.value ?? band_glyph.fill_alpha,
        };
    }
    return null;
}"""


_EXPORT = """() => {
    for (const doc of Bokeh.documents) {
        const plot = doc.get_model_by_name("flow-diagram");
        if (plot) return Bokeh.index.find_one(plot).export("png").canvas.toDataURL("image/png");
    }
    return null;
}"""


def _rgb(colour: str) -> tuple[float, float, float]:
    colour = colour.lstrip("#")
    return tuple(int(colour[i:i + 2], 16) / 255 for i in (0, 2, 4))


def _luminance(rgb: tuple[float, float, float]) -> float:
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(text: str, background: tuple[float, float, float]) -> float:
    a, b = sorted((_luminance(_rgb(text)), _luminance(background)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def check_geometry(g: dict) -> dict[str, Rect]:
    """Asserts every promise of the drawing; returns the boxes by node id."""
    assert g["scale"] == [100, 100]  # one pixel per unit, y downwards
    nodes, bands = g["nodes"], g["bands"]
    boxes = {nodes["id"][i]: Rect(nodes["x"][i], nodes["y"][i], nodes["w"][i], nodes["h"][i])
             for i in range(len(nodes["id"]))}
    assert g["frame"][0] > max(b.right for b in boxes.values())
    assert g["frame"][1] > max(b.bottom for b in boxes.values())
    texts: list[tuple[str, Rect]] = []
    for i, node_id in enumerate(nodes["id"]):
        box = boxes[node_id]
        (lw, lh), (sw, sh) = g["labels"][i], g["lines"][i]
        name = Rect(box.x, box.y - 1 - lh / 2, lw, lh)  # baseline bottom, 1 px above the centre
        line = Rect(box.x, box.y + 2 + sh / 2, sw, sh)  # baseline top, 2 px below
        for what, rect in ((f"name of {node_id}", name), (f"line of {node_id}", line)):
            assert box.left < rect.left and rect.right < box.right, (what, rect, box)
            assert box.top < rect.top and rect.bottom < box.bottom, (what, rect, box)
            texts.append((what, rect))
    routes = []
    for edges, measured in zip(g["edges"], g["rates"], strict=True):
        for i, rate in enumerate(edges["rate"]):
            own = None
            if rate:
                w, h = measured[i]
                own = Rect(edges["lx"][i], edges["ly"][i], w, h)
                texts.append((f"label of {edges['source'][i]}->{edges['target'][i]}", own))
            routes.append((edges["source"][i], edges["target"][i], list(zip(edges["xs"][i], edges["ys"][i],
                                                                                strict=True)), own))
    for i in range(len(bands["name"])):
        (tw, th), (bw, bh) = g["titles"][i], g["band_lines"][i]
        texts.append((f"title of band {bands['name'][i]}", Rect(bands["tx"][i] + tw / 2, bands["ty"][i] + th / 2,
                                                                 tw, th)))
        texts.append((f"line of band {bands['name'][i]}", Rect(bands["tx"][i] + bw / 2, bands["ly"][i] + bh / 2,
                                                                bw, bh)))
    overlaps = [(a, b) for (a, ra), (b, rb) in itertools.combinations(texts, 2) if rects_overlap(ra, rb)]
    assert overlaps == []
    through = []
    for source, target, points, own in routes:
        for p, q in itertools.pairwise(points):
            through += [(source, target, node_id) for node_id, box in boxes.items()
                        if node_id not in (source, target) and segment_hits_rect(p, q, box)]
            through += [(source, target, what) for what, rect in texts
                        if rect is not own and not what.startswith(("name of", "line of"))
                        and segment_hits_rect(p, q, rect)]
    assert through == []
    return boxes


def check_bands(g: dict, boxes: dict[str, Rect], background: str, theme: str) -> None:
    """Each layer's nodes inside its band and no other node; its text legible over the band's colour."""
    nodes, bands = g["nodes"], g["bands"]
    for i, name in enumerate(bands["name"]):
        area = Rect(bands["x"][i], bands["y"][i], bands["w"][i], bands["h"][i])
        for j, node_id in enumerate(nodes["id"]):
            box = boxes[node_id]
            inside = area.left < box.left and box.right < area.right and area.top < box.top and box.bottom < area.bottom
            assert inside == (nodes["layer"][j] == name), (name, node_id)
            if not inside:
                assert not rects_overlap(area, box), (name, node_id)
        # The band's fill over the plot's background: the effective background of its text.
        base, fill, alpha = _rgb(background), _rgb(bands["colour"][i]), g["band_alpha"]
        effective = tuple(alpha * f + (1 - alpha) * b for f, b in zip(fill, base, strict=True))
        for glyph in ("flow-bands:title", "flow-bands:line"):
            ratio = contrast(g["fonts"][glyph]["colour"], effective)
            assert ratio >= 4.5, (theme, name, glyph, round(ratio, 2))


def _config(tmp_path, bootstrap: str, flow: str):
    config = tmp_path / "pipewatch.yml"
    config.write_text(
        "pipelines:\n  - name: orders\n"
        f"    kafka: {{bootstrap_servers: ['{bootstrap}'], cluster: local, interval_seconds: 0.5}}\n"
        f"    flow:\n{flow}"
        "runtime: {max_backoff_seconds: 1}\n"
        f"exporter: {{port: {free_port()}}}\n")
    return config


def _no_errors(page, failed: list[str], server) -> None:
    """No JavaScript error and nothing of our server's that failed to load. (Outside resources a page may ask for
    cannot resolve on a machine without DNS: named in the message, not an error of the diagram.)"""
    origin = server.url.split("/apps")[0]
    assert [e for e in page.errors if not e.startswith("Failed to load resource")] == []
    assert [url for url in failed if url.startswith(origin)] == [], failed


def _look(page, server, size: int, screenshot: str):
    """Opens the pipeline page in both themes; yields the geometry once `size` nodes are drawn."""
    for theme, name in (("default", "light"), ("dark", "dark")):
        # (Not waiting for "load": on a saturated machine the live page's resources can take minutes; the poll
        # below waits for what this test reads.)
        page.goto(f"{server.url}?page=pipeline&pipeline=orders&theme={theme}", wait_until="commit", timeout=240_000)
        # Every measured box (topics and groups, from the broker) up and drawn: the layout is final.
        g = wait_until(lambda: (g := page.evaluate(_GEOMETRY)) and len(g["nodes"]["id"]) == size and all(
            state == "ok" for state, kind in zip(g["nodes"]["state"], g["nodes"]["kind"], strict=True)
            if kind in ("topic", "group")) and g, 300, interval=0.5, what=f"{size} nodes in the diagram, all up")
        # The figure as Bokeh itself exports it (a Playwright screenshot waits for the whole live page to be
        # stable, which a loaded two-core machine can take minutes to reach).
        png = page.evaluate(_EXPORT)
        Path(f"/tmp/{screenshot}-{name}.png").write_bytes(base64.b64decode(png.split(",", 1)[1]))
        yield theme, g


@pytest.mark.timeout(900)  # (two page opens; minutes each on a saturated machine)
def test_three_nodes_drawn_without_overlap_with_their_bronze_band(broker, tmp_path, browser_page):
    run_async(create_topic(broker.bootstrap, "raw.orders", 2))
    run_async(produce(broker.bootstrap, "raw.orders", {0: 10, 1: 7}))
    run_async(commit(broker.bootstrap, "billing", "raw.orders", {0: 4, 1: 7}))
    config = _config(tmp_path, broker.bootstrap,
                     "      edges: [{from: 'producer:checkout', to: 'topic:raw.orders'}]\n"
                     "      layers: {bronze: ['raw.*']}\n")
    page = browser_page
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    with serving(tmp_path, config, page) as server:
        for theme, g in _look(page, server, 3, "flow-3"):
            boxes = check_geometry(g)
            assert sorted(g["nodes"]["id"]) == ["group:local/billing", "producer:checkout", "topic:local/raw.orders"]
            assert boxes["producer:checkout"].right < boxes["topic:local/raw.orders"].left
            assert boxes["topic:local/raw.orders"].right < boxes["group:local/billing"].left
            bands = g["bands"]
            assert bands["title"] == ["bronze · ok"] and bands["line"] == ["freshness: unknown"]
            check_bands(g, boxes, g["background"], theme)
        _no_errors(page, failed, server)


@pytest.mark.timeout(900)
def test_thirty_nodes_drawn_without_overlap_in_medallion_bands(broker, tmp_path, browser_page):
    streams = ("orders", "payments", "clicks", "users")
    topics = [f"raw.{s}" for s in streams] + [f"clean.{s}" for s in streams] + ["agg_revenue", "agg_sessions"]
    for topic in topics:
        run_async(create_topic(broker.bootstrap, topic, 1))
        run_async(produce(broker.bootstrap, topic, {0: 5}))
    readers = {"fraud": "raw.payments", "audit": "raw.orders", "archive": "raw.clicks", "search": "clean.clicks",
               "crm-sync": "clean.users", "ml-features": "clean.clicks", "alerts": "clean.payments",
               "billing": "agg_revenue", "reporting": "agg_sessions"}
    for group, topic in readers.items():
        run_async(commit(broker.bootstrap, group, topic, {0: 3}))
    run_async(commit(broker.bootstrap, "audit", "clean.orders", {0: 5}))
    edges = [("producer:web", "topic:raw.orders"), ("producer:web", "topic:raw.clicks"),
             ("producer:mobile", "topic:raw.payments"), ("producer:mobile", "topic:raw.users")]
    for s in streams:
        edges += [(f"topic:raw.{s}", f"job:clean-{s}"), (f"job:clean-{s}", f"topic:clean.{s}")]
    edges += [("topic:clean.orders", "job:agg_revenue"), ("topic:clean.payments", "job:agg_revenue"),
              ("topic:clean.clicks", "job:agg_sessions"), ("job:agg_revenue", "topic:agg_revenue"),
              ("job:agg_sessions", "topic:agg_sessions"), ("job:agg_revenue", "sink:warehouse.agg_revenue"),
              ("job:agg_sessions", "sink:warehouse.agg_sessions"), ("topic:clean.users", "sink:crm.users")]
    flow = ("      edges:\n" + "".join(f"        - {{from: '{a}', to: '{b}'}}\n" for a, b in edges)
            + "      layers: {bronze: ['raw.*'], silver: ['clean.*'], gold: ['agg_.*', 'warehouse[.]agg_.*']}\n")
    config = _config(tmp_path, broker.bootstrap, flow)
    page = browser_page
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    with serving(tmp_path, config, page) as server:
        for theme, g in _look(page, server, 30, "flow-30"):
            boxes = check_geometry(g)
            kinds = g["nodes"]["kind"]
            assert {k: kinds.count(k) for k in set(kinds)} == {"topic": 10, "group": 9, "job": 6, "producer": 2,
                                                                "sink": 3}
            bands = g["bands"]
            assert bands["name"] == ["bronze", "silver", "gold"]
            # Topics are measured (ok); the hinted jobs and sinks are not (no Flink here): counted apart, not ok.
            assert bands["title"] == ["bronze · ok", "silver · ok", "gold · ok"]
            assert bands["line"] == ["freshness: unknown"] * 3
            lefts = [x - w / 2 for x, w in zip(bands["x"], bands["w"], strict=True)]
            rights = [x + w / 2 for x, w in zip(bands["x"], bands["w"], strict=True)]
            assert rights[0] < lefts[1] and rights[1] < lefts[2]
            check_bands(g, boxes, g["background"], theme)
            x = {node_id: boxes[node_id].x for node_id in boxes}
            assert x["producer:web"] < x["topic:local/raw.orders"] < x["job:?/clean-orders"] < \
                x["topic:local/clean.orders"] < x["job:?/agg_revenue"] < x["topic:local/agg_revenue"]
        _no_errors(page, failed, server)

"""The `flow:` hints of a pipeline: what they accept and how a mistake is reported (file, key path, problem)."""

from __future__ import annotations

import pytest

from monitoring.config import ConfigError, load_config


def _load(tmp_path, flow: str):
    path = tmp_path / "pipewatch.yml"
    path.write_text("pipelines:\n  - name: orders\n    kafka: {bootstrap_servers: ['127.0.0.1:9092']}\n" + flow)
    return path, lambda: load_config(path, environ={})


def test_edges_load_with_from_and_to(tmp_path):
    _, load = _load(tmp_path, "    flow:\n      edges:\n"
                              "        - {from: 'producer:checkout', to: 'topic:orders'}\n"
                              "        - {from: 'job:enrich orders', to: 'sink:warehouse.orders'}\n")
    edges = load().pipelines[0].flow.edges
    assert [(e.source, e.target) for e in edges] == [("producer:checkout", "topic:orders"),
                                                     ("job:enrich orders", "sink:warehouse.orders")]


def test_no_flow_key_means_no_hints(tmp_path):
    _, load = _load(tmp_path, "")
    assert load().pipelines[0].flow is None


@pytest.mark.parametrize(("edges", "expected"), [
    ("[{from: 'queue:orders', to: 'topic:orders'}]",
     "pipelines[0].flow.edges[0].from: 'queue:orders' is not KIND:NAME with KIND one of producer, topic, job, group, "
     "sink, database"),
    ("[{from: 'topic:orders', to: 'orders'}]", "pipelines[0].flow.edges[0].to: 'orders' is not KIND:NAME"),
    ("[{from: 'topic:orders', to: 'topic:'}]", "pipelines[0].flow.edges[0].to: 'topic:' is not KIND:NAME"),
    ("[{from: 'topic:a', to: 'topic:a'}]", "pipelines[0].flow.edges[0]: an edge from 'topic:a' to itself"),
    ("[{from: 'topic:a', to: 'producer:p'}]",
     "pipelines[0].flow.edges[0]: 'producer:p': a producer only writes, it cannot be the target of an edge"),
    ("[{from: 'topic:a'}]", "pipelines[0].flow.edges[0].to: required key is missing"),
    ("[{from: 'topic:a', to: 'job:b', via: 'x'}]", "pipelines[0].flow.edges[0].via: unknown key"),
])
def test_a_bad_edge_names_its_key_path(tmp_path, edges, expected):
    path, load = _load(tmp_path, f"    flow:\n      edges: {edges}\n")
    with pytest.raises(ConfigError) as info:
        load()
    assert f"{path}: {expected}" in str(info.value)


def test_an_empty_flow_key_is_a_mistake(tmp_path):
    path, load = _load(tmp_path, "    flow:\n")
    with pytest.raises(ConfigError) as info:
        load()
    assert f"{path}: pipelines[0].flow: is empty" in str(info.value)


def test_layers_load_in_their_order_and_match_whole_names(tmp_path):
    _, load = _load(tmp_path, "    flow:\n      layers: {bronze: ['raw.*'], silver: ['clean.*'], gold: ['agg_.*']}\n")
    flow = load().pipelines[0].flow
    assert list(flow.layers) == ["bronze", "silver", "gold"] and flow.edges == []
    assert [flow.layer_of(n) for n in ("raw.orders", "clean.orders", "agg_daily", "orders", "my-raw.x")] == [
        "bronze", "silver", "gold", None, None]


@pytest.mark.parametrize(("layers", "expected"), [
    ("{bronze: []}", "pipelines[0].flow.layers.bronze: List should have at least 1 item after validation, not 0"),
    ("{bronze: 'raw.*'}", "pipelines[0].flow.layers.bronze: Input should be a valid list"),
    ("{bronze: ['(raw']}", "pipelines[0].flow.layers.bronze[0]: '(raw' is not a valid regular expression: "
                           "missing ), unterminated subpattern at position 0"),
    ("{'bronze layer': ['raw.*']}", "pipelines[0].flow.layers.bronze layer: 'bronze layer' is not a layer name "
                                    "(a letter, then up to 29 letters, digits, _ or -)"),
    ("[bronze, silver]", "pipelines[0].flow.layers: Input should be a valid dictionary"),
    ("{" + ", ".join(f"l{i}: [x]" for i in range(9)) + "}",
     "pipelines[0].flow.layers: at most 8 layers, not 9"),
])
def test_a_bad_layer_names_its_key_path(tmp_path, layers, expected):
    path, load = _load(tmp_path, f"    flow:\n      layers: {layers}\n")
    with pytest.raises(ConfigError) as info:
        load()
    assert f"{path}: {expected}" in str(info.value)

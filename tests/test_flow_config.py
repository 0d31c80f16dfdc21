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

"""Config loading: the documented example, defaults, ${ENV} interpolation, errors that name file and key path,
and the CLI entry points that read a config (check-config, agent)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from monitoring.config import CONFIG_ENV_VAR, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
PIPEWATCH = ROOT / ".venv" / "bin" / "pipewatch"

EXAMPLE = """\
pipelines:
  - name: orders
    kafka:
      bootstrap_servers: ["127.0.0.1:9092"]
      consumer_groups: [".*"]        # regular expressions; default: all groups
exporter:
  host: 127.0.0.1
  port: 9108
"""


def _write(tmp_path: Path, text: str, name: str = "pipewatch.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _error(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={} if environ is None else environ)
    message = str(info.value)
    assert str(path) in message, f"error does not name the file {path}: {message!r}"
    return message


# -- valid files -----------------------------------------------------------------------------------


def test_documented_example_loads_exactly_as_written(tmp_path):
    config = load_config(_write(tmp_path, EXAMPLE), environ={})
    assert [p.name for p in config.pipelines] == ["orders"]
    kafka = config.pipelines[0].kafka
    assert kafka is not None
    assert kafka.bootstrap_servers == ["127.0.0.1:9092"]
    assert kafka.consumer_groups == [".*"]
    assert kafka.cluster is None and kafka.cluster_label == "127.0.0.1:9092"
    assert config.exporter.enabled is True
    assert config.exporter.host == "127.0.0.1"
    assert config.exporter.port == 9108
    assert isinstance(config.exporter.port, int)


def test_consumer_groups_default_to_all_groups(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: ['127.0.0.1:9092']\n")
    kafka = load_config(path, environ={}).pipelines[0].kafka
    assert kafka.consumer_groups == [".*"]
    assert kafka.matches_group("anything") and kafka.matches_group("")


def test_consumer_group_patterns_match_the_whole_group_id(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: ['h:1']\n"
                            "      consumer_groups: ['app-.*', 'billing']\n")
    kafka = load_config(path, environ={}).pipelines[0].kafka
    assert [g for g in ("app-a", "billing", "billing-2", "my-app-a") if kafka.matches_group(g)] == ["app-a", "billing"]


def test_env_interpolation_with_and_without_defaults(tmp_path):
    path = _write(tmp_path, """\
pipelines:
  - name: ${PIPELINE}
    kafka:
      bootstrap_servers: ["${KAFKA_HOST}:${KAFKA_PORT:-9092}", "${OTHER:-backup:9093}"]
      consumer_groups: ["${GROUP_PREFIX:-}app-.*"]
exporter:
  host: ${EXPORTER_HOST:-0.0.0.0}
  port: ${EXPORTER_PORT:-9108}
""")
    config = load_config(path, environ={"PIPELINE": "orders", "KAFKA_HOST": "kafka.internal", "EXPORTER_PORT": "9200"})
    kafka = config.pipelines[0].kafka
    assert config.pipelines[0].name == "orders"
    assert kafka.bootstrap_servers == ["kafka.internal:9092", "backup:9093"]
    assert kafka.consumer_groups == ["app-.*"]
    assert config.exporter.host == "0.0.0.0"
    assert config.exporter.port == 9200

    # A set variable wins over its default.
    config = load_config(path, environ={"PIPELINE": "p2", "KAFKA_HOST": "k", "KAFKA_PORT": "29092",
                                        "OTHER": "o:1", "GROUP_PREFIX": "prod-", "EXPORTER_HOST": "127.0.0.1"})
    kafka = config.pipelines[0].kafka
    assert kafka.bootstrap_servers == ["k:29092", "o:1"]
    assert kafka.consumer_groups == ["prod-app-.*"]
    assert (config.exporter.host, config.exporter.port) == ("127.0.0.1", 9108)


def test_env_interpolation_reads_the_process_environment_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPEWATCH_TEST_BOOTSTRAP", "10.0.0.7:9094")
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n"
                            "      bootstrap_servers: ['${PIPEWATCH_TEST_BOOTSTRAP}']\n")
    assert load_config(path).pipelines[0].kafka.bootstrap_servers == ["10.0.0.7:9094"]


# -- errors: each names the file, the key path and the problem ------------------------------------


def test_missing_env_var_names_key_path_and_variable(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n"
                            "      bootstrap_servers: ['127.0.0.1:9092', '${KAFKA_BOOTSTRAP}']\n")
    message = _error(path, environ={"UNRELATED": "x"})
    assert "pipelines[0].kafka.bootstrap_servers[1]" in message
    assert "KAFKA_BOOTSTRAP" in message
    assert "not set" in message


def test_bad_yaml_names_file_and_line(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n\tkafka:\n      bootstrap_servers: ['h:1']\n")
    message = _error(path)
    assert "not valid YAML" in message
    assert "line 3" in message


def test_bad_yaml_unclosed_flow_sequence_names_line(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: ['h:1'\n"
                            "exporter:\n  port: 1\n")
    message = _error(path)
    assert "not valid YAML" in message
    assert "line 5" in message


def test_top_level_that_is_not_a_mapping(tmp_path):
    message = _error(_write(tmp_path, "- name: orders\n"))
    assert "pipelines" in message


def test_unknown_key_names_its_path(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: ['h:1']\n"
                            "      consumer_group: ['typo']\n")
    message = _error(path)
    assert f"{path}: pipelines[0].kafka.consumer_group: unknown key" in message


def test_unknown_top_level_key(tmp_path):
    message = _error(_write(tmp_path, EXAMPLE + "exporters:\n  port: 1\n"))
    assert "exporters: unknown key" in message


def test_wrong_type_names_its_path(tmp_path):
    message = _error(_write(tmp_path, "pipelines:\n  - name: orders\nexporter:\n  port: ninety\n"))
    assert "exporter.port" in message
    assert "integer" in message


def test_string_where_list_expected(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: '127.0.0.1:9092'\n")
    message = _error(path)
    assert "pipelines[0].kafka.bootstrap_servers" in message
    assert "list" in message


def test_port_out_of_range(tmp_path):
    message = _error(_write(tmp_path, "pipelines:\n  - name: orders\nexporter:\n  port: 70000\n"))
    assert "exporter.port" in message


def test_bad_bootstrap_server_is_not_host_port(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: ['kafka']\n")
    message = _error(path)
    assert "pipelines[0].kafka.bootstrap_servers" in message
    assert "'kafka' is not host:port" in message


def test_bad_regex_names_its_path_and_pattern(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: ['h:1']\n"
                            "      consumer_groups: ['ok-.*', 'app-(']\n")
    message = _error(path)
    assert "pipelines[0].kafka.consumer_groups[1]" in message
    assert "'app-(' is not a valid regular expression" in message


def test_missing_pipelines(tmp_path):
    message = _error(_write(tmp_path, "exporter:\n  port: 9108\n"))
    assert f"{tmp_path / 'pipewatch.yml'}: pipelines: required key is missing" in message


def test_empty_pipelines_list(tmp_path):
    message = _error(_write(tmp_path, "pipelines: []\n"))
    assert "pipelines:" in message and "at least 1" in message


def test_kafka_without_bootstrap_servers(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n  - name: payments\n    kafka:\n"
                            "      consumer_groups: ['.*']\n")
    message = _error(path)
    assert "pipelines[1].kafka.bootstrap_servers: required key is missing" in message


def test_several_errors_are_all_reported_one_per_line(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: ['h:1']\n"
                            "      consumer_groups: ['(']\nexporter:\n  port: x\n  colour: red\n")
    lines = _error(path).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert {line.split(": ")[1] for line in lines} == {"pipelines[0].kafka.consumer_groups[0]", "exporter.port",
                                                      "exporter.colour"}


def test_duplicate_pipeline_names_name_the_key_path(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: ['h:1']\n"
                            "  - name: orders\n")
    message = _error(path)
    assert "'orders'" in message
    # The second pipeline's `name` is the key at fault. (Currently fails: the model-level validator
    # reports the error at "(top level)"; see the report for a patch.)
    assert "pipelines[1].name" in message, message


def test_missing_file_is_a_config_error(tmp_path):
    message = _error(tmp_path / "absent.yml")
    assert "cannot read" in message


# -- the CLI ---------------------------------------------------------------------------------------


def _run(*args: str, env_extra: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != CONFIG_ENV_VAR}
    env.update(env_extra or {})
    return subprocess.run([str(PIPEWATCH), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def test_cli_check_config_accepts_the_example(tmp_path):
    path = _write(tmp_path, EXAMPLE)
    result = _run("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert f"{path}: OK" in result.stdout
    assert "pipeline orders: kafka" in result.stdout


def test_cli_check_config_rejects_a_bad_file_with_the_key_path(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: ['h:1']\n"
                            "      consumer_groups: ['(']\n")
    result = _run("check-config", str(path))
    assert result.returncode != 0
    assert "pipelines[0].kafka.consumer_groups[0]" in result.stderr
    assert str(path) in result.stderr
    assert "OK" not in result.stdout


def test_cli_check_config_uses_the_env_var_when_no_file_is_given(tmp_path):
    good = _write(tmp_path, EXAMPLE, "good.yml")
    result = _run("check-config", env_extra={CONFIG_ENV_VAR: str(good)})
    assert result.returncode == 0, result.stderr
    assert f"{good}: OK" in result.stdout

    bad = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka: {}\n", "bad.yml")
    result = _run("check-config", env_extra={CONFIG_ENV_VAR: str(bad)})
    assert result.returncode != 0
    assert "pipelines[0].kafka.bootstrap_servers" in result.stderr


def test_cli_check_config_without_file_or_env_var_explains(tmp_path):
    result = _run("check-config")
    assert result.returncode != 0
    assert CONFIG_ENV_VAR in result.stderr


def test_cli_agent_with_bad_config_exits_promptly_and_starts_nothing(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: ['127.0.0.1:9092']\n"
                            "      consumer_groups: ['[unclosed']\nexporter:\n  port: 0\n")
    result = _run("agent", "--config", str(path), timeout=20)  # a started agent would run until killed
    assert result.returncode != 0
    assert "invalid configuration" in result.stderr
    assert f"{path}: pipelines[0].kafka.consumer_groups[0]:" in result.stderr
    assert "agent running" not in result.stderr
    assert "exporter serving" not in result.stderr


def test_cli_agent_missing_env_var_in_config_exits_with_the_variable(tmp_path):
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: ['${PW_TEST_NOPE}']\n")
    result = _run("agent", env_extra={CONFIG_ENV_VAR: str(path)}, timeout=20)
    assert result.returncode != 0
    assert "pipelines[0].kafka.bootstrap_servers[0]" in result.stderr
    assert "PW_TEST_NOPE" in result.stderr
    assert "agent running" not in result.stderr



def test_several_kafka_clusters_per_pipeline_need_distinct_labels(tmp_path):
    from collectors import build_collectors

    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n"
                            "      - {bootstrap_servers: ['a:9092'], cluster: east}\n"
                            "      - {bootstrap_servers: ['b:9092'], cluster: west}\n")
    config = load_config(path)
    assert [c.cluster_label for c in config.pipelines[0].kafka_clusters] == ["east", "west"]
    assert [c.name for c in build_collectors(config)] == ["kafka:east", "kafka:west"]
    same = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n"
                            "      - {bootstrap_servers: ['a:9092']}\n      - {bootstrap_servers: ['a:9092']}\n")
    assert "pipelines[0]: two Kafka clusters of pipeline 'orders' share the cluster label 'a:9092'" in _error(same)


def test_build_collectors_makes_exactly_the_declared_sources(tmp_path):
    """The pages choose their sections from monitoring.sources.declared_sources and the collectors write under the
    names it gives: one collector per declared source, with its pipeline, name, target and interval."""
    from collectors import build_collectors
    from monitoring.sources import declared_sources

    text = (Path(__file__).resolve().parent.parent / "examples" / "full.yml").read_text()
    text = text.replace("pipelines:\n", "prometheus: {url: 'http://prom:9090/'}\n"
                        "remote_agents: ['http://agent-eu:9108', 'http://agent-us:9108/pw']\npipelines:\n", 1)
    config = load_config(_write(tmp_path, text), environ={})
    declared = declared_sources(config)
    built = build_collectors(config)
    assert [(c.pipeline, c.name, c.target, c.interval) for c in built] == [
        (s.pipeline, s.collector, s.target, s.interval) for s in declared]
    assert [(s.pipeline, s.kind, s.collector) for s in declared if s.pipeline != "orders"] == [
        ("clickstream", "kafka", f"kafka:{c.cluster_label}") for c in config.pipelines[1].kafka_clusters] + [
        ("_aggregate", "prometheus", "prometheus"), ("_aggregate", "remote", "remote:agent-eu:9108"),
        ("_aggregate", "remote", "remote:agent-us:9108/pw")]
    assert [s.kind for s in declared if s.pipeline == "orders"] == [
        "kafka", "schema_registry", "flink", "profiling", "change_feed"]


def test_sasl_and_tls_settings_with_secret_from_the_environment(tmp_path, monkeypatch):
    from collectors.kafka.client import client_security

    monkeypatch.setenv("KAFKA_PASSWORD", "s3cret-value")
    path = _write(tmp_path, "pipelines:\n  - name: orders\n    kafka:\n      bootstrap_servers: ['k:9093']\n"
                            "      security_protocol: SASL_SSL\n"
                            "      sasl: {mechanism: SCRAM-SHA-512, username: monitor, password: '${KAFKA_PASSWORD}'}\n"
                            "      tls: {check_hostname: false}\n")
    config = load_config(path)
    kafka = config.pipelines[0].kafka
    assert "s3cret-value" not in repr(config) and "s3cret-value" not in str(kafka)
    options = client_security(kafka)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "monitor" and options["sasl_plain_password"] == "s3cret-value"
    assert options["ssl_context"].check_hostname is False


def test_security_settings_must_match_the_protocol(tmp_path):
    no_sasl = _write(tmp_path, "pipelines:\n  - name: o\n    kafka:\n      bootstrap_servers: ['k:1']\n"
                               "      security_protocol: SASL_PLAINTEXT\n")
    assert "pipelines[0].kafka: security_protocol SASL_PLAINTEXT needs a sasl section" in _error(no_sasl)
    bad_mechanism = _write(tmp_path, "pipelines:\n  - name: o\n    kafka:\n      bootstrap_servers: ['k:1']\n"
                                     "      security_protocol: SASL_SSL\n"
                                     "      sasl: {mechanism: GSSAPI, username: u, password: p}\n")
    assert "pipelines[0].kafka.sasl.mechanism" in _error(bad_mechanism)
    tls_on_plaintext = _write(tmp_path, "pipelines:\n  - name: o\n    kafka:\n      bootstrap_servers: ['k:1']\n"
                                        "      tls: {check_hostname: false}\n")
    assert "a tls section needs security_protocol SSL or SASL_SSL" in _error(tls_on_plaintext)
    missing_ca = _write(tmp_path, "pipelines:\n  - name: o\n    kafka:\n      bootstrap_servers: ['k:1']\n"
                                  "      security_protocol: SSL\n      tls: {ca_file: /nonexistent/ca.pem}\n")
    assert "pipelines[0].kafka.tls.ca_file" in _error(missing_ca)


def test_schema_registry_settings_defaults_and_secret_from_the_environment(tmp_path):
    config = load_config(_write(tmp_path, (
        "pipelines:\n"
        "  - name: catalog\n"
        "    schema_registry:\n"
        "      url: https://registry.example.com/\n"
        "      path_prefix: /apis/ccompat/v7\n"
        "      basic_auth: {username: monitor, password: '${REGISTRY_PASSWORD}'}\n"
    )), environ={"REGISTRY_PASSWORD": "s3cret"})
    (registry,) = config.pipelines[0].schema_registries
    assert registry.registry_label == "registry.example.com:443"
    assert registry.base_url == "https://registry.example.com/apis/ccompat/v7"
    assert registry.basic_auth.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(registry)
    assert (registry.interval_seconds, registry.inventory_refresh_seconds, registry.max_concurrent_requests) == (
        10.0, 300.0, 4)


def test_schema_registry_errors_name_the_key_path(tmp_path):
    message = _error(_write(tmp_path, (
        "pipelines:\n"
        "  - name: catalog\n"
        "    schema_registry:\n"
        "      - url: registry:8081\n"
        "      - url: http://a:8081\n"
        "        registry: main\n"
        "      - url: http://b:8081\n"
        "        registry: main\n"
        "        inventory_refresh_seconds: 0\n"
    )))
    assert ("pipelines[0].schema_registry[0].url: 'registry:8081' is not an http:// or https:// URL "
            "with a host") in message
    assert "pipelines[0].schema_registry[2].inventory_refresh_seconds: Input should be greater than 0" in message
    empty = _error(_write(tmp_path, "pipelines:\n  - name: catalog\n    schema_registry:\n", "empty.yml"))
    assert "pipelines[0].schema_registry: is empty: give its settings or remove the key" in empty
    same = _error(_write(tmp_path, (
        "pipelines:\n"
        "  - name: catalog\n"
        "    schema_registry:\n"
        "      - {url: 'http://a:8081', registry: main}\n"
        "      - {url: 'http://b:8081', registry: main}\n"
    ), "same.yml"))
    assert "pipelines[0]: two schema registries of pipeline 'catalog' share the registry label 'main'" in same


def test_profiling_settings_defaults_and_errors_with_key_paths(tmp_path):
    config = load_config(_write(tmp_path, (
        "pipelines:\n"
        "  - name: warehouse\n"
        "    profiling:\n"
        "      dsn: ${PROFILING_DSN}\n"
        "      password: ${PROFILING_PASSWORD}\n"
        "      table_prefix: baselinr\n"
        "      schema: analytics\n"
    )), environ={"PROFILING_DSN": "postgresql://reader@db.example.com:5432/profiling", "PROFILING_PASSWORD": "s3cret"})
    profiling = config.pipelines[0].profiling
    assert (profiling.table_prefix, profiling.db_schema) == ("baselinr", "analytics")
    assert profiling.target == "reader@db.example.com:5432 database profiling: analytics.baselinr_*"
    assert "s3cret" not in profiling.target and "s3cret" not in repr(profiling)
    assert profiling.connect_arguments() == {"dsn": "postgresql://reader@db.example.com:5432/profiling",
                                             "password": "s3cret"}
    assert (profiling.interval_seconds, profiling.fresh_within_seconds, profiling.late_rows_seconds) == (
        15.0, 86_400.0, 3600.0)

    message = _error(_write(tmp_path, (
        "pipelines:\n"
        "  - name: warehouse\n"
        "    profiling:\n"
        "      dsn: mysql://db/profiling\n"
        "      table_prefix: 'profile mesh'\n"
        "      histroy_days: 3\n"
    ), "bad.yml"))
    assert "pipelines[0].profiling.dsn: must be a postgresql:// URL" in message
    assert "pipelines[0].profiling.table_prefix: String should match pattern" in message
    assert "pipelines[0].profiling.histroy_days: unknown key" in message


def test_flink_clusters_defaults_and_distinct_labels(tmp_path):
    config = load_config(_write(tmp_path, (
        "pipelines:\n"
        "  - name: streams\n"
        "    flink:\n"
        "      rest_url: http://jobmanager:8081\n"
    )), environ={})
    (flink,) = config.pipelines[0].flink_clusters
    assert (flink.cluster_label, flink.interval_seconds, flink.max_jobs) == ("jobmanager:8081", 10.0, 100)
    message = _error(_write(tmp_path, (
        "pipelines:\n"
        "  - name: streams\n"
        "    flink:\n"
        "      - rest_url: jobmanager:8081\n"
        "      - {rest_url: 'http://a:8081', cluster: main}\n"
        "      - {rest_url: 'http://b:8081', cluster: main}\n"
    ), "bad.yml"))
    assert "pipelines[0].flink[0].rest_url: 'jobmanager:8081' is not an http:// or https:// URL with a host" in message
    same = _error(_write(tmp_path, (
        "pipelines:\n"
        "  - name: streams\n"
        "    flink:\n"
        "      - {rest_url: 'http://a:8081', cluster: main}\n"
        "      - {rest_url: 'http://b:8081', cluster: main}\n"
    ), "same.yml"))
    assert "pipelines[0]: two Flink clusters of pipeline 'streams' share the cluster label 'main'" in same


def test_change_feed_entities_defaults_and_errors(tmp_path):
    config = load_config(_write(tmp_path, (
        "pipelines:\n"
        "  - name: shop\n"
        "    change_feed:\n"
        "      dsn: postgresql://app@db/shop\n"
        "      entities:\n"
        "        - {name: Order, table: orders, key: order_key}\n"
    )), environ={})
    feed = config.pipelines[0].change_feed
    (order,) = feed.entities
    assert (order.events, order.fields, order.db_schema) == (["insert", "update", "delete"], [], None)
    assert (feed.changelog_table, feed.channel, feed.poll_interval_seconds) == ("db_events", "pipewatch_db_events", 0.5)
    message = _error(_write(tmp_path, (
        "pipelines:\n"
        "  - name: shop\n"
        "    change_feed:\n"
        "      dsn: postgresql://app@db/shop\n"
        "      poll_interval_seconds: 10\n"
        "      entities:\n"
        "        - {name: Order, table: 'orders\\\"; DROP TABLE x; --', key: order_key, events: [upsert]}\n"
        "        - {name: Order, table: orders, key: order_key}\n"
    ), "bad.yml"))
    assert "pipelines[0].change_feed.poll_interval_seconds: Input should be less than or equal to 5" in message
    assert ("pipelines[0].change_feed.entities[0].table: 'orders\\\\\"; DROP TABLE x; --' is not an identifier "
            "pipewatch accepts") in message
    assert "pipelines[0].change_feed.entities[0].events[0]: Input should be 'insert', 'update' or 'delete'" in message


def test_exporter_basic_auth_and_tls_settings_with_errors_naming_the_key(tmp_path):
    cert = _write(tmp_path, "cert\n", "server.pem")
    key = _write(tmp_path, "key\n", "server.key")
    config = load_config(_write(tmp_path, (
        "pipelines:\n  - name: orders\n    kafka: {bootstrap_servers: ['k:9092']}\n"
        "exporter:\n  host: 0.0.0.0\n"
        "  basic_auth: {username: prometheus, password: '${SCRAPE_PASSWORD}'}\n"
        f"  tls: {{cert_file: '{cert}', key_file: '{key}'}}\n"
    )), environ={"SCRAPE_PASSWORD": "hunter2"})
    exporter = config.exporter
    assert exporter.basic_auth.username == "prometheus"
    assert exporter.basic_auth.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(config)
    assert (exporter.tls.cert_file, exporter.tls.key_file, exporter.tls.client_ca_file) == (cert, key, None)
    assert load_config(_write(tmp_path, EXAMPLE, "plain.yml"), environ={}).exporter.basic_auth is None

    message = _error(_write(tmp_path, (
        "pipelines:\n  - name: orders\n    kafka: {bootstrap_servers: ['k:9092']}\n"
        "exporter:\n  basic_auth: {username: prometheus}\n"
        f"  tls: {{cert_file: '{tmp_path / 'missing.pem'}'}}\n"
    ), "bad.yml"))
    assert "exporter.basic_auth.password: required key is missing" in message
    assert "exporter.tls.cert_file: Path does not point to a file" in message
    assert "exporter.tls.key_file: required key is missing" in message


def test_prometheus_read_back_settings_and_errors(tmp_path):
    base = "pipelines:\n  - name: orders\n    kafka: {bootstrap_servers: ['k:9092']}\n"
    config = load_config(_write(tmp_path, base + "prometheus: {url: 'http://prom:9090', "
                                                 "selector: 'job=\"pipewatch\"'}\n"),
                         environ={})
    assert (str(config.prometheus.url), config.prometheus.selector, config.prometheus.interval_seconds) == (
        "http://prom:9090", 'job="pipewatch"', 10.0)
    assert load_config(_write(tmp_path, base, "none.yml"), environ={}).prometheus is None
    message = _error(_write(tmp_path, base + "prometheus: {url: 'prom:9090', selector: '{job=\"x\"}'}\n", "bad.yml"))
    assert "prometheus.url: 'prom:9090' is not an http:// or https:// URL with a host" in message
    assert "prometheus.selector: label matchers separated by commas" in message


def test_remote_agents_take_a_url_or_a_mapping_and_errors_name_the_key(tmp_path):
    base = "pipelines: [{name: orders}]\n"
    config = load_config(_write(tmp_path, base + "remote_agents:\n  - http://eu:9108/\n"
                                "  - {url: 'https://us:9108', basic_auth: {username: u, password: '${PW}'}, "
                                "interval_seconds: 2}\n"), environ={"PW": "secret"})
    eu, us = config.remote_agents
    assert (eu.url, eu.basic_auth, eu.interval_seconds) == ("http://eu:9108", None, 5.0)
    assert (us.url, us.basic_auth.password.get_secret_value(), us.interval_seconds) == (
        "https://us:9108", "secret", 2.0)
    assert load_config(_write(tmp_path, base, "none.yml"), environ={}).remote_agents == []
    message = _error(_write(tmp_path, base + "remote_agents: [eu:9108, {url: 'http://us:1', bogus: 1}, "
                            "'http://eu:9108', 'http://eu:9108/']\n", "bad.yml"))
    assert "remote_agents[0].url: 'eu:9108' is not an http:// or https:// URL with a host" in message
    assert "remote_agents[1].bogus: unknown key" in message
    message = _error(_write(tmp_path, base + "remote_agents: ['http://u:pw@eu:9108']\n", "secret.yml"))
    assert "remote_agents[0].url: credentials go in basic_auth, not in the URL" in message and "pw" not in message
    message = _error(_write(tmp_path, base + "remote_agents: ['http://eu:9108', 'http://eu:9108/']\n", "dup.yml"))
    assert "remote_agents[1].url: agent 'http://eu:9108' is already listed as remote_agents[0]" in message


def test_answer_size_limits_of_remote_agents_and_the_mirror(tmp_path):
    base = "pipelines: [{name: orders}]\n"
    config = load_config(_write(tmp_path, base + "remote_agents: [http://eu:9108, {url: 'http://us:9108', "
                                "max_answer_bytes: 1048576}]\nmirror: http://agent:9108\n"), environ={})
    assert [agent.max_answer_bytes for agent in config.remote_agents] == [16 * 2**20, 2**20]
    assert config.mirror.max_answer_bytes == 256 * 2**20
    message = _error(_write(tmp_path, base + "remote_agents: [{url: 'http://eu:9108', max_answer_bytes: 1000}]\n"
                            "mirror: {url: 'http://agent:9108', max_answer_bytes: 5000000000}\n", "bad.yml"))
    assert "remote_agents[0].max_answer_bytes: Input should be greater than or equal to 65536" in message
    assert "mirror.max_answer_bytes: Input should be less than or equal to 4294967296" in message


def test_mirror_takes_a_url_or_a_mapping_and_errors_name_the_key(tmp_path):
    base = "pipelines: [{name: orders}]\n"
    config = load_config(_write(tmp_path, base + "mirror: http://agent:9108/\n"), environ={})
    assert (config.mirror.url, config.mirror.interval_seconds, config.mirror.timeout_seconds) == (
        "http://agent:9108", 1.0, 10.0)
    config = load_config(_write(tmp_path, base + "mirror: {url: 'https://agent:9108', basic_auth: {username: u, "
                                "password: '${PW}'}, interval_seconds: 2}\n", "map.yml"), environ={"PW": "secret"})
    assert (config.mirror.basic_auth.password.get_secret_value(), config.mirror.interval_seconds) == ("secret", 2.0)
    assert load_config(_write(tmp_path, base, "none.yml"), environ={}).mirror is None
    assert "mirror: is empty: give the agent's URL or remove the key" in _error(_write(tmp_path, base + "mirror:\n",
                                                                                      "empty.yml"))
    message = _error(_write(tmp_path, base + "mirror: {url: 'agent:9108', interval_seconds: 0, bogus: 1}\n", "bad.yml"))
    assert "mirror.url: 'agent:9108' is not an http:// or https:// URL with a host" in message
    assert "mirror.interval_seconds: Input should be greater than 0" in message
    assert "mirror.bogus: unknown key" in message
    message = _error(_write(tmp_path, base + "mirror: 'http://u:pw@agent:9108'\n", "secret.yml"))
    assert "mirror.url: credentials go in basic_auth, not in the URL" in message and "pw@" not in message


def test_a_password_in_any_url_is_refused_with_its_key_path_and_never_echoed(tmp_path):
    secret = "pl4nted-Secret"
    message = _error(_write(tmp_path, (
        "pipelines:\n"
        "  - name: shop\n"
        "    kafka: {bootstrap_servers: ['app:${PW}@broker:9092']}\n"
        "    schema_registry: {url: 'http://app:${PW}@registry:8081?x=1'}\n"
        "    flink: {rest_url: 'https://app:${PW}@jobmanager:8081'}\n"
        "    profiling: {dsn: 'postgresql://app:${PW}@db/profiling'}\n"
        "    change_feed:\n"
        "      dsn: 'postgresql://app@db/shop?sslmode=require&password=${PW}'\n"
        "      entities: [{name: Order, table: orders, key: id}]\n"
        "prometheus: {url: 'http://app:${PW}@prometheus:9090'}\n"
        "remote_agents: ['http://app:${PW}@eu:9108']\n"
        "mirror: 'http://:${PW}@agent:9108'\n"
    )), environ={"PW": secret})  # from the environment too: the URL is shown and quoted by drivers
    lines = message.splitlines()
    assert secret not in message and len(lines) == 8
    assert lines[0].endswith("pipelines[0].kafka.bootstrap_servers: a bootstrap server is host:port: "
                             "credentials go in the sasl section")
    for key in ("pipelines[0].schema_registry.url", "pipelines[0].flink.rest_url", "prometheus.url",
                "remote_agents[0].url", "mirror.url"):
        assert f"{key}: credentials go in basic_auth, not in the URL" in message
    for key in ("pipelines[0].profiling.dsn", "pipelines[0].change_feed.dsn"):
        assert (f"{key}: a password in the URL is not allowed: give it as `password: \"${{ENV_VAR}}\"` or "
                f"`password_file: PATH` beside the dsn, or through libpq's PGPASSWORD or ~/.pgpass") in message


def test_postgres_password_beside_the_dsn_from_a_key_or_a_file(tmp_path):
    secret_file = tmp_path / "pg-password"
    secret_file.write_text("from-a-file\n")
    base = ("pipelines:\n"
            "  - name: shop\n"
            "    change_feed:\n"
            "      dsn: 'postgresql://app@/shop?host=/run/postgresql'\n"
            "      entities: [{name: Order, table: orders, key: id}]\n")
    config = load_config(_write(tmp_path, base + f"      password_file: {secret_file}\n"), environ={})
    feed = config.pipelines[0].change_feed
    assert feed.connect_arguments() == {"dsn": "postgresql://app@/shop?host=/run/postgresql", "password": "from-a-file"}
    secret_file.write_text("rotated\n")  # read at every connection: a rotated secret is picked up
    assert feed.connect_arguments()["password"] == "rotated"
    assert feed.target == "app@/run/postgresql database shop: public.db_events"
    plain = load_config(_write(tmp_path, base, "plain.yml"), environ={}).pipelines[0].change_feed
    assert plain.connect_arguments() == {"dsn": "postgresql://app@/shop?host=/run/postgresql"}  # PGPASSWORD, ~/.pgpass
    message = _error(_write(tmp_path, base + f"      password: x\n      password_file: {secret_file}\n", "both.yml"))
    assert message.endswith("pipelines[0].change_feed: password and password_file: give one of them")


def test_change_feed_identifiers_refuse_dollar_signs(tmp_path):
    message = _error(_write(tmp_path, (
        "pipelines:\n"
        "  - name: shop\n"
        "    change_feed:\n"
        "      dsn: postgresql://app@db/shop\n"
        "      schema: 'a$b'\n"
        "      changelog_table: 'events$pipewatch$'\n"
        "      entities:\n"
        "        - {name: Order, table: 'orders$', key: 'id$', fields: [ok, 'x$y']}\n"
    )))
    for key, value in (("schema", "a$b"), ("changelog_table", "events$pipewatch$"), ("entities[0].table", "orders$"),
                       ("entities[0].key", "id$"), ("entities[0].fields[1]", "x$y")):
        assert f"pipelines[0].change_feed.{key}: '{value}': `$` is not allowed in a change-feed identifier" in message
    assert "fields[0]" not in message


FEED = ("pipelines:\n  - name: orders\n    change_feed:\n      dsn: postgresql://u@db:5432/shop\n"
        "      entities: [{name: orders, table: orders, key: id}]\n")


def test_change_feed_off_loopback_needs_api_auth_apart_from_basic_auth(tmp_path):
    message = _error(_write(tmp_path, FEED + "exporter: {host: 0.0.0.0}\n"))
    assert message.endswith(": exporter.api_auth: required: /api/v1/state serves the change-feed rows of orders to "
                            "other hosts on 0.0.0.0; give it credentials of its own (what the mirrors send), or set "
                            "exporter.host to loopback")
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        loopback = load_config(_write(tmp_path, FEED + f"exporter: {{host: '{host}'}}\n"), environ={})
        assert loopback.exporter.api_auth is None
    assert load_config(_write(tmp_path, FEED + "exporter: {host: 0.0.0.0, enabled: false}\n"), environ={})
    config = load_config(_write(tmp_path, FEED + "exporter:\n  host: 0.0.0.0\n"
                                "  basic_auth: {username: prom, password: scrape}\n"
                                "  api_auth: {username: mirror, password: '${API_PASSWORD}'}\n"),
                         environ={"API_PASSWORD": "s3cr3t-rows"})
    api_auth = config.exporter.api_auth
    assert (api_auth.username, api_auth.password.get_secret_value()) == ("mirror", "s3cr3t-rows")
    assert "s3cr3t-rows" not in repr(config)
    same = _error(_write(tmp_path, FEED + "exporter:\n  host: 0.0.0.0\n  basic_auth: {username: a, password: b}\n"
                         "  api_auth: {username: a, password: b}\n"))
    assert "exporter: api_auth must differ from basic_auth" in same


def test_allowed_hosts_default_and_checked_names(tmp_path):
    assert load_config(_write(tmp_path, EXAMPLE), environ={}).exporter.allowed_hosts is None
    config = load_config(_write(tmp_path, EXAMPLE
                                + "  allowed_hosts: [pipewatch.example.com, '[::1]', 10.0.0.1, '*']\n"),
                         environ={})
    assert config.exporter.allowed_hosts == ["pipewatch.example.com", "[::1]", "10.0.0.1", "*"]
    message = _error(_write(tmp_path, EXAMPLE + "  allowed_hosts: ['http://pipewatch:9108']\n"))
    assert "exporter.allowed_hosts[0]: String should match pattern" in message


def test_memory_bounds_load_and_a_bad_one_names_its_key(tmp_path):
    """docs/memory.md: every bound is a config key with a default; a bad value is refused by name."""
    base = "pipelines:\n  - name: p\n    kafka: {bootstrap_servers: [\"k:9092\"]}\n"
    config = load_config(_write(tmp_path, base + "store: {points_per_series: 60, events: 100, errors: 50}\n"),
                         environ={})
    assert (config.store.points_per_series, config.store.events, config.store.errors) == (60, 100, 50)
    assert load_config(_write(tmp_path, base), environ={}).store.errors == 500
    message = _error(_write(tmp_path, base + "store: {errors: 0}\n"))
    assert "store.errors" in message and "greater than or equal to 1" in message
    message = _error(_write(tmp_path, base + "store: {points_per_series: 1}\n"))
    assert "store.points_per_series" in message

"""The alerting rules and Grafana dashboards in deploy/: promtool accepts and unit-tests the rules, every alert is
tested firing and not firing, and every expression parses and names only metrics pipewatch exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import yaml

from monitoring.metrics import CATALOGUE
from pipewatch.metrics_doc import exposed_names
from tests.promql_sources import DASHBOARDS, ROOT, RULES, dashboard_expressions, rule_expressions

RULE_TESTS = sorted((ROOT / "tests" / "prometheus_rules").glob("*.test.yml"))
_NOT_METRICS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "offset", "inf", "nan"}


def _promtool(*args: str) -> subprocess.CompletedProcess:
    # The test command installs promtool (scripts/system-deps.sh): without it these checks did not run, a failure.
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install the Debian package prometheus (make test does)"
    return subprocess.run([promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _explain(result: subprocess.CompletedProcess) -> str:
    return f"promtool {' '.join(result.args[1:])} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"


def test_promtool_accepts_the_rules():
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, _explain(result)


def test_the_rules_pass_their_unit_tests():
    assert RULE_TESTS
    result = _promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, _explain(result)


def test_every_alert_is_tested_firing_and_not_firing():
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
              if "alert" in rule}
    firing, quiet = set(), set()
    for path in RULE_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert not alerts - firing, f"never tested firing: {sorted(alerts - firing)}"
    assert not alerts - quiet, f"never tested not firing: {sorted(alerts - quiet)}"
    assert not (firing | quiet) - alerts, f"tested but not in rules.yml: {sorted((firing | quiet) - alerts)}"


def test_every_expression_parses(tmp_path):
    expressions = rule_expressions() + dashboard_expressions()
    assert not [where for where, expr in expressions if "$" in expr], "a template variable was left in"
    rules = tmp_path / "expressions.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "expressions", "rules": [
        {"record": f"expression_{i}", "expr": expr} for i, (_, expr) in enumerate(expressions)]}]}))
    result = _promtool("check", "rules", str(rules))
    named = "\n".join(f"expression_{i}: {where}" for i, (where, _) in enumerate(expressions)
                      if f"expression_{i}\"" in result.stdout + result.stderr)
    assert result.returncode == 0, f"{_explain(result)}\n{named}"


def test_every_metric_is_one_pipewatch_exports():
    unknown = [(where, sorted(_metric_names(expr) - _exposed_names()))
               for where, expr in rule_expressions() + dashboard_expressions()]
    assert not [u for u in unknown if u[1]], [u for u in unknown if u[1]]


def test_metric_names_are_found_in_an_expression():
    expr = ('sum without(severity) (increase(profiling_drift_events_total{severity="high"}[1h])) > 0 or '
            'histogram_quantile(0.99, sum by (le) (rate(a_b:c_bucket{x=~"y"}[5m]))) > 3.15e9 and on(pipeline) '
            'time() - up offset 1h == bool Inf')
    assert _metric_names(expr) == {"profiling_drift_events_total", "a_b:c_bucket", "up"}


def test_dashboards_are_provisionable_and_use_the_datasource_variable():
    uids = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        uids.append(dashboard["uid"])
        assert dashboard["id"] is None and "__inputs" not in dashboard, path.name
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        assert variables["pipeline"]["query"] == "label_values(pipewatch_collector_up, pipeline)"
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                sources = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
                assert all(s == {"type": "prometheus", "uid": "${datasource}"} for s in sources), panel["title"]
    assert uids == [path.stem for path in sorted(DASHBOARDS.glob("*.json"))]


def _exposed_names() -> set[str]:
    """Every sample name on /metrics, as the exporter writes it, and Prometheus' own `up`."""
    return {"up"} | {name for spec in CATALOGUE.values() if spec.exported for name in exposed_names(spec)}


def _metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers once strings, label matchers, ranges and label lists
    are gone, other than function names (followed by a parenthesis) and keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", expr)
    return {name for name in names if name.lower() not in _NOT_METRICS}

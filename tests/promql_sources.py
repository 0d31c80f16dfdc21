"""Every PromQL expression of the alerting rules and the Grafana dashboards, ready to send to Prometheus.

Importable without pytest, for tests that run the expressions against a real Prometheus. Grafana's template
variables are replaced the way Grafana itself does with "All" selected, so each expression can go to
/api/v1/query as it is: a variable inside a regex matcher (=~, !~) becomes ".*", and $__rate_interval,
$__interval and $__range become "1m". A variable anywhere else has no single value that stands for all of its
values, so it raises ValueError instead of yielding an expression that tests something else.

A query variable contributes the series selector of its `label_values(<selector>, <label>)`: Grafana lists the
label's values from the series that selector matches.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"

_INTERVALS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1m"}
_REGEX_MATCHER = re.compile(r'([=!]~\s*)"([^"]*)"')
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
_LABEL_VALUES = re.compile(r"label_values\((.+),\s*\w+\s*\)", re.DOTALL)


def rule_expressions() -> list[tuple[str, str]]:
    """(where, expr) for every rule in rules.yml, where is "rules.yml: <group>/<alert or record>"."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(f"{RULES.name}: {group['name']}/{rule.get('alert') or rule['record']}", rule["expr"].strip())
            for group in groups for rule in group["rules"]]


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, expr) for every panel target and query variable of every dashboard, variables substituted."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                found.append((f"{path.name}: variable {variable['name']}", _variable_selector(variable)))
        for panel in _panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    found.append((f"{path.name}: {panel['title']} [{target['refId']}]", target["expr"]))
    return [(where, substitute(expr)) for where, expr in found]


def substitute(expr: str) -> str:
    """The expression as Grafana sends it with every variable at "All" and a 1-minute interval."""
    def in_regex(match: re.Match) -> str:
        return f'{match.group(1)}"{_VARIABLE.sub(".*", match.group(2))}"'

    def elsewhere(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name not in _INTERVALS:
            raise ValueError(f"${name} outside a regex matcher has no value standing for all of its values: {expr}")
        return _INTERVALS[name]

    return _VARIABLE.sub(elsewhere, _REGEX_MATCHER.sub(in_regex, expr))


def _variable_selector(variable: dict) -> str:
    query = variable["query"]
    query = query.get("query", "") if isinstance(query, dict) else query
    match = _LABEL_VALUES.fullmatch(query.strip())
    if match is None:
        raise ValueError(f"variable {variable['name']}: only label_values(<selector>, <label>) is understood: {query}")
    return match.group(1).strip()


def _panels(panels: list[dict]) -> list[dict]:
    """Panels, including those inside (collapsed) rows."""
    return [p for panel in panels for p in (panel, *_panels(panel.get("panels", [])))]

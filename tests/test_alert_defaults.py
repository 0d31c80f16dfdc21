"""pipewatch's built-in alert rules and deploy/prometheus/rules.yml, condition for condition: every alert test of
tests/prometheus_rules/ (which promtool passes, tests/test_prometheus_rules.py) is evaluated again by pipewatch's
own engine on the same input series, evaluation by evaluation, and must give the same alerts."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from monitoring.alerts.config import AlertsSettings
from monitoring.alerts.engine import FIRING, AlertEngine
from monitoring.alerts.rules import DEFAULT_RULES
from monitoring.alerts.series import Sample
from monitoring.store import Store

ROOT = Path(__file__).resolve().parent.parent
RULE_TESTS = sorted((ROOT / "tests" / "prometheus_rules").glob("*.test.yml"))
PROMETHEUS_ONLY = {"PipewatchAgentDown", "PipewatchAgentMissing"}
"""On Prometheus' own `up` series: an agent cannot alert on its own absence."""
SCRAPE_LABELS = {"job", "instance"}
"""Labels Prometheus adds when it scrapes: pipewatch's own series do not have them."""
LOOKBACK = 300.0
STALE = "stale"


def _values(notation: str) -> list[float | str | None]:
    """promtool's expanding notation: `a+bxn`, `axn`, `_`, `stale`, `NaN`, separated by spaces."""
    out: list[float | str | None] = []
    for token in notation.split():
        match = re.fullmatch(r"(_|stale|NaN|[+-]?(?:Inf|\d+(?:\.\d+)?))(?:([+-]\d+(?:\.\d+)?)?x(\d+))?", token)
        assert match, f"cannot read {token!r}"
        start, step, times = match.group(1), match.group(2), match.group(3)
        if start in ("_", STALE):
            out += [None if start == "_" else STALE] * (int(times) if times else 1)
            continue
        first = float(start.replace("Inf", "inf").replace("NaN", "nan"))
        if times is None:
            out.append(first)
        else:
            out += [first + i * float(step or 0) for i in range(int(times) + 1)]
    return out


def _series(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    name, _, rest = text.partition("{")
    labels = tuple((k, v) for k, v in re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest) if k not in SCRAPE_LABELS)
    return name, labels


def _duration(text: str) -> float:
    return sum(float(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"(\d+)([smh])", text))


@dataclass
class PromtoolView:
    """The test's input series as pipewatch's engine reads its exported series: the instant value Prometheus
    would see (the newest sample within its 5 minute lookback, none after a stale marker) and the range."""

    series: dict[tuple[str, tuple], list[tuple[float, float | str]]]
    now: float = 0.0

    def instant(self, name: str) -> list[Sample]:
        out = []
        for (metric, labels), points in self.series.items():
            if metric != name:
                continue
            held = [(t, v) for t, v in points if t <= self.now]
            if held and held[-1][1] != STALE and self.now - held[-1][0] <= LOOKBACK:
                out.append(Sample(name, labels, float(held[-1][1]), None, (metric, labels)))
        return out

    def instant_at(self, name: str, t: float) -> list[Sample]:
        return PromtoolView(self.series, t).instant(name)

    def history(self, sample: Sample, window: float) -> tuple[np.ndarray, np.ndarray]:
        points = [(t, v) for t, v in self.series[sample.key] if self.now - window <= t <= self.now and v != STALE]
        return np.array([t for t, _ in points], dtype=float), np.array([v for _, v in points], dtype=float)


def _cases() -> list:
    cases = []
    for path in RULE_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            tested = [case for case in group.get("alert_rule_test", []) if case["alertname"] not in PROMETHEUS_ONLY]
            if tested:
                cases.append(pytest.param(group, tested, id=f"{path.stem}:{group['name']}"))
    return cases


@pytest.mark.parametrize(("group", "tested"), _cases())
def test_builtin_rules_give_the_alerts_promtool_expects(group, tested):
    step = _duration(group.get("interval", "1m"))
    series: dict[tuple[str, tuple], list] = {}
    for entry in group["input_series"]:
        points = series.setdefault(_series(entry["series"]), [])
        points += [(i * step, v) for i, v in enumerate(_values(entry["values"])) if v is not None]
    view = PromtoolView(series)
    engine = AlertEngine(AlertsSettings(), Store(), ["orders"])
    expected = {(_duration(c["eval_time"]), c["alertname"]): c.get("exp_alerts") or [] for c in tested}
    got: dict[tuple[float, str], list] = {}
    last = max(t for t, _ in expected)
    for i in range(int(last // 60) + 1):  # evaluation_interval: 1m in every test file
        view.now = i * 60.0
        engine.evaluate_view(view)
        for (t, name) in expected:
            if math.isclose(t, view.now):
                got[(t, name)] = sorted(
                    sorted((k, v) for k, v in alert.labels if k != "alertname")
                    for alert in engine.state(view.now).active if alert.rule == name and alert.state == FIRING)
    for key, alerts in expected.items():
        want = sorted(sorted((k, str(v)) for k, v in a["exp_labels"].items() if k not in SCRAPE_LABELS)
                      for a in alerts)
        assert got[key] == want, f"{key[1]} at {key[0]:g} s"


def test_every_rule_of_rules_yml_is_built_in_or_prometheus_only():
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "rules.yml").read_text())["groups"]
    names = {rule["alert"] for group in rules for rule in group["rules"]}
    assert names - PROMETHEUS_ONLY == {rule.name for rule in DEFAULT_RULES}
    severities = {rule["alert"]: rule["labels"]["severity"] for group in rules for rule in group["rules"]}
    fors = {rule["alert"]: _duration(rule.get("for", "0s")) for group in rules for rule in group["rules"]}
    assert all(severities[r.name] == r.severity and fors[r.name] == r.for_seconds for r in DEFAULT_RULES)

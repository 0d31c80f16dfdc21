"""The conditions of alert rules: a small set of PromQL's operations, evaluated over the exported series.

A user's rule is one comparison of a metric with a threshold; the built-in rules (defaults.py) combine these nodes
to state the conditions of deploy/prometheus/rules.yml. Semantics follow Prometheus 2: comparisons filter and keep
the left value, `and`/`unless` match on all labels or the `on` list, range functions take the samples in
[now - window, now], increase() extrapolates like Prometheus' extrapolatedRate."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from monitoring.alerts.series import Sample

Labels = tuple[tuple[str, str], ...]

COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne}


class View(Protocol):
    now: float

    def instant(self, name: str) -> list[Sample]: ...

    def instant_at(self, name: str, t: float) -> list[Sample]:
        """What `instant(name)` was at the earlier time t (empty when unknown)."""
        ...

    def history(self, sample: Sample, window: float) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True, slots=True)
class Element:
    """One element of an instant vector: labels (without the metric name), value, and the series it came from."""

    labels: Labels
    value: float
    sample: Sample | None

    def key(self, on: tuple[str, ...] | None = None) -> Labels:
        if on is None:
            return tuple(sorted(self.labels))
        held = dict(self.labels)
        return tuple((name, held.get(name, "")) for name in sorted(on))


Vector = list[Element]


class Expr:
    def names(self) -> set[str]:
        """The sample names it reads."""
        raise NotImplementedError

    def evaluate(self, view: View) -> Vector:
        raise NotImplementedError


@dataclass(frozen=True)
class Select(Expr):
    metric: str
    matchers: tuple[tuple[str, str], ...] = ()
    """(label, regular expression matched against the whole value)."""
    _compiled: tuple[tuple[str, re.Pattern[str]], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", tuple((name, re.compile(p)) for name, p in self.matchers))

    def names(self) -> set[str]:
        return {self.metric}

    def evaluate(self, view: View) -> Vector:
        out = []
        for sample in view.instant(self.metric):
            labels = sample.label_map
            if all(pattern.fullmatch(labels.get(name, "")) for name, pattern in self._compiled):
                out.append(Element(sample.labels, sample.value, sample))
        return out


@dataclass(frozen=True)
class Offset(Expr):
    """`<select> offset <seconds>`: the selection as it was that long ago."""

    select: Select
    seconds: float

    def names(self) -> set[str]:
        return self.select.names()

    def evaluate(self, view: View) -> Vector:
        matchers = self.select._compiled
        out = []
        for sample in view.instant_at(self.select.metric, view.now - self.seconds):
            labels = sample.label_map
            if all(pattern.fullmatch(labels.get(name, "")) for name, pattern in matchers):
                out.append(Element(sample.labels, sample.value, sample))
        return out


def offsets(expr: Expr) -> dict[str, float]:
    """Sample name -> the longest offset at which `expr` reads it: what an evaluator must remember."""
    found: dict[str, float] = {}
    if isinstance(expr, Offset):
        found[expr.select.metric] = expr.seconds
    for value in vars(expr).values():
        if isinstance(value, Expr):
            for name, seconds in offsets(value).items():
                found[name] = max(found.get(name, 0.0), seconds)
    return found


@dataclass(frozen=True)
class Compare(Expr):
    """`expr op threshold`: the elements for which it holds, with their own values."""

    expr: Expr
    op: str
    threshold: float

    def names(self) -> set[str]:
        return self.expr.names()

    def evaluate(self, view: View) -> Vector:
        holds = COMPARE[self.op]
        return [e for e in self.expr.evaluate(view) if holds(e.value, self.threshold)]


@dataclass(frozen=True)
class CompareVectors(Expr):
    """`left op factor * right`, one to one on all labels: the left elements for which it holds."""

    left: Expr
    op: str
    right: Expr
    factor: float = 1.0

    def names(self) -> set[str]:
        return self.left.names() | self.right.names()

    def evaluate(self, view: View) -> Vector:
        right = {e.key(): e.value for e in self.right.evaluate(view)}
        holds = COMPARE[self.op]
        return [e for e in self.left.evaluate(view)
                if e.key() in right and holds(e.value, self.factor * right[e.key()])]


@dataclass(frozen=True)
class And(Expr):
    left: Expr
    right: Expr
    on: tuple[str, ...] | None = None

    def names(self) -> set[str]:
        return self.left.names() | self.right.names()

    def evaluate(self, view: View) -> Vector:
        right = {e.key(self.on) for e in self.right.evaluate(view)}
        return [e for e in self.left.evaluate(view) if e.key(self.on) in right]


@dataclass(frozen=True)
class Unless(Expr):
    left: Expr
    right: Expr
    on: tuple[str, ...] | None = None

    def names(self) -> set[str]:
        return self.left.names() | self.right.names()

    def evaluate(self, view: View) -> Vector:
        right = {e.key(self.on) for e in self.right.evaluate(view)}
        return [e for e in self.left.evaluate(view) if e.key(self.on) not in right]


@dataclass(frozen=True)
class Or(Expr):
    left: Expr
    right: Expr

    def names(self) -> set[str]:
        return self.left.names() | self.right.names()

    def evaluate(self, view: View) -> Vector:
        left = self.left.evaluate(view)
        seen = {e.key() for e in left}
        return left + [e for e in self.right.evaluate(view) if e.key() not in seen]


@dataclass(frozen=True)
class Age(Expr):
    """`time() - expr`: for a timestamp metric, how long ago it was."""

    expr: Expr

    def names(self) -> set[str]:
        return self.expr.names()

    def evaluate(self, view: View) -> Vector:
        return [Element(e.labels, view.now - e.value, e.sample) for e in self.expr.evaluate(view)]


def _range(select: Select, view: View, window: float) -> Iterable[tuple[Element, np.ndarray, np.ndarray]]:
    for element in select.evaluate(view):
        times, values = view.history(element.sample, window)
        yield element, times, values


def extrapolated_increase(times: np.ndarray, values: np.ndarray, start: float, end: float, counter: bool = True,
                          ) -> float | None:
    """Prometheus' extrapolatedRate (promql/functions.go) as increase(): the change over [start, end] from the
    samples in it, counter resets taken out, extrapolated to the range's edges; None with fewer than 2 samples."""
    if len(values) < 2:
        return None
    result = float(values[-1] - values[0])
    if counter:
        drops = values[:-1] > values[1:]
        result += float(values[:-1][drops].sum())
    sampled = float(times[-1] - times[0])
    if sampled <= 0:
        return None
    to_start, to_end = float(times[0]) - start, end - float(times[-1])
    average = sampled / (len(values) - 1)
    if counter and result > 0 and values[0] >= 0:
        to_zero = sampled * (float(values[0]) / result)
        to_start = min(to_start, to_zero)
    threshold = average * 1.1
    interval = sampled
    interval += to_start if to_start < threshold else average / 2
    interval += to_end if to_end < threshold else average / 2
    return result * (interval / sampled)


@dataclass(frozen=True)
class Increase(Expr):
    select: Select
    window: float

    def names(self) -> set[str]:
        return self.select.names()

    def evaluate(self, view: View) -> Vector:
        out = []
        for element, times, values in _range(self.select, view, self.window):
            change = extrapolated_increase(times, values, view.now - self.window, view.now)
            if change is not None:
                out.append(Element(element.labels, change, element.sample))
        return out


@dataclass(frozen=True)
class Deriv(Expr):
    """Per-second slope of a simple linear regression over the window (Prometheus' deriv())."""

    select: Select
    window: float

    def names(self) -> set[str]:
        return self.select.names()

    def evaluate(self, view: View) -> Vector:
        out = []
        for element, times, values in _range(self.select, view, self.window):
            if len(values) < 2:
                continue
            x = times - times[0]
            slope = float(np.sum((x - x.mean()) * (values - values.mean())) / np.sum((x - x.mean()) ** 2))
            out.append(Element(element.labels, slope, element.sample))
        return out


@dataclass(frozen=True)
class SumWithout(Expr):
    expr: Expr
    without: tuple[str, ...]

    def names(self) -> set[str]:
        return self.expr.names()

    def evaluate(self, view: View) -> Vector:
        sums: dict[Labels, list] = {}
        for e in self.expr.evaluate(view):
            labels = tuple((n, v) for n, v in e.labels if n not in self.without)
            held = sums.setdefault(labels, [0.0, e.sample])
            held[0] += e.value
        return [Element(labels, total, sample) for labels, (total, sample) in sums.items()]


@dataclass(frozen=True)
class HistogramQuantile(Expr):
    """`histogram_quantile(q, sum by (by..., le) (rate(<buckets>[window])))`."""

    q: float
    buckets: Select
    window: float
    by: tuple[str, ...]

    def names(self) -> set[str]:
        return self.buckets.names()

    def evaluate(self, view: View) -> Vector:
        groups: dict[Labels, dict[float, float]] = {}
        samples: dict[Labels, Sample | None] = {}
        for element, times, values in _range(self.buckets, view, self.window):
            change = extrapolated_increase(times, values, view.now - self.window, view.now)
            if change is None:
                continue
            labels = dict(element.labels)
            group = tuple((name, labels.get(name, "")) for name in self.by)
            bound = float(labels["le"].replace("+Inf", "inf"))
            rates = groups.setdefault(group, {})
            rates[bound] = rates.get(bound, 0.0) + change / self.window
            samples.setdefault(group, element.sample)
        out = []
        for group, rates in groups.items():
            value = bucket_quantile(self.q, sorted(rates.items()))
            if not math.isnan(value):
                out.append(Element(group, value, samples[group]))
        return out


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus' bucketQuantile over (upper bound, cumulative count) sorted by bound."""
    if not buckets or buckets[-1][0] != math.inf or len(buckets) < 2:
        return math.nan
    counts = [count for _, count in buckets]
    for i in range(1, len(counts)):  # monotonicity fix, as Prometheus does
        counts[i] = max(counts[i], counts[i - 1])
    total = counts[-1]
    if total == 0:
        return math.nan
    rank = q * total
    index = next(i for i, count in enumerate(counts) if count >= rank)
    if index == len(buckets) - 1:
        return buckets[-2][0]
    if index == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, low = (0.0, 0.0) if index == 0 else (buckets[index - 1][0], counts[index - 1])
    end = buckets[index][0]
    return start + (end - start) * ((rank - low) / (counts[index] - low))

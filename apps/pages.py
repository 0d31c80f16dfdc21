"""The dashboard's pages and a pipeline's sections, and the URL that shows each: a page is one entry of PAGES.

docs/dashboard.md lists the URLs. A session builds only the page its URL names (apps/main.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import panel as pn

from monitoring.models.aggregate import AGGREGATE_PIPELINE
from monitoring.sources import CHANGE_FEED, FLINK, KAFKA, PROFILING, SCHEMA_REGISTRY, DeclaredSource


@dataclass(frozen=True)
class Route:
    """What a URL shows: a page, the pipeline chosen (kept while other pages are shown) and, on the pipeline page,
    one of its sections ("" for the pipeline's summary)."""

    page: str
    pipeline: str
    section: str = ""

    def query(self, extra: dict[str, str] | None = None) -> str:
        """The URL's query for this route; `extra` keeps other parameters (the theme)."""
        params = {"page": self.page, "pipeline": self.pipeline}
        if self.section:
            params["section"] = self.section
        params.update({k: v for k, v in (extra or {}).items() if k not in ("page", "pipeline", "section")})
        return "?" + urlencode(params)


@dataclass(frozen=True)
class Page:
    title: str
    build: Callable[..., object]
    """(service, route) -> the page's view: a Viewer with refresh(), go_live(), close() and, when it builds its
    heavy parts after the first paint, complete()."""


def _overview(service, route: Route):
    from apps.overview_view import OverviewPage

    return OverviewPage(service.store, service.alerts)


def _pipeline(service, route: Route):
    from apps.views import PipelinePage

    config = next(p for p in service.config.pipelines if p.name == route.pipeline)
    return PipelinePage(service.store, route.pipeline, service.sources, config, section=route.section, defer=True)


def _aggregate(service, route: Route):
    from apps.aggregate_view import AggregatePage

    return AggregatePage.of(service)


def _errors(service, route: Route):
    from apps.errors_view import ErrorsPage

    return ErrorsPage(service.store, pipeline_names(service))


def _alerts(service, route: Route):
    from apps.alerts_view import AlertsPage

    return AlertsPage(service.alerts, pn.state.user, service.config.mirror.url if service.mirror else None)


PAGES: dict[str, Page] = {
    "overview": Page("Overview", _overview),
    "pipeline": Page("Pipeline", _pipeline),
    # All pipelines: this process's, remote agents' (`remote_agents`) and Prometheus' (`prometheus`).
    "aggregate": Page("All pipelines", _aggregate),
    "errors": Page("Errors", _errors),
    "alerts": Page("Alerts", _alerts),
}
"""The pages, in the sidebar's order: the key is the URL's `page`."""

SECTIONS: dict[str, str] = {KAFKA: "Kafka", SCHEMA_REGISTRY: "Schema registry", FLINK: "Flink",
                            PROFILING: "Profiling", CHANGE_FEED: "Change feed"}
"""A pipeline's sections, one per kind of source, in the page's order: the key is the URL's `section`."""


def pipeline_names(service) -> list[str]:
    return [p.name for p in service.config.pipelines]


def sections_of(sources: list[DeclaredSource], pipeline: str) -> list[str]:
    """The sections a pipeline has: a kind of source its config declares."""
    kinds = {s.kind for s in sources if s.pipeline == pipeline}
    return [kind for kind in SECTIONS if kind in kinds]


def route(args: dict[str, list[bytes]], pipelines: list[str], sources: list[DeclaredSource]) -> Route:
    """What the URL's query asks for; anything unknown falls back to the overview, the first pipeline, the summary.
    `?pipeline=NAME` alone (links from before pages had names) opens that pipeline, `?pipeline=_aggregate` the
    aggregate page."""
    def arg(name: str) -> str:
        return args.get(name, [b""])[0].decode("utf-8", "replace")

    page, pipeline, section = arg("page"), arg("pipeline"), arg("section")
    if not page and pipeline:
        page = "aggregate" if pipeline == AGGREGATE_PIPELINE else "pipeline"
    if page not in PAGES:
        page = "overview"
    if pipeline not in pipelines:
        pipeline = pipelines[0]
    return Route(page, pipeline, fit_section(page, section, sources, pipeline))


def fit_section(page: str, section: str, sources: list[DeclaredSource], pipeline: str) -> str:
    """`section` where that page and pipeline have it, else the summary ("")."""
    return section if page == "pipeline" and section in sections_of(sources, pipeline) else ""

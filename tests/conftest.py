from __future__ import annotations

from dataclasses import dataclass

import pytest

from pipewatch.local.broker import LocalBroker
from pipewatch.local.flink import LocalFlink
from pipewatch.local.postgres import LocalPostgres
from tests.schema_registry_standin import SchemaRegistryStandIn
from tests.services import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture
def broker(tmp_path):
    tansu = LocalBroker(tmp_path)
    tansu.start()
    yield tansu
    tansu.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """One PostgreSQL for the session; tests keep to schemas of their own (see `pg_schema`)."""
    server = LocalPostgres(tmp_path_factory.mktemp("postgres")).start()
    yield server
    server.close()


@pytest.fixture
def pg_schema(request) -> str:
    """A schema name unique to the test."""
    return "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]


@dataclass
class FlinkJobs:
    cluster: LocalFlink
    steady: str
    """Checkpoints every 2 s; its source is backpressured by a slow map."""
    failing: str
    """Divides by zero every 500 records, restarts every 2 s."""


@pytest.fixture(scope="session")
def flink(tmp_path_factory):
    """One real Flink cluster for the session, running both test jobs."""
    cluster = LocalFlink(tmp_path_factory.mktemp("flink")).start()
    try:
        yield FlinkJobs(cluster, cluster.submit("steady"), cluster.submit("failing"))
    finally:
        cluster.stop()


@pytest.fixture
def registry():
    """The schema-registry stand-in (tests/schema_registry_standin.py) on a free port."""
    standin = SchemaRegistryStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture
def chromium():
    """The system Chromium (never a downloaded browser), for one test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium):
    """A page that records JavaScript errors (reported when a test fails)."""
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_navigation_timeout(90_000)  # a page's scripts and styles, on a busy two-core machine
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
    return page

from __future__ import annotations

import pytest

from monitoring.local_broker import LocalBroker
from monitoring.local_postgres import LocalPostgres


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

from __future__ import annotations

import pytest

from monitoring.local_broker import LocalBroker


@pytest.fixture
def broker(tmp_path):
    tansu = LocalBroker(tmp_path)
    tansu.start()
    yield tansu
    tansu.stop()

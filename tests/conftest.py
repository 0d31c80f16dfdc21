from __future__ import annotations

import pytest

from tests.services import TansuBroker


@pytest.fixture
def broker(tmp_path):
    tansu = TansuBroker(tmp_path)
    tansu.start()
    yield tansu
    tansu.stop()

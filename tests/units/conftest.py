"""Fixtures for the units' tests: three units of one station in this process (``stations.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .stations import Station, make_template, running_station


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory)


@pytest.fixture
def station(template: Path, tmp_path: Path) -> Iterator[Station]:
    yield from running_station(template, tmp_path)

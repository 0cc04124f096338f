"""Fixtures for the record-key tests: a running software TPM per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.keys.swtpm import SoftTpm


@pytest.fixture
def soft_tpm(tmp_path: Path) -> Iterator[SoftTpm]:
    """A fresh swtpm (new seeds), stopped after the test."""
    tpm = SoftTpm.start(tmp_path / "tpm-state")
    yield tpm
    tpm.stop()

"""Fixtures for the provisioning tests: a CEC key, an election plan and a practice voter list in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prov_helpers import ELECTION, PLAN, STATION, b64

from provisioning.cec import create_cec_key
from provisioning.samplelist import write_sample_csv


@pytest.fixture
def receiver_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def cec(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey]:
    path = tmp_path / "cec" / "cec.key"
    return path, create_cec_key(path)


@pytest.fixture
def plan(tmp_path: Path, receiver_key: Ed25519PrivateKey) -> Path:
    path = tmp_path / "cec" / "election.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(PLAN.format(election=ELECTION, station=STATION, receiver=b64(receiver_key)))
    return path


@pytest.fixture
def voters(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    path = tmp_path / "cec" / "voters.csv"
    path.parent.mkdir(exist_ok=True)
    return path, write_sample_csv(path, STATION, 300, seed=7)


@pytest.fixture
def list_key() -> bytes:
    return os.urandom(32)

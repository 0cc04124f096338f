"""Fixtures for the provisioning tests: a CEC key, an election plan, a practice voter list, a receiver port."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
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
def receiver_socket() -> Iterator[socket.socket]:
    """A loopback port reserved for the receiver: bound, not listening until a test serves it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture
def receiver_url(receiver_socket: socket.socket) -> str:
    return f"http://127.0.0.1:{receiver_socket.getsockname()[1]}"


@pytest.fixture
def cec(tmp_path: Path) -> tuple[Path, Ed25519PrivateKey]:
    path = tmp_path / "cec" / "cec.key"
    return path, create_cec_key(path)


@pytest.fixture
def plan(tmp_path: Path, receiver_key: Ed25519PrivateKey, receiver_url: str) -> Path:
    path = tmp_path / "cec" / "election.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(PLAN.format(election=ELECTION, station=STATION, receiver=b64(receiver_key), url=receiver_url))
    return path


@pytest.fixture
def voters(tmp_path: Path) -> tuple[Path, list[list[str]]]:
    path = tmp_path / "cec" / "voters.csv"
    path.parent.mkdir(exist_ok=True)
    return path, write_sample_csv(path, STATION, 300, seed=7)


@pytest.fixture
def list_key() -> bytes:
    return os.urandom(32)

"""Fixtures for the upstream tests: a journal on disk, device and receiver keys, an in-memory receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from upstream_fakes import STATION, MemoryReceiver, make_upstream

from device.hardware.clock import FakeClock
from device.store.journal import Journal
from device.upstream.service import Upstream


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def device_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def receiver_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.db", STATION)
    yield j
    j.close()


@pytest.fixture
def receiver(receiver_key: Ed25519PrivateKey, device_key: Ed25519PrivateKey, fake_clock: FakeClock) -> MemoryReceiver:
    return MemoryReceiver(receiver_key, device_key.public_key(), fake_clock)


@pytest.fixture
def upstream(journal: Journal, device_key: Ed25519PrivateKey, receiver_key: Ed25519PrivateKey,
             receiver: MemoryReceiver, fake_clock: FakeClock) -> Iterator[Upstream]:
    up = make_upstream(journal, device_key, receiver_key, receiver, fake_clock)
    yield up
    up.close()



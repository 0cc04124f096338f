"""Fixtures for the receiver: keys, enrolled units, apps (on the databases of ``db_url``, in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from flask.testing import FlaskClient
from rx_kit import Setup, Unit

from device.hardware.clock import FakeClock
from device.keys import write_private
from receiver.app import create_app


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    """A CEC key, a receiver key and two enrolled stations, KG-0001 and KG-0002."""
    s = Setup(tmp_path, Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate(),
              {name: Unit(name) for name in ("KG-0001", "KG-0002")})
    write_private(s.key_path, s.receiver_key)
    s.enroll(*s.units.values())
    return s


@pytest.fixture
def app(setup: Setup, db_url: str, clock: FakeClock) -> Iterator[Flask]:
    flask_app = create_app(setup.config(db_url, clock))
    yield flask_app
    flask_app.extensions["pollbox_receiver"].storage.close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()

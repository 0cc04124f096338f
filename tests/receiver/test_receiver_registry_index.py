"""The registry kept in the database: verified and indexed once per file, read from there by every later start."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rx_kit import Setup, Unit, post

from device.hardware.clock import FakeClock
from protocol.keys import public_b64
from receiver.app import create_app
from receiver.registry import Registry, RegistryError, StoredRegistry
from receiver.service import ReceiverConfigError, build_receiver
from receiver.store.registry_index import KEEP


def test_a_second_start_reads_the_indexed_registry_without_parsing_the_file(
        setup: Setup, db_url: str, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    first = build_receiver(setup.config(db_url, clock))
    assert isinstance(first.registry(), StoredRegistry)
    first.storage.close()

    def no_parse(*args: object, **kwargs: object) -> Registry:
        raise AssertionError("the registry file was parsed again")

    monkeypatch.setattr(Registry, "from_bytes", no_parse)
    again = build_receiver(setup.config(db_url, clock))
    try:
        registry = again.registry()
        unit = setup.units["KG-0001"]
        assert registry.for_key(unit.key_id) == unit.entry()
        assert registry.stations() == ["KG-0001", "KG-0002"] and len(registry) == 2
        assert registry.signed_document == setup.registry_path.read_bytes()
    finally:
        again.storage.close()


def test_units_are_authenticated_from_the_index(setup: Setup, db_url: str, clock: FakeClock) -> None:
    app = create_app(setup.config(db_url, clock))
    try:
        client = app.test_client()
        unit = setup.units["KG-0002"]
        assert post(client, unit.records(3)).status_code == 200
        stranger = Unit("KG-0002")  # a key the CEC never enrolled
        answer = post(client, stranger.records(1))
        assert answer.status_code != 200 and answer.get_json()["error"] == "unknown_key"
        devices = client.get("/api/v1/stations/KG-0002/devices").get_json()["devices"]
        assert [d["key_id"] for d in devices] == [unit.key_id]
        assert client.get("/api/v1/registry").data == setup.registry_path.read_bytes()
    finally:
        app.extensions["pollbox_receiver"].storage.close()


def test_an_index_made_under_another_cec_key_is_not_trusted(setup: Setup, db_url: str, clock: FakeClock) -> None:
    build_receiver(setup.config(db_url, clock)).storage.close()
    other = {**setup.config(db_url, clock), "CEC_PUBLIC_KEY": public_b64(Ed25519PrivateKey.generate().public_key())}
    with pytest.raises(ReceiverConfigError, match="the CEC signature does not verify"):
        build_receiver(other)


def test_a_new_registry_file_is_indexed_on_reload_and_old_ones_pruned(
        setup: Setup, db_url: str, clock: FakeClock) -> None:
    receiver = build_receiver(setup.config(db_url, clock))
    try:
        for n in range(KEEP + 2):
            newcomer = Unit(f"KG-1{n:03d}")
            setup.enroll(newcomer)
            clock.advance(1)
            registry = receiver.registry()
            assert registry.for_key(newcomer.key_id) == newcomer.entry()
        kept = receiver.storage._q("SELECT COUNT(*) FROM registry_documents").fetchone()[0]
        assert kept == KEEP
        assert receiver.storage._q("SELECT COUNT(DISTINCT digest) FROM registry_devices").fetchone()[0] == KEEP
        # the enrolled stations followed the registry in force
        assert receiver.storage.status(f"KG-1{KEEP + 1:03d}") is not None
    finally:
        receiver.storage.close()


def test_a_bad_file_on_reload_keeps_the_indexed_registry_in_force(
        setup: Setup, db_url: str, clock: FakeClock) -> None:
    receiver = build_receiver(setup.config(db_url, clock))
    try:
        before = receiver.registry()
        setup.registry_path.write_bytes(setup.registry_path.read_bytes().replace(b"KG-0001", b"KG-0009"))
        assert receiver.registry() is before
        assert receiver.storage._q("SELECT COUNT(*) FROM registry_documents").fetchone()[0] == 1
    finally:
        receiver.storage.close()


def test_a_revocation_read_from_the_index_is_enforced(setup: Setup, db_url: str, clock: FakeClock,
                                                      tmp_path: Path) -> None:
    unit = setup.units["KG-0001"]
    setup.revoke(unit, last_seq=2)
    app = create_app(setup.config(db_url, clock))
    try:
        registry = app.extensions["pollbox_receiver"].registry()
        assert [entry.key_id for entry, _ in registry.revoked()] == [unit.key_id]
        assert registry.revocation_of(unit.key_id).last_seq == 2
        client = app.test_client()
        assert post(client, unit.records(2)).status_code == 200
        assert post(client, [unit.record()]).get_json()["error"] == "revoked_key"
    finally:
        app.extensions["pollbox_receiver"].storage.close()


def test_a_stored_registry_refuses_a_newer_file_that_undoes_a_revocation(
        setup: Setup, db_url: str, clock: FakeClock) -> None:
    older = setup.registry_path.read_bytes()
    setup.revoke(setup.units["KG-0001"], last_seq=0)
    receiver = build_receiver(setup.config(db_url, clock))
    try:
        revoked = receiver.registry()
        setup.registry_path.write_bytes(older)  # validly signed, but without the revocation
        clock.advance(1)
        assert receiver.registry() is revoked
        with pytest.raises(RegistryError, match="a revocation is never undone"):
            receiver.registry_file._take(Registry.from_bytes(older, setup.cec.public_key()))
    finally:
        receiver.storage.close()

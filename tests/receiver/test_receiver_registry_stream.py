"""A registry file verified and indexed as a stream: the same devices as the whole-file path, refusals that name the
device and its station, nothing indexed from a refused file, and ``pollbox-receiver registry-import`` ahead of start."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rx_kit import Setup, Unit

from device.hardware.clock import FakeClock
from protocol.canonical import canonical
from protocol.keys import public_b64
from receiver import registry_stream
from receiver.registry import FORMAT, Registry, RegistryError, RegistryFile, Revocation
from receiver.service import build_receiver
from receiver.storage import Storage, open_storage
from receiver.store import revocations

ROOT = Path(__file__).resolve().parents[2]


def _registry(stations: list[str]) -> Registry:
    registry = Registry()
    for n, station in enumerate(stations):
        unit = Unit(station, key=Ed25519PrivateKey.from_private_bytes(n.to_bytes(32, "big")))
        registry.add(unit.entry(serial=f"SN-{n}"))
    return registry


def _write(path: Path, cec: Ed25519PrivateKey, devices: list[dict[str, Any]], pretty: bool = False) -> None:
    """A registry file of exactly these devices, signed by ``cec`` (canonical, or pretty-printed JSON)."""
    signature = base64.b64encode(cec.sign(canonical(devices))).decode()
    doc = {"format": FORMAT, "devices": devices, "signature": signature}
    path.write_bytes(json.dumps(doc, indent=2).encode() if pretty else canonical(doc) + b"\n")


def _no_whole_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def whole(*args: object, **kwargs: object) -> Registry:
        raise AssertionError("the file was read whole")

    monkeypatch.setattr(Registry, "from_bytes", whole)


def _indexed(storage: Storage) -> int:
    return int(storage._q("SELECT COUNT(*) FROM registry_devices").fetchone()[0])


@pytest.fixture
def storage(db_url: str) -> Any:
    """A fresh receiver database: SQLite, then PostgreSQL (marked postgres)."""
    opened = open_storage(db_url)
    yield opened
    opened.close()


def test_a_streamed_registry_answers_as_the_whole_file_does(
        tmp_path: Path, storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    cec = Ed25519PrivateKey.generate()
    # non-ASCII station ids (cut across chunks), a unit of a station of several, a revoked key
    registry = _registry(["KG-0001", "KG-Ош-0002", "KG-Бишкек-0003", "KG-0004"])
    first = next(iter(registry))
    registry.assign_unit(first.key_id, first.station, "desk-1", "main")
    third = registry.devices_of("KG-Бишкек-0003")[0]
    registry.revoke(third.key_id, third.station, Revocation("2026-11-27T11:00:00.000000Z", "lost", "CEC", 4))
    path = tmp_path / "registry.json"
    registry.sign_and_save(path, cec)
    monkeypatch.setattr(registry_stream, "CHUNK", 7)  # every device is longer than a chunk; chunks cut characters
    _no_whole_file(monkeypatch)

    stored = RegistryFile(path, cec.public_key(), storage).registry

    assert len(stored) == 4 and stored.stations() == registry.stations()
    assert sorted(stored, key=lambda e: e.key_id) == sorted(registry, key=lambda e: e.key_id)
    assert stored.revoked() == registry.revoked()
    assert stored.devices_of("KG-0001")[0].chain_unit == ""
    assert stored.signed_document == path.read_bytes()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stations=st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
                                 max_size=12).filter(str.isprintable), min_size=0, max_size=6, unique=True),
       chunk=st.integers(1, 400))
def test_any_station_ids_and_chunk_size_stream_to_the_same_rows(
        tmp_path_factory: pytest.TempPathFactory, stations: list[str], chunk: int) -> None:
    directory = tmp_path_factory.mktemp("reg")
    cec = Ed25519PrivateKey.from_private_bytes(bytes(31) + b"\x07")
    registry = _registry(stations)
    path = directory / "registry.json"
    registry.sign_and_save(path, cec)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(registry_stream, "CHUNK", chunk)
        with registry_stream.RegistryStream(path, "registry.json") as stream:
            stream.verify(cec.public_key())
            rows = list(stream.rows())
    assert sorted(rows) == sorted(registry.device_rows())


def test_a_device_that_fails_its_checks_is_named_with_its_station_and_nothing_is_indexed(
        tmp_path: Path, storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    cec = Ed25519PrivateKey.generate()
    devices = _registry(["KG-0001", "KG-0002", "KG-0003"]).devices_json()
    devices[2]["key_id"] = "0000000000000000"  # signed by the CEC, but not the key's id
    path = tmp_path / "registry.json"
    _write(path, cec, devices)
    monkeypatch.setattr(registry_stream, "CHUNK", 100)
    monkeypatch.setattr("receiver.store.registry_index.CHUNK_ROWS", 1)  # the first devices are written before
    _no_whole_file(monkeypatch)
    with pytest.raises(RegistryError, match=r"registry.json: station KG-0003: device 2 \(SN-2\): key_id does not "
                                            r"match its public key"):
        RegistryFile(path, cec.public_key(), storage)
    assert _indexed(storage) == 0
    assert storage._q("SELECT COUNT(*) FROM registry_documents").fetchone()[0] == 0


def test_an_altered_file_is_refused_before_any_device_is_indexed(tmp_path: Path, storage: Storage,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cec = Ed25519PrivateKey.generate()
    path = tmp_path / "registry.json"
    _registry(["KG-0001", "KG-0002"]).sign_and_save(path, cec)
    path.write_bytes(path.read_bytes().replace(b"KG-0002", b"KG-0009"))
    monkeypatch.setattr(registry_stream.RegistryStream, "rows", lambda self: pytest.fail("devices were read"))
    with pytest.raises(RegistryError, match="registry.json: the CEC signature does not verify"):
        RegistryFile(path, cec.public_key(), storage)
    assert _indexed(storage) == 0


def test_a_list_signed_in_canonical_form_but_written_with_escapes_is_accepted_as_before(
        tmp_path: Path, storage: Storage) -> None:
    cec = Ed25519PrivateKey.generate()
    registry = _registry(["KG-Ош-0001", "KG-0002"])
    devices = registry.devices_json()
    signature = base64.b64encode(cec.sign(canonical(devices))).decode()
    path = tmp_path / "registry.json"
    # the same layout, but non-ASCII written as \u escapes: not the signed bytes, yet the same devices
    path.write_text(json.dumps({"devices": devices, "format": FORMAT, "signature": signature}, sort_keys=True,
                               separators=(",", ":")) + "\n")
    assert "\\u041e" in path.read_text()
    stored = RegistryFile(path, cec.public_key(), storage).registry
    assert stored.stations() == registry.stations() and len(stored) == 2


def test_a_file_laid_out_otherwise_is_read_whole_with_the_same_result(tmp_path: Path, storage: Storage) -> None:
    cec = Ed25519PrivateKey.generate()
    registry = _registry(["KG-0001", "KG-0002"])
    path = tmp_path / "registry.json"
    _write(path, cec, registry.devices_json(), pretty=True)
    stored = RegistryFile(path, cec.public_key(), storage).registry
    assert sorted(stored, key=lambda e: e.key_id) == sorted(registry, key=lambda e: e.key_id)
    assert stored.signed_document == path.read_bytes()


def test_a_key_listed_twice_is_judged_as_the_whole_file_judges_it(tmp_path: Path, storage: Storage) -> None:
    cec = Ed25519PrivateKey.generate()
    devices = _registry(["KG-0001", "KG-0002"]).devices_json()
    path = tmp_path / "twice.json"
    _write(path, cec, [devices[0], devices[0], devices[1]])  # the same entry twice: one device, as before
    assert len(RegistryFile(path, cec.public_key(), storage).registry) == 2
    other = tmp_path / "two-stations.json"
    _write(other, cec, [*devices, {**devices[0], "station": "KG-0003"}])
    with pytest.raises(RegistryError, match="is already enrolled for station KG-0001"):
        RegistryFile(other, cec.public_key(), storage)


def test_enrolled_stations_are_written_in_chunks(setup: Setup, tmp_path: Path, clock: FakeClock,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(revocations, "SYNC_CHUNK", 1)
    setup.enroll(Unit("KG-0003"), Unit("TRAINING-KG-0004"))
    receiver = build_receiver(setup.config(str(tmp_path / "receiver.db"), clock))
    try:
        rows = receiver.storage._q("SELECT station, enrolled, training FROM stations ORDER BY station").fetchall()
        assert [tuple(r) for r in rows] == [("KG-0001", 1, 0), ("KG-0002", 1, 0), ("KG-0003", 1, 0),
                                            ("TRAINING-KG-0004", 1, 1)]
    finally:
        receiver.storage.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "receiver.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def test_registry_import_indexes_ahead_so_the_receiver_starts_without_reading_the_file(
        setup: Setup, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "receiver.db")
    args = ["registry-import", "--db", db, "--registry", str(setup.registry_path),
            "--cec-public-key", public_b64(setup.cec.public_key())]
    done = _cli(*args)
    assert done.returncode == 0, done.stderr
    assert "verified and indexed in" in done.stdout and ": 2 devices, 0 revoked" in done.stdout
    again = _cli(*args)
    assert again.returncode == 0 and "was already indexed: 2 devices" in again.stdout

    _no_whole_file(monkeypatch)
    monkeypatch.setattr(registry_stream.RegistryStream, "rows", lambda self: pytest.fail("the file was read"))
    receiver = build_receiver(setup.config(db, clock))
    try:
        assert not receiver.registry_file.newly_indexed
        assert receiver.registry().stations() == ["KG-0001", "KG-0002"]
    finally:
        receiver.storage.close()


def test_registry_import_names_the_refused_device_and_exits_2(tmp_path: Path) -> None:
    cec = Ed25519PrivateKey.generate()
    devices = _registry(["KG-0001", "KG-0002"]).devices_json()
    devices[1]["software"] = 7
    path = tmp_path / "registry.json"
    _write(path, cec, devices)
    done = _cli("registry-import", "--db", str(tmp_path / "receiver.db"), "--registry", str(path),
                "--cec-public-key", public_b64(cec.public_key()))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (f"pollbox-receiver: {path}: station KG-0002: device 1: every "
                                                    "field is a string")

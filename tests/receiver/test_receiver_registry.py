"""The device registry: CEC signature, key binding, reload, and the CLI that enrolls and generates keys."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rx_kit import Unit

from device.keys import write_private
from protocol.canonical import canonical
from protocol.keys import public_b64
from receiver.cli import main as cli_main
from receiver.registry import DeviceEntry, Registry, RegistryError, RegistryFile
from receiver.service import ReceiverConfigError, build_receiver


@pytest.fixture
def cec() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def saved(path: Path, cec: Ed25519PrivateKey, *units: Unit) -> Path:
    registry = Registry()
    for unit in units:
        registry.add(unit.entry())
    registry.sign_and_save(path, cec)
    return path


def test_signed_registry_round_trips(tmp_path: Path, cec: Ed25519PrivateKey) -> None:
    a, b, spare = Unit("KG-0001"), Unit("KG-0002"), Unit("KG-0001")
    registry = Registry.load(saved(tmp_path / "r.json", cec, a, b, spare), cec.public_key())
    assert registry.for_key(a.key_id) == a.entry() and registry.for_key("0" * 16) is None
    assert registry.stations() == ["KG-0001", "KG-0002"]
    assert {e.key_id for e in registry.devices_of("KG-0001")} == {a.key_id, spare.key_id}


@pytest.mark.parametrize("damage, message", [
    (lambda doc: doc["devices"][0].update(station="KG-9999"), "does not verify"),
    (lambda doc: doc.update(signature=""), "unsigned"),
    (lambda doc: doc.update(format="something/1"), "not a device registry"),
    (lambda doc: doc.update(devices={}), "must be a list"),
])
def test_damaged_registry_is_refused(tmp_path: Path, cec: Ed25519PrivateKey, damage: object, message: str) -> None:
    path = saved(tmp_path / "r.json", cec, Unit("KG-0001"))
    doc = json.loads(path.read_bytes())
    damage(doc)  # type: ignore[operator]
    path.write_bytes(canonical(doc))
    with pytest.raises(RegistryError, match=message):
        Registry.load(path, cec.public_key())


def test_registry_signed_by_another_key_is_refused(tmp_path: Path, cec: Ed25519PrivateKey) -> None:
    path = saved(tmp_path / "r.json", Ed25519PrivateKey.generate(), Unit("KG-0001"))
    with pytest.raises(RegistryError, match="does not verify"):
        Registry.load(path, cec.public_key())


def test_missing_or_broken_files_say_so(tmp_path: Path, cec: Ed25519PrivateKey) -> None:
    with pytest.raises(RegistryError, match="no device registry"):
        Registry.load(tmp_path / "absent.json", cec.public_key())
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(RegistryError, match="not JSON"):
        Registry.load(tmp_path / "broken.json", cec.public_key())


def test_key_is_bound_to_one_station(cec: Ed25519PrivateKey) -> None:
    unit = Unit("KG-0001")
    registry = Registry([unit.entry()])
    moved = DeviceEntry(**dict(unit.entry().__dict__, station="KG-0002"))
    with pytest.raises(RegistryError, match="already enrolled for station KG-0001"):
        registry.add(moved)


def test_entry_whose_key_id_does_not_match_is_refused() -> None:
    entry = Unit("KG-0001").entry()
    with pytest.raises(RegistryError, match="key_id does not match"):
        Registry([DeviceEntry(**dict(entry.__dict__, key_id="0" * 16))])
    with pytest.raises(RegistryError, match="not a base64 32-byte"):
        Registry([DeviceEntry(**dict(entry.__dict__, public_key="AAAA"))])


def test_registry_file_reloads_and_keeps_the_old_one_when_the_new_is_bad(
        tmp_path: Path, cec: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture) -> None:
    first, second = Unit("KG-0001"), Unit("KG-0002")
    path = saved(tmp_path / "r.json", cec, first)
    watched = RegistryFile(path, cec.public_key())
    saved(path, cec, first, second)
    assert watched.current().for_key(second.key_id) is not None
    path.write_text("{ damaged")
    with caplog.at_level(logging.ERROR, logger="pollbox.receiver.registry"):
        assert watched.current().for_key(second.key_id) is not None
    assert "keeping the previous one" in caplog.text


def test_configuration_problems_are_reported_together(tmp_path: Path) -> None:
    with pytest.raises(ReceiverConfigError, match="REGISTRY_PATH is not set; CEC_PUBLIC_KEY is not set"):
        build_receiver({"DATABASE_URL": str(tmp_path / "db")})
    config = {"DATABASE_URL": str(tmp_path / "db"), "REGISTRY_PATH": str(tmp_path / "none.json"),
              "CEC_PUBLIC_KEY": "bad", "RECEIVER_KEY_PATH": str(tmp_path / "none.key")}
    with pytest.raises(ReceiverConfigError) as caught:
        build_receiver(config)
    assert "no receiver key" in str(caught.value) and "not a base64 32-byte" in str(caught.value)


def test_keygen_enroll_and_pubkey_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["keygen", str(tmp_path / "receiver.key")]) == 0
    printed = capsys.readouterr().out.strip()
    assert (tmp_path / "receiver.key.pub").read_text().strip() == printed
    assert cli_main(["keygen", str(tmp_path / "receiver.key")]) == 2
    assert "already exists" in capsys.readouterr().err
    cec = Ed25519PrivateKey.generate()
    write_private(tmp_path / "cec.key", cec)
    unit = Unit("KG-DEMO-0001")
    (tmp_path / "device.pub").write_text(public_b64(unit.key.public_key()) + "\n")
    args = ["enroll", "--registry", str(tmp_path / "registry.json"), "--cec-key", str(tmp_path / "cec.key"),
            "--station", "KG-DEMO-0001", "--public-key-file", str(tmp_path / "device.pub"), "--serial", "demo"]
    assert cli_main(args) == 0
    assert Registry.load(tmp_path / "registry.json", cec.public_key()).for_key(unit.key_id) is not None
    assert cli_main(["pubkey", str(tmp_path / "cec.key")]) == 0
    assert capsys.readouterr().out.strip().endswith(public_b64(cec.public_key()))


def test_devices_are_indexed_by_station_and_keys_decoded_when_used(tmp_path: Path, cec: Ed25519PrivateKey,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from receiver import registry as registry_module
    monkeypatch.setattr(registry_module, "PUBLIC_KEYS_KEPT", 3)
    units = [Unit(f"KG-{n % 7:04d}") for n in range(20)]
    registry = Registry.load(saved(tmp_path / "r.json", cec, *units), cec.public_key())
    for station in {u.station for u in units} | {"KG-9999"}:
        scanned = [e for e in registry if e.station == station]
        assert registry.devices_of(station) == scanned  # the index answers what a scan of every device would
    assert registry.stations() == sorted({u.station for u in units})
    assert len(registry._public) == 0  # nothing decoded at load
    message = b"record bytes"
    for unit in units + units[:4]:
        public = registry.public_key(unit.key_id)
        assert public is not None and len(registry._public) <= 3
        public.verify(unit.key.sign(message), message)  # the right key, also after it left the cache
    assert registry.public_key("0" * 16) is None

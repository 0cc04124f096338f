"""The registry knows which unit of its station each key was enrolled for, and the receiver holds keys to it.

A device entry may carry ``unit`` and ``role`` (``main``, ``desk`` or ``mobile``). A record signed by such a
key must carry its unit's ``unit`` (none for the main desk), from its very first record: ``unit_mismatch``
otherwise, with nothing of the batch stored from it on. A registry without units (one-unit stations, files
written before units were enrolled) keeps its bytes and signature, and databases that indexed registries before
the ``unit`` and ``role`` columns existed get them in place.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rx_kit import Setup, Unit, post

from device.hardware.clock import FakeClock
from receiver.registry import DeviceEntry, Registry, RegistryError, RegistryFile, Revocation
from receiver.storage import open_storage

OPENED = {"identified": 0, "ballots": 0}


def enrolled(setup: Setup, *units: tuple[Unit, str, str]) -> None:
    """Enroll each (unit, its package id, role) with its unit written in the registry."""
    registry = Registry.load(setup.registry_path, setup.cec.public_key())
    for unit, uid, role in units:
        if registry.for_key(unit.key_id) is None:
            registry.add(unit.entry())
        registry.assign_unit(unit.key_id, unit.station, uid, role)
    registry.sign_and_save(setup.registry_path, setup.cec)


def three_units(setup: Setup) -> tuple[Unit, Unit, Unit]:
    main = setup.units["KG-0001"]
    desk2, mobile = Unit("KG-0001", unit="desk-2"), Unit("KG-0001", unit="mobile")
    enrolled(setup, (main, "desk-1", "main"), (desk2, "desk-2", "desk"), (mobile, "mobile", "mobile"))
    return main, desk2, mobile


def test_a_key_signs_only_the_chain_of_the_unit_it_was_enrolled_for(app: Flask, client: FlaskClient,
                                                                     setup: Setup) -> None:
    main, desk2, mobile = three_units(setup)
    # The main desk's key, on its very first record, claiming desk-2's chain: refused before any binding.
    as_desk2 = Unit("KG-0001", key=main.key, unit="desk-2")
    refused = post(client, [as_desk2.record("polls_opened", OPENED)])
    body = refused.get_json()
    assert refused.status_code == 403 and body["error"] == "unit_mismatch", body
    assert ("is enrolled for unit desk-1 (main) of station KG-0001, whose records carry no unit (the station's "
            "main chain), but this record names unit 'desk-2'") in body["reason"]
    # desk-2's key writing the station's main chain (no unit field): refused too.
    as_main = Unit("KG-0001", key=desk2.key)
    body = post(client, [as_main.record("polls_opened", OPENED)]).get_json()
    assert body["error"] == "unit_mismatch"
    assert "whose records carry unit 'desk-2', but this record names none" in body["reason"]
    # in desk-2's chain, a record of desk-2 then one signed by the mobile unit's key: the first is stored.
    good = desk2.record("polls_opened", OPENED)
    stolen = Unit("KG-0001", key=mobile.key, unit="desk-2", seq=desk2.seq, prev=desk2.prev).record()
    answer = post(client, [good, stolen])
    assert answer.status_code == 403 and answer.get_json()["error"] == "unit_mismatch"
    storage = app.extensions["pollbox_receiver"].storage
    assert storage.count_records() == 1 and storage.highest_seq("KG-0001", "desk-2") == 1
    assert storage.highest_seq("KG-0001") == 0 and storage.highest_seq("KG-0001", "mobile") == 0
    # each key on its own unit's chain is taken.
    for unit in (main, desk2, mobile):
        assert post(client, [unit.record("polls_opened", OPENED)]).status_code == 200
    assert (storage.highest_seq("KG-0001"), storage.highest_seq("KG-0001", "desk-2"),
            storage.highest_seq("KG-0001", "mobile")) == (1, 2, 1)
    codes = [row[0] for row in storage._q("SELECT code FROM rejections ORDER BY id").fetchall()]
    assert codes.count("unit_mismatch") == 3


def test_a_spare_enrolled_for_a_unit_continues_that_units_chain(app: Flask, client: FlaskClient,
                                                                setup: Setup) -> None:
    _, desk2, _ = three_units(setup)
    assert post(client, desk2.records(2)).status_code == 200
    spare = Unit("KG-0001", unit="desk-2", seq=desk2.seq, prev=desk2.prev)
    enrolled(setup, (spare, "desk-2", "desk"))
    answer = post(client, spare.records(1))
    assert answer.status_code == 200 and answer.get_json()["accepted"] == 1, answer.get_json()
    assert app.extensions["pollbox_receiver"].storage.highest_seq("KG-0001", "desk-2") == 3


def test_a_key_without_a_unit_still_binds_to_its_first_chain(app: Flask, client: FlaskClient, setup: Setup) -> None:
    legacy = Unit("KG-0001", unit="desk-2")
    setup.enroll(legacy)  # no unit in the registry: an older file
    assert post(client, legacy.records(1)).status_code == 200
    as_mobile = Unit("KG-0001", key=legacy.key, unit="mobile")
    assert post(client, [as_mobile.record()]).get_json()["error"] == "wrong_unit"


def test_a_registry_without_units_keeps_its_bytes_and_units_round_trip(setup: Setup) -> None:
    before = setup.registry_path.read_bytes()
    registry = Registry.load(setup.registry_path, setup.cec.public_key())
    assert all(entry.unit == "" and entry.chain_unit is None for entry in registry)
    registry.sign_and_save(setup.registry_path, setup.cec)
    assert setup.registry_path.read_bytes() == before
    main, desk2, _ = three_units(setup)
    doc = json.loads(setup.registry_path.read_bytes())
    by_key = {d["key_id"]: d for d in doc["devices"]}
    assert (by_key[main.key_id]["unit"], by_key[main.key_id]["role"]) == ("desk-1", "main")
    assert "unit" not in by_key[setup.units["KG-0002"].key_id]
    again = Registry.load(setup.registry_path, setup.cec.public_key())
    assert again.for_key(desk2.key_id).chain_unit == "desk-2"  # type: ignore[union-attr]
    assert again.for_key(main.key_id).chain_unit == ""  # type: ignore[union-attr]


@pytest.mark.parametrize(("change", "message"), [
    ({"unit": "desk-2"}, "unit and role are written together"),
    ({"role": "desk"}, "unit and role are written together"),
    ({"unit": "", "role": ""}, "neither empty"),
    ({"unit": "desk-2", "role": "boss"}, "role one of main, desk, mobile"),
    ({"unit": "Desk 2", "role": "desk"}, "unit must be a unit id"),
    ({"unit": 2, "role": "desk"}, "every field is a string"),
])
def test_a_malformed_unit_in_a_device_entry_is_refused(setup: Setup, change: dict[str, object],
                                                       message: str) -> None:
    raw = {**setup.units["KG-0001"].entry().as_json(), **change}
    with pytest.raises(RegistryError, match=message):
        DeviceEntry.from_dict(raw, 0)


def test_a_keys_unit_is_set_once_and_kept_consistent(setup: Setup) -> None:
    registry = Registry.load(setup.registry_path, setup.cec.public_key())
    main, other = setup.units["KG-0001"], setup.units["KG-0002"]
    desk2, spare, stranger = Unit("KG-0001"), Unit("KG-0001"), Unit("KG-0001")
    for unit in (desk2, spare):
        registry.add(unit.entry())
    registry.assign_unit(main.key_id, "KG-0001", "desk-1", "main")
    assert registry.assign_unit(main.key_id, "KG-0001", "desk-1", "main").unit == "desk-1"  # the same: no change
    with pytest.raises(RegistryError, match="already enrolled for unit desk-1 \\(main\\), not desk-2"):
        registry.assign_unit(main.key_id, "KG-0001", "desk-2", "desk")
    with pytest.raises(RegistryError, match="is enrolled for station KG-0002, not KG-0001"):
        registry.assign_unit(other.key_id, "KG-0001", "desk-2", "desk")
    with pytest.raises(RegistryError, match="not enrolled in this registry; enroll the unit's request first"):
        registry.assign_unit(stranger.key_id, "KG-0001", "desk-3", "desk")
    with pytest.raises(RegistryError, match="main desk is unit desk-1"):
        registry.assign_unit(desk2.key_id, "KG-0001", "desk-2", "main")
    registry.assign_unit(desk2.key_id, "KG-0001", "desk-2", "desk")
    with pytest.raises(RegistryError, match="unit desk-2 of station KG-0001 is enrolled as desk"):
        registry.assign_unit(spare.key_id, "KG-0001", "desk-2", "mobile")
    registry.revoke(spare.key_id, "KG-0001", Revocation("2026-11-27T11:00:00.000000Z", "lost", "CEC", 0))
    with pytest.raises(RegistryError, match="is revoked; enroll the unit's new key instead"):
        registry.assign_unit(spare.key_id, "KG-0001", "desk-2", "desk")


def earlier_registry_index(url: str) -> None:
    """Turn ``registry_devices`` back into the shape before keys had units (no ``unit``, ``role`` columns)."""
    storage = open_storage(url)
    try:
        storage._q("ALTER TABLE registry_devices DROP COLUMN unit")
        storage._q("ALTER TABLE registry_devices DROP COLUMN role")
        assert "unit" not in storage._columns("registry_devices")
    finally:
        storage.close()


def test_an_earlier_registry_index_gets_unit_columns_in_place(setup: Setup, db_url: str, clock: FakeClock) -> None:
    from receiver.app import create_app

    first = create_app(setup.config(db_url, clock))  # indexes the registry without units
    first.extensions["pollbox_receiver"].storage.close()
    earlier_registry_index(db_url)
    storage = open_storage(db_url)
    try:
        assert {"unit", "role"} <= storage._columns("registry_devices")
        stored = RegistryFile(setup.registry_path, setup.cec.public_key(), storage).registry
        entry = stored.for_key(setup.units["KG-0001"].key_id)
        assert entry is not None and entry.unit == "" and entry.chain_unit is None  # rows of before: no unit
    finally:
        storage.close()
    # The CEC now writes the units into the same registry file; the upgraded database indexes and enforces them.
    main, desk2, _ = three_units(setup)
    again = create_app(setup.config(db_url, clock))
    try:
        client = again.test_client()
        stored = again.extensions["pollbox_receiver"].registry()
        assert stored.for_key(desk2.key_id).unit == "desk-2"  # type: ignore[union-attr]
        assert stored.devices_of("KG-0001")[0].role in ("main", "desk", "mobile")
        as_main = Unit("KG-0001", key=desk2.key)
        assert post(client, [as_main.record("polls_opened", OPENED)]).get_json()["error"] == "unit_mismatch"
        assert post(client, [main.record("polls_opened", OPENED)]).status_code == 200
    finally:
        again.extensions["pollbox_receiver"].storage.close()


def test_the_receiver_cli_enrolls_a_key_for_a_unit(setup: Setup, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from device.keys import write_private
    from protocol.keys import public_b64
    from receiver.cli import main as receiver_main

    cec_file, pub = tmp_path / "cec.key", tmp_path / "desk-2.pub"
    write_private(cec_file, setup.cec)
    unit = Unit("KG-0001")
    pub.write_text(public_b64(unit.key.public_key()) + "\n")
    common = ["enroll", "--registry", str(setup.registry_path), "--cec-key", str(cec_file), "--station", "KG-0001",
              "--public-key-file", str(pub), "--serial", "SN-D2"]
    assert receiver_main([*common, "--unit", "desk-2", "--role", "desk"]) == 0
    entry = Registry.load(setup.registry_path, setup.cec.public_key()).for_key(unit.key_id)
    assert entry is not None and (entry.unit, entry.role) == ("desk-2", "desk")
    assert dataclasses.replace(entry, unit="", role="").chain_unit is None
    assert receiver_main([*common, "--unit", "desk-3", "--role", "desk"]) == 2  # the key again, another unit
    assert "is already enrolled for unit desk-2 (desk), not desk-3 (desk)" in capsys.readouterr().err
    assert receiver_main([*common, "--unit", "desk-3"]) == 2
    assert "give --unit and --role together" in capsys.readouterr().err

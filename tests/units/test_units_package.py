"""The package's units section: written by provisioning, checked by the unit that loads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.core import units as un
from device.core.station import VoterEntry
from device.core.voterkey import voter_hash
from device.package import PackageError
from device.sync.units import station_units, units_section
from protocol.keys import public_b64
from provisioning.package import build_payload, check_package, write_package

NOW = 1_800_000_000.0
KEYS = {u: Ed25519PrivateKey.generate() for u in ("desk-1", "desk-2", "mobile")}
LISTED = [("desk-1", "desk", public_b64(KEYS["desk-1"].public_key()), "10.0.0.11:8470"),
          ("desk-2", "desk", public_b64(KEYS["desk-2"].public_key()), "10.0.0.12:8470"),
          ("mobile", "mobile", public_b64(KEYS["mobile"].public_key()), "")]


def _payload(list_key: bytes, units: dict[str, Any] | None) -> dict[str, Any]:
    entries = [[voter_hash(list_key, f"2010119{n:07d}"), n, f"Voter {n}"] for n in range(1, 6)]
    return build_payload(election={"id": "e-1", "expires_at": "2099-01-01T00:00:00Z"}, station={"id": "S-1"},
                         receiver={"url": "http://127.0.0.1:1", "ca_pem": "", "public_key": ""},
                         cec_public_key="", entries=entries, list_key=list_key, issued_at=NOW, units=units)


def test_a_package_with_units_is_signed_loaded_and_read_as_a_unit_reads_it(tmp_path: Path) -> None:
    cec, list_key = Ed25519PrivateKey.generate(), b"k" * 32
    write_package(tmp_path / "station.pkg", _payload(list_key, units_section(LISTED, [4, 5])), cec, NOW)
    package = check_package(tmp_path / "station.pkg", cec, "e-1", NOW)
    got = station_units(package.payload, package.voters, "desk-2", KEYS["desk-2"].public_key())
    assert got is not None
    assert got.units.own == "desk-2" and got.units.role_of("mobile") is un.UnitRole.MOBILE
    assert {package.voters[v].line for v in got.units.home_voters} == {4, 5}
    assert got.own.address == "10.0.0.12:8470"


def test_a_one_unit_package_has_no_units() -> None:
    package = _payload(b"k" * 32, None)
    assert "units" not in package and station_units(package, {}, "", None) is None


@pytest.mark.parametrize(("own", "key", "words"), [
    ("", None, "set [unit] id"),
    ("desk-9", None, "not one of this station's units"),
    ("desk-1", KEYS["desk-2"].public_key(), "not the key the package enrolled"),
])
def test_a_unit_that_is_not_the_one_the_package_lists_is_refused(own: str, key: object, words: str) -> None:
    payload = _payload(b"k" * 32, units_section(LISTED, []))
    with pytest.raises(PackageError, match=words.replace("[", r"\[")):
        station_units(payload, {}, own, key)  # type: ignore[arg-type]


@pytest.mark.parametrize(("change", "words"), [
    (lambda s: s["list"][0].update(role="booth"), "a role is desk or mobile"),
    (lambda s: s["list"][1].update(id="Desk 2"), "an id is lower-case"),
    (lambda s: s["list"][1].update(public_key="xx"), "no valid public key"),
    (lambda s: s["list"][1].update(public_key=s["list"][0]["public_key"]), "same key"),
    (lambda s: s["list"][2].update(address="nowhere"), "host:port"),
    (lambda s: s.update(home_voting=[99]), "line 99"),
    (lambda s: s.update(list=[]), "non-empty list"),
])
def test_a_bad_units_section_is_refused_with_its_reason(change: object, words: str) -> None:
    section = units_section(LISTED, [1])
    change(section)  # type: ignore[operator]
    payload = _payload(b"k" * 32, section)
    voters = {e[0]: VoterEntry(e[1], e[2]) for e in payload["voters"]["entries"]}
    with pytest.raises(PackageError, match=words):
        station_units(payload, voters, "desk-1", None)


def test_a_sync_address_already_taken_is_a_sentence_not_a_traceback() -> None:
    import socket

    from device.core.delays import Delays
    from device.sync.service import SyncListenError, UnitSync
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listed = [(u, r, k, f"127.0.0.1:{port}" if u == "desk-1" else a) for u, r, k, a in LISTED]
        payload = _payload(b"k" * 32, units_section(listed, []))
        units = station_units(payload, {}, "desk-1", KEYS["desk-1"].public_key())
        assert units is not None
        with pytest.raises(SyncListenError, match=f"cannot listen for the other units on 127.0.0.1:{port}"):
            UnitSync(units=units, key=KEYS["desk-1"], wall=lambda: NOW, delays=Delays())

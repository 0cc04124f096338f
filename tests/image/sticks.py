"""Bad station sticks, one per reason the first boot refuses a stick (``device.firstboot.KINDS``).

Each starts from the tests' demo station (``vm.demo_station``, signed with the test CEC key the
tests' image trusts) and breaks one thing, as a technician's mistake or an attacker would. Used both
by the fast checks of ``device.firstboot`` on the host and by the boot tests that refuse a stick.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.package import sign_package
from protocol.keys import public_b64

from .vm import STICK_FILES, TEST_CEC, demo_station

PACKAGE = "station-package.json"
BAD_STICKS = ("no_package", "two_packages", "tampered", "unsigned", "foreign", "wrong_election", "expired")
"""The bad sticks, each named by the refusal it must get."""


def _payload(station: Path) -> dict[str, object]:
    return dict(json.loads((station / PACKAGE).read_bytes())["payload"])


def _resign(station: Path, change: dict[str, object]) -> None:
    """Sign the package again with the test CEC key after changing its election section."""
    payload = _payload(station)
    election = dict(payload["election"])  # type: ignore[call-overload]
    election.update(change)
    payload["election"] = election
    (station / PACKAGE).write_bytes(sign_package(payload, TEST_CEC))


def bad_station(kind: str, workdir: Path) -> tuple[Path, tuple[str, ...]]:
    """A station folder broken as ``kind`` says, and the names of its files that go on the stick."""
    station = demo_station(workdir)
    names: tuple[str, ...] = STICK_FILES
    package = station / PACKAGE
    if kind == "no_package":
        names = tuple(n for n in STICK_FILES if n != PACKAGE)
    elif kind == "two_packages":
        shutil.copyfile(package, station / "station-package-old.json")
        names = (*STICK_FILES, "station-package-old.json")
    elif kind == "tampered":  # the station's name changed after signing, the signature kept
        doc = json.loads(package.read_bytes())
        doc["payload"]["station"]["name"] = "Another station"
        package.write_text(json.dumps(doc))
    elif kind == "unsigned":
        doc = json.loads(package.read_bytes())
        doc["signature"] = ""
        package.write_text(json.dumps(doc))
    elif kind == "foreign":  # a whole station made with another CEC key, consistent in itself
        other = Ed25519PrivateKey.generate()
        package.write_bytes(sign_package(_payload(station), other))
        toml = station / "station.toml"
        toml.write_text(re.sub(r'cec_public_key = "[^"]+"', f'cec_public_key = "{public_b64(other.public_key())}"',
                               toml.read_text()))
    elif kind == "wrong_election":
        _resign(station, {"id": "kg-2027-other"})
        toml = station / "station.toml"
        toml.write_text(toml.read_text().replace('election_id = "demo-2026"', 'election_id = "kg-2027-other"'))
    elif kind == "expired":
        _resign(station, {"expires_at": "2026-01-31T23:59:59Z"})
    else:
        raise AssertionError(f"no bad stick {kind!r}")
    return station, names

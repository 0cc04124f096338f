"""A demo station for trying pollbox without hardware: ``pollbox demo DIR`` / ``make run``.

Creates, in one directory: a demo CEC key, a receiver key, a list key, a
station package with a deterministic synthetic voter list (2,000 voters with
personal numbers by default, plus one holder of the demo driver's licence: 2,001
on the list; the numbers and names are invented and derived from a seed, so the
same list appears on every machine), a device key, and a config in simulation
mode. ``demo_pins(n)`` recomputes the first voters' numbers for the README and
the CLI; they are never written to disk. ``reset_demo_station`` deletes a demo
station (refusing anything that is not one, or one that is running) so the
next ``make run`` starts from an empty journal.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.core.voterkey import voter_hash
from device.demo_documents import make_pin
from device.files import write_private as write_private_file
from device.keys import create_device_key, write_private
from device.package import list_key_check, sign_package, voters_digest
from protocol.errors import UserError
from protocol.keys import public_b64

ELECTION = "demo-2026"
STATION = "KG-DEMO-0001"
SEED = 20261127
DEMO_CHAIR_PIN = "123456"
SURNAMES = ("Асанов", "Токтогулов", "Жумабаев", "Абдыкадыров", "Осмонов", "Сыдыков", "Иванов", "Исаков",
            "Бейшеналиев", "Мамытов", "Кадыров", "Эсенбеков")
GIVEN_M = ("Азамат", "Бакыт", "Нурлан", "Эрлан", "Темир", "Улан", "Сергей", "Марат")
GIVEN_F = ("Айгуль", "Жылдыз", "Гулнара", "Айпери", "Нургуль", "Елена", "Бермет", "Динара")


def demo_voter(index: int) -> tuple[str, str]:
    """(personal number, display name) of synthetic voter ``index`` (0-based)."""
    rng = random.Random(SEED * 1_000_003 + index)
    sex = rng.choice((1, 2))
    year, month, day = rng.randint(1940, 2007), rng.randint(1, 12), rng.randint(1, 28)
    pin = make_pin(sex=sex, day=day, month=month, year=year, serial=index % 100_000)
    surname = rng.choice(SURNAMES) + ("а" if sex == 2 else "")
    given = rng.choice(GIVEN_F if sex == 2 else GIVEN_M)
    return pin, f"{surname} {given}"


def demo_pins(count: int) -> list[str]:
    return [demo_voter(i)[0] for i in range(count)]


def _write_key(path: Path, key: Ed25519PrivateKey) -> None:
    write_private(path, key)
    path.with_suffix(".pub").write_text(public_b64(key.public_key()) + "\n")


DEMO_MARK = "# Demo station: simulated hardware, loopback receiver. Not for a polling station."


class DemoError(UserError):
    """The demo station cannot be made or reset; the message says why."""


AAMVA_KEY = "636000:D12345678"  # issuer id and licence number of the demo driver's licence


def demo_payload(list_key: bytes, voters: int, receiver_key: Ed25519PrivateKey, slip_key: Ed25519PrivateKey,
                 receiver_url: str) -> dict[str, Any]:
    entries = []
    for i in range(voters):
        pin, name = demo_voter(i)
        entries.append([voter_hash(list_key, pin), i + 1, name])
    entries.append([voter_hash(list_key, AAMVA_KEY), voters + 1, "Demo Licence-Holder"])
    return {
        "election": {"id": ELECTION, "name": "Demonstration election", "poll_date": "2026-12-06",
                     "expires_at": "2099-12-31T23:59:59Z"},
        "station": {"id": STATION, "name": "Demo station No. 1 (school No. 5)", "region": "Bishkek",
                    "opens": "08:00", "closes": "20:00", "timezone": "Asia/Bishkek", "languages": ["ky", "ru", "en"]},
        "receiver": {"url": receiver_url, "ca_pem": "", "public_key": public_b64(receiver_key.public_key())},
        "documents": {"pin_rule": {"country": "KGZ"}, "slip_public_key": public_b64(slip_key.public_key())},
        "voters": {"count": len(entries), "digest": voters_digest(entries), "key_check": list_key_check(list_key),
                   "entries": entries},
    }


def write_demo_documents(directory: Path, list_key: bytes, slip_key: Ed25519PrivateKey) -> dict[str, Path]:
    """One camera image per document format, each naming a different demo voter (lines 1-4 and the licence)."""
    from device import demo_documents as docs
    from device.core.documents.slip import issue_slip
    from device.hardware.scanners.samples import DemoDocuments, write_samples
    pins = demo_pins(4)
    slip = issue_slip(slip_key, STATION, voter_hash(list_key, pins[3]), 1)
    documents = DemoDocuments(pin=pins[0], td1=docs.make_td1(pins[1]), td3=docs.make_td3(pins[2]),
                              aamva=docs.make_aamva(), slip=slip)
    return write_samples(directory, documents)


def make_demo_station(directory: Path, voters: int = 2000, receiver_url: str = "http://127.0.0.1:8090",
                      web_port: int = 8080) -> Path:
    """Create the demo station in ``directory`` (kept if it exists) and return its config path."""
    config = directory / "station.toml"
    if config.exists():
        return config
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    data.mkdir(exist_ok=True)
    (directory / "usb-stick").mkdir(exist_ok=True)
    cec, receiver, slip = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    for name, key in (("cec", cec), ("receiver", receiver), ("slip", slip)):
        _write_key(directory / f"{name}.key", key)
    list_key = os.urandom(32)
    write_private_file(data / "list.key", list_key)
    create_device_key(data)
    from web_ui.pin import set_pin
    set_pin(data / "web" / "chair_pin.json", DEMO_CHAIR_PIN)
    payload = demo_payload(list_key, voters, receiver, slip, receiver_url)
    (directory / "station-package.json").write_bytes(sign_package(payload, cec))
    write_demo_documents(directory / "documents", list_key, slip)
    config.write_text(
        f"{DEMO_MARK}\n"
        'mode = "simulation"\n'
        f'election_id = "{ELECTION}"\n'
        f'cec_public_key = "{public_b64(cec.public_key())}"\n'
        'station_package = "station-package.json"\n'
        'data_dir = "data"\n\n'
        "[hardware]\n"
        'scanner = "sim"\n'
        'ballot_box = "sim"\n'
        'decoder = "zxing"\n\n'
        "[uplink]\n"
        'transport = "sim"        # plain HTTP to the loopback receiver, with a link you can cut\n\n'
        "[backup]\n"
        'directory = "usb-stick"   # the journal is copied here every minute (a USB stick on a real unit)\n\n'
        "[web]\n"
        'host = "127.0.0.1"\n'
        f"port = {web_port}\n", encoding="utf-8")
    return config


def reset_demo_station(directory: Path) -> None:
    """Delete the demo station in ``directory``: refused for anything that is not one, or while it runs."""
    config = directory / "station.toml"
    if not directory.exists():
        return
    try:
        first = config.read_text(encoding="utf-8").splitlines()[:1]
    except (OSError, UnicodeDecodeError):
        first = []
    if first != [DEMO_MARK]:
        raise DemoError(f"{directory} is not a demo station made by 'pollbox demo' (no demo {config.name}); "
                        "nothing was deleted")
    from device.control import appliance_answers
    if appliance_answers(directory / "data" / "control.sock"):
        raise DemoError(f"the demo station in {directory} is running; stop it (Ctrl-C) before resetting it")
    shutil.rmtree(directory)


def demo_receiver_port(config: Any) -> int:
    """The loopback port of the demo CEC receiver, from the station package's receiver URL."""
    from urllib.parse import urlsplit
    url = json.loads(config.station_package.read_bytes())["payload"]["receiver"]["url"]
    return urlsplit(url).port or 8090


def start_demo_receiver(config: Any) -> subprocess.Popen[bytes]:
    """Enroll the demo unit (once) and start the reference CEC receiver on loopback beside it."""
    directory = config.path.parent
    registry = directory / "registry.json"
    if not registry.exists():  # the receiver is another program: run it, never import it
        done = subprocess.run([sys.executable, "-m", "receiver.cli", "enroll", "--registry", str(registry),
                               "--cec-key", str(directory / "cec.key"), "--station", STATION,
                               "--public-key-file", str(config.data_dir / "device.pub"),
                               "--serial", "demo-unit", "--software", "demo"], check=False)
        if done.returncode != 0:
            raise DemoError("could not enroll the demo unit in the demo receiver's registry")
    port = str(demo_receiver_port(config))
    return subprocess.Popen([sys.executable, "-m", "receiver.cli", "serve", "--host", "127.0.0.1", "--port", port,
                             "--db", str(directory / "receiver.db"), "--registry", str(registry),
                             "--cec-public-key-file", str(directory / "cec.pub"),
                             "--key", str(directory / "receiver.key")])

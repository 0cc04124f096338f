"""A demo station with several units: two desks and a mobile unit, three appliances on loopback.

``make_demo_units(directory)`` makes ``desk-1``, ``desk-2`` and ``mobile`` under ``directory``, each a
demo station (``device/demo.py``) with its own device key, web port and sync port, sharing one voter
list and list key, and one CEC-signed package whose ``units`` section lists all three with their keys
and loopback addresses. Lines 11-20 of the list are registered for home voting. Each runs with
``pollbox --config DIR/<unit>/station.toml run``; ``POST /units/link?peer=U&up=0`` on a unit's sync
port cuts its link to ``U`` (``up=1`` restores it). ``python -m device.sync.demo DIR`` runs the three
and, beside them, the reference CEC receiver on the package's receiver address with every unit's key
enrolled for the station (``start_units_receiver``): each unit uploads its own chain to it. A receiver port
already in use is refused at once, in one sentence; when one of the four ends, the demo says which and
stops the others (exit code 1).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.demo import STATION, make_demo_station
from device.keys import create_device_key
from device.package import sign_package
from protocol.errors import UserError

from .units import units_section

UNITS = (("desk-1", "desk"), ("desk-2", "desk"), ("mobile", "mobile"))
HOME_VOTING = list(range(11, 21))


def make_demo_units(directory: Path, *, voters: int = 2000, web_ports: tuple[int, int, int] = (8081, 8082, 8083),
                    sync_ports: tuple[int, int, int] = (8471, 8472, 8473),
                    receiver_url: str = "http://127.0.0.1:8090") -> dict[str, Path]:
    """Create the three units (kept if they exist); returns each unit's config path by unit id."""
    configs = {uid: directory / uid / "station.toml" for uid, _ in UNITS}
    if all(c.exists() for c in configs.values()):
        return configs
    if directory.exists():
        shutil.rmtree(directory)
    first = directory / UNITS[0][0]
    make_demo_station(first, voters=voters, receiver_url=receiver_url, web_port=web_ports[0])
    for uid, _ in UNITS[1:]:
        shutil.copytree(first, directory / uid, ignore=shutil.ignore_patterns("device.key", "device.pub"))
        create_device_key(directory / uid / "data")
    cec = Ed25519PrivateKey.from_private_bytes((first / "cec.key").read_bytes())
    listed = [(uid, role, (directory / uid / "data" / "device.pub").read_text().strip(), f"127.0.0.1:{port}")
              for (uid, role), port in zip(UNITS, sync_ports, strict=True)]
    payload = json.loads((first / "station-package.json").read_bytes())["payload"]
    payload["units"] = units_section(listed, HOME_VOTING)
    signed = sign_package(payload, cec)
    for (uid, _), web in zip(UNITS, web_ports, strict=True):
        (directory / uid / "station-package.json").write_bytes(signed)
        text = configs[uid].read_text(encoding="utf-8")
        text = text.replace(f"port = {web_ports[0]}\n", f"port = {web}\n")
        configs[uid].write_text(text + f'\n[unit]\nid = "{uid}"\n', encoding="utf-8")
    return configs


def enroll_units(directory: Path) -> Path:
    """The demo receiver's registry with the three units' keys enrolled for the station and each for its unit
    (desk-1 the main desk; made once, by the receiver's own command line: the receiver is another program)."""
    registry = directory / "registry.json"
    if not registry.exists():
        for n, (uid, role) in enumerate(UNITS):
            done = subprocess.run([sys.executable, "-m", "receiver.cli", "enroll", "--registry", str(registry),
                                   "--cec-key", str(directory / UNITS[0][0] / "cec.key"), "--station", STATION,
                                   "--public-key-file", str(directory / uid / "data" / "device.pub"),
                                   "--serial", f"demo-{uid}", "--software", "demo", "--unit", uid,
                                   "--role", "main" if n == 0 else role], check=False,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                registry.unlink(missing_ok=True)
                raise DemoUnitsError(f"could not enroll {uid} in the demo receiver's registry: "
                                     f"{done.stderr.strip()[-300:]}")
    return registry


def start_units_receiver(directory: Path) -> subprocess.Popen[bytes]:
    """The reference CEC receiver on the package's receiver address (loopback), the three units enrolled."""
    from urllib.parse import urlsplit
    registry = enroll_units(directory)
    first = directory / UNITS[0][0]
    url = urlsplit(json.loads((first / "station-package.json").read_bytes())["payload"]["receiver"]["url"])
    return subprocess.Popen([sys.executable, "-m", "receiver.cli", "serve", "--host", "127.0.0.1",
                             "--port", str(url.port or 8090), "--db", str(directory / "receiver.db"),
                             "--registry", str(registry), "--cec-public-key-file", str(first / "cec.pub"),
                             "--key", str(first / "receiver.key")])


class DemoUnitsError(UserError):
    """The demo's receiver could not be set up; the message says why."""


def _sync_port(config: Path) -> int:
    doc = json.loads((config.parent / "station-package.json").read_bytes())["payload"]
    uid = config.parent.name
    address = next(u["address"] for u in doc["units"]["list"] if u["id"] == uid)
    return int(address.rpartition(":")[2])


def _receiver_url(directory: Path) -> str:
    return str(json.loads((directory / UNITS[0][0] / "station-package.json").read_bytes())["payload"]["receiver"]
               ["url"]).rstrip("/")


def set_link(directory: Path, a: str, b: str, up: bool) -> None:
    """Cut (``up`` False) or restore the link between units ``a`` and ``b`` of a running demo, on both sides."""
    import urllib.request
    for here, there in ((a, b), (b, a)):
        port = _sync_port(directory / here / "station.toml")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/units/link?peer={there}&up={int(up)}", method="POST")
        urllib.request.urlopen(req, timeout=5).close()


def main(argv: list[str] | None = None) -> int:
    """``python -m device.sync.demo DIR``: make the three units (once) and run them until Ctrl-C;
    ``python -m device.sync.demo DIR link A B up|down``: restore or cut a link of the running demo."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m device.sync.demo", description=main.__doc__)
    p.add_argument("directory", type=Path)
    p.add_argument("action", nargs="*", help="link A B up|down")
    args = p.parse_args(argv)
    if args.action:
        if len(args.action) != 4 or args.action[0] != "link" or args.action[3] not in ("up", "down"):
            p.error("the only action is: link A B up|down")
        set_link(args.directory, args.action[1], args.action[2], args.action[3] == "up")
        print(f"link {args.action[1]} <-> {args.action[2]} {args.action[3]}")
        return 0
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)  # a service manager or kill stops the three units as Ctrl-C does
    configs = make_demo_units(args.directory)
    try:
        _check_receiver_port(args.directory)
    except UserError as exc:
        print(f"python -m device.sync.demo: {exc}", file=sys.stderr)
        return 2
    procs = [start_units_receiver(args.directory)]
    procs += [subprocess.Popen([sys.executable, "-m", "device.cli", "--config", str(c), "run"])
              for c in configs.values()]
    names = ["the CEC receiver", *configs]
    for uid, config in configs.items():
        web = next(line for line in config.read_text().splitlines() if line.startswith("port = ")).split("=")[1]
        print(f"{uid}: chair's screen http://127.0.0.1:{web.strip()}/, sync port {_sync_port(config)}")
    print(f"the CEC receiver: {_receiver_url(args.directory)}/ (each unit's own chain, on the station's page)")
    print(f"cut a link: python -m device.sync.demo {args.directory} link desk-1 desk-2 down (up restores it)")
    code = 0
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)  # until one of the four ends (it is reaped below)
        ended = next((name, proc.returncode) for name, proc in zip(names, procs, strict=True)
                     if proc.poll() is not None)
        print(f"python -m device.sync.demo: {ended[0]} ended (exit code {ended[1]}; its error is above); "
              "stopping the others", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    return code


def _check_receiver_port(directory: Path) -> None:
    """A UserError, in one sentence, if the package's receiver port cannot be listened on now (another
    program holds it): said at once, rather than by a receiver that ends while the units keep running."""
    from urllib.parse import urlsplit

    from device.runner import check_can_listen
    port = urlsplit(_receiver_url(directory)).port or 8090
    check_can_listen("127.0.0.1", port, "the demo's CEC receiver", "the receiver URL in the units' package")


if __name__ == "__main__":
    raise SystemExit(main())

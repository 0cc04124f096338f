"""The unit's first boot: the station taken from the technician's USB stick, or refused with the reason.

The image's system runs this (``pollbox-station-import``) once, before the appliance, while the data
partition holds no station. The stick carries a ``station/`` folder: the station config, the
CEC-signed station package it names, and the unit's keys. Before anything is copied the stick is
checked against the image's trust anchor (``/etc/pollbox/image.toml``, written when the image was
built for an election: the CEC public key and the election id):

- exactly one station package on the stick;
- the package signed by this election's CEC, unaltered, for this election and not expired;
- the config readable, naming that package and the same trust anchor;
- a demonstration (simulated) station only on an image built to accept one.

A refused stick installs nothing: the reason goes to the system journal (stdout) and to a small file
under /run that the first-boot screen (``device.firstboot_screen``) shows the chair in place of the
status page, in Kyrgyz, Russian or English. An accepted station is copied to a temporary folder,
flushed to disk and renamed, so a power cut never leaves half a station behind.

A station whose config keeps the record key in the TPM (``[key] store = "tpm"``) and whose stick
carries no key gets its key here (``device.firstboot_key``): made inside the unit's TPM while the
station is staged, its enrollment request written onto the stick for the CEC, and the next step
told on the console and in the system journal. A stick that cannot take the request (read-only,
full), or a TPM that cannot make the key, is refused like a bad stick: nothing is installed.

Run as ``python -m device.firstboot import|refuse|screen ...`` (see ``main``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from device.config import ConfigError, load_config
from device.files import sync_path
from device.package import FORMAT, PackageError, load_package, public_key_from_b64
from protocol.canonical import canonical
from protocol.errors import UserError

IMAGE_SETTINGS = Path("/etc/pollbox/image.toml")
REFUSAL_FILE = Path("/run/pollbox-firstboot/refusal.json")
PACKAGE_SUFFIXES = (".json", ".pkg")
MAX_PACKAGE_BYTES = 256 << 20
"""A file larger than this is not read as a station package candidate."""

KINDS = ("no_stick", "no_package", "two_packages", "bad_config", "unsigned", "tampered", "foreign",
         "wrong_election", "expired", "bad_package", "no_anchor", "simulation", "stick_readonly", "stick_full",
         "tpm_key")
"""Every reason a stick is refused for; each has its sentence on the first-boot screen."""


class StickRefused(UserError):
    """The stick was refused: ``kind`` (one of ``KINDS``) and what was found, for the journal."""

    def __init__(self, kind: str, detail: str, **facts: str) -> None:
        assert kind in KINDS, kind
        self.kind, self.detail, self.facts = kind, detail, facts
        super().__init__(f"refused ({kind}): {detail}; nothing installed")


@dataclass(frozen=True)
class ImageSettings:
    """What the image was built with: its trust anchor and where the chair's screen listens."""

    election_id: str = ""
    cec_public_key: str = ""
    allow_simulation: bool = False
    screen_host: str = "127.0.0.1"
    screen_port: int = 8080


def read_image_settings(path: Path) -> ImageSettings:
    """The image's settings file; an image without one has no trust anchor (every stick is refused)."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ImageSettings()
    screen = doc.get("screen", {})
    return ImageSettings(election_id=str(doc.get("election_id", "")), cec_public_key=str(doc.get("cec_public_key", "")),
                         allow_simulation=bool(doc.get("allow_simulation", False)),
                         screen_host=str(screen.get("host", "127.0.0.1")), screen_port=int(screen.get("port", 8080)))


def _looks_like_package(path: Path) -> bool:
    if not path.is_file() or path.suffix not in PACKAGE_SUFFIXES or path.stat().st_size > MAX_PACKAGE_BYTES:
        return False
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return path.suffix == ".pkg"  # named as a package: counted, and refused as unreadable later
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def find_packages(station: Path) -> list[Path]:
    """The station packages in the stick's station folder (by content, or by the .pkg name)."""
    if not station.is_dir():
        return []
    return sorted(p for p in station.iterdir() if _looks_like_package(p))


def _signed_by(package: Path, key_b64: str) -> bool:
    """Whether the package's signature verifies under ``key_b64`` (False for anything unreadable)."""
    try:
        doc = json.loads(package.read_bytes())
        key = public_key_from_b64(key_b64)
        key.verify(base64.b64decode(doc["signature"], validate=True), canonical(doc["payload"]))
    except (InvalidSignature, ValueError, KeyError, TypeError, UnicodeDecodeError, PackageError):
        return False
    return True


def _package_refusal(exc: PackageError, package: Path, settings: ImageSettings, stick_key: str) -> StickRefused:
    text = str(exc)
    if "unsigned" in text:
        return StickRefused("unsigned", text)
    if "does not verify" in text:
        if stick_key and stick_key != settings.cec_public_key and _signed_by(package, stick_key):
            return StickRefused("foreign", "the package is signed by another key than this election's CEC")
        return StickRefused("tampered", text)
    if "is for election" in text:
        try:
            found = str(json.loads(package.read_bytes())["payload"]["election"]["id"])
        except (ValueError, KeyError, TypeError):
            found = "?"
        return StickRefused("wrong_election", text, found=found, expected=settings.election_id)
    if "expired at" in text:
        return StickRefused("expired", text, expired=text.rsplit("expired at ", 1)[1][:10])
    return StickRefused("bad_package", text)


def check_stick(stick: Path, settings: ImageSettings, now: float) -> Path:
    """Check the stick's ``station/`` folder against the image's settings; the folder, or StickRefused."""
    station = stick / "station"
    packages = find_packages(station)
    if not packages:
        raise StickRefused("no_package", f"no station package in {station}")
    if len(packages) > 1:
        raise StickRefused("two_packages", "more than one station package: " + ", ".join(p.name for p in packages))
    package = packages[0]
    if not settings.cec_public_key or not settings.election_id:
        raise StickRefused("no_anchor", "the image was built without an election id and CEC public key")
    try:
        config = load_config(station / "station.toml")
    except ConfigError as exc:
        raise StickRefused("bad_config", str(exc).replace("\n", " ")) from None
    try:
        load_package(package, public_key_from_b64(settings.cec_public_key), settings.election_id, now)
    except PackageError as exc:
        raise _package_refusal(exc, package, settings, config.cec_public_key) from None
    if config.station_package != package.resolve():
        raise StickRefused("bad_config",
                           f"the config names {config.station_package.name}, the stick holds {package.name}")
    if (config.cec_public_key, config.election_id) != (settings.cec_public_key, settings.election_id):
        raise StickRefused("foreign", "the config on the stick names another CEC key or election than this image")
    if config.simulation and not settings.allow_simulation:
        raise StickRefused("simulation", "the stick sets up a simulated station; this image accepts real stations only")
    return station


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            sync_path(Path(folder) / name)
        sync_path(Path(folder))


def install_station(station: Path, dest: Path, owner: str | None,
                    before_commit: Callable[[Path], None] | None = None) -> None:
    """Copy the checked station folder to ``dest`` through a temporary folder and a rename.

    ``before_commit`` runs on the staged copy before its files are given to ``owner`` and renamed into
    place (the TPM key is made there); if it raises, the staged copy is removed and nothing is installed.
    """
    staging = dest.with_name(dest.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(station, staging)
    if before_commit is not None:
        try:
            before_commit(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    for folder, dirs, files in os.walk(staging):
        for name in [*dirs, *files]:
            path = Path(folder) / name
            path.chmod(0o700 if path.is_dir() else 0o600)
            if owner:
                shutil.chown(path, owner, owner)
    staging.chmod(0o700)
    if owner:
        shutil.chown(staging, owner, owner)
    _fsync_tree(staging)
    os.replace(staging, dest)
    sync_path(dest.parent)


def write_refusal(refused: StickRefused, path: Path) -> None:
    """Keep the refusal for the first-boot screen (readable by the screen's unprivileged user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"kind": refused.kind, "detail": refused.detail, "facts": refused.facts}))
    tmp.chmod(0o644)
    os.replace(tmp, path)


def _install(station: Path, args: argparse.Namespace) -> list[str]:
    """Install the checked station, with the TPM key step it needs (``device.firstboot_key``); the next steps."""
    from device.firstboot_key import KeyStepRefused, key_step

    try:
        step = key_step(station, args.stick, args.dest, args.serial)
        install_station(station, args.dest, args.owner, step)
    except KeyStepRefused as exc:
        raise StickRefused(exc.kind, exc.detail) from None
    return step.next_steps() if step is not None else []


def _say(text: str) -> None:
    print(f"pollbox-station-import: {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m device.firstboot", description=__doc__.split("\n")[0])
    p.add_argument("--settings", type=Path, default=IMAGE_SETTINGS)
    p.add_argument("--refusal", type=Path, default=REFUSAL_FILE)
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="check the mounted stick and install its station")
    imp.add_argument("--stick", type=Path, required=True, help="where the stick is mounted")
    imp.add_argument("--dest", type=Path, required=True, help="the station folder on the data partition")
    imp.add_argument("--owner", help="the user that will own the installed files")
    imp.add_argument("--serial", help="the unit's serial for its enrollment request (default: the board's)")
    ref = sub.add_parser("refuse", help="record a refusal found before the stick could be read")
    ref.add_argument("kind", choices=KINDS)
    ref.add_argument("detail")
    scr = sub.add_parser("screen", help="serve the first-boot screen with the recorded refusal")
    scr.add_argument("--host")
    scr.add_argument("--port", type=int)
    args = p.parse_args(argv)
    settings = read_image_settings(args.settings)
    if args.command == "screen":
        from device.firstboot_screen import serve
        serve(args.refusal, args.host or settings.screen_host, args.port or settings.screen_port)
        return 0
    try:
        if args.command == "refuse":
            raise StickRefused(args.kind, args.detail)
        station = check_stick(args.stick, settings, time.time())
        next_steps = _install(station, args)
    except StickRefused as refused:
        _say(str(refused))
        write_refusal(refused, args.refusal)
        return 1
    _say(f"station imported from the USB stick ({station / 'station.toml'} checked against the image's CEC key)")
    for line in next_steps:
        _say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The RAUC updater: the only module that runs ``rauc``.

``inspect`` runs ``rauc info`` against the unit's RAUC config (its keyring: the
CEC's update CA, ``docs/updates.md``), which checks the bundle's CMS signature
without mounting or writing anything, and then compares the bundle's
``compatible`` with the config's. ``install`` runs ``rauc install``, which asks the
RAUC service (root, D-Bus) to write the inactive slot and make it the one to boot
once on trial; ``rauc status`` then names that slot.

``booted`` runs ``rauc status --detailed --output-format=json`` and reads the
slot RAUC says was booted: its ``bootname`` (``A``/``B``), and from the slot
status RAUC keeps for the slots it wrote the bundle's ``version`` and the
``checksum.sha256`` of the root file system image (``RunningSlot``): what the
unit signs into its reports as the software it runs.

RAUC 1.8's refusals are sentences on stderr; the ones told apart here: a signature
that does not verify ("signature verification failed"), and a file that is cut
short or is not a bundle ("Invalid bundle format", which RAUC says when the
signature's size field at the end of the file does not fit).
"""

from __future__ import annotations

import configparser
import json
import logging
import re
import subprocess
from pathlib import Path
from typing import Any

from device.core.update import UpdateRefusal
from device.updates import MAX_BUNDLE_BYTES, Bundle, BundleRefused, RunningSlot, UpdateError, check_size

INFO_TIMEOUT = 120.0
"""Seconds ``rauc info`` may take (it reads the manifest and the signature, not the payload)."""
INSTALL_TIMEOUT = 3600.0
"""Seconds ``rauc install`` may take to write a slot (minutes on an SD card)."""
STATUS_TIMEOUT = 30.0
"""Seconds ``rauc status`` may take at start (it asks the RAUC service over D-Bus)."""
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
log = logging.getLogger("pollbox.updates")
_SIGNER = re.compile(r"Verified (?:inline |detached )?signature by '([^']*)'")


class RaucUpdater:
    """``rauc`` with the config at ``system_conf`` (default ``/etc/rauc/system.conf``)."""

    def __init__(self, system_conf: Path, *, rauc: str = "rauc", budget: int = MAX_BUNDLE_BYTES) -> None:
        self.system_conf, self.rauc, self.budget = system_conf, rauc, budget

    @property
    def compatible(self) -> str:
        """Read from the config at each use: a unit without RAUC still starts, and says so only when updated."""
        return _compatible_of(self.system_conf)

    def inspect(self, path: Path) -> Bundle:
        size = check_size(path, self.budget)
        self.compatible  # noqa: B018 - a unit without a RAUC config says so before RAUC reads the bundle
        done = self._run(["info", "--output-format=json", str(path)], INFO_TIMEOUT)
        said = _said(done.stderr)
        if done.returncode != 0:
            if "signature verification failed" in done.stderr:
                raise BundleRefused(UpdateRefusal.BAD_SIGNATURE, "the bundle is not signed by the CEC's update key "
                                    f"({said})", size=size)
            if "Invalid bundle format" in done.stderr:
                raise BundleRefused(UpdateRefusal.TRUNCATED, "the file is cut short or is not a bundle: its "
                                    f"signature cannot be found ({said})", size=size)
            raise BundleRefused(UpdateRefusal.UNREADABLE, f"RAUC cannot read the bundle ({said})", size=size)
        try:
            info: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            raise BundleRefused(UpdateRefusal.UNREADABLE, "RAUC's description of the bundle is not JSON",
                                size=size) from None
        version = str(info.get("version") or "")
        compatible, ours = str(info.get("compatible") or ""), self.compatible
        if compatible != ours:
            raise BundleRefused(UpdateRefusal.WRONG_COMPATIBLE, f"the bundle is for {compatible!r}, this unit is "
                                f"{ours!r}", version, size)
        found = _SIGNER.search(done.stderr)
        return Bundle(path, version, compatible, size, found.group(1) if found else "")

    def install(self, path: Path) -> str:
        done = self._run(["install", str(path)], INSTALL_TIMEOUT)
        if done.returncode != 0:
            raise UpdateError(f"RAUC did not install the bundle: {_said(done.stderr + done.stdout)}")
        return self.primary()

    def booted(self) -> RunningSlot | None:
        if not self.system_conf.is_file():
            return None  # no RAUC on this system: nothing to say about slots
        try:
            done = self._run(["status", "--detailed", "--output-format=json"], STATUS_TIMEOUT)
        except UpdateError as exc:
            log.warning("the running slot is not known: %s", exc)
            return None
        if done.returncode != 0:
            log.warning("the running slot is not known: rauc status failed (%s)", _said(done.stderr))
            return None
        try:
            return booted_slot(json.loads(done.stdout))
        except ValueError:
            log.warning("the running slot is not known: rauc status did not answer JSON")
            return None

    def primary(self) -> str:
        """The slot that boots next (RAUC's ``boot_primary``, by its boot name), or "" if RAUC cannot say."""
        done = self._run(["status", "--output-format=json"], INFO_TIMEOUT)
        if done.returncode != 0:
            return ""
        try:
            status = json.loads(done.stdout)
        except ValueError:
            return ""
        primary = str(status.get("boot_primary") or "")
        for entry in status.get("slots", []):
            for name, slot in entry.items():
                if name == primary:
                    return str(slot.get("bootname") or name)
        return primary

    def _run(self, words: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run([self.rauc, "--conf", str(self.system_conf), *words], capture_output=True,
                                  text=True, timeout=timeout, check=False)
        except FileNotFoundError:
            raise UpdateError(f"RAUC is not installed ({self.rauc} not found): this system cannot be updated "
                              "(Debian package rauc)") from None
        except subprocess.TimeoutExpired:
            raise UpdateError(f"rauc {words[0]} did not finish within {timeout:.0f} s") from None


def booted_slot(status: Any) -> RunningSlot | None:
    """The booted slot in RAUC's ``status --detailed`` JSON, with its bundle version and image SHA-256 (both ""
    when RAUC keeps none for it: a slot it did not write); None when RAUC names no booted slot."""
    if not isinstance(status, dict):
        return None
    booted = str(status.get("booted") or "")
    for entry in status.get("slots") or []:
        if not isinstance(entry, dict):
            continue
        for name, slot in entry.items():
            if not isinstance(slot, dict) or not booted or booted not in (name, slot.get("bootname")):
                continue
            if slot.get("state") not in (None, "booted"):
                continue
            detail = _object(slot.get("slot_status"))
            version = str(_object(detail.get("bundle")).get("version") or "")
            digest = str(_object(detail.get("checksum")).get("sha256") or "")
            if not version or not _HEX64.match(digest):
                version, digest = "", ""
            return RunningSlot(str(slot.get("bootname") or name), version, digest)
    return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _compatible_of(system_conf: Path) -> str:
    """``[system] compatible`` of a RAUC config: the hardware this unit takes bundles for."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        text = system_conf.read_text(encoding="utf-8")
    except OSError as exc:
        raise UpdateError(f"cannot read the RAUC config {system_conf}: {exc.strerror or exc}") from None
    try:
        parser.read_string(text)
        return parser["system"]["compatible"].strip()
    except (configparser.Error, KeyError):
        raise UpdateError(f"the RAUC config {system_conf} names no [system] compatible") from None


def _said(stderr: str) -> str:
    """RAUC's own sentence: its last line that is not a progress message."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and "rauc-Message" not in line]
    return lines[-1] if lines else "no reason given"

"""The first boot's key step: a TPM-held record key made on the unit, its enrollment request put on the stick.

A production image has no shell, so a unit whose station config says ``[key] store = "tpm"`` gets
its key during the station import (``device.firstboot``), not from ``pollbox-provision unit keygen``.
``key_step`` decides, before anything is copied, whether this import needs it:

- the config keeps the key in a file (``store = "file"``), or the stick already carries the unit's
  ``device.tpm``: no key step (the station is installed as it is);
- the stick carries a key file ``device.key`` for a TPM config: refused (``bad_config``): a unit
  whose key lives in the TPM never uses a key file;
- the station's ``data_dir`` lies outside the station folder, or the data partition already holds a
  ``device.tpm``: refused (``tpm_key``); an existing TPM key is never replaced here;
- the stick cannot be written (``stick_readonly``) or has no room (``stick_full``): refused before
  the TPM is asked for anything.

Otherwise the returned ``TpmKeyStep`` runs on the staged copy of the station (``install_station``'s
``before_commit``): ``device.signing.create_signer`` makes the P-256 key inside the TPM (the staged
data folder gets ``device.tpm`` and ``device.pub``), the X25519 sealing key is made if the stick
brought none, and ``provisioning.enrollment.make_request`` writes the same signed request as
``pollbox-provision unit enroll-request`` to the stick as ``enrollment-request-<station>-<serial>.json``
(through a temporary file, flushed, and a rename). Any failure removes the staged copy: nothing is
installed, and the next start tries again with a new key (the TPM keeps nothing between attempts:
the key exists only as the blob in ``device.tpm``).

Errors are ``KeyStepRefused`` (a kind of ``device.firstboot.KINDS`` and the detail), which the
import turns into its refusal (journal, console and the first-boot screen).

**The way back** (``take_enrollment``, ``python -m device.firstboot_key take``): at the CEC,
``pollbox-provision cec enroll --out STICK STICK/enrollment-request-*.json`` checks the request and writes
the CEC-signed certificate ``<station>-<serial>.enrollment.json`` onto the same stick. At the unit's
next boot with the stick in, or as soon as the stick is plugged into the running unit (the image's udev
rule ``61-pollbox-enrollment.rules``), the image's ``pollbox-enrollment.service`` (only while the unit's
key is in its TPM and it holds no ``enrollment.json``) mounts the stick read-only and runs the take step: every
``*.enrollment.json`` on the stick is checked against the election's CEC key and this unit's own key
(``provisioning.enrollment.verify_certificate``); the one for this unit is stored as
``enrollment.json`` in its data folder, owned by the appliance's user. Certificates of other units
on a shared stick are skipped; one not signed by this election's CEC is refused, saying so, and the
refusal is left in ``enrollment-refused.json``. The take step writes these files only: the appliance, the
journal's one writer, journals the certificate taken (``device_key_enrolled``) or refused
(``device_key_enrollment_refused``) once each, at its start or while it runs, and the chair's details page
follows (``device/keystate.py``). A unit whose key is a file was enrolled with its station's package: the
take step does nothing there and says nothing.

A take that fails before it reads any certificate (the station config has no usable CEC key; the stick's folder
is missing or cannot be listed; a file of the unit cannot be read or written) is refused the same way, on the
console, with the reason left in ``enrollment-refused.json`` without a certificate and with a fresh ``attempt``
id, so that the appliance journals each failed attempt once (``device_key_enrollment_failed``). The image's
script that mounts the stick leaves the same note through ``python -m device.firstboot_key not-mounted`` when the
stick cannot be mounted (``not_mounted``). Only a station config that cannot be read at all leaves no note: it
names the data folder, and the appliance does not start on it either.
"""

from __future__ import annotations

import errno
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from device.config import load_config
from device.files import sync_path, write_private
from protocol.errors import UserError

PROBE = ".pollbox-write-check"
PROBE_BYTES = 16 << 10
"""The stick must take this much (a request is about 1 KiB) before the TPM makes a key."""
READONLY = (errno.EROFS, errno.EACCES, errno.EPERM)
FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class KeyStepRefused(UserError):
    """The key step cannot run: ``kind`` (one of ``device.firstboot.KINDS``) and what was found."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind, self.detail = kind, detail
        super().__init__(f"{kind}: {detail}")


def _stick_error(exc: OSError, stick: Path) -> KeyStepRefused:
    if exc.errno in FULL:
        return KeyStepRefused("stick_full", f"the USB stick ({stick}) is full: the unit's enrollment request "
                                            f"cannot be written on it ({exc.strerror}); free some space and restart")
    if exc.errno in READONLY:
        return KeyStepRefused("stick_readonly", f"the USB stick ({stick}) is read-only: the unit's enrollment "
                                                f"request cannot be written on it ({exc.strerror}); unlock it "
                                                "(the write-protect switch) and restart")
    return KeyStepRefused("stick_readonly", f"the USB stick ({stick}) cannot be written ({exc}); restart with a "
                                            "working stick")


def check_writable(stick: Path) -> None:
    """Write, flush and remove a probe file on the stick; KeyStepRefused if it is read-only or full."""
    probe = stick / PROBE
    try:
        with probe.open("wb") as out:
            out.write(b"\0" * PROBE_BYTES)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
        raise _stick_error(exc, stick) from None
    try:
        probe.unlink()
    except OSError as exc:
        raise _stick_error(exc, stick) from None


def write_request(stick: Path, name: str, request: dict[str, Any]) -> Path:
    """The request on the stick, through a temporary file and a rename; KeyStepRefused on a write error."""
    path = stick / name
    try:
        write_private(path, (json.dumps(request, indent=1, sort_keys=True) + "\n").encode())
        sync_path(stick)
    except OSError as exc:
        try:
            path.with_name(name + ".tmp").unlink(missing_ok=True)
        except OSError:
            pass
        raise _stick_error(exc, stick) from None
    return path


class TpmKeyStep:
    """Makes the TPM key in a staged station copy and writes its enrollment request to the stick."""

    def __init__(self, relative_data: Path, stick: Path, station_id: str, serial: str, tcti: str) -> None:
        self.relative_data, self.stick, self.station_id, self.serial, self.tcti = (relative_data, stick, station_id,
                                                                                  serial, tcti)
        self.request_path: Path | None = None
        self.key_id = ""

    def __call__(self, staging: Path) -> None:
        from device.keys import KeyError_
        from device.signing import create_signer
        from provisioning.enrollment import make_request
        from provisioning.errors import ProvisionError
        from provisioning.seal import create_seal_key

        data = staging / self.relative_data
        data.mkdir(parents=True, exist_ok=True)
        try:
            create_signer(data, "tpm", self.tcti).close()
            if not (data / "seal.pub").exists():
                create_seal_key(data)
            request = make_request(data, self.station_id, self.serial, time.time(), "tpm", self.tcti)
        except (KeyError_, ProvisionError) as exc:
            raise KeyStepRefused("tpm_key", f"the unit's key could not be made in its TPM: {exc}") from None
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{self.station_id}-{self.serial}")
        self.request_path = write_request(self.stick, f"enrollment-request-{safe}.json", request)
        self.key_id = str(request["key_id"])

    def next_steps(self) -> list[str]:
        """What the console and the journal say once the station is installed."""
        return [f"device key {self.key_id} made inside this unit's TPM ({self.tcti}); it never leaves the TPM",
                f"enrollment request for station {self.station_id}, unit {self.serial}, written to the USB stick "
                f"as {self.request_path.name if self.request_path else '?'}",
                "technician: take the USB stick to the CEC, where the request is enrolled "
                "('pollbox-provision cec enroll ... REQUEST'); bring back the enrollment certificate and the "
                "device registry as the technician guide says; this unit cannot deliver records until then"]


def key_step(station: Path, stick: Path, dest: Path, serial: str | None) -> TpmKeyStep | None:
    """The key step this checked station needs, or None; KeyStepRefused when it cannot run (see the module)."""
    config = load_config(station / "station.toml")
    if config.key.store != "tpm":
        return None
    try:
        relative = config.data_dir.relative_to(station.resolve())
    except ValueError:
        raise KeyStepRefused("tpm_key", f"data_dir ({config.data_dir}) is outside the station folder; the first "
                                        "boot makes the TPM key only in the station's own data folder") from None
    on_stick = station / relative
    if (on_stick / "device.tpm").exists():
        return None  # the unit's key blob came on the stick: installed as it is, checked by the TPM at start
    if (on_stick / "device.key").exists():
        raise KeyStepRefused("bad_config", f'the config keeps the record key in the TPM ([key] store = "tpm") but '
                                           f"the stick carries a key file ({relative / 'device.key'}); a unit whose "
                                           "key lives in the TPM never uses a key file: take it off the stick")
    existing = dest / relative / "device.tpm"
    if existing.exists():
        raise KeyStepRefused("tpm_key", f"{existing} already holds this unit's TPM device key; the first boot "
                                        "does not replace it (see docs/keys.md)")
    station_id = str(json.loads(config.station_package.read_bytes())["payload"]["station"]["id"])  # checked already
    if serial is None:
        from provisioning.enrollment import unit_serial
        from provisioning.errors import ProvisionError
        try:
            serial = unit_serial()
        except ProvisionError as exc:
            raise KeyStepRefused("tpm_key", str(exc)) from None
    check_writable(stick)
    return TpmKeyStep(relative, stick, station_id, serial, config.key.tcti)


class EnrollmentRefused(UserError):
    """The stick's enrollment certificate cannot be taken; the message says why and what to do.

    ``certificate`` is the refused certificate's SHA-256 (``device.keystate.certificate_hash``; of several,
    the hash of their sorted hashes), written with the message to ``enrollment-refused.json``."""

    def __init__(self, message: str, certificate: str = "") -> None:
        self.certificate = certificate
        super().__init__(message)


def _hash_of(paths: list[Path]) -> str:
    """The refused certificates' SHA-256: one certificate's own, or for several the hash of their sorted hashes."""
    import hashlib

    from device.keystate import certificate_hash
    hashes = []
    for path in paths:
        try:
            hashes.append(certificate_hash(path.read_bytes()))
        except OSError:
            hashes.append(hashlib.sha256(path.name.encode()).hexdigest())
    if len(hashes) == 1:
        return hashes[0]
    return hashlib.sha256(",".join(sorted(hashes)).encode()).hexdigest()


def _note_refusal(data: Path, exc: EnrollmentRefused, owner: str | None) -> None:
    """Leave the refusal where the appliance reads it (``device/keystate.py``): it journals it and the screen
    says the certificate is not valid. A refusal without a certificate (the step failed before it read one)
    gets a fresh random ``attempt``, so that two failures name two attempts. Best effort: the console and the
    system journal have it anyway."""
    import secrets
    from datetime import UTC, datetime

    from device.keystate import REFUSAL
    doc = {"certificate": exc.certificate, "reason": str(exc),
           "refused_at": datetime.now(UTC).isoformat(timespec="seconds")}
    if not exc.certificate:
        doc["attempt"] = secrets.token_hex(16)
    try:
        write_private(data / REFUSAL, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode())
        if owner is not None:
            import shutil
            shutil.chown(data / REFUSAL, owner, owner)
    except (OSError, LookupError):
        pass


def take_enrollment(stick: Path, config_path: Path, owner: str | None = None) -> str:
    """Store the CEC's enrollment certificate for this unit's key from the stick as ``enrollment.json``.

    Returns what was done, for the console and the journal ("" for a unit whose key is not in a TPM: its key
    file was enrolled with the station's package, and there is nothing to take or to say). Raises
    EnrollmentRefused when the stick holds certificates and none is this election's CEC's for this unit's key,
    or the certificate cannot be stored; the refusal is also left in ``enrollment-refused.json`` for the
    appliance to journal, and removed once a certificate is taken.
    """
    config = load_config(config_path)
    data = config.data_dir
    if config.key.store != "tpm" or not (data / "device.tpm").exists():
        return ""
    try:
        try:
            said = _take(stick, config, owner)
        except OSError as exc:  # a file of the unit's, or the stick's, that could not be read or written
            raise EnrollmentRefused(f"the enrollment step could not read or write a file ({exc}); nothing was "
                                    "taken: call the technician") from None
    except EnrollmentRefused as exc:
        _note_refusal(data, exc, owner)
        raise
    if (data / "enrollment.json").exists():
        from device.keystate import REFUSAL
        (data / REFUSAL).unlink(missing_ok=True)
    return said


def _take(stick: Path, config: Any, owner: str | None) -> str:
    from device.package import PackageError, public_key_from_b64
    from provisioning.enrollment import read_json, record_enrollment, recorded_enrollment, verify_certificate
    from provisioning.errors import ProvisionError

    data = config.data_dir
    try:
        cec = public_key_from_b64(config.cec_public_key)
    except PackageError as exc:
        raise EnrollmentRefused(f"the station config has no usable CEC key: {exc}") from None
    if (data / "enrollment.json").exists():
        try:
            entry = recorded_enrollment(data, cec)
            return f"the device key {entry.key_id} is already enrolled (since {entry.enrolled_at}); nothing to take"
        except ProvisionError:
            pass  # a certificate that does not hold is replaced by a good one from the stick
    found = _certificates_on(stick)
    if not found:
        return (f"no enrollment certificate on the USB stick ({stick}); the device key is not enrolled yet: "
                "take the stick with the enrollment request to the CEC")
    refusals = []
    for path in found:
        try:
            doc = read_json(path, "enrollment certificate")
            verify_certificate(doc, cec, data, path.name)
        except ProvisionError as exc:
            refusals.append(exc)
            continue
        try:
            entry = record_enrollment(path, cec, data)
            if owner is not None:
                import shutil
                shutil.chown(data / "enrollment.json", owner, owner)
        except (ProvisionError, OSError) as exc:
            raise EnrollmentRefused(f"the enrollment certificate {path.name} could not be stored: {exc}",
                                    _hash_of([path])) from None
        return (f"device key {entry.key_id} enrolled by the CEC for station {entry.station}, unit {entry.serial} "
                f"(enrolled {entry.enrolled_at}): certificate {path.name} taken from the USB stick")
    unsigned = [(e, p) for e, p in zip(refusals, found, strict=True)
                if e.code == "E031" and "signed by this election's CEC" in e.message]
    if unsigned:
        error, path = unsigned[0]
        raise EnrollmentRefused(f"{error.message}: ask the CEC to enroll this unit's request again", _hash_of([path]))
    raise EnrollmentRefused(f"the USB stick holds {len(found)} enrollment certificate(s), none for this unit's "
                            f"device key ({'; '.join(e.message for e in refusals)[:400]})", _hash_of(found))


def not_mounted(stick: str, error: str, config_path: Path, owner: str | None = None) -> EnrollmentRefused | None:
    """The take step failed before it ran: the image's script could not mount the stick ``stick`` (``error``,
    what mount said). Leaves the refusal for the appliance to journal, as a failed take does; returns it, or None
    for a unit whose key is not in a TPM (nothing is taken there, and nothing said)."""
    config = load_config(config_path)
    data = config.data_dir
    if config.key.store != "tpm" or not (data / "device.tpm").exists():
        return None
    said = " ".join(error.split())[:200] or "no reason given"
    refusal = EnrollmentRefused(f"the USB stick {stick} could not be mounted ({said}); nothing was taken: plug the "
                                "stick in again, or try another stick with the certificate")
    _note_refusal(data, refusal, owner)
    return refusal


def _certificates_on(stick: Path) -> list[Path]:
    """The stick's ``*.enrollment.json`` files, sorted; EnrollmentRefused if the stick's folder cannot be listed
    (not mounted there, not a folder, or unreadable), which would otherwise look like a stick without one."""
    try:
        names = sorted(entry.name for entry in os.scandir(stick))
    except OSError as exc:
        raise EnrollmentRefused(f"the USB stick at {stick} cannot be read ({exc.strerror or exc}); nothing was "
                                "taken: plug the stick in again, or try another stick with the certificate") from None
    return [stick / name for name in names if name.endswith(".enrollment.json") and not name.startswith(".")]


def main(argv: list[str] | None = None) -> int:
    """``python -m device.firstboot_key take --stick MOUNT --config STATION.TOML [--owner USER]``, and
    ``python -m device.firstboot_key not-mounted --stick DEVICE --error TEXT --config STATION.TOML [--owner USER]``."""
    import argparse
    import sys
    p = argparse.ArgumentParser(prog="python -m device.firstboot_key", description=main.__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    take = sub.add_parser("take", help="take this unit's enrollment certificate from the mounted stick")
    take.add_argument("--stick", type=Path, required=True, help="where the stick is mounted")
    take.add_argument("--config", type=Path, required=True, help="the installed station's config")
    take.add_argument("--owner", help="the user that will own enrollment.json")
    failed = sub.add_parser("not-mounted", help="the stick could not be mounted: leave the failed take's note")
    failed.add_argument("--stick", required=True, help="the stick's device")
    failed.add_argument("--error", required=True, help="what mount said")
    failed.add_argument("--config", type=Path, required=True, help="the installed station's config")
    failed.add_argument("--owner", help="the user that will own the note")
    args = p.parse_args(argv)
    try:
        if args.command == "not-mounted":
            refusal = not_mounted(args.stick, args.error, args.config, args.owner)
            if refusal is None:
                return 1  # a unit whose key is a file: nothing to take, and nothing said
            raise refusal
        said = take_enrollment(args.stick, args.config, args.owner)
    except UserError as exc:  # EnrollmentRefused; or the station config cannot be read (then no note is left)
        print(f"pollbox enrollment: refused: {exc}", file=sys.stderr, flush=True)
        return 1
    if said:
        print(f"pollbox enrollment: {said}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

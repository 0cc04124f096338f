"""The readiness self-test: everything a unit needs before the chair may open the polls.

``run_checks`` takes the unit's config and a built ``Appliance`` (the object
``device.appliance.build_appliance`` returns; only its public ``status``,
``verify``, ``annotate`` and ``upstream`` are used) and checks: keys present and enrolled
for this station, package valid and list key matching, clock within the
package's validity, storage writable with room to spare and the journal
intact, scanner answering, ballot box unit present with the slot locked, the
chair PIN set (by the chair, on the screen, at the opening: the package carries
none), and the receiver reachable.

The receiver check really talks to the receiver: it first asks the unit's
upstream (``Appliance.upstream``) to send whatever is waiting, which succeeds
only with a receipt signed by the receiver key in the package; when nothing
was waiting it asks the receiver for the station's current receipt over a
link built from the package exactly as the unit's own (same URL, same pinned
CA) and checks that receipt against the package's receiver key and the unit's
own receipts. No answer at all (no network yet) does not fail the test: the
note says records are stored on the unit and forwarded when the link returns.
A receiver that answers but refuses the unit's records or signs with another
key fails it (a wrong package, a wrong receiver, or a unit missing from the
device registry). ``record`` leaves the result as a signed note of record (an
upstream record); ``render`` is the printable form.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from device.config import Config
from device.hardware.interfaces import UplinkError
from device.keys import KeyError_
from device.package import PackageError, StationPackage, load_package, public_key_from_b64
from device.signing import load_signer
from device.upstream.uplink import HttpUplink, LinkDown, UplinkConfigError
from protocol.envelope import EnvelopeError, iso_utc
from protocol.keys import key_id
from protocol.receipts import verify_receipt

from .enrollment import recorded_enrollment
from .errors import ProvisionError

MIN_FREE_BYTES = 256 * 1024 * 1024
"""Free space the data partition must have: a busy day's journal with outbox is a few tens of megabytes."""


CLOCK_TOLERANCE = 600.0
"""How far the unit's clock may lag the CEC machine that issued the package (seconds)."""


class ApplianceView(Protocol):
    upstream: Any

    def status(self) -> dict[str, Any]: ...

    def verify(self) -> Any: ...

    def annotate(self, topic: str, text: str) -> None: ...


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Readiness:
    station: str
    at: float
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def summary(self) -> str:
        verdict = "READY" if self.ok else "NOT READY: " + ", ".join(c.name for c in self.failed())
        return f"readiness {verdict}; " + "; ".join(f"{c.name}: {'ok' if c.ok else 'FAIL'}" for c in self.checks)


def _keys(config: Config, station: str) -> Check:
    try:
        key = load_signer(config.data_dir, config.key.store, config.key.tcti)  # the TPM must load it, too
        key.close()
        entry = recorded_enrollment(config.data_dir, public_key_from_b64(config.cec_public_key))
    except (KeyError_, ProvisionError) as exc:
        return Check("keys and enrollment", False, str(exc))
    if entry.station != station:
        return Check("keys and enrollment", False, f"the unit is enrolled for {entry.station}, not {station}")
    return Check("keys and enrollment", True,
                 f"device key {key_id(key.public_key())} enrolled {entry.enrolled_at} as unit {entry.serial}")


def _package(config: Config, now: float) -> tuple[Check, StationPackage | None]:
    try:
        package = load_package(config.station_package, public_key_from_b64(config.cec_public_key),
                               config.election_id, now)
        list_key = (config.data_dir / "list.key").read_bytes()
    except (PackageError, OSError) as exc:
        return Check("station package", False, str(exc)), None
    if not package.list_key_matches(list_key):
        why = "list.key does not belong to this package; reinstall from the stick"
        return Check("station package", False, why), None
    return Check("station package", True, f"{package.station_id}, {package.registered} voters, "
                                          f"digest {package.digest[:16]}"), package


def _clock(package: StationPackage | None, now: float) -> Check:
    if package is None:
        return Check("clock", False, "cannot judge the clock without a valid package")
    issued = datetime.fromisoformat(str(package.payload.get("issued_at", "1970-01-01T00:00:00Z"))).timestamp()
    if now < issued - CLOCK_TOLERANCE:
        return Check("clock", False, f"the clock says {iso_utc(now)}, before the package was issued "
                                     f"({iso_utc(issued)}); set the time and check the RTC battery")
    return Check("clock", True, f"{iso_utc(now)} (package issued {iso_utc(issued)})")


def _storage(config: Config, appliance: ApplianceView) -> Check:
    probe = config.data_dir / ".readiness-probe"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"pollbox readiness probe")
            os.fsync(fd)
        finally:
            os.close(fd)
        ok_read = probe.read_bytes() == b"pollbox readiness probe"
        probe.unlink()
        free = os.statvfs(config.data_dir).f_bavail * os.statvfs(config.data_dir).f_frsize
    except OSError as exc:
        return Check("storage", False, f"the data partition is not writable: {exc.strerror}")
    report = appliance.verify()
    if not ok_read:
        return Check("storage", False, "what was written to the data partition did not read back")
    if not report.ok:
        return Check("storage", False, f"the journal does not verify: {report.sentence()}")
    if free < MIN_FREE_BYTES:
        return Check("storage", False, f"only {free // 2**20} MiB free; {MIN_FREE_BYTES // 2**20} MiB needed")
    return Check("storage", True, f"writable, {free // 2**20} MiB free, journal verified")


CHAIR_PIN_FORMAT = "pollbox-chair-pin/1"
"""The format of the chair screen's PIN file (``web_ui.pin``): read here as data, never imported."""


def _chair_pin(config: Config) -> Check:
    path = config.web_dir / "chair_pin.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Check("chair PIN", False, "not set yet: the chair sets it on the unit's screen, in front of the "
                                         "commission; then run the self-test again")
    except (OSError, ValueError) as exc:
        return Check("chair PIN", False, f"the PIN file {path.name} cannot be read ({exc}); reset it "
                                         "(pollbox-provision unit reset-pin) and let the chair set it again")
    if not isinstance(doc, dict) or doc.get("format") != CHAIR_PIN_FORMAT or not doc.get("hash"):
        return Check("chair PIN", False, f"the PIN file {path.name} is not a chair PIN; reset it "
                                         "(pollbox-provision unit reset-pin) and let the chair set it again")
    return Check("chair PIN", True, "set by the chair (stored hashed)")


def _scanner(status: dict[str, Any]) -> Check:
    scanner = status.get("scanner") or {}
    ok = scanner.get("state") in ("connected", "reading")
    return Check("scanner", ok, f"{scanner.get('name')} is {scanner.get('state')}")


def _box(status: dict[str, Any]) -> Check:
    box, lock = status.get("box") or {}, status.get("interlock") or {}
    problems = [text for bad, text in (
        (box.get("present") is False, "the box unit does not answer"),
        (bool(lock.get("slot_open")), "the slot is open"),
        (bool(lock.get("lid_open")), "the lid is open"),
        (bool(lock.get("jammed")), "the slot is jammed")) if bad]
    if problems:
        return Check("ballot box", False, "; ".join(problems))
    return Check("ballot box", True, f"{box.get('backend', 'box')} present, slot locked, lid closed, sensor clear")


def _stored(reason: str) -> Check:
    return Check("receiver", True, "not reachable now: records are stored on the unit and forwarded when the "
                                   f"link returns ({reason})")


def _receiver(config: Config, appliance: ApplianceView, package: StationPackage | None) -> Check:
    """Send what is waiting; if nothing was, ask the receiver for this station's receipt."""
    upstream = appliance.upstream
    if upstream is None:
        return Check("receiver", False, "the unit has no upstream link: its records cannot reach the CEC")
    drained = upstream.drain_once(force=True)
    if drained.error is not None:
        if upstream.status().get("online") is False:
            return _stored(drained.error)
        return Check("receiver", False, f"the receiver answered but did not acknowledge this unit's records: "
                                        f"{drained.error}. Check that the unit is in the receiver's device "
                                        "registry and that the package names this receiver's key")
    if drained.sent:
        return Check("receiver", True, f"reachable; {drained.sent} record(s) sent, receipt verified through "
                                       f"record {drained.delivered_through}, {drained.waiting} waiting")
    if package is None:
        return Check("receiver", False, "cannot ask the receiver without a valid package")
    return _probe(config, package, drained.delivered_through)


def _probe(config: Config, package: StationPackage, delivered: int) -> Check:
    """The receipt GET, over a link built from the package as the unit's own is; the receipt is verified."""
    try:
        receiver_key = public_key_from_b64(str(package.receiver.get("public_key", "")))
        link = HttpUplink.from_package(package.payload, station=package.station_id, mode=config.mode)
    except (PackageError, UplinkConfigError) as exc:
        return Check("receiver", False, str(exc))
    try:
        reply = link.probe()
    except LinkDown as exc:
        return _stored(str(exc))
    except UplinkError as exc:
        return Check("receiver", False, str(exc))
    finally:
        link.close()
    where = str(package.receiver.get("url"))
    if not reply.ok:
        return Check("receiver", False, f"{where} refused the receipt query: {reply.error} ({reply.reason})")
    if reply.receipt is None:
        if delivered:
            return Check("receiver", False, f"{where} holds no records of {package.station_id}, but this unit has "
                                            f"receipts through record {delivered}: is it the right receiver?")
        return Check("receiver", True, f"reachable at {where}; no records of this station there yet")
    try:
        highest = verify_receipt(reply.receipt, receiver_key, package.station_id)
    except (EnvelopeError, ValueError) as exc:
        return Check("receiver", False, f"the receipt from {where} is not signed by the receiver key in the "
                                        f"package ({exc})")
    if highest < delivered:
        return Check("receiver", False, f"{where} holds records only through {highest}, but this unit has "
                                        f"receipts through {delivered}: is it the right receiver?")
    return Check("receiver", True, f"reachable at {where}; receipt verified through record {highest}")


def run_checks(config: Config, appliance: ApplianceView, now: float) -> Readiness:
    """Every readiness check, in the order the printed form lists them."""
    check, package = _package(config, now)
    station = package.station_id if package is not None else "?"
    receiver = _receiver(config, appliance, package)
    status = appliance.status()
    result = Readiness(station, now)
    result.checks += [_keys(config, station), check, _clock(package, now), _storage(config, appliance),
                      _scanner(status), _box(status), receiver, _chair_pin(config)]
    return result


def record(result: Readiness, appliance: ApplianceView) -> None:
    """Leave the result as a signed note of record (an upstream record for the CEC)."""
    appliance.annotate("readiness", result.summary())


def render(result: Readiness) -> str:
    """The printable form, for the station's file and the observers."""
    lines = [f"pollbox readiness self-test — station {result.station}", f"time (UTC): {iso_utc(result.at)}", ""]
    for c in result.checks:
        lines.append(f"[{'PASS' if c.ok else 'FAIL'}] {c.name}: {c.detail}")
    lines += ["", "RESULT: " + ("READY — the chair may show the zero report and open the polls" if result.ok
                                else "NOT READY — fix the failed items and run the self-test again"),
              "", "Technician: ____________________   Chair: ____________________   Signature/seal: ________"]
    return "\n".join(lines) + "\n"


def write_report(result: Readiness, path: Path) -> None:
    path.write_text(render(result), encoding="utf-8")

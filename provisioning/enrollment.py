"""Enrollment: binding a unit's device key to its station in the CEC's device registry.

1. On the unit, ``create_unit_keys`` makes the device key in the backend the
   config's ``[key] store`` names (``device/signing``: the Ed25519 key file, or a
   P-256 key inside the TPM) and the X25519 sealing key (``seal``).
2. ``make_request`` writes an enrollment request: station, device serial,
   public keys, software version and fingerprint, signed by the device key
   itself (proof that the unit holds the private key); a P-256 key's request
   carries ``"alg": "p256"`` (absent means Ed25519), and so does its registry entry.
3. On the CEC machine, ``enroll`` checks each request and adds it to the
   receiver's device registry (``receiver.registry``), signed by the CEC key,
   and writes an enrollment certificate for the unit (signed by the CEC).
4. Back on the unit, ``record_enrollment`` checks the certificate against the
   unit's own key and the CEC key in its config and stores it as
   ``enrollment.json`` in the data dir; readiness reports it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

import device
from device.keys import KeyError_
from device.signing import DEFAULT_TCTI, Signer, create_signer, load_signer, own_public_b64
from device.software import code_hash
from protocol.canonical import canonical
from protocol.envelope import iso_utc
from protocol.keys import ED25519, P256, KeyFormatError, decode_any_public_key, key_id, public_b64, signature_holds
from receiver.registry import DeviceEntry, Registry, RegistryError

from .errors import ProvisionError
from .keyfiles import read_text, write_public
from .seal import create_seal_key, load_seal_public

REQUEST_FORMAT = "pollbox-enrollment-request/1"
CERT_FORMAT = "pollbox-enrollment/1"
SOFTWARE_PACKAGES = ("device", "web_ui")
SERIAL_SOURCES = (Path("/sys/firmware/devicetree/base/serial-number"), Path("/etc/machine-id"))


def software_fingerprint(packages: Iterable[str] = SOFTWARE_PACKAGES) -> str:
    """SHA-256 over the installed appliance code (``device/software.py``), as the unit's reports sign it."""
    return code_hash(packages)


def unit_serial() -> str:
    """The board's serial number (Raspberry Pi device tree), else the machine id."""
    for source in SERIAL_SOURCES:
        try:
            text = source.read_bytes().rstrip(b"\0\n").decode("ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text:
            return text
    raise ProvisionError("E003", "cannot read this unit's serial number; pass --serial")


def create_unit_keys(data_dir: Path, store: str = "file", tcti: str = DEFAULT_TCTI) -> str:
    """Create the device key (in the backend ``store`` names) and the sealing key; returns the device key id."""
    try:
        key = create_signer(data_dir, store, tcti)
    except KeyError_ as exc:
        raise ProvisionError("E002", str(exc)) from None
    try:
        create_seal_key(data_dir)
        return key_id(key.public_key())
    finally:
        key.close()


def _device_key(data_dir: Path, store: str = "file", tcti: str = DEFAULT_TCTI) -> Signer:
    try:
        return load_signer(data_dir, store, tcti)
    except KeyError_ as exc:
        raise ProvisionError("E020", str(exc)) from None


def make_request(data_dir: Path, station_id: str, serial: str, now: float, store: str = "file",
                 tcti: str = DEFAULT_TCTI) -> dict[str, Any]:
    """The signed enrollment request of the unit whose data dir is ``data_dir``."""
    key = _device_key(data_dir, store, tcti)
    try:
        body = {"format": REQUEST_FORMAT, "station": station_id, "serial": serial,
                "public_key": public_b64(key.public_key()), "key_id": key_id(key.public_key()),
                "seal_public_key": load_seal_public(data_dir),
                "software": {"version": device.__version__, "hash": software_fingerprint()},
                "created_at": iso_utc(now)}
        if key.alg != ED25519:
            body["alg"] = key.alg
        return {**body, "signature": base64.b64encode(key.sign(canonical(body))).decode()}
    finally:
        key.close()


def write_json(path: Path, doc: dict[str, Any]) -> None:
    write_public(path, json.dumps(doc, indent=1, sort_keys=True) + "\n", overwrite=True)


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(read_text(path, what))
    except ValueError as exc:
        raise ProvisionError("E030", f"{path}: {what} is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ProvisionError("E030", f"{path}: {what} is not a JSON object")
    return doc


def check_request(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The request body after checking its shape and its self-signature; raises E030."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    fields = ("station", "serial", "public_key", "key_id", "seal_public_key", "created_at")
    if doc.get("format") != REQUEST_FORMAT or not all(isinstance(doc.get(f), str) and doc[f] for f in fields):
        raise ProvisionError("E030", f"{name}: not an enrollment request ({REQUEST_FORMAT} with {', '.join(fields)})")
    software = doc.get("software")
    if not isinstance(software, dict) or not all(isinstance(software.get(k), str) for k in ("version", "hash")):
        raise ProvisionError("E030", f"{name}: the request has no software version and hash")
    if doc.get("alg", P256) != P256:
        raise ProvisionError("E030", f'{name}: alg is written only as "{P256}" (absent means {ED25519})')
    try:
        public = decode_any_public_key(doc["public_key"], str(doc.get("alg", ED25519)))
        if not signature_holds(public, base64.b64decode(str(doc.get("signature", "")), validate=True),
                               canonical(body)):
            raise InvalidSignature
    except (ValueError, KeyFormatError, InvalidSignature):
        raise ProvisionError("E030", f"{name}: the request's signature does not verify (altered, or not "
                                     "made by the unit that holds the key)") from None
    if key_id(public) != doc["key_id"]:
        raise ProvisionError("E030", f"{name}: key_id does not match the public key")
    return body


def _load_registry(path: Path, cec_key: Ed25519PrivateKey) -> Registry:
    if not path.exists():
        return Registry()
    try:
        return Registry.load(path, cec_key.public_key())
    except RegistryError as exc:
        raise ProvisionError("E032", str(exc)) from None


def enroll(requests: list[Path], registry_path: Path, cec_key: Ed25519PrivateKey, out_dir: Path, now: float,
           stations: Iterable[str] | None = None) -> list[Path]:
    """Add every request to the registry (all or none) and write one certificate per unit."""
    allowed = set(stations) if stations is not None else None
    bodies = [check_request(read_json(p, "enrollment request"), str(p)) for p in requests]
    registry = _load_registry(registry_path, cec_key)
    entries = []
    for path, body in zip(requests, bodies, strict=True):
        if allowed is not None and body["station"] not in allowed:
            raise ProvisionError("E031", f"{path}: station {body['station']} is not in the election plan")
        entry = DeviceEntry(station=body["station"], serial=body["serial"], public_key=body["public_key"],
                            key_id=body["key_id"], software=f"{body['software']['version']}+{body['software']['hash']}",
                            enrolled_at=iso_utc(now), alg=str(body.get("alg", ED25519)))
        try:
            registry.add(entry)
        except RegistryError as exc:
            raise ProvisionError("E032", f"{path}: {exc}") from None
        entries.append((entry, body))
    registry_path.parent.mkdir(parents=True, exist_ok=True)
    registry.sign_and_save(registry_path, cec_key)
    return [_write_certificate(out_dir, entry, body, cec_key) for entry, body in entries]


def _write_certificate(out_dir: Path, entry: DeviceEntry, body: dict[str, Any], cec_key: Ed25519PrivateKey) -> Path:
    cert = {"format": CERT_FORMAT, "device": entry.as_json(), "seal_public_key": body["seal_public_key"]}
    cert["signature"] = base64.b64encode(cec_key.sign(canonical(cert))).decode()
    path = out_dir / f"{entry.station}-{entry.serial}.enrollment.json"
    write_json(path, cert)
    return path


def verify_certificate(doc: dict[str, Any], cec_public: Ed25519PublicKey, data_dir: Path, name: str) -> DeviceEntry:
    """The certified entry, after checking the CEC signature and that it names this unit's key."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    try:
        cec_public.verify(base64.b64decode(str(doc.get("signature", "")), validate=True), canonical(body))
        entry = DeviceEntry.from_dict(doc.get("device"), 0)
    except (ValueError, InvalidSignature, RegistryError):
        msg = f"{name}: not an enrollment certificate signed by this election's CEC key"
        raise ProvisionError("E031", msg) from None
    try:
        own = own_public_b64(data_dir)
    except KeyError_ as exc:
        raise ProvisionError("E020", str(exc)) from None
    if doc.get("format") != CERT_FORMAT or entry.public_key != own:
        raise ProvisionError("E031", f"{name}: this enrollment is for another unit (key {entry.key_id})")
    return entry


def record_enrollment(cert_path: Path, cec_public: Ed25519PublicKey, data_dir: Path) -> DeviceEntry:
    """Check the certificate and store it as ``enrollment.json`` in the unit's data dir."""
    doc = read_json(cert_path, "enrollment certificate")
    entry = verify_certificate(doc, cec_public, data_dir, str(cert_path))
    write_json(data_dir / "enrollment.json", doc)
    return entry


def recorded_enrollment(data_dir: Path, cec_public: Ed25519PublicKey) -> DeviceEntry:
    """The unit's stored enrollment, verified again; raises E031 if missing or wrong."""
    path = data_dir / "enrollment.json"
    if not path.exists():
        raise ProvisionError("E031", f"the unit is not enrolled (no {path}); run 'unit enroll-request' and "
                                     "bring the certificate back from the CEC")
    return verify_certificate(read_json(path, "enrollment certificate"), cec_public, data_dir, str(path))


def enrolled_at(entry: DeviceEntry) -> datetime:
    return datetime.fromisoformat(entry.enrolled_at).astimezone(UTC)

"""The record key in a TPM: how fast a unit signs records with it, and how fast the receiver checks them.

* ``record signing rate, swtpm P-256 key``: records built and signed per second
  (``protocol.envelope.make_record``) with the ECDSA P-256 key inside a software
  TPM (``swtpm`` on loopback, reached through the swtpm TCTI by ``tpm2-pytss``);
  baseline: the same records with the Ed25519 key file (``device/signing``), in the
  same run. swtpm is **not** a bound for a real chip in either direction: it does
  the ECDSA on this machine's CPU (faster than a TPM's), but adds a TCP round trip
  per command. A discrete SPI TPM such as the Infineon SLB9670 is documented at
  tens of milliseconds per ECC signature, so expect a real unit to sign several
  times slower than this number (not measured on a Pi).
* ``receiver authentication rate, P-256``: records authenticated per second by
  the receiver's ``ingest.authenticate`` (registry lookup, revocation, signature,
  body schema); baseline: Ed25519 records of the same size, in the same run.
* ``receiver signature check rate, P-256``: the signature check alone, as
  ``authenticate`` makes it: OpenSSL through ``cryptography`` with the key
  object kept by the registry; baseline: Ed25519 through libsodium
  (``ingest.signature_holds``).

Each rate is the best of three alternated turns (the machine is shared). Without ``swtpm`` (Debian
swtpm) or ``tpm2-pytss`` only the verification entries are given.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from device.signing import Signer, create_signer
from protocol.chain import ZERO_HASH
from protocol.envelope import SignedRecord, make_record
from protocol.keys import alg_of, key_id, p256_signature, public_b64, raw_public
from protocol.keys import signature_holds as key_signature_holds
from receiver.ingest import authenticate, signature_holds
from receiver.registry import DeviceEntry, Registry

STATION = "KG-0001"
BODY = {"topic": "bench", "text": "turnout note", "journal_seq": 2, "journal_hash": "ab" * 32}
READY_WITHIN = 10.0
ROUNDS = 3


def _records(key: Any, count: int) -> list[SignedRecord]:
    records, prev = [], ZERO_HASH
    for seq in range(1, count + 1):
        record = make_record(key=key, station=STATION, seq=seq, prev=prev, at=1_800_000_000.0 + seq,
                             type_="annotation", body=BODY)
        records.append(record)
        prev = record.hash
    return records


def _signing_rate(signer: Signer, count: int) -> float:
    began = time.perf_counter()
    _records(signer, count)
    return count / (time.perf_counter() - began)


class _MemoryP256:
    """A P-256 key in memory with the Signer shape, to make records for the verification entry."""

    alg = "p256"

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        return p256_signature(self._key.sign(data, ec.ECDSA(hashes.SHA256())))

    def close(self) -> None:
        pass


def _verify_rate(key: Any, count: int) -> tuple[float, float]:
    """(records authenticated per second, signatures checked per second)."""
    public = key.public_key()
    registry = Registry([DeviceEntry(station=STATION, serial="SN-1", public_key=public_b64(public),
                                     key_id=key_id(public), software="bench",
                                     enrolled_at="2026-11-20T10:00:00.000000Z", alg=alg_of(public))])
    records = _records(key, count)
    began = time.perf_counter()
    accepted, rejection = authenticate(records, registry)
    seconds = time.perf_counter() - began
    assert accepted == count and rejection is None, rejection
    if alg_of(public) == "ed25519":
        raw = raw_public(public)
        began = time.perf_counter()
        assert all(signature_holds(record, raw) for record in records)
    else:
        began = time.perf_counter()
        assert all(key_signature_holds(public, record.signature, record.data) for record in records)
    return count / seconds, count / (time.perf_counter() - began)


@contextmanager
def _swtpm(directory: Path) -> Iterator[str]:
    """swtpm on two neighbouring free loopback ports; yields its TCTI string."""
    port = _free_pair()
    proc = subprocess.Popen(["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={directory}",
                             "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
                             "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
                             "--flags", "startup-clear,not-need-init"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + READY_WITHIN
        while True:
            try:
                socket.create_connection(("127.0.0.1", port + 1), timeout=1.0).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("swtpm did not start") from None
                try:
                    proc.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    pass
        yield f"swtpm:host=127.0.0.1,port={port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _free_pair() -> int:
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free neighbouring loopback ports")


def _have_swtpm() -> bool:
    try:
        import tpm2_pytss  # noqa: F401
    except ImportError:
        return False
    return shutil.which("swtpm") is not None


def _best(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return max(a[0], b[0]), max(a[1], b[1])


def _entry(name: str, value: float, unit: str, baseline: float) -> dict[str, Any]:
    return {"name": name, "value": round(value, 1), "unit": unit, "baseline": round(baseline, 1),
            "ratio": round(value / baseline, 4)}


def run(quick: bool = False) -> list[dict[str, Any]]:
    sign_count = 200 if quick else 1_000
    verify_count = 2_000 if quick else 10_000
    results = []
    if _have_swtpm():
        with tempfile.TemporaryDirectory(prefix="pollbox-bench-tpm-") as tmp:
            root = Path(tmp)
            (root / "state").mkdir()
            (root / "tpm").mkdir()
            (root / "file").mkdir()
            with _swtpm(root / "state") as tcti:
                tpm = create_signer(root / "tpm", "tpm", tcti)
                file = create_signer(root / "file", "file")
                try:  # alternated, best of ROUNDS each: the machine is shared, so take each one's quietest turn
                    tpm_rate = file_rate = 0.0
                    for _ in range(ROUNDS):
                        tpm_rate = max(tpm_rate, _signing_rate(tpm, sign_count))
                        file_rate = max(file_rate, _signing_rate(file, sign_count))
                finally:
                    tpm.close()
        results.append(_entry("record signing rate, swtpm P-256 key (baseline: Ed25519 key file)", tpm_rate,
                              "records/s", file_rate))
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    p256_key, ed25519_key = _MemoryP256(), Ed25519PrivateKey.generate()
    p256, ed25519 = (0.0, 0.0), (0.0, 0.0)
    for _ in range(ROUNDS):
        p256 = _best(p256, _verify_rate(p256_key, verify_count))
        ed25519 = _best(ed25519, _verify_rate(ed25519_key, verify_count))
    results.append(_entry("receiver authentication rate, P-256 records (baseline: Ed25519 records)", p256[0],
                          "records/s", ed25519[0]))
    results.append(_entry("receiver signature check rate, P-256 (baseline: Ed25519, libsodium)", p256[1],
                          "signatures/s", ed25519[1]))
    return results

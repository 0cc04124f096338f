"""The record key's state as the chair's screen names it (``device/keystate.py``): requested, enrolled, invalid."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.demo import make_demo_station
from device.keystate import key_state
from device.signing import load_signer
from protocol.keys import key_id, public_b64
from provisioning.enrollment import enroll, make_request, write_json
from provisioning.seal import create_seal_key


def test_requested_then_enrolled_and_a_certificate_that_does_not_hold_is_invalid(tmp_path: Path) -> None:
    config = make_demo_station(tmp_path / "station", voters=5)
    data = config.parent / "data"
    cec = Ed25519PrivateKey.from_private_bytes((config.parent / "cec.key").read_bytes())
    cec_b64 = public_b64(cec.public_key())
    signer = load_signer(data)
    state = key_state(data, signer, "file", cec_b64)
    assert (state.key_id, state.alg, state.store, state.enrollment) == (
        key_id(signer.public_key()), "ed25519", "file", "requested")
    if not (data / "seal.pub").exists():
        create_seal_key(data)
    write_json(tmp_path / "request.json", make_request(data, "KG-DEMO-0001", "SN-1", 1.8e9))
    [cert] = enroll([tmp_path / "request.json"], tmp_path / "registry.json", cec, tmp_path, 1.8e9)
    (data / "enrollment.json").write_bytes(cert.read_bytes())
    enrolled = key_state(data, signer, "file", cec_b64)
    assert enrolled.enrollment == "enrolled" and enrolled.enrolled_at.startswith("2027-")
    doc = json.loads(cert.read_text())
    doc["device"]["serial"] = "SN-ALTERED"
    (data / "enrollment.json").write_text(json.dumps(doc))
    altered = key_state(data, signer, "file", cec_b64)
    assert altered.enrollment == "invalid" and "not an enrollment certificate signed by" in altered.problem
    other_cec = public_b64(Ed25519PrivateKey.generate().public_key())
    (data / "enrollment.json").write_bytes(cert.read_bytes())
    assert key_state(data, signer, "file", other_cec).enrollment == "invalid"  # another election's CEC

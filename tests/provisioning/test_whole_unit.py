"""A whole unit provisioned in a temporary directory, exactly as the technician guide does it.

CEC key, election plan and voter list; unit keys and enrollment request; CEC
enrollment into the receiver's registry; a package with the list key sealed
to the unit; installation from the "stick"; the appliance started in
simulation from that package; the readiness self-test recorded as a note of
record; then zeroize, refused while unacknowledged, and done when forced.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prov_helpers import ELECTION, STATION, b64

from device.appliance import build_appliance
from device.config import load_config
from device.hardware.clock import FakeClock
from provisioning import cli
from provisioning.errors import ProvisionError
from provisioning.readiness import render, run_checks
from provisioning.zeroize import zeroize
from receiver.registry import Registry


def provision(tmp_path: Path, cec: tuple[Path, Ed25519PrivateKey], plan: Path, voters: Path) -> Path:
    unit = tmp_path / "unit"
    (unit / "data").mkdir(parents=True)
    config = unit / "station.toml"
    config.write_text(f'mode = "simulation"\nelection_id = "{ELECTION}"\ncec_public_key = "{b64(cec[1])}"\n'
                      'station_package = "data/station.pkg"\ndata_dir = "data"\n[uplink]\ntransport = "sim"\n')
    stick, cec_dir = tmp_path / "stick" / "pollbox", cec[0].parent
    request = stick / "requests" / "unit.request.json"
    steps = [
        ["unit", "keygen", "--config", str(config)],
        ["unit", "enroll-request", "--config", str(config), "--station", STATION, "--serial", "10000000abcdef",
         "--out", str(request)],
        ["cec", "enroll", "--cec-key", str(cec[0]), "--registry", str(cec_dir / "registry.json"), "--out",
         str(stick), "--plan", str(plan), str(request)],
        ["cec", "package", "--plan", str(plan), "--station", STATION, "--voters", str(voters), "--cec-key",
         str(cec[0]), "--out", str(stick), "--seal-to", str(request)],
        ["unit", "install-package", "--config", str(config), "--from", str(stick)],
    ]
    for step in steps:
        assert cli.main(step) == 0, step
    return config


def test_whole_unit_from_cec_key_to_readiness(tmp_path: Path, cec: tuple[Path, Ed25519PrivateKey], plan: Path,
                                               voters: tuple[Path, list[list[str]]]) -> None:
    config_path = provision(tmp_path, cec, plan, voters[0])
    stick = tmp_path / "stick" / "pollbox"
    assert not (stick / "list.key").exists() and (stick / "list.key.sealed").exists()
    registry = Registry.load(cec[0].parent / "registry.json", cec[1].public_key())
    assert [e.station for e in registry] == [STATION]
    config = load_config(config_path)
    now = time.time()  # the CLI stamps packages with the real time
    app = build_appliance(config, clock=FakeClock(wall=now))
    app.start(background=False)
    try:
        assert app.status()["counters"]["registered"] == 300
        result = run_checks(config, app, now)
        assert result.ok, render(result)
        assert "READY" in render(result) and "10000000abcdef" in render(result)
        app.annotate("readiness", result.summary())
        kinds = [r.event.kind for r in app.journal.recorded()]
        assert kinds[-1] == "annotation"
        admitted = app.identify_manual(voters[1][0][0])
        assert admitted.outcome == "polls_not_open"
    finally:
        app.stop()


def test_readiness_fails_without_enrollment(tmp_path: Path, cec: tuple[Path, Ed25519PrivateKey], plan: Path,
                                            voters: tuple[Path, list[list[str]]]) -> None:
    config_path = provision(tmp_path, cec, plan, voters[0])
    config = load_config(config_path)
    (config.data_dir / "enrollment.json").unlink()
    now = time.time()
    app = build_appliance(config, clock=FakeClock(wall=now))
    app.start(background=False)
    try:
        result = run_checks(config, app, now)
    finally:
        app.stop()
    assert [c.name for c in result.failed()] == ["keys and enrollment"]


def test_zeroize_refused_until_confirmed_then_wipes(tmp_path: Path, cec: tuple[Path, Ed25519PrivateKey], plan: Path,
                                                   voters: tuple[Path, list[list[str]]]) -> None:
    config = load_config(provision(tmp_path, cec, plan, voters[0]))
    now = time.time()
    app = build_appliance(config, clock=FakeClock(wall=now))
    app.start(background=False)
    app.upstream = None
    with pytest.raises(ProvisionError) as refused:
        zeroize(config, app, now)
    assert refused.value.code == "E050"
    with pytest.raises(ProvisionError) as wrong:
        zeroize(config, app, now, confirmation="WIPE KG-9999")
    assert wrong.value.code == "E051"
    assert (config.data_dir / "device.key").exists() and (config.data_dir / "list.key").exists()
    done = zeroize(config, app, now, confirmation=f"WIPE {STATION}")
    assert done.forced and set(done.wiped) == {"device.key", "seal.key", "list.key", "station.pkg"}
    for name in ("device.key", "seal.key", "list.key", "station.pkg"):
        assert not (config.data_dir / name).exists()
    assert (config.data_dir / "journal.db").exists() and done.record_path.exists()

"""A whole unit provisioned in a temporary directory, exactly as the technician guide does it.

CEC key, election plan and voter list; unit keys and enrollment request; CEC
enrollment into the receiver's registry; a package with the list key sealed
to the unit; installation from the "stick"; the appliance started in
simulation from that package; the readiness self-test recorded as a note of
record; then the unit's first records accepted by the real receiver (served
on loopback with the registry the enrollment wrote and the receipt key whose
public half is in the package). Readiness against a receiver that is down,
and one that signs with a key the package does not name.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prov_helpers import STATION, Cec, provision, receiver_of, running

from device.appliance import Appliance
from device.config import Config, load_config
from device.package import public_key_from_b64
from protocol.receipts import verify_receipt
from provisioning import cli
from provisioning.readiness import render, run_checks
from receiver.registry import Registry
from web_ui.pin import set_pin


def receiver_check(app: Appliance, config: Config, now: float) -> str:
    (check,) = [c for c in run_checks(config, app, now).checks if c.name == "receiver"]
    assert check.ok, check.detail
    return check.detail


def test_whole_unit_from_cec_key_to_records_at_the_receiver(
        tmp_path: Path, cec: Cec, plan: Path, voters: tuple[Path, list[list[str]]],
        receiver_socket: socket.socket, receiver_key: Ed25519PrivateKey) -> None:
    config_path = provision(tmp_path, cec, plan, voters[0])
    stick = tmp_path / "stick" / "pollbox"
    assert not (stick / "list.key").exists() and (stick / "list.key.sealed").exists()
    registry = Registry.load(cec[0].parent / "registry.json", cec[1].public_key())
    assert [e.station for e in registry] == [STATION]
    config = load_config(config_path)
    now = time.time()  # the CLI stamps packages with the real time
    with receiver_of(tmp_path, cec, receiver_socket, receiver_key) as live, running(config, now) as app:
        assert app.status()["counters"]["registered"] == 300
        without = run_checks(config, app, now)
        assert [c.name for c in without.failed()] == ["chair PIN"] and "NOT READY" in render(without)
        set_pin(config.web_dir / "chair_pin.json", "385027")  # the chair, on the screen, at the opening
        result = run_checks(config, app, now)
        assert result.ok, render(result)
        assert "READY" in render(result) and "10000000abcdef" in render(result)
        assert "no records of this station there yet" in render(result)
        app.annotate("readiness", result.summary())
        assert app.identify_manual(voters[1][0][0]).outcome == "polls_not_open"
        app.open_polls()
        assert app.identify_manual(voters[1][1][0]).outcome == "admitted"
        drained = app.upstream.drain_once(force=True)
        up = app.upstream.status()
        assert drained.error is None and up["waiting"] == 0 and up["last_seq"] >= 2
        assert live.storage.highest_seq(STATION) == up["last_seq"] == up["delivered_through"]
        stored = live.storage.records_of(STATION)
        assert [r["seq"] for r in reversed(stored)] == list(range(1, up["last_seq"] + 1))
        kinds = {r["type"] for r in stored}
        assert {"annotation", "polls_opened"} <= kinds
        note = next(r for r in stored if r["type"] == "annotation")
        assert note["body"]["topic"] == "readiness" and note["body"]["text"].startswith("readiness READY")
        receipt = app.upstream.outbox.last_receipt()
        assert receipt is not None
        package_key = public_key_from_b64(app.package.receiver["public_key"])
        assert verify_receipt(receipt[1], package_key, STATION) == up["last_seq"]
        assert f"receipt verified through record {up['last_seq']}" in receiver_check(app, config, now)


def test_readiness_cli_stores_then_forwards_its_note(
        tmp_path: Path, cec: Cec, plan: Path, voters: tuple[Path, list[list[str]]], receiver_socket: socket.socket,
        receiver_key: Ed25519PrivateKey, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = provision(tmp_path, cec, plan, voters[0])
    set_pin(load_config(config_path).web_dir / "chair_pin.json", "385027")
    capsys.readouterr()
    assert cli.main(["unit", "readiness", "--config", str(config_path)]) == 0
    printed = capsys.readouterr().out
    assert "[PASS] receiver: not reachable now: records are stored on the unit and forwarded" in printed
    with receiver_of(tmp_path, cec, receiver_socket, receiver_key) as live:
        assert cli.main(["unit", "readiness", "--config", str(config_path)]) == 0
        assert "reachable; 1 record(s) sent, receipt verified through record 1" in capsys.readouterr().out
        notes = [r["body"]["text"] for r in reversed(live.storage.records_of(STATION))]
    assert len(notes) == 2 and all(n.startswith("readiness READY") for n in notes)


def test_readiness_fails_when_the_receiver_signs_with_another_key(
        tmp_path: Path, cec: Cec, plan: Path, voters: tuple[Path, list[list[str]]],
        receiver_socket: socket.socket) -> None:
    config = load_config(provision(tmp_path, cec, plan, voters[0]))
    now = time.time()
    impostor = Ed25519PrivateKey.generate()
    with receiver_of(tmp_path, cec, receiver_socket, impostor), running(config, now) as app:
        app.annotate("test", "a record to send")
        result = run_checks(config, app, now)
        assert app.upstream.status()["waiting"] == 1
    assert [c.name for c in result.failed() if c.name != "chair PIN"] == ["receiver"]
    assert "receipt signature does not verify" in result.failed()[0].detail


def test_readiness_fails_when_the_receiver_does_not_know_the_unit(
        tmp_path: Path, cec: Cec, plan: Path, voters: tuple[Path, list[list[str]]],
        receiver_socket: socket.socket, receiver_key: Ed25519PrivateKey) -> None:
    config = load_config(provision(tmp_path, cec, plan, voters[0]))
    registry = cec[0].parent / "registry.json"
    Registry().sign_and_save(registry, cec[1])  # the CEC forgot to copy the enrolled registry
    now = time.time()
    with receiver_of(tmp_path, cec, receiver_socket, receiver_key), running(config, now) as app:
        app.annotate("test", "a record to send")
        result = run_checks(config, app, now)
    assert [c.name for c in result.failed() if c.name != "chair PIN"] == ["receiver"]
    assert "unknown_key" in result.failed()[0].detail and "device registry" in result.failed()[0].detail


def test_readiness_fails_without_enrollment(tmp_path: Path, cec: Cec, plan: Path,
                                            voters: tuple[Path, list[list[str]]]) -> None:
    config_path = provision(tmp_path, cec, plan, voters[0])
    config = load_config(config_path)
    (config.data_dir / "enrollment.json").unlink()
    now = time.time()
    with running(config, now) as app:
        result = run_checks(config, app, now)
    assert [c.name for c in result.failed() if c.name != "chair PIN"] == ["keys and enrollment"]
    (receiver,) = [c for c in result.checks if c.name == "receiver"]
    assert "stored on the unit" in receiver.detail and "no answer from the receiver" in receiver.detail


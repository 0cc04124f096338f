"""Zeroize on a provisioned unit against the real receiver: refused while records are pending, done once the
receiver has acknowledged every record (the zeroize note included), or forced with the typed confirmation."""

from __future__ import annotations

import base64
import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prov_helpers import STATION, Cec, provision, receiver_of, running

from device.config import Config, load_config
from device.package import public_key_from_b64
from protocol.canonical import canonical
from provisioning import cli
from provisioning.errors import ProvisionError
from provisioning.zeroize import zeroize

WIPED = {"device.key", "seal.key", "list.key", "station.pkg"}
Voters = tuple[Path, list[list[str]]]


def signed_record(config: Config) -> dict[str, Any]:
    """The zeroize record, after checking its signature with the public key it names."""
    record = json.loads((config.data_dir / "zeroize-record.json").read_text())
    body = {k: v for k, v in record.items() if k != "signature"}
    public_key_from_b64(record["public_key"]).verify(base64.b64decode(record["signature"]), canonical(body))
    return body


def present(config: Config) -> set[str]:
    return {name for name in WIPED if (config.data_dir / name).exists()}


def test_refused_while_the_receiver_is_down_then_done_once_it_acknowledges(
        tmp_path: Path, cec: Cec, plan: Path, voters: Voters, receiver_socket: socket.socket,
        receiver_key: Ed25519PrivateKey) -> None:
    config = load_config(provision(tmp_path, cec, plan, voters[0]))
    now = time.time()
    with running(config, now) as app:
        app.open_polls()
        app.close_polls()
        with pytest.raises(ProvisionError) as refused:
            zeroize(config, app, now)
        assert refused.value.code == "E050" and "not acknowledged" in refused.value.message
        assert app.upstream.status()["waiting"] >= 2 and present(config) == WIPED
        with receiver_of(tmp_path, cec, receiver_socket, receiver_key) as live:
            done = zeroize(config, app, now)
            stored = live.storage.records_of(STATION)
    assert not done.forced and done.waiting == 0 and set(done.wiped) == WIPED and present(config) == set()
    assert [r["seq"] for r in reversed(stored)] == list(range(1, len(stored) + 1))
    assert stored[0]["type"] == "annotation" and stored[0]["body"]["topic"] == "zeroize"
    assert {"polls_opened", "polls_closed"} <= {r["type"] for r in stored}
    record = signed_record(config)
    assert record["forced"] is False and record["unacknowledged"] == 0 and set(record["wiped"]) == WIPED
    assert (config.data_dir / "journal.db").exists()


def test_forced_with_pending_records_needs_the_exact_phrase(tmp_path: Path, cec: Cec, plan: Path,
                                                            voters: Voters) -> None:
    config = load_config(provision(tmp_path, cec, plan, voters[0]))
    now = time.time()
    with running(config, now) as app:
        app.open_polls()
        with pytest.raises(ProvisionError) as wrong:
            zeroize(config, app, now, confirmation="WIPE KG-9999")
        assert wrong.value.code == "E051" and present(config) == WIPED
        done = zeroize(config, app, now, confirmation=f"WIPE {STATION}")
    assert done.forced and done.waiting and set(done.wiped) == WIPED and present(config) == set()
    record = signed_record(config)
    assert record["forced"] is True and record["waiting"] == done.waiting
    assert record["unacknowledged"] == done.waiting + 1  # the zeroize note itself could not be sent either


def test_cli_refuses_then_forces_with_the_typed_phrase(tmp_path: Path, cec: Cec, plan: Path, voters: Voters,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    config_path = provision(tmp_path, cec, plan, voters[0])
    config = load_config(config_path)
    with running(config, time.time()) as app:
        app.annotate("test", "a record the receiver never saw")
    capsys.readouterr()
    assert cli.main(["unit", "zeroize", "--config", str(config_path)]) == 7
    assert "E050 1 record(s) are not acknowledged" in capsys.readouterr().err and present(config) == WIPED
    monkeypatch.setattr("builtins.input", lambda prompt: "wipe it")
    assert cli.main(["unit", "zeroize", "--config", str(config_path), "--force"]) == 7
    assert "E051" in capsys.readouterr().err and present(config) == WIPED
    monkeypatch.setattr("builtins.input", lambda prompt: f"WIPE {STATION}")
    assert cli.main(["unit", "zeroize", "--config", str(config_path), "--force"]) == 0
    assert present(config) == set() and signed_record(config)["forced"] is True

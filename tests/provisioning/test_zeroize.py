"""Zeroize policy: no confirmation needed once the receiver has acknowledged every record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from device.config import parse_config
from device.keys import create_device_key
from provisioning.errors import ProvisionError
from provisioning.zeroize import wipe_file, zeroize


class Unit:
    """A stand-in with the three appliance methods zeroize uses, and an upstream status."""

    upstream = None

    def __init__(self, waiting: int) -> None:
        self.waiting, self.stopped = waiting, False
        self.notes: list[tuple[str, str]] = []

    def status(self) -> dict[str, Any]:
        return {"station": {"id": "KG-0001"}, "upstream": {"waiting": self.waiting, "online": True}}

    def annotate(self, topic: str, text: str) -> None:
        self.notes.append((topic, text))

    def stop(self) -> None:
        self.stopped = True


def config(tmp_path: Path) -> Any:
    data = tmp_path / "data"
    create_device_key(data)
    for name in ("list.key", "seal.key", "station.pkg"):
        (data / name).write_bytes(b"secret")
    return parse_config(tmp_path / "station.toml", {"mode": "simulation", "election_id": "e", "cec_public_key": "k",
                                                     "station_package": "data/station.pkg", "data_dir": "data"})


def test_all_acknowledged_wipes_without_confirmation(tmp_path: Path) -> None:
    unit, cfg = Unit(0), config(tmp_path)
    done = zeroize(cfg, unit, 1_790_000_000.0)
    assert not done.forced and unit.stopped and unit.notes[0][0] == "zeroize"
    assert not any((cfg.data_dir / n).exists() for n in ("device.key", "seal.key", "list.key", "station.pkg"))
    assert '"forced": false' in done.record_path.read_text()


def test_pending_records_refuse_and_keep_everything(tmp_path: Path) -> None:
    unit, cfg = Unit(3), config(tmp_path)
    with pytest.raises(ProvisionError, match="3 record"):
        zeroize(cfg, unit, 1_790_000_000.0)
    assert unit.notes == [] and (cfg.data_dir / "device.key").exists()


class LinkDropsAfterCheck(Unit):
    """Everything was acknowledged, but the link drops before the zeroize note itself gets through."""

    def annotate(self, topic: str, text: str) -> None:
        super().annotate(topic, text)
        self.waiting += 1


def test_unacknowledged_zeroize_note_wipes_nothing(tmp_path: Path) -> None:
    unit, cfg = LinkDropsAfterCheck(0), config(tmp_path)
    with pytest.raises(ProvisionError) as err:
        zeroize(cfg, unit, 1_790_000_000.0)
    assert err.value.code == "E052" and unit.notes[0][0] == "zeroize" and not unit.stopped
    assert all((cfg.data_dir / n).exists() for n in ("device.key", "seal.key", "list.key", "station.pkg"))
    assert not (cfg.data_dir / "zeroize-record.json").exists()


def test_wipe_file_overwrites_then_removes(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert wipe_file(path) and not path.exists() and not wipe_file(path)

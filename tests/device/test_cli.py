"""The pollbox command: user errors are one clear sentence and exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from device.cli import main
from device.core.catalogue import missing_entries, render_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_bad_config_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s.toml").write_text('mode = "nope"\n')
    assert main(["--config", str(tmp_path / "s.toml"), "verify"]) == 2
    err = capsys.readouterr().err
    assert "mode: must be one of" in err and "Traceback" not in err


def test_altered_package_is_refused(station_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pkg = station_dir / "station-package.json"
    pkg.write_bytes(pkg.read_bytes().replace(b"Bishkek", b"Bishkex"))
    assert main(["--config", str(station_dir / "station.toml"), "verify"]) == 2
    assert "signature does not verify" in capsys.readouterr().err


def test_status_without_running_appliance(station_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(station_dir / "station.toml"), "status"]) == 2
    assert "no appliance is running" in capsys.readouterr().err


def test_verify_reports_a_broken_chain(make_app: object, station_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3
    app = make_app()  # type: ignore[operator]
    app.open_polls()
    app.stop()
    conn = sqlite3.connect(station_dir / "data" / "journal.db")
    conn.executescript("DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq = 1;")
    conn.close()
    assert main(["--config", str(station_dir / "station.toml"), "verify"]) == 1
    assert "FAILED verification at event 2: sequence gap" in capsys.readouterr().out


def test_corrupted_database_is_a_clear_error(station_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (station_dir / "data" / "journal.db").write_bytes(b"\x00garbage" * 512)
    assert main(["--config", str(station_dir / "station.toml"), "verify"]) == 2
    err = capsys.readouterr().err
    assert "journal" in err and "Traceback" not in err


def test_audit_catalogue_is_complete_and_documented() -> None:
    assert missing_entries() == []
    assert (ROOT / "docs" / "audit-events.md").read_text(encoding="utf-8") == render_markdown(), \
        "docs/audit-events.md is out of date: run 'make docs'"


def test_control_socket_round_trip(app: object, station_dir: Path, pins: list[str]) -> None:
    from device.control import ControlServer, request
    server = ControlServer(app, station_dir / "data" / "control.sock")
    server.start()
    try:
        sock = station_dir / "data" / "control.sock"
        assert request(sock, {"cmd": "open"})["ok"]
        answer = request(sock, {"cmd": "scan", "text": pins[0]})
        assert answer["ok"] and answer["result"]["outcome"] == "admitted"
        assert request(sock, {"cmd": "drop"})["ok"]
        status = request(sock, {"cmd": "status"})["result"]
        assert status["counters"]["ballots"] == 1
        assert request(sock, {"cmd": "fly"})["error"].startswith("unknown command 'fly'")
        assert "alarm 9 is not open" in request(sock, {"cmd": "ack", "alarm": 9})["error"]
    finally:
        server.stop()


def test_console_help_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "device.cli", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "sim" in out.stdout and "verify" in out.stdout


def test_box_selftest_runs_in_simulation(station_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(station_dir / "station.toml"), "box", "selftest"]) == 0
    out = capsys.readouterr().out
    assert "PASS  output lock" in out and "PASS  input beam" in out and "self-test passed" in out


def test_box_selftest_refused_while_polls_open(make_app: object, station_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    app = make_app()  # type: ignore[operator]
    app.open_polls()
    app.stop()
    assert main(["--config", str(station_dir / "station.toml"), "box", "selftest"]) == 2
    assert "refused while the polls are open" in capsys.readouterr().err


def test_docs_writes_the_catalogue_and_the_wiring_drawings(tmp_path: Path) -> None:
    from device.hardware.boxes.wiring import BOARD_SOURCE, documents
    assert main(["docs", "--output", str(tmp_path / "audit-events.md")]) == 0
    assert (tmp_path / "audit-events.md").read_text().startswith("#")
    for name, svg in documents(BOARD_SOURCE.read_text(encoding="utf-8")).items():
        assert (tmp_path / name).read_text(encoding="utf-8") == svg

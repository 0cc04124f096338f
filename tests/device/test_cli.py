"""The pollbox command: user errors are one clear sentence and exit status 2, never a traceback."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from device.cli import main
from device.core.catalogue import missing_entries, render_markdown
from tests.process_station import free_port

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
    assert main(["--config", str(station_dir / "station.toml"), "verify"]) == 1  # the check ran: the journal fails
    out = capsys.readouterr()
    assert "journal" in out.out and "technician" in out.out and "Traceback" not in out.out + out.err


def test_audit_catalogue_is_complete_and_documented() -> None:
    assert missing_entries() == []
    assert (ROOT / "docs" / "audit-events.md").read_text(encoding="utf-8") == render_markdown(), \
        "docs/audit-events.md is out of date: run 'make docs'"


def test_control_socket_round_trip(app: Any, station_dir: Path, pins: list[str]) -> None:
    from device.control import ControlServer, request
    server = ControlServer(app, station_dir / "data" / "control.sock")
    server.start()
    try:
        sock = station_dir / "data" / "control.sock"
        assert request(sock, {"cmd": "open"})["ok"]
        answer = request(sock, {"cmd": "scan", "text": pins[0]})
        assert answer["ok"] and answer["result"]["decision"]["outcome"] == "admitted"
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
    from tools.wiring import BOARD_SOURCE, documents
    assert main(["docs", "--output", str(tmp_path / "audit-events.md")]) == 0
    assert (tmp_path / "audit-events.md").read_text().startswith("#")
    for name, svg in documents(BOARD_SOURCE.read_text(encoding="utf-8")).items():
        assert (tmp_path / name).read_text(encoding="utf-8") == svg


# Run-time problems are one sentence and exit status 2 (issue 11, item 14) --------------------

def _set(station_dir: Path, **web: object) -> Path:
    """Rewrite the demo config's [web] table with ``web``."""
    config = station_dir / "station.toml"
    text = config.read_text().split("[web]")[0]
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in web.items())
    config.write_text(text + "[web]\n" + lines)
    return config


def _one_sentence(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("pollbox: "), err
    return lines[0]


def _no_traceback(err: str) -> str:
    """The config's own report: every problem at once, one line each, under one heading."""
    assert "Traceback" not in err and err.startswith("pollbox: "), err
    return err


def test_port_in_use_is_one_sentence(station_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = _set(station_dir, host="127.0.0.1", port=port)
        assert main(["--config", str(config), "run"]) == 2
    line = _one_sentence(capsys.readouterr().err)
    assert "already in use" in line and f":{port}" in line
    assert not (station_dir / "data" / "journal.db").exists(), "nothing is started when the screen cannot listen"


def test_demo_receiver_port_in_use_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["demo", str(tmp_path / "demo"), "--voters", "5", "--port", str(free_port()),
                     "--receiver-port", str(port)]) == 0
        capsys.readouterr()
        assert main(["--config", str(tmp_path / "demo" / "station.toml"), "run", "--with-receiver"]) == 2
    line = _one_sentence(capsys.readouterr().err)
    assert line.startswith(f"pollbox: the demo CEC receiver cannot listen on 127.0.0.1:{port}: the port is already")


@pytest.mark.parametrize(("host", "said"), [("no-such-host.invalid", "not a host name or address"),
                                            ("192.0.2.1", "not an address of this machine")])
def test_bad_host_is_one_sentence(station_dir: Path, capsys: pytest.CaptureFixture[str], host: str, said: str) -> None:
    config = _set(station_dir, host=host, port=free_port(), allow_remote=True)
    assert main(["--config", str(config), "run"]) == 2
    line = _one_sentence(capsys.readouterr().err)
    assert said in line and host in line


def test_data_dir_that_is_a_file_is_one_sentence(station_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil
    shutil.rmtree(station_dir / "data")
    (station_dir / "data").write_text("not a directory")
    for command in (["run"], ["status"], ["verify"], ["export", str(station_dir)]):
        assert main(["--config", str(station_dir / "station.toml"), *command]) == 2
        assert "is a file" in _no_traceback(capsys.readouterr().err)


def test_short_session_key_is_one_sentence(station_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (station_dir / "data" / "web").mkdir(exist_ok=True)
    (station_dir / "data" / "web" / "secret_key").write_bytes(b"short")
    config = _set(station_dir, host="127.0.0.1", port=free_port())
    assert main(["--config", str(config), "run"]) == 2
    assert "secret_key" in _no_traceback(capsys.readouterr().err)


def test_package_with_a_line_that_is_not_a_number(station_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from device.package import sign_package, voters_digest
    path = station_dir / "station-package.json"
    payload = json.loads(path.read_bytes())["payload"]
    payload["voters"]["entries"][4][1] = "five"
    payload["voters"]["digest"] = voters_digest(payload["voters"]["entries"])
    path.write_bytes(sign_package(payload, Ed25519PrivateKey.from_private_bytes((station_dir / "cec.key").read_bytes())))
    assert main(["--config", str(station_dir / "station.toml"), "verify"]) == 2
    assert "'five'" in _one_sentence(capsys.readouterr().err)


@pytest.fixture
def served(app: Any, station_dir: Path) -> Iterator[Any]:
    from device.control import ControlServer
    server = ControlServer(app, station_dir / "data" / "control.sock")
    server.start()
    yield app
    server.stop()


def test_export_to_a_missing_folder_is_one_sentence(served: Any, station_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-stick" / "here"
    assert main(["--config", str(station_dir / "station.toml"), "export", str(missing)]) == 2
    assert "there is no folder" in _one_sentence(capsys.readouterr().err)


def test_export_with_nothing_pending_is_one_sentence(served: Any, station_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert served.status()["upstream"]["waiting"] == 0  # the polls are not open: no record to carry yet
    assert main(["--config", str(station_dir / "station.toml"), "export", str(tmp_path)]) == 2
    assert "nothing to export" in _one_sentence(capsys.readouterr().err)


def test_export_removes_what_an_interrupted_export_left(served: Any, station_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The process killed between writing the file and renaming it leaves a ``.part``; the next export removes it."""
    import os

    from device.control import handle
    served.open_polls()
    stick = tmp_path / "stick"
    stick.mkdir()
    def killed(*_: object) -> None:
        raise KeyboardInterrupt  # the process is stopped before the rename

    with monkeypatch.context() as kill:
        kill.setattr(os, "replace", killed)
        with pytest.raises(KeyboardInterrupt):
            handle(served, {"cmd": "export", "path": str(stick)})
    (left,) = stick.glob("*.part")
    (stick / "holiday-photos.part").write_text("not ours")
    assert main(["--config", str(station_dir / "station.toml"), "export", str(stick)]) == 0
    out = capsys.readouterr().out
    assert f"removed {left.name}: an unfinished export file" in out and "signed records written to" in out
    assert not left.exists() and (stick / "holiday-photos.part").exists()
    assert [p.suffix for p in stick.glob("pollbox-export-*")] == [".txt"]


def test_control_socket_answers_every_failure_in_json(served: Any, station_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An error nobody foresaw (a full disk under the journal, a bug) still gets a one-sentence answer."""
    import sqlite3

    from device.control import request
    from device.upstream.service import UpstreamError
    sock = station_dir / "data" / "control.sock"
    for error in (UpstreamError("nothing to export: the receiver has acknowledged every record"),
                  sqlite3.OperationalError("database or disk is full"), KeyError("surprise")):
        def fail(directory: Path, error: Exception = error) -> None:
            raise error
        monkeypatch.setattr(served, "export_usb", fail)
        answer = request(sock, {"cmd": "export", "path": str(tmp_path)})
        assert answer["ok"] is False and str(error).strip("'") in answer["error"]
    assert request(sock, {"cmd": "status"})["ok"], "the socket still serves after the failures"


def test_cli_says_so_when_the_appliance_answers_nothing(station_dir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = station_dir / "data" / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute:
        mute.bind(str(path))
        mute.listen()
        done = threading.Thread(target=lambda: mute.accept()[0].close(), daemon=True)
        done.start()
        assert main(["--config", str(station_dir / "station.toml"), "status"]) == 2
        done.join(timeout=10)
    assert "the appliance gave no answer" in _one_sentence(capsys.readouterr().err)


def test_unknown_or_incomplete_action_is_one_sentence(station_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(station_dir / "station.toml")
    assert main(["--config", config, "chair", "ack", "seven"]) == 2
    assert "as a whole number, not 'seven'" in _one_sentence(capsys.readouterr().err)
    assert main(["--config", config, "chair", "undo", "12"]) == 2
    assert "'undo' needs a reason" in _one_sentence(capsys.readouterr().err)
    with pytest.raises(SystemExit) as stopped:
        main(["--config", config, "sim", "fly"])
    assert stopped.value.code == 2 and "invalid choice: 'fly'" in capsys.readouterr().err


# The first ten minutes (issue 11, item 15) -----------------------------------------------------

def test_help_lists_every_simulator_and_chair_action() -> None:
    from device.control import CHAIR_ACTIONS
    from device.hardware.sim.controls import ACTIONS
    for command, actions in (("sim", ACTIONS), ("chair", CHAIR_ACTIONS)):
        out = subprocess.run([sys.executable, "-m", "device.cli", command, "--help"], capture_output=True,
                             text=True, cwd=ROOT, check=True).stdout
        for action in actions:
            assert f"  {action.usage} " in out and action.does in out, (command, action.name)
    top = subprocess.run([sys.executable, "-m", "device.cli", "--help"], capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout
    top = " ".join(re.sub(r"-\s+", "-", top).split())  # argparse wraps long lines, also after a hyphen
    names = [a.name for a in ACTIONS] + [a.name for a in CHAIR_ACTIONS]
    assert all(f" {name}," in top or f" {name} " in top for name in names)


def test_verify_report_as_documented(make_app: Any, station_dir: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """docs/chair-guide.md: ``pollbox verify-report --key device.pub --image photo``, and ``--text``."""
    import segno
    app = make_app()
    app.open_polls()
    line = app.close_polls()["signed"]
    photo = tmp_path / "photo-of-the-qr.png"
    segno.make(line, error="m").save(str(photo), scale=4, border=4)
    key = str(station_dir / "data" / "device.pub")
    assert main(["verify-report", "--key", key, "--image", str(photo)]) == 0
    assert capsys.readouterr().out.startswith("VALID: close report of station KG-DEMO-0001")
    assert main(["--config", str(station_dir / "station.toml"), "verify-report", "--key", key, "--text", line]) == 0
    assert capsys.readouterr().out.startswith("VALID")
    assert main(["verify-report", "--key", key, "--text", line.replace('"ballots":0', '"ballots":9')]) == 1
    assert capsys.readouterr().out.startswith("INVALID")


def test_sim_image_in_the_duplicate_window_reports_this_read(app: Any, station_dir: Path, pins: list[str]) -> None:
    """The passport shown again within the window is a duplicate read, not the previous voter's admission."""
    from device.control import handle
    td3 = str(station_dir / "documents" / "td3.png")
    handle(app, {"cmd": "open"})
    first = handle(app, {"cmd": "image", "path": td3})["result"]
    assert first["decoded"] == ["datamatrix"] and first["decision"]["outcome"] == "admitted"
    assert first["decision"]["line"] == 3
    other = handle(app, {"cmd": "scan", "text": pins[0]})["result"]["decision"]
    assert other["outcome"] == "admitted" and other["line"] == 1
    again = handle(app, {"cmd": "image", "path": td3})["result"]
    assert again["decision"]["outcome"] == "duplicate_read" and again["decision"]["line"] in (3, None)
    assert app.status()["counters"]["identified"] == 2


def test_demo_reset_starts_again_and_refuses_what_is_not_a_demo(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    demo = tmp_path / "demo"
    assert main(["demo", str(demo), "--voters", "20"]) == 0
    assert "21 voters: 20 with synthetic personal numbers" in capsys.readouterr().out
    (demo / "data" / "journal.db").write_bytes(b"a journal with votes in it")
    key = (demo / "data" / "device.pub").read_text()
    assert main(["demo", str(demo), "--voters", "20"]) == 0, "without --reset the station is kept"
    assert (demo / "data" / "journal.db").exists()
    assert main(["demo", str(demo), "--voters", "20", "--reset"]) == 0
    assert not (demo / "data" / "journal.db").exists() and (demo / "data" / "device.pub").read_text() != key
    other = tmp_path / "not-a-demo"
    other.mkdir()
    (other / "station.toml").write_text('mode = "production"\n')
    capsys.readouterr()
    assert main(["demo", str(other), "--reset"]) == 2
    assert "is not a demo station" in _one_sentence(capsys.readouterr().err)
    assert (other / "station.toml").exists()


def test_make_test_leaves_tracked_files_alone() -> None:
    """``make test`` saves the browser tests' screenshots in an ignored folder; ``make screenshots`` updates docs/."""
    makefile = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*:?=\s*(.*)$", makefile, flags=re.M))

    def target(name: str) -> Path:
        recipe = makefile.split(f"\n{name}:", 1)[1].split("\n\n", 1)[0]
        (var,) = re.findall(r"POLLBOX_SCREENSHOTS=\$\((\w+)\)", recipe)
        return Path(variables[var].replace("$(CURDIR)", str(ROOT)))

    saved_by_test = target("test")
    assert saved_by_test.relative_to(ROOT).parts[0] not in ("docs", "web_ui", "device", "tests")
    ignored = subprocess.run(["git", "check-ignore", "-q", str(saved_by_test / "status.png")], cwd=ROOT)
    assert ignored.returncode == 0, f"{saved_by_test} is not ignored by git"
    assert target("screenshots") == ROOT / "docs" / "screenshots"

"""The local control socket: how ``pollbox status`` and ``pollbox sim ...`` reach a running appliance.

A Unix-domain socket ``control.sock`` in the data directory (mode 0600, so only
the appliance's user can connect). One JSON request per connection, one JSON
answer: ``{"cmd": "status"}`` -> ``{"ok": true, "result": {...}}``. In
production only ``status``, ``verify``, ``export`` (records to a USB stick) and ``backup`` (the
journal to a USB stick) are served; everything that moves
the station goes through the chair's screen and its PIN. In simulation the
commands also feed scans, drop ballots, open the lid and cut the link.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device.decision import ActionRefused
from device.hardware.interfaces import ScanRead
from device.store.backup import BackupError

log = logging.getLogger("pollbox.control")

READ_ONLY = {"status", "verify", "export", "backup"}
MAX_REQUEST = 65_536


def _commands(app: Any) -> dict[str, Callable[[dict[str, Any]], Any]]:
    sim = app.sim
    return {
        "status": lambda r: app.status(),
        "verify": lambda r: _verify(app),
        "scan": lambda r: app.identify(ScanRead(str(r["text"]), "typed", "control")).to_dict(),
        "manual": lambda r: app.identify_manual(str(r["text"])).to_dict(),
        "export": lambda r: app.export_usb(Path(str(r["path"]))),
        "backup": lambda r: app.backup(Path(str(r["path"]))),
        "open": lambda r: app.open_polls(),
        "pause": lambda r: app.pause_polls(str(r.get("reason", ""))),
        "resume": lambda r: app.resume_polls(),
        "close": lambda r: app.close_polls(),
        "ack": lambda r: app.acknowledge_alarm(int(r["alarm"]), str(r.get("note", ""))),
        "undo": lambda r: app.undo_checkin(int(r["line"]), str(r.get("reason", ""))),
        "drop": lambda r: sim.box.drop(),
        "lid-open": lambda r: sim.box.open_lid(),
        "lid-close": lambda r: sim.box.close_lid(),
        "jam": lambda r: sim.box.block_beam(),
        "unjam": lambda r: sim.box.clear_beam(),
        "box-unplug": lambda r: sim.box.unplug(),
        "box-replug": lambda r: sim.box.replug(),
        "scanner-unplug": lambda r: sim.scanner.unplug(),
        "scanner-replug": lambda r: sim.scanner.replug(),
        "link-cut": lambda r: sim.cut_link(),
        "link-restore": lambda r: sim.restore_link(),
        "image": lambda r: {"decoded": sim.feed_image(Path(str(r["path"]))), "decision": _last(app)},
        "type": lambda r: (sim.type_keys(str(r["text"]), str(r.get("layout", "us"))), _last(app))[1],
    }


def _verify(app: Any) -> dict[str, Any]:
    report = app.verify()
    return {"ok": report.ok, "sentence": report.sentence()}


def _last(app: Any) -> dict[str, Any] | None:
    return app.last_decision.to_dict() if app.last_decision else None


def handle(app: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Run one request against the appliance; never raises."""
    cmd = str(request.get("cmd", ""))
    table = _commands(app)
    if cmd not in table:
        return {"ok": False, "error": f"unknown command {cmd!r}; known: {', '.join(sorted(table))}"}
    if cmd not in READ_ONLY and app.sim is None:
        return {"ok": False, "error": f"{cmd!r} is refused in production mode; use the chair's screen"}
    try:
        return {"ok": True, "result": table[cmd](request)}
    except (ActionRefused, BackupError) as exc:
        return {"ok": False, "error": str(exc)}
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
        return {"ok": False, "error": f"{cmd}: {exc}"}


class ControlServer:
    """Serves ``handle`` on a Unix socket in a background thread."""

    def __init__(self, app: Any, path: Path) -> None:
        self.path = path
        if path.exists():
            path.unlink()

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                line = self.rfile.readline(MAX_REQUEST)
                try:
                    request = json.loads(line)
                    answer = handle(app, request if isinstance(request, dict) else {})
                except ValueError:
                    answer = {"ok": False, "error": "the request is not JSON"}
                self.wfile.write(json.dumps(answer, ensure_ascii=False, default=str).encode() + b"\n")

        old = os.umask(0o177)
        try:
            self._server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        finally:
            os.umask(old)
        self._thread = threading.Thread(target=self._server.serve_forever, name="pollbox-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)


def request(path: Path, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one request to a running appliance and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise ConnectionError(f"no appliance is running for this station (no socket at {path}); "
                                  "start it with 'make run' or 'pollbox run'") from None
        s.sendall(json.dumps(payload).encode() + b"\n")
        data = s.makefile("rb").readline()
    return json.loads(data)  # type: ignore[no-any-return]

"""The local control socket: how ``pollbox status`` and ``pollbox sim ...`` reach a running appliance.

A Unix-domain socket ``control.sock`` in the data directory (mode 0600, so only
the appliance's user can connect). One JSON request per connection, one JSON
answer: ``{"cmd": "status"}`` -> ``{"ok": true, "result": {...}}``, or
``{"ok": false, "error": "one sentence"}``. Every request gets an answer, even
when the command fails in a way nobody foresaw (the log then has the details).

In production only ``status``, ``verify``, ``export`` (records to a USB stick),
``backup`` (the journal to a USB stick) and ``update`` (a signed software bundle,
refused while the polls are open) are served; everything that moves
the station goes through the chair's screen and its PIN. In simulation the
chair's actions (``CHAIR_ACTIONS``) and the simulator's
(``device.hardware.sim.controls.ACTIONS``) are served too.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import sqlite3
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from device.decision import ActionRefused, Decision
from device.hardware.sim import controls as sim
from device.hardware.sim.controls import Action, Param, SimControls
from device.ports import ChairActions
from device.store.backup import BackupError
from device.upstream.service import UpstreamError
from protocol.errors import UserError

if TYPE_CHECKING:
    from device.store.verify import VerifyReport

log = logging.getLogger("pollbox.control")

MAX_REQUEST = 65_536
EXPORT_PREFIX = "pollbox-export-"


class ControlError(UserError):
    """The control socket cannot be used (another appliance holds it, a path is unusable)."""


class Station(ChairActions, Protocol):
    """What the control socket may ask of the appliance, and nothing more."""

    @property
    def last_decision(self) -> Decision | None: ...
    read_failure: str | None
    def verify(self) -> VerifyReport: ...
    def export_usb(self, directory: Path) -> dict[str, Any]: ...
    def backup(self, directory: Path) -> dict[str, Any]: ...
    def settle(self) -> None: ...
    def close_without(self, unit: str, reason: str) -> None: ...
    def update(self, bundle: Path) -> dict[str, Any]: ...


REFUSALS: tuple[type[Exception], ...] = (ControlError, ActionRefused, BackupError, UpstreamError, ValueError,
                                         RuntimeError)
"""What a command may refuse with: the message is the answer, no traceback is logged."""


# The chair's actions (simulation only: on a unit they need the screen and its PIN) ---------

def _decision(d: Decision) -> dict[str, Any]:
    return {"decision": d.to_dict()}


REASON = Param("reason", "a reason", default="", rest=True)
CHAIR_ACTIONS: tuple[Action[Station], ...] = (
    Action("open", "open the polls (refused once anything is recorded)", lambda a, v: a.open_polls(),
           done="the polls are open"),
    Action("pause", "pause the polls (a break, an incident)", lambda a, v: a.pause_polls(v["reason"]), (REASON,),
           done="the polls are paused"),
    Action("resume", "resume the polls after a pause", lambda a, v: a.resume_polls(), done="the polls are open again"),
    Action("close", "close the polls and show the signed close report", lambda a, v: a.close_polls()),
    Action("close-without", "close without another unit's final records (it is out of reach), with a reason",
           lambda a, v: a.close_without(v["unit"], v["reason"]),
           (Param("unit", "the unit's id"), Param("reason", "a reason", rest=True)),
           done="the unit's absence is recorded; the polls can close"),
    Action("ack", "acknowledge an open alarm", lambda a, v: a.acknowledge_alarm(v["alarm"], v["note"]),
           (Param("alarm", "the alarm number", kind="int"), Param("note", "a note", default="", rest=True)),
           done="alarm acknowledged"),
    Action("undo", "undo the check-in of the voter on a list line", lambda a, v: a.undo_checkin(v["line"], v["reason"]),
           (Param("line", "the voter list line", kind="int"), Param("reason", "a reason", rest=True)),
           done="check-in undone"),
    Action("manual", "the clerk types a personal number because nothing scans",
           lambda a, v: _decision(a.identify_manual(v["number"])), (Param("number", "the personal number"),)),
)
CHAIR: dict[str, Action[Station]] = sim.table(CHAIR_ACTIONS)


# Read-only commands, served in production too --------------------------------------------

def _verify(app: Station, request: Mapping[str, Any]) -> dict[str, Any]:
    report = app.verify()
    return {"ok": report.ok, "sentence": report.sentence()}


def _export(app: Station, request: Mapping[str, Any]) -> dict[str, Any]:
    """Write the unacknowledged records to a USB stick, first removing what an interrupted export left there."""
    path = Path(str(request["path"]))
    folder = path if path.is_dir() else path.parent
    if not folder.is_dir():
        raise ControlError(f"there is no folder {folder}: is the USB stick mounted?")
    removed = remove_unfinished_exports(folder)
    result = dict(app.export_usb(path))
    result["removed_unfinished"] = removed
    return result


def remove_unfinished_exports(folder: Path) -> list[str]:
    """Delete the ``.part`` files an export killed halfway left in ``folder``; returns their names.

    An export is written to ``NAME.part`` and renamed to ``NAME`` only once it is
    complete and synced, so a ``.part`` file is never a valid export.
    """
    removed = []
    for part in sorted(folder.glob(f"{EXPORT_PREFIX}*.part")):
        try:
            part.unlink()
        except FileNotFoundError:
            continue
        removed.append(part.name)
    return removed


READ_ONLY: dict[str, Callable[[Station, Mapping[str, Any]], Any]] = {
    "status": lambda app, r: app.status(),
    "verify": _verify,
    "export": _export,
    "backup": lambda app, r: app.backup(Path(str(r["path"]))),
}


TECHNICIAN: dict[str, Callable[[Station, Mapping[str, Any]], Any]] = {
    "update": lambda app, r: app.update(Path(str(r["path"]))),
}
"""The technician's commands, served in production too: a software update (docs/updates.md), refused by the
station's core while the polls are open."""


# Dispatch -------------------------------------------------------------------------------

def known_commands() -> list[str]:
    return sorted([*READ_ONLY, *TECHNICIAN, *CHAIR, *sim.BY_NAME])


def handle(app: Station, request: Mapping[str, Any]) -> dict[str, Any]:
    """Run one request against the appliance; never raises, always answers in one sentence on failure."""
    cmd = str(request.get("cmd", ""))
    try:
        return {"ok": True, "result": _run(app, cmd, request)}
    except REFUSALS as exc:
        return {"ok": False, "error": str(exc)}
    except sqlite3.Error as exc:
        log.exception("control command %r: journal database error", cmd)
        return {"ok": False, "error": f"{cmd}: the journal database failed ({exc}); the appliance's log has more"}
    except OSError as exc:
        return {"ok": False, "error": f"{cmd}: {_os_sentence(exc)}"}
    except Exception as exc:  # the socket answers every request; the log keeps the traceback
        log.exception("control command %r failed", cmd)
        what = str(exc) or type(exc).__name__
        return {"ok": False, "error": f"{cmd} failed: {what} (the appliance's log has the details)"}


def _run(app: Station, cmd: str, request: Mapping[str, Any]) -> Any:
    if cmd in READ_ONLY:
        return READ_ONLY[cmd](app, request)
    if cmd in TECHNICIAN:
        return TECHNICIAN[cmd](app, request)
    if cmd not in CHAIR and cmd not in sim.BY_NAME:
        raise ControlError(f"unknown command {cmd!r}; known: {', '.join(known_commands())}")
    if app.sim is None:
        raise ControlError(f"{cmd!r} is refused in production mode; use the chair's screen")
    if cmd in CHAIR:
        action = CHAIR[cmd]
        return action.run(app, action.values(request))
    return simulate(app, app.sim, sim.BY_NAME[cmd], request)


def simulate(app: Station, controls: SimControls, action: Action[SimControls], request: Mapping[str, Any]) -> Any:
    """Do a simulator action, wait until the appliance has handled what it caused, and report it.

    For an action that reads a document, the answer carries the decision made
    for THAT read: a read of a document already read within the duplicate-read
    window records nothing new, and is answered as a ``duplicate_read``.
    """
    values = action.values(request)
    before = app.last_decision
    result = action.run(controls, values)
    app.settle()
    if not action.reads:
        return result
    answer = dict(result or {})
    delivered = bool(answer.get("decoded", True))
    answer["decision"] = _decision_of_read(app, before) if delivered else None
    return answer


def _decision_of_read(app: Station, before: Decision | None) -> dict[str, Any]:
    after = app.last_decision
    if after is not None and after != before:
        return after.to_dict()
    if app.read_failure:
        raise ControlError(f"the read was not recorded: {app.read_failure}")
    if not app.status()["journal"]["ok"]:
        raise ControlError("the read was not recorded: the journal failed verification ('pollbox verify')")
    return {"outcome": "duplicate_read", "at": None, "method": "scan", "line": None, "name": None,
            "first_at": None, "reason": "the same document was read again within the duplicate-read window; "
            "it counts once", "seq": None}


def _os_sentence(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


# The server and the client --------------------------------------------------------------

def _answer_line(app: Station, line: bytes) -> bytes:
    try:
        request = json.loads(line)
    except ValueError:
        answer: dict[str, Any] = {"ok": False, "error": "the request is not JSON"}
    else:
        answer = handle(app, request if isinstance(request, dict) else {})
    try:
        return json.dumps(answer, ensure_ascii=False, default=str).encode() + b"\n"
    except ValueError as exc:
        return json.dumps({"ok": False, "error": f"the answer could not be encoded: {exc}"}).encode() + b"\n"


def appliance_answers(path: Path) -> bool:
    """True when an appliance is listening on the control socket at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


class ControlServer:
    """Serves ``handle`` on a Unix socket in a background thread."""

    def __init__(self, app: Station, path: Path) -> None:
        self.path = path
        if appliance_answers(path):
            raise ControlError(f"another pollbox is already running for this station (its control socket {path} "
                               "answers); stop it first")
        path.unlink(missing_ok=True)

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(_answer_line(app, self.rfile.readline(MAX_REQUEST)))

        old = os.umask(0o177)
        try:
            self._server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        except OSError as exc:
            raise ControlError(f"cannot create the control socket {path}: {exc.strerror or exc}") from None
        finally:
            os.umask(old)
        self._thread = threading.Thread(target=self._server.serve_forever, name="pollbox-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)


def request(path: Path, payload: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """Send one request to a running appliance and return its answer; ConnectionError says what went wrong."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            raise ConnectionError(f"no appliance is running for this station (no socket at {path}); "
                                  "start it with 'make run' or 'pollbox run'") from None
        except PermissionError:
            raise ConnectionError(f"not allowed to use the control socket {path}: "
                                  "run the command as the appliance's user") from None
        try:
            s.sendall(json.dumps(payload).encode() + b"\n")
            data = s.makefile("rb").readline()
        except TimeoutError:
            raise ConnectionError(f"the appliance did not answer within {timeout:.0f} s") from None
        except OSError:
            data = b""  # the appliance hung up: said below, as for an empty answer
    try:
        answer = json.loads(data)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ConnectionError("the appliance gave no answer (it may have stopped); its log, pollbox.log in the "
                              "data directory, says why")
    return answer

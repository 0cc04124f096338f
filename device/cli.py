"""The ``pollbox`` command: run the appliance, drive a simulated station, verify a journal.

Every user error (a bad config, an altered package, a damaged journal, an
appliance that is not running, a port already in use, a data directory that is
a file) is printed as one clear sentence with exit status 2, never a
traceback. Exit status 1 means a check ran and failed (``verify``, a failed
self-test); 0 means done.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from device.cliutil import DEMO_DIR, CommandError, default_config, load_station_config, sentence, user_errors
from device.hardware.sim.controls import ACTIONS, Action, Param, describe
from device.runner import cmd_run, registered_voters

# Commands ---------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from device.demo import demo_pins, make_demo_station, reset_demo_station
    directory = Path(args.directory)
    receiver_url = f"http://127.0.0.1:{args.receiver_port}"
    if args.reset:
        reset_demo_station(directory)
        print(f"removed the demo station in {directory} (its journal, keys and receiver)")
    path = make_demo_station(directory, voters=args.voters, web_port=args.port, receiver_url=receiver_url)
    registered = registered_voters(path)
    print(f"demo station ready: {path} ({registered:,} voters: {registered - 1:,} with synthetic personal "
          "numbers and one with a demo driver's licence)")
    print("first voters' personal numbers (synthetic):", ", ".join(demo_pins(3)))
    start = "make run" if directory == DEMO_DIR else f"pollbox --config {path} run --with-receiver"
    print(f"start it with '{start}', then open the polls with 'pollbox chair open'; "
          f"'pollbox demo {directory} --reset' starts again from an empty journal")
    return 0


def _control(args: argparse.Namespace, payload: dict[str, Any]) -> Any:
    """Send one request to the running appliance; its refusal becomes the one sentence printed."""
    from device.control import request
    config = load_station_config(args)
    answer = request(config.data_dir / "control.sock", payload)
    if not answer.get("ok"):
        raise CommandError(str(answer.get("error") or "the appliance refused the request"))
    return answer.get("result")


def cmd_status(args: argparse.Namespace) -> int:
    status = _control(args, {"cmd": "status"})
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=2, default=str))
        return 0
    c = status["counters"]
    print(f"station {status['station']['id']} ({status['station']['name']}), polls {status['poll']}")
    print(f"  identified {c['identified']}  ballots {c['ballots']}  difference {c['difference']:+d}  "
          f"turnout {c['turnout_pct']}% of {c['registered']}")
    if status["last_decision"]:
        print(f"  last decision: {decisionsentence(status['last_decision'])}")
    for a in status["alarms"]:
        print(f"  ALARM {a['id']} {a['kind']}: {a['advice']}")
    print(f"  scanner {status['scanner']['state']}, slot {'OPEN' if status['interlock']['slot_open'] else 'locked'}")
    if status.get("upstream"):
        u = status["upstream"]
        print(f"  CEC link: {'online' if u.get('online') else 'offline'}, {u.get('waiting')} records waiting")
    return 0


def decisionsentence(d: dict[str, Any] | None) -> str:
    """The desk's decision in one line: outcome, list line and name, and the reason if any."""
    if d is None:
        return "no decision: nothing was read"
    words = [str(d["outcome"]).replace("_", " ")]
    if d.get("line"):
        words.append(f"list line {d['line']}")
    if d.get("name"):
        words.append(str(d["name"]))
    reason = f" ({d['reason']})" if d.get("reason") else ""
    return ", ".join(words) + reason


# The simulator's and the chair's actions: one table each, shared with the control socket -----

def _pins(values: dict[str, Any]) -> list[str]:
    from device.demo import demo_pins
    return demo_pins(values["count"])


PINS = Action[None]("pins", "print the personal numbers of the first synthetic voters (no appliance needed)",
                    lambda _, v: _pins(dict(v)), (Param("count", "how many numbers", default="5", kind="int"),))


def _chair_actions() -> tuple[Action[Any], ...]:
    from device.control import CHAIR_ACTIONS
    return CHAIR_ACTIONS


def cmd_sim(args: argparse.Namespace) -> int:
    if args.action == PINS.name:
        print("\n".join(PINS.run(None, PINS.values(_words(PINS, args.values)))))
        return 0
    return _act({a.name: a for a in ACTIONS}[args.action], args)


def cmd_chair(args: argparse.Namespace) -> int:
    return _act({a.name: a for a in _chair_actions()}[args.action], args)


def _act(action: Action[Any], args: argparse.Namespace) -> int:
    values = _words(action, args.values)
    try:
        action.values(values)  # a missing or malformed value is refused here, before the appliance
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    result = _control(args, {"cmd": action.name, **values})
    if isinstance(result, dict) and "decoded" in result:
        found = ", ".join(result["decoded"]) or "nothing"
        print(f"the camera decoded: {found}")
    if isinstance(result, dict) and "decision" in result:
        print(decisionsentence(result["decision"]))
    elif result is not None:
        print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    else:
        print(action.done)
    return 0


def _words(action: Action[Any], words: list[str]) -> dict[str, Any]:
    """Map the command line's words onto the action's parameters, in order (a ``rest`` one takes the rest)."""
    out: dict[str, Any] = {}
    for i, p in enumerate(action.params):
        if p.rest:
            if words[i:]:
                out[p.name] = " ".join(words[i:])
            return out
        if i < len(words):
            out[p.name] = str(Path(words[i]).resolve()) if p.kind == "path" else words[i]
    if len(words) > len(action.params):
        raise CommandError(f"'{action.name}' takes {action.usage}; too many words: {' '.join(words)}")
    return out


def cmd_export(args: argparse.Namespace) -> int:
    """Carry the records the CEC has not acknowledged on a USB stick (the link is down for good)."""
    result = _control(args, {"cmd": "export", "path": str(Path(args.directory).resolve())})
    for name in result.get("removed_unfinished", []):
        print(f"removed {name}: an unfinished export file left by an interrupted export")
    print(f"{result['records']} signed records written to {result['path']}; "
          "import them at the CEC with 'pollbox-receiver import FILE'")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """Copy the journal to a USB stick now, so a replacement unit can carry on the station."""
    result = _control(args, {"cmd": "backup", "path": str(Path(args.directory).resolve())})
    print(f"journal copied to {result['path']} ({result['events']} events, verified)")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    """Install a software bundle signed by the CEC into the other root slot (docs/updates.md)."""
    from device.control import request
    from device.updates.rauc import INSTALL_TIMEOUT
    config = load_station_config(args)
    answer = request(config.data_dir / "control.sock", {"cmd": "update", "path": str(Path(args.bundle).resolve())},
                     timeout=INSTALL_TIMEOUT + 60)
    if not answer.get("ok"):
        raise CommandError(str(answer.get("error") or "the appliance refused the update"))
    r = answer["result"]
    print(f"update {r['version']} ({r['compatible']}, {r['size'] / 1e6:,.1f} MB) installed into slot {r['slot']}; "
          f"{r['next']}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import time

    from device.package import load_package, public_key_from_b64
    from device.store.verify import verify_path
    from device.training import journal_path
    config = load_station_config(args)
    package = load_package(config.station_package, public_key_from_b64(config.cec_public_key),
                           config.election_id, time.time())
    path = journal_path(config.data_dir, package.training)
    if not path.exists() and not path.with_suffix(".mark").exists():
        print(f"no journal yet at {path}")
        return 0
    report = verify_path(path, package.station_id, backup_dir=config.backup_dir)  # a lost journal is refused
    print(report.sentence())
    return 0 if report.ok else 1


def cmd_verify_report(args: argparse.Namespace) -> int:
    """Check the signed close report an observer photographed (its QR text or image)."""
    from tools.verify_report import main as verify_report_main
    return verify_report_main(args.args)


def cmd_docs(args: argparse.Namespace) -> int:
    """Write the audit event catalogue and, next to it, the ballot box wiring drawings."""
    from device.core.catalogue import render_markdown
    from tools.wiring import BOARD_SOURCE, documents
    Path(args.output).write_text(render_markdown(), encoding="utf-8")
    print(f"wrote {args.output}")
    for name, svg in documents(BOARD_SOURCE.read_text(encoding="utf-8")).items():
        path = Path(args.output).parent / name
        path.write_text(svg, encoding="utf-8")
        print(f"wrote {path}")
    return 0


def cmd_box(args: argparse.Namespace) -> int:
    """Lock the slot without the appliance (systemd ExecStopPost), or run the technician's self-test."""
    from device.hardware.clock import SystemClock
    from device.hardware.registry import build_box
    config = load_station_config(args)
    polls_open = _polls_open(config) if args.action == "selftest" else False
    box = build_box(config, clock=SystemClock(), delays=config.delays)
    box.start(lambda *_: None)
    try:
        box.lock()
        if args.action == "lock":
            print("slot locked")
            return 0
        return _selftest(box, polls_open)
    finally:
        box.stop()


def _polls_open(config: Any) -> bool:
    """Whether the journal says the polls are open; a journal that is refused counts as open (the slot stays put)."""
    import time

    from device.package import load_package, public_key_from_b64
    from device.store.verify import verify_path
    from device.training import journal_path
    package = load_package(config.station_package, public_key_from_b64(config.cec_public_key),
                           config.election_id, time.time())
    path = journal_path(config.data_dir, package.training)
    if not path.exists() and not path.with_suffix(".mark").exists():
        return False
    report = verify_path(path, package.station_id, backup_dir=config.backup_dir)
    return not report.ok or report.state.poll.value in ("open", "paused")


def _selftest(box: Any, polls_open: bool) -> int:
    import time

    from device.hardware.boxes.selftest import SelfTestRefused, run_selftest
    from device.hardware.clock import SystemClock

    def ask(question: str) -> bool:
        return input(f"{question} [y/n] ").strip().lower().startswith(("y", "д", "о"))

    try:
        report = run_selftest(box, clock=SystemClock(), ask=ask, notify=lambda m: print(f"-> {m}", flush=True),
                              wait=time.sleep, polls_open=polls_open)
    except SelfTestRefused as exc:
        print(f"pollbox: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0 if report.passed else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pollbox", description="pollbox polling-station appliance")
    p.add_argument("--config", type=Path, default=None, help="station config (default: $POLLBOX_CONFIG, "
                   "/etc/pollbox/station.toml, or the demo station)")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="create a demo station with simulated hardware (--reset: start it again)")
    d.add_argument("directory", nargs="?", default=str(DEMO_DIR))
    d.add_argument("--voters", type=int, default=2000, help="voters with synthetic personal numbers (default 2000)")
    d.add_argument("--port", type=int, default=8080, help="the chair's screen's port (default 8080)")
    d.add_argument("--receiver-port", type=int, default=8090, help="the demo CEC receiver's port (default 8090)")
    d.add_argument("--reset", action="store_true",
                   help="delete the demo station (journal, keys, receiver database) and create a fresh one")
    d.set_defaults(func=cmd_demo)
    r = sub.add_parser("run", help="run the appliance and the chair's screen")
    r.add_argument("--no-web", action="store_true", help="run without the chair's screen")
    r.add_argument("--with-receiver", action="store_true", help="also start a local CEC receiver (simulation)")
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("status", help="show the running station's status")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
    sim_actions: tuple[Action[Any], ...] = (*ACTIONS, PINS)
    commands = (("sim", cmd_sim, "act on a simulated station as a person would", sim_actions),
                ("chair", cmd_chair, "the chair's actions (simulation; a unit takes them on its screen)",
                 _chair_actions()))
    for name, func, helptext, actions in commands:
        names = [a.name for a in actions]
        x = sub.add_parser(name, help=f"{helptext}: {', '.join(names)}", description=f"{helptext}.",
                           epilog="actions:\n" + describe(actions),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        x.add_argument("action", choices=names, metavar="ACTION", help="one of the actions listed below")
        x.add_argument("values", nargs="*", metavar="VALUE", help="what the action needs (see its line below)")
        x.set_defaults(func=func)
    e = sub.add_parser("export", help="write unacknowledged signed records to a USB stick")
    e.add_argument("directory")
    e.set_defaults(func=cmd_export)
    k = sub.add_parser("backup", help="copy the journal to a USB stick now (verified)")
    k.add_argument("directory")
    k.set_defaults(func=cmd_backup)
    u = sub.add_parser("update", help="install a software bundle signed by the CEC into the other root slot "
                       "(refused while the polls are open; docs/updates.md)")
    u.add_argument("bundle", help="the bundle file (.raucb)")
    u.set_defaults(func=cmd_update)
    v = sub.add_parser("verify", help="verify the journal's hash chain and counters")
    v.set_defaults(func=cmd_verify)
    vr = sub.add_parser("verify-report", help="verify a close report's QR against the station key "
                        "(--key KEY and --text/--image/--file; see docs/chair-guide.md)",
                        add_help=False, prefix_chars="+")  # every word, options included, goes to verify_report
    vr.add_argument("args", nargs="*")
    vr.set_defaults(func=cmd_verify_report)
    o = sub.add_parser("docs", help="regenerate docs/audit-events.md and the wiring drawings docs/wiring*.svg")
    o.add_argument("--output", default="docs/audit-events.md",
                   help="the event catalogue; the wiring drawings go into the same directory")
    o.set_defaults(func=cmd_docs)
    b = sub.add_parser("box", help="ballot box: 'box lock' locks the slot, 'box selftest' tests every part")
    b.add_argument("action", choices=["lock", "selftest"])
    b.set_defaults(func=cmd_box)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.config is None:
        args.config = default_config()
    try:
        return int(args.func(args))
    except user_errors() as exc:
        print(f"pollbox: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        print(f"pollbox: {sentence(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The ``pollbox`` command: run the appliance, drive a simulated station, verify a journal.

Every user error (a bad config, an altered package, a damaged journal, an
appliance that is not running) is printed as one clear sentence with exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device.config import ConfigError, load_config

DEMO_DIR = Path("var/demo")


def default_config() -> Path:
    if os.environ.get("POLLBOX_CONFIG"):
        return Path(os.environ["POLLBOX_CONFIG"])
    system = Path("/etc/pollbox/station.toml")
    return system if system.exists() else DEMO_DIR / "station.toml"


def _user_errors() -> tuple[type[BaseException], ...]:
    from device.decision import ActionRefused
    from device.hardware.registry import BackendError
    from device.identity import IdentityError
    from device.keys import KeyError_
    from device.package import PackageError
    from device.store.journal import JournalError
    from device.upstream.service import UpstreamError
    from device.upstream.uplink import UplinkConfigError
    return (ConfigError, PackageError, JournalError, IdentityError, BackendError, KeyError_, ActionRefused,
            ConnectionError, UplinkConfigError, UpstreamError)


def setup_logging(level: str, data_dir: Path | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if data_dir is not None and data_dir.exists():
        handlers.append(logging.handlers.RotatingFileHandler(data_dir / "pollbox.log", maxBytes=5_000_000,
                                                             backupCount=5))
    logging.basicConfig(level=level, handlers=handlers, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# Commands ---------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from device.demo import demo_pins, make_demo_station
    path = make_demo_station(Path(args.directory), voters=args.voters, web_port=args.port)
    print(f"demo station ready: {path}")
    print("first voters' personal numbers (synthetic):", ", ".join(demo_pins(3)))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from device.appliance import build_appliance
    from device.control import ControlServer
    from device.systemd import notify

    config = load_config(args.config)
    setup_logging(config.log_level, config.data_dir)
    app = build_appliance(config)
    app.on_healthy_tick = _watchdog_ping()
    app.start()
    control = ControlServer(app, config.data_dir / "control.sock")
    control.start()
    receiver = _start_receiver(config) if args.with_receiver else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    _banner(config, app)
    notify("READY=1")
    try:
        _serve_web(app, config, stop) if not args.no_web else stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        notify("STOPPING=1")
        control.stop()
        app.stop()
        if receiver is not None:
            receiver.terminate()
    return 0


def _watchdog_ping(every: float = 1.0) -> Callable[[], None]:
    """Feed systemd's watchdog (WatchdogSec in pollbox.service) at most once per ``every`` seconds."""
    import time

    from device.systemd import notify
    last = [0.0]

    def ping() -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            notify("WATCHDOG=1")
    return ping


def _serve_web(app: Any, config: Any, stop: threading.Event) -> None:
    from device.webserver import ServerThread
    from web_ui import create_app
    from web_ui.i18n import LANGUAGES
    from web_ui.serve import make_server
    spoken = [lang for lang in app.package.languages if lang in LANGUAGES]
    extra: dict[str, Any] = {"STATION_LANGUAGE": spoken[0]} if spoken else {}
    if config.simulation:
        from device.demo import demo_pins
        extra["DEMO_NUMBERS"] = demo_pins(8)
    web = create_app(app, extra, instance_path=config.data_dir / "web")
    with ServerThread(make_server(web, config.web_host, config.web_port), name="pollbox-web"):
        stop.wait()


def _start_receiver(config: Any) -> Any:
    from device.demo import start_demo_receiver
    return start_demo_receiver(config)


def _banner(config: Any, app: Any) -> None:
    s = app.status()
    print(f"\npollbox {s['mode']} station {s['station']['id']} — polls {s['poll']}, journal: "
          f"{'verified' if s['journal']['ok'] else s['journal']['problem']}")
    print(f"  chair's screen:  http://{config.web_host}:{config.web_port}/")
    print(f"  observer view:   http://{config.web_host}:{config.web_port}/observer")
    if config.simulation:
        print("  try:  pollbox sim pins 3        (synthetic voters' numbers)")
        print("        pollbox sim scan <number>  /  pollbox sim drop  /  pollbox status")
        print(f"        pollbox sim image {config.path.parent}/documents/td1.png   (a document shown to the camera)")
    print("  stop with Ctrl-C\n", flush=True)


def _control(args: argparse.Namespace, payload: dict[str, Any]) -> dict[str, Any]:
    from device.control import request
    config = load_config(args.config)
    answer = request(config.data_dir / "control.sock", payload)
    if not answer.get("ok"):
        raise ConnectionError(answer.get("error", "refused"))
    return answer.get("result") or {}


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
        d = status["last_decision"]
        print(f"  last decision: {d['outcome']} {('line ' + str(d['line'])) if d['line'] else ''} {d['reason']}")
    for a in status["alarms"]:
        print(f"  ALARM {a['id']} {a['kind']}: {a['advice']}")
    print(f"  scanner {status['scanner']['state']}, slot {'OPEN' if status['interlock']['slot_open'] else 'locked'}")
    if status.get("upstream"):
        u = status["upstream"]
        print(f"  CEC link: {'online' if u.get('online') else 'offline'}, {u.get('waiting')} records waiting")
    return 0


SIM_SIMPLE = ("drop", "lid-open", "lid-close", "jam", "unjam", "box-unplug", "box-replug",
              "scanner-unplug", "scanner-replug", "link-cut", "link-restore")


def cmd_sim(args: argparse.Namespace) -> int:
    if args.action == "pins":
        from device.demo import demo_pins
        print("\n".join(demo_pins(int(args.value or 5))))
        return 0
    payload: dict[str, Any] = {"cmd": args.action}
    if args.action in ("scan", "manual"):
        payload["text"] = _need(args, "the scanned text or typed number")
    elif args.action == "type":
        payload["text"] = _need(args, "the text the keyboard-mode scanner types")
        payload["layout"] = args.rest[0] if args.rest else "us"
    elif args.action == "image":
        payload["path"] = str(Path(_need(args, "an image file")).resolve())
    elif args.action not in SIM_SIMPLE:
        raise ConnectionError(f"unknown simulation action {args.action!r}")
    result = _control(args, payload)
    print(json.dumps(result, ensure_ascii=False, default=str) if result else "done")
    return 0


def cmd_chair(args: argparse.Namespace) -> int:
    payload: dict[str, Any] = {"cmd": args.action}
    if args.action == "ack":
        payload["alarm"] = int(_need(args, "the alarm number"))
    if args.action == "undo":
        payload["line"] = int(_need(args, "the voter list line"))
        payload["reason"] = " ".join(args.rest) or ""
    if args.action == "pause":
        payload["reason"] = " ".join(([args.value] if args.value else []) + args.rest)
    result = _control(args, payload)
    print(json.dumps(result, ensure_ascii=False, indent=2, default=str) if result else "done")
    return 0


def _need(args: argparse.Namespace, what: str) -> str:
    if not args.value:
        raise ConnectionError(f"'{args.action}' needs {what}")
    return str(args.value)


def cmd_export(args: argparse.Namespace) -> int:
    """Carry the records the CEC has not acknowledged on a USB stick (the link is down for good)."""
    result = _control(args, {"cmd": "export", "path": str(Path(args.directory).resolve())})
    print(f"{result['records']} signed records written to {result['path']}; "
          "import them at the CEC with 'pollbox-receiver import FILE'")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """Copy the journal to a USB stick now, so a replacement unit can carry on the station."""
    result = _control(args, {"cmd": "backup", "path": str(Path(args.directory).resolve())})
    print(f"journal copied to {result['path']} ({result['events']} events, verified)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import time

    from device.package import load_package, public_key_from_b64
    from device.store.journal import Journal
    from device.store.verify import verify_journal
    config = load_config(args.config)
    package = load_package(config.station_package, public_key_from_b64(config.cec_public_key),
                           config.election_id, time.time())
    path = config.data_dir / "journal.db"
    if not path.exists():
        print(f"no journal yet at {path}")
        return 0
    report = verify_journal(Journal(path, package.station_id))
    print(report.sentence())
    return 0 if report.ok else 1


def cmd_verify_report(args: argparse.Namespace) -> int:
    """Check the signed close report an observer photographed (its QR text or image)."""
    from web_ui.verify_report import main as verify_report_main
    return verify_report_main(args.args)


def cmd_docs(args: argparse.Namespace) -> int:
    """Write the audit event catalogue and, next to it, the ballot box wiring drawings."""
    from device.core.catalogue import render_markdown
    from device.hardware.boxes.wiring import BOARD_SOURCE, documents
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
    config = load_config(args.config)
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
    import time

    from device.package import load_package, public_key_from_b64
    from device.store.journal import Journal
    from device.store.verify import verify_journal
    package = load_package(config.station_package, public_key_from_b64(config.cec_public_key),
                           config.election_id, time.time())
    path = config.data_dir / "journal.db"
    if not path.exists():
        return False
    journal = Journal(path, package.station_id)
    try:
        return verify_journal(journal).state.poll.value in ("open", "paused")
    finally:
        journal.close()


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
    d = sub.add_parser("demo", help="create a demo station with simulated hardware")
    d.add_argument("directory", nargs="?", default=str(DEMO_DIR))
    d.add_argument("--voters", type=int, default=2000)
    d.add_argument("--port", type=int, default=8080)
    d.set_defaults(func=cmd_demo)
    r = sub.add_parser("run", help="run the appliance and the chair's screen")
    r.add_argument("--no-web", action="store_true", help="run without the chair's screen")
    r.add_argument("--with-receiver", action="store_true", help="also start a local CEC receiver (simulation)")
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("status", help="show the running station's status")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
    commands = (("sim", cmd_sim, "act on a simulated station: scan, drop, lid-open, jam, link-cut, ..."),
                ("chair", cmd_chair, "chair actions (simulation): open, pause, resume, ack, undo, close"))
    for name, func, helptext in commands:
        x = sub.add_parser(name, help=helptext)
        x.add_argument("action")
        x.add_argument("value", nargs="?")
        x.add_argument("rest", nargs="*")
        x.set_defaults(func=func)
    e = sub.add_parser("export", help="write unacknowledged signed records to a USB stick")
    e.add_argument("directory")
    e.set_defaults(func=cmd_export)
    k = sub.add_parser("backup", help="copy the journal to a USB stick now (verified)")
    k.add_argument("directory")
    k.set_defaults(func=cmd_backup)
    v = sub.add_parser("verify", help="verify the journal's hash chain and counters")
    v.set_defaults(func=cmd_verify)
    vr = sub.add_parser("verify-report", help="verify a close report's QR against the station key "
                        "(--key KEY and --text/--image/--file; see docs/chair-guide.md)", add_help=False)
    vr.add_argument("args", nargs=argparse.REMAINDER)
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
    except _user_errors() as exc:
        print(f"pollbox: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

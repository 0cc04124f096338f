"""``pollbox run``: the appliance, its control socket and the chair's screen in one process.

It checks the screen's port before it starts anything, builds the station
through the composition root, starts the owner thread, the control socket and
the web server, feeds systemd's watchdog from the owner's healthy ticks, and
stops everything in order on SIGTERM. Every problem at start is one sentence
(``CommandError``); ``kill -USR1`` prints every thread's stack to stderr.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device.cliutil import CommandError, load_station_config, sentence, setup_logging


def registered_voters(config_path: Path) -> int:
    package = config_path.parent / "station-package.json"
    return int(json.loads(package.read_bytes())["payload"]["voters"]["count"])


def cmd_run(args: argparse.Namespace) -> int:
    from device.compose import build_appliance
    from device.control import ControlServer, appliance_answers
    from device.systemd import notify

    config = load_station_config(args)
    if appliance_answers(config.data_dir / "control.sock"):
        raise CommandError(f"pollbox is already running for this station (data directory {config.data_dir}); "
                           "stop it first")
    if not args.no_web:
        check_can_listen(config.web_host, config.web_port, "the chair's screen", "[web] host and port")
    if args.with_receiver:
        from device.demo import demo_receiver_port
        check_can_listen("127.0.0.1", demo_receiver_port(config), "the demo CEC receiver",
                         "the receiver URL given to 'pollbox demo --receiver-port'")
    setup_logging(config.log_level, config.data_dir)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1` prints every thread's stack
    app = build_appliance(config)
    app.on_healthy_tick = _watchdog_ping()
    control, receiver = None, None
    stop = StopSignal()
    try:
        app.start()
        control = ControlServer(app, config.data_dir / "control.sock")
        control.start()
        receiver = _start_receiver(config) if args.with_receiver else None
        web = None if args.no_web else _bind_web(app, config)
        _banner(config, app)
        notify("READY=1")
        if web is None:
            stop.wait()
        else:
            with web:
                stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        notify("STOPPING=1")
        if control is not None:
            control.stop()
        app.stop()
        if receiver is not None:
            receiver.terminate()
            receiver.wait(timeout=10)
        stop.close()
    return 0


class StopSignal:
    """SIGTERM as the request to stop ``pollbox run``, waited for by the main thread with no lock involved.

    A Python signal handler runs in the main thread between two of its steps, wherever that thread is. The
    handler used to set a ``threading.Event`` the main thread was waiting on; a SIGTERM arriving in the moment
    the main thread held that Event's own lock (entering the wait) made the handler wait for that lock, held
    by its own thread: forever. The unit then ignored every later SIGTERM until it was killed (systemd's
    ``TimeoutStopSec``), without closing anything in order. Here the handler does nothing in Python: the
    interpreter's own C-level handler writes the signal's number into a socket pair
    (``signal.set_wakeup_fd``), and ``wait`` reads it. Made and closed on the main thread.
    """

    def __init__(self) -> None:
        self._inbox, self._outlet = socket.socketpair()
        self._outlet.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._outlet.fileno(), warn_on_full_buffer=False)
        self._previous_term = signal.signal(signal.SIGTERM, _noted)

    def wait(self) -> None:
        """Return once SIGTERM has come (at once if it came before this call)."""
        while signal.SIGTERM not in self._inbox.recv(64):
            pass

    def close(self) -> None:
        """Give SIGTERM back its earlier handling and free the socket pair (called once every part has
        stopped: until then a second SIGTERM changes nothing)."""
        signal.set_wakeup_fd(self._previous_fd)
        signal.signal(signal.SIGTERM, self._previous_term)
        self._inbox.close()
        self._outlet.close()


def _noted(signum: int, frame: Any) -> None:
    """SIGTERM's Python-level handler: nothing to do (the wakeup byte carries it; see ``StopSignal``)."""


def check_can_listen(host: str, port: int, what: str, setting: str) -> None:
    """Raise CommandError, in one sentence, if ``host:port`` cannot be listened on now."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError, ValueError):
        raise CommandError(f"{what} cannot listen on {host!r}: it is not a host name or address this machine "
                           f"knows; check {setting}") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            raise CommandError(_listensentence(exc, host, port, what, setting)) from None


def _listensentence(exc: OSError, host: str, port: int, what: str, setting: str) -> str:
    import errno
    where = f"{what} cannot listen on {host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where}: the port is already in use by another program (another pollbox?); stop it or change {setting}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{where}: {host} is not an address of this machine; change {setting} (127.0.0.1 for this machine only)"
    if exc.errno == errno.EACCES:
        return f"{where}: not allowed to use port {port} (ports below 1024 need special rights); change {setting}"
    return f"{where}: {exc.strerror or exc}; check {setting}"


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


def _bind_web(app: Any, config: Any) -> Any:
    """The chair's screen, bound to its port (not yet serving); a problem is one sentence."""
    from device.webserver import ServerThread
    from web_ui import create_app
    from web_ui.i18n import LANGUAGES
    from web_ui.serve import make_server
    spoken = [lang for lang in app.package.languages if lang in LANGUAGES]
    extra: dict[str, Any] = {"STATION_LANGUAGE": spoken[0]} if spoken else {}
    extra["WEB_HOST"] = config.web_host  # the screen answers to this name too (its Host check)
    if config.simulation:
        from device.demo import demo_pins
        extra["DEMO_NUMBERS"] = demo_pins(8)
    try:
        web = create_app(app, extra, instance_path=config.web_dir)
    except (RuntimeError, OSError) as exc:
        raise CommandError(f"the chair's screen cannot start: {sentence(exc)}") from None
    try:
        server = make_server(web, config.web_host, config.web_port)
    except OSError as exc:
        raise CommandError(_listensentence(exc, config.web_host, config.web_port, "the chair's screen",
                                            "[web] host and port")) from None
    except ValueError:  # waitress: the host does not resolve
        raise CommandError(f"the chair's screen cannot listen on {config.web_host!r}: it is not a host name or "
                           "address this machine knows; check [web] host") from None
    return ServerThread(server, name="pollbox-web")


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
        if s["poll"] == "setup":
            print("  first open the polls:  pollbox chair open   (or 'Open the polls' on the chair's screen)")
        print("  try:  pollbox sim pins 3        (synthetic voters' numbers)")
        print("        pollbox sim scan <number>  /  pollbox sim drop  /  pollbox status")
        print(f"        pollbox sim image {config.path.parent}/documents/td1.png   (a document shown to the camera)")
        print("        pollbox sim --help  /  pollbox chair --help   (every action)")
    print("  stop with Ctrl-C\n", flush=True)

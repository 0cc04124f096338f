"""A command channel into a booted *test copy* of the pollbox image. It exists only in tests.

The product image has no way in: no login on the screen or the serial line, no shell server. Tests
that must act inside the unit (load a kernel simulator module, drive a GPIO line, type on a virtual
keyboard, read what the appliance wrote) boot a copy of the image into which ``test_copy`` has
written a small agent (``guest_agent.py``) and its systemd unit, straight into the copy's root file
system with e2fsprogs' ``debugfs -w`` (nothing is mounted; the built image is never written).
The agent listens on the virtio-serial port ``pollbox.test``; QEMU connects that port to a Unix
socket on the host, and ``Guest`` talks to it:

    unit = boot_probed_unit(workdir)            # built image -> test copy -> QEMU, agent answering
    rc, out = unit.guest.run("uname -r")
    unit.guest.push(b"...", "/tmp/x")          # and pull("/tmp/x") -> bytes

Waiting is polling with named deadlines (``vm.wait_for``).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shlex
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .vm import (
    BOOT_DEADLINE,
    BOOT_STALL,
    StalledBoot,
    VirtualMachine,
    build_image,
    make_stick,
    partitions,
    run,
    wait_for,
)

AGENT = Path(__file__).with_name("guest_agent.py")
PORT_NAME = "pollbox.test"
AGENT_PATH = "/usr/local/lib/pollbox-test/agent.py"
UNIT_NAME = "pollbox-test-agent.service"
UNIT = f"""[Unit]
Description=pollbox test agent (test copies of the image only)
DefaultDependencies=no
After=systemd-udevd.service

[Service]
ExecStart=/usr/bin/python3 {AGENT_PATH}
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
"""
CONTROL_SOCKET = "/var/lib/pollbox/station/data/control.sock"
CONTROL_CLIENT = f"""import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect({CONTROL_SOCKET!r})
s.sendall(sys.stdin.buffer.read().strip() + b"\\n")
sys.stdout.buffer.write(s.makefile("rb").readline())
"""
"""A client of the appliance's control socket (device.control) for the guest's python3: a request on
stdin, the answer on stdout (started much faster than ``pollbox`` itself in an emulated guest)."""
PING_WAIT = 10.0
"""How long one ping waits for the agent's answer while the guest boots. The connection is kept when it
runs out: a guest busy booting (under emulation, a starting kiosk takes most of its CPU) may answer
late, and closing the connection would throw away the answer on its way."""
ANSWER_MARGIN = 30.0
"""How much longer than a command's own timeout its answer may take (a loaded, emulated guest)."""


def host_can_boot() -> str:
    """Why this host cannot build and boot the image (a reason to skip), or an empty string."""
    if shutil.which("qemu-system-x86_64") is None:
        return "no qemu-system-x86_64 (make image-deps installs it)"
    if os.geteuid() != 0:
        return "building the image needs root"
    if shutil.which("debugfs") is None and not Path("/usr/sbin/debugfs").exists():
        return "no debugfs (e2fsprogs) to write the test agent into the test copy"
    return ""


class PoweredOnAgain(UserWarning):
    """A test boot stalled before user space and was powered on once more (``boot_probed_unit``)."""


class GuestError(AssertionError):
    """The agent answered a request with an error, or a command the test needed failed."""


def _debugfs(filesystem: Path, commands: list[str]) -> None:
    script = filesystem.with_suffix(".debugfs")
    script.write_text("\n".join(commands) + "\n")
    done = subprocess.run(["debugfs", "-w", "-f", str(script), str(filesystem)], capture_output=True, text=True)
    # debugfs reports a failed command on stderr but exits 0: any line other than its banner is a failure.
    said = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith("debugfs ")]
    if done.returncode != 0 or said:
        raise GuestError(f"debugfs could not write the test agent: {done.stderr.strip()[-1500:]}")


KIOSK_WANTS = "/etc/systemd/system/multi-user.target.wants/pollbox-kiosk.service"
"""The link that starts the kiosk at boot (``systemctl enable`` in the image recipe)."""


def make_test_copy(image: Path, dest: Path, *, kiosk: bool = True) -> Path:
    """A copy of ``image`` at ``dest`` whose root file system also holds and starts the test agent; with
    ``kiosk`` false, the kiosk is not started at boot (its ``wants`` link removed): Chromium under
    software emulation takes most of the guest's CPU for minutes, which tests of other parts do not need."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    run(["cp", "--sparse=always", "--reflink=auto", str(image), str(dest)])
    start, end = partitions(dest)["root"]
    root = dest.with_name(dest.name + ".root")
    run(["dd", f"if={dest}", f"of={root}", "bs=1M", f"skip={start}", f"count={end - start}",
         "iflag=skip_bytes,count_bytes", "conv=sparse", "status=none"])
    unit = dest.with_name(UNIT_NAME)
    unit.write_text(UNIT)
    _debugfs(root, [
        "mkdir /usr/local/lib/pollbox-test",
        f"write {AGENT} {AGENT_PATH}",
        f"write {unit} /etc/systemd/system/{UNIT_NAME}",
        f"symlink /etc/systemd/system/multi-user.target.wants/{UNIT_NAME} /etc/systemd/system/{UNIT_NAME}",
        *([] if kiosk else [f"rm {KIOSK_WANTS}"]),
    ])
    run(["dd", f"if={root}", f"of={dest}", "bs=1M", f"seek={start}", "oflag=seek_bytes", "conv=notrunc",
         "status=none"])
    root.unlink()
    return dest


class Guest:
    """The host's end of the agent's port: run commands, push and pull files."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._pending = b""
        self._ids = itertools.count(1)

    def connect(self, deadline: float, machine: VirtualMachine | None = None, stall: float | None = None) -> None:
        """Until the agent answers a ping (QEMU's socket up, the guest booted, the agent started).

        With the booting ``machine``, a QEMU that stops meanwhile fails the wait at once, and a wait that
        runs out says where the machine is (``VirtualMachine.not_booted``). With ``stall`` too, a boot whose
        serial console stops changing for that long before user space fails with ``StalledBoot``."""
        def answered() -> bool:
            if machine is not None and not machine.running():
                raise AssertionError(machine.stopped_report())
            if machine is not None and stall is not None:
                machine.check_progress(stall)
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(PING_WAIT)
                try:
                    sock.connect(str(self.path))
                except OSError:  # QEMU's socket not there yet, or not taking connections
                    sock.close()
                    return False
                self._sock = sock
            try:
                self.request({"op": "ping"}, timeout=PING_WAIT)
                return True
            except TimeoutError:
                return False  # a busy guest: ping again on the same connection (a late answer is skipped)
            except OSError:
                self.close()  # the connection dropped
                return False
        try:
            wait_for(answered, "the test agent in the guest answering", deadline)
        except AssertionError as exc:
            if machine is None or not machine.running():
                raise
            raise machine.not_booted(exc) from None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._pending = b""

    def request(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request; its answer (an earlier request's late answer is skipped)."""
        if self._sock is None:
            raise GuestError("not connected to the test agent")
        ident = next(self._ids)
        self._sock.sendall((json.dumps({**request, "id": ident}) + "\n").encode())
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                reply: dict[str, Any] = json.loads(line)
                if reply.get("id") == ident:
                    if "error" in reply:
                        raise GuestError(f"the agent could not {request.get('op')} "
                                         f"{request.get('cmd') or request.get('path') or ''}: {reply['error']}")
                    return reply
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from the test agent within {timeout:.0f} s to {request.get('op')}")
            self._sock.settimeout(left)
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise GuestError("the test agent's port closed (QEMU stopped?)")
            self._pending += chunk

    def run(self, cmd: str, timeout: float = 60.0, stdin: bytes = b"") -> tuple[int, str]:
        """Run a shell command as root in the guest; (exit status, stdout). Stderr is in ``last_stderr``."""
        reply = self.request({"op": "run", "cmd": cmd, "timeout": timeout, "input": base64.b64encode(stdin).decode()},
                             timeout + ANSWER_MARGIN)
        self.last_stderr = base64.b64decode(reply["err"]).decode(errors="replace")
        return int(reply["rc"]), base64.b64decode(reply["out"]).decode(errors="replace")

    def check(self, cmd: str, timeout: float = 60.0) -> str:
        """Run a command that must succeed; its stdout."""
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise GuestError(f"in the guest, {cmd!r} exited {rc}: {self.last_stderr.strip()[-2000:]} {out[-1000:]}")
        return out

    def control(self, payload: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """One request to the appliance's control socket in the guest (as root, with the guest's python3);
        its answer's ``result``. The socket's path is the imported station's."""
        rc, out = self.run(f"python3 -c {shlex.quote(CONTROL_CLIENT)}", timeout, json.dumps(payload).encode())
        if rc != 0:
            raise GuestError(f"control request {payload.get('cmd')!r}: {self.last_stderr.strip()[-1000:]}")
        answer: dict[str, Any] = json.loads(out)
        if not answer.get("ok"):
            raise GuestError(f"the appliance refused {payload.get('cmd')!r}: {answer.get('error')}")
        return dict(answer.get("result") or {})

    def spawn(self, cmd: str, log: str = "/dev/null") -> int:
        """Start a command in its own session without waiting; its pid in the guest."""
        return int(self.request({"op": "spawn", "cmd": cmd, "log": log}, ANSWER_MARGIN)["pid"])

    def push(self, data: bytes | Path, path: str, mode: int = 0o644) -> None:
        """Write ``data`` (bytes, or a host file's content) to ``path`` in the guest."""
        content = data.read_bytes() if isinstance(data, Path) else data
        self.request({"op": "put", "path": path, "data": base64.b64encode(content).decode(), "mode": mode},
                     ANSWER_MARGIN + len(content) / 1e6)

    def pull(self, path: str) -> bytes:
        """The content of the guest's file ``path``."""
        return base64.b64decode(self.request({"op": "get", "path": path}, ANSWER_MARGIN)["data"])


@dataclass
class ProbedUnit:
    """A booted test copy: the machine (``vm.VirtualMachine``) and the channel into it."""

    vm: VirtualMachine
    guest: Guest

    def stop(self) -> None:
        self.guest.close()
        self.vm.stop()


def boot_probed_unit(workdir: Path, *, voters: int = 50, extra: list[str] | None = None,
                     kiosk: bool = True) -> ProbedUnit:
    """Build the image if needed, make a test copy with the agent, boot it with a demo station's stick.

    ``extra`` adds QEMU arguments (devices); ``kiosk`` false boots without the kiosk (``make_test_copy``).
    Returns once the agent answers; the appliance may still be starting (``vm.wait_until_ready``).
    """
    image = build_image("amd64")
    copy = make_test_copy(image, workdir / "test-copy" / image.name, kiosk=kiosk)
    stick, station = make_stick(workdir, voters=voters)
    vm = VirtualMachine(workdir, copy, stick, station)
    shutil.rmtree(copy.parent)  # the machine keeps its own copy in ``workdir``
    socket_path = workdir / "agent.sock"
    vm.extra += [
        "-device", "virtio-serial-pci,id=vser0",
        "-chardev", f"socket,id=agent,path={socket_path},server=on,wait=off",
        "-device", f"virtserialport,bus=vser0.0,chardev=agent,name={PORT_NAME}",
        *(extra or []),
    ]
    vm.start()
    guest = Guest(socket_path)
    try:
        try:
            guest.connect(BOOT_DEADLINE[vm.accel], vm, stall=BOOT_STALL[vm.accel])
        except StalledBoot as stalled:
            # The emulator's fault, not the unit's: the firmware (OVMF, which no unit runs) or the kernel's
            # first seconds stopped under QEMU's emulation ("Resets under emulation" in docs/image.md).
            # Said as a warning with where the machine was (also kept as hang-boot-1.txt), then one more
            # power-on of the same disk; a second stall fails.
            told = str(stalled).splitlines()
            warnings.warn(PoweredOnAgain(f"{told[0]}; powered on again. {told[-1].removeprefix('-- ')}; where the "
                                         f"machine was: {workdir / 'hang-boot-1.txt'}"), stacklevel=2)
            vm.power_cut()
            vm.start()
            guest.close()
            guest.connect(BOOT_DEADLINE[vm.accel], vm, stall=BOOT_STALL[vm.accel])
    except BaseException:
        vm.stop()
        raise
    return ProbedUnit(vm, guest)


@contextmanager
def booted_unit(workdir: Path, *, voters: int = 50, extra: list[str] | None = None, ready: bool = True,
                kiosk: bool = True) -> Iterator[ProbedUnit]:
    """A booted test copy for the length of a ``with`` block (a module's fixture): skipped where this host
    cannot boot the image (``host_can_boot``), else booted (``boot_probed_unit``), with the appliance
    started and the chair's screen answering unless ``ready`` is false, and powered off at the end."""
    reason = host_can_boot()
    if reason:
        pytest.skip(reason)
    unit = boot_probed_unit(workdir, voters=voters, extra=extra, kiosk=kiosk)
    try:
        if ready:
            unit.vm.wait_until_ready()
        yield unit
    finally:
        unit.stop()


STATION_CONFIG = "/var/lib/pollbox/station/station.toml"
EMULATION_WATCHDOG = "60s"
"""``WatchdogSec`` of pollbox.service in the guests whose appliance is switched to another part (10 s in
the image): with other emulated machines on the same two cores the appliance has missed the 10 s watchdog
and been restarted mid-test."""
WATCHDOG_DROP_IN = "/run/systemd/system/pollbox.service.d/test-emulation.conf"


def _toml_table(name: str, table: dict[str, str | int] | dict[str, str | int | float]) -> str:
    """``[name]`` and its keys as TOML text (a JSON string or number is a TOML one too)."""
    return f"\n[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())


def restart_appliance_with(guest: Guest, key: str, value: str, table: dict[str, str | int], *,
                           timeout: float) -> None:
    """Switch the unit's appliance to ``key = "value"`` (``scanner``, ``ballot_box``) from the simulated
    part, with its ``[hardware.<value>]`` table, and restart pollbox.service (under the raised watchdog).

    Each call starts from the station's config as the stick wrote it (kept beside it as ``.orig``), so
    one switch does not carry over into the next."""
    restart_appliance_with_parts(guest, {key: (value, table)}, timeout=timeout)


def restart_appliance_with_parts(guest: Guest, parts: dict[str, tuple[str, dict[str, str | int]]], *,
                                 tables: dict[str, dict[str, str | int | float]] | None = None,
                                 service: dict[str, str] | None = None, timeout: float) -> None:
    """``restart_appliance_with`` for several parts at once (a box and a scanner: ``{"ballot_box": ("gpio",
    {...}), "scanner": ("keyboard", {...})}``), more top-level tables of the config (``{"delays": {...}}``)
    and more ``[Service]`` settings of pollbox.service (``{"TimeoutStopSec": "120"}``), in the same
    drop-in as the raised watchdog. Each call starts again from the stick's config and the image's unit."""
    config = STATION_CONFIG
    edits = [f"cp -n {config} {config}.orig && cp {config}.orig {config}"]
    appended = ""
    for key, (value, table) in parts.items():
        edits.append(f"sed -i 's/^{key} = \"sim\"$/{key} = \"{value}\"/' {config}"
                     f" && grep -q '^{key} = \"{value}\"$' {config}")
        appended += _toml_table(f"hardware.{value}", table)
    for name, values in (tables or {}).items():
        appended += _toml_table(name, values)
    edits.append(f"printf %s {shlex.quote(appended)} >> {config}")
    guest.check(" && ".join(edits))
    settings = {"WatchdogSec": EMULATION_WATCHDOG, **(service or {})}
    drop_in = "[Service]\n" + "".join(f"{k}={v}\n" for k, v in settings.items())
    guest.check(f"mkdir -p {WATCHDOG_DROP_IN.rsplit('/', 1)[0]}"
                f" && printf %s {shlex.quote(drop_in)} > {WATCHDOG_DROP_IN}"
                " && systemctl daemon-reload && systemctl restart pollbox.service", timeout=timeout)

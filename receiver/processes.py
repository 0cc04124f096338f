"""Several receiver processes behind one port (``pollbox-receiver serve --processes N``).

One receiver process verifies signatures on every core (libsodium lets go of
Python's global lock), but everything else a batch costs (HTTP, parsing, the
checks, the writer's work) runs under that lock: one process gets about one
core of it. ``--processes N`` starts N receiver processes that share the
listening port, so that work runs on N cores:

- the parent builds the receiver once (the schema, the registry's index) so
  the children never race to create them, then opens N listening sockets on
  the same address with ``SO_REUSEPORT``; the kernel spreads new connections
  over them (a unit keeps its connection, so each unit talks to one process
  until it reconnects);
- each child is ``pollbox-receiver serve`` again, handed one socket by its
  descriptor (``--listen-fd``), with its own waitress threads and its own group
  writer;
- the parent only waits: SIGTERM or SIGINT stops every child; when a child
  ends by itself the parent stops the others and exits with its status, so the
  service manager restarts the whole receiver; a child asks the kernel for
  SIGTERM when its parent dies (``follow_parent``, Linux), so a parent killed
  with SIGKILL leaves no receiver process behind.

Every guarantee of one process holds for several, because they already hold
for several receivers on one database (docs/receiver.md, scale-out): each
process answers a batch only after its own commit is durable; SQLite takes its
write lock up front (``BEGIN IMMEDIATE``), so the processes' groups commit one
after the other, and PostgreSQL locks the station's row; a station's records are
sequenced under that lock, so a record is stored once whichever process
received it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

log = logging.getLogger("pollbox.receiver.processes")

BACKLOG = 1024
PARENT_ENV = "POLLBOX_RECEIVER_PARENT"
"""The parent's pid, in each child's environment."""
PR_SET_PDEATHSIG = 1


def listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets listening on the same (host, port), the kernel balancing connections between them.

    Port 0 picks a free port for the first socket; the others take the same one.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(sockets[0].getsockname() if len(sockets) > 1 else address)
            sock.listen(BACKLOG)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def run_children(argv: Sequence[str], sockets: Sequence[socket.socket]) -> int:
    """Run ``pollbox-receiver <argv> --processes 1 --listen-fd FD`` once per socket; wait as described above."""
    children: list[subprocess.Popen[bytes]] = []
    asked = False  # a signal asked the receiver to stop

    def stop(signum: int) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal asked
        asked = True
        stop(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for sock in sockets:
            fd = sock.fileno()
            children.append(subprocess.Popen([sys.executable, "-m", "receiver.cli", *argv, "--processes", "1",
                                              "--listen-fd", str(fd)], pass_fds=(fd,),
                                             env={**os.environ, PARENT_ENV: str(os.getpid())}))
        for sock in sockets:
            sock.close()  # the children hold them now
        log.info("receiver processes %s started", ", ".join(str(c.pid) for c in children))
        status = _wait_first(children)
        if not asked:
            log.error("a receiver process ended with status %s; stopping the others", status)
            stop(signal.SIGTERM)
        for child in children:
            child.wait()
        return 0 if asked else (status or 1)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait_first(children: Sequence[subprocess.Popen[bytes]]) -> int:
    """The exit status of the first child to end (a signal as 128 + its number)."""
    pids = {child.pid: child for child in children}
    while True:
        try:
            pid, status = os.wait()
        except InterruptedError:  # pragma: no cover (retried by Python itself since PEP 475)
            continue
        if pid in pids:
            pids[pid].returncode = os.waitstatus_to_exitcode(status)
            code = pids[pid].returncode
            return 128 - code if code < 0 else code


def follow_parent() -> None:
    """In a child: SIGTERM from the kernel when the parent dies (Linux ``prctl``); exit now if it already has."""
    parent = int(os.environ.get(PARENT_ENV) or 0)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the service manager stops the whole group
        log.warning("this system cannot stop a receiver process when its parent dies")
    if parent and os.getppid() != parent:
        log.error("the parent receiver process %d has ended; this one stops too", parent)
        raise SystemExit(1)

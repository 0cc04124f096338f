"""The test agent inside a booted *test copy* of the image: runs what the host's tests ask, as root.

This file exists only in tests. ``tests/image/guest.py`` writes it into a copy of the built image
(never into the image itself) with a systemd unit, and talks to it over the virtio-serial port
``/dev/virtio-ports/pollbox.test``. It uses the guest's own ``/usr/bin/python3`` and the standard
library only.

Protocol: one JSON object a line each way. A request has an ``id`` and an ``op``:

- ``run``: ``cmd`` (a shell command), ``timeout`` (seconds), ``input`` (base64 of stdin) ->
  ``rc``, ``out``, ``err`` (base64);
- ``spawn``: ``cmd``, ``log`` (a file for its output) -> ``pid`` (a new session, not waited for);
- ``put``: ``path``, ``data`` (base64), ``mode`` -> ``{}``;
- ``get``: ``path`` -> ``data`` (base64);
- ``ping`` -> ``{}``.

A failure of the request itself is answered with ``error``.
"""

from __future__ import annotations

import base64
import json
import os
import select
import subprocess
import time
from typing import Any

PORT = "/dev/virtio-ports/pollbox.test"
WAIT = 0.2
"""How often the agent looks again for its port, or for a host that is not connected."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def handle(request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "ping":
        return {}
    if op == "run":
        try:
            done = subprocess.run(["/bin/sh", "-c", request["cmd"]], input=base64.b64decode(request.get("input", "")),
                                  capture_output=True, timeout=float(request.get("timeout", 60)))
        except subprocess.TimeoutExpired as exc:
            return {"error": f"timed out after {exc.timeout} s", "out": _b64(exc.stdout or b""),
                    "err": _b64(exc.stderr or b"")}
        return {"rc": done.returncode, "out": _b64(done.stdout), "err": _b64(done.stderr)}
    if op == "spawn":
        with open(request.get("log", "/dev/null"), "ab") as log:
            child = subprocess.Popen(["/bin/sh", "-c", request["cmd"]], stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return {"pid": child.pid}
    if op == "put":
        path = request["path"]
        partial = f"{path}.partial"
        with open(partial, "wb") as out:
            out.write(base64.b64decode(request["data"]))
        os.chmod(partial, int(request.get("mode", 0o644)))
        os.replace(partial, path)
        return {}
    if op == "get":
        with open(request["path"], "rb") as source:
            return {"data": _b64(source.read())}
    return {"error": f"unknown op {op!r}"}


def reap() -> None:
    """Collect spawned children that ended, so none is left a zombie."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def serve(fd: int) -> None:
    pending = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        reap()
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:  # no host connected: the port reads as closed until one connects
            time.sleep(WAIT)
            continue
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request: dict[str, Any] = {}
            try:
                request = json.loads(line)
                reply = handle(request)
            except Exception as exc:  # the agent must outlive any bad request
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            reply["id"] = request.get("id")
            data = (json.dumps(reply) + "\n").encode()
            while data:
                data = data[os.write(fd, data):]


def main() -> None:
    while not os.path.exists(PORT):
        time.sleep(WAIT)
    serve(os.open(PORT, os.O_RDWR))


if __name__ == "__main__":
    main()

"""systemd integration: readiness and watchdog notifications over $NOTIFY_SOCKET.

A no-op when the appliance is not started by systemd (no ``NOTIFY_SOCKET``).
The unit file uses ``Type=notify`` and ``WatchdogSec``; the appliance loop
calls ``notify("WATCHDOG=1")`` on each healthy tick.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send one sd_notify message; returns False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(address)
        s.sendall(message.encode())
    return True

"""A link to the receiver that can be cut and restored by hand (simulation only).

``SwitchableUplink`` wraps a real uplink. While cut, every call fails as a dead
link would (``LinkDown``); restored, calls pass through. The developer panel and
demos use it to show the outbox filling up and draining when the link returns.
It is chosen by name in the simulation configuration and refuses to exist in
production mode.
"""

from __future__ import annotations

import threading

from device.upstream.uplink import LinkDown, Reply, Uplink


class SwitchableUplink:
    """An uplink with a switch: ``cut_link()`` / ``restore_link()``."""

    name = "switchable"

    def __init__(self, inner: Uplink, *, mode: str) -> None:
        if mode != "simulation":
            raise ValueError("the switchable uplink is a simulation backend; it cannot be used in production mode")
        self._inner = inner
        self._up = threading.Event()
        self._up.set()

    @property
    def link_up(self) -> bool:
        return self._up.is_set()

    def cut_link(self) -> None:
        self._up.clear()
        self._inner.close()

    def restore_link(self) -> None:
        self._up.set()

    def send(self, batch: bytes) -> Reply:
        self._check()
        return self._inner.send(batch)

    def probe(self) -> Reply:
        self._check()
        return self._inner.probe()

    def close(self) -> None:
        self._inner.close()

    def _check(self) -> None:
        if not self._up.is_set():
            raise LinkDown("the link to the receiver is cut (simulation switch)")

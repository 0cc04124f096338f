"""A waitress server that runs on its own thread and stops in an orderly way.

The chair's screen under ``pollbox run`` is served this way (the main thread
keeps the appliance and the signal handlers), and so are the receivers and
stations that tests and benchmarks start inside one process.

Stopping a waitress server from another thread is delicate: a worker thread
that finishes a request wakes the event loop through the server's "trigger"
pipe, so that pipe must stay open until every worker has ended. ``stop``
therefore goes in this order:

1. the event loop is told to stop and its thread is joined (nothing is
   accepted or read any more);
2. every client connection is closed, so a worker still writing (a live
   ``/events`` stream, a slow reply) gets "client disconnected" and ends;
3. the worker threads are joined;
4. only then the listening socket and the trigger pipe are closed.
"""

from __future__ import annotations

import threading
from typing import Any

LOOP_ROUND_SECONDS = 0.05
"""How long one round of the event loop waits for socket activity; bounds how long ``stop`` waits for the loop."""

WORKERS_GRACE_SECONDS = 5.0
"""How long ``stop`` waits for worker threads after their connections are closed."""


class ServerThread:
    """``server`` (made by ``waitress.server.create_server``) served on a daemon thread until ``stop``."""

    def __init__(self, server: Any, name: str = "http") -> None:
        self.server = server
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._stopped = False

    @property
    def port(self) -> int:
        """The port actually bound (useful when the server was created with port 0)."""
        return int(self.server.effective_port)

    def start(self) -> ServerThread:
        self._thread.start()
        return self

    def _loop(self) -> None:
        from waitress import wasyncore

        channels = self.server._map
        while not self._stop.is_set():
            wasyncore.loop(timeout=LOOP_ROUND_SECONDS, map=channels, count=1)

    def stop(self) -> None:
        """Stop serving and release every socket and thread; a second call does nothing."""
        if self._stopped:
            return
        self._stopped = True
        from waitress import wasyncore
        from waitress.channel import HTTPChannel

        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        channels = self.server._map
        for channel in list(channels.values()):
            if isinstance(channel, HTTPChannel):
                channel.handle_close()
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=WORKERS_GRACE_SECONDS)
        wasyncore.close_all(channels)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Chair sessions known to the server, so a logged-out cookie is dead.

The session cookie is signed, not secret-free: anyone who copied it could
replay it. So each chair login gets a random nonce; the cookie carries the
nonce, and the server keeps the SHA-256 of every live nonce with the time the
chair logged in. Logging out (or an idle session found expired) forgets the
nonce, and a copy of the old cookie no longer opens anything.

The live set is kept in ``chair_sessions.json`` in the web instance folder
(rewritten atomically, mode 0600) so a restart of the unit does not log the
chair out. If the file cannot be written (a full disk), the set in memory is
the truth until a write succeeds. Nonces older than ``max_age`` seconds are
dropped, and at most ``MAX_LIVE`` are kept (the oldest go first).

Wiring: ``create_app`` builds one ``ChairSessions``; ``chair.py`` calls
``begin``, ``is_live`` and ``end``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
from pathlib import Path

from device.files import write_private

log = logging.getLogger("pollbox.web.sessions")

FORMAT = "pollbox-chair-sessions/1"
MAX_LIVE = 16


def _digest(nonce: str) -> str:
    return hashlib.sha256(nonce.encode("ascii", "replace")).hexdigest()


def _load(path: Path) -> dict[str, float]:
    """The live set stored at ``path``; a missing or unreadable file means nobody is logged in."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        log.warning("chair sessions file %s is unusable (%s); every chair must log in again", path.name, exc)
        return {}
    live = doc.get("live") if isinstance(doc, dict) and doc.get("format") == FORMAT else None
    if not isinstance(live, dict):
        return {}
    return {str(k): float(v) for k, v in live.items() if isinstance(v, (int, float))}


class ChairSessions:
    """The nonces of the chair sessions that are still logged in. Thread-safe."""

    def __init__(self, path: Path, *, max_age: float) -> None:
        self.path, self.max_age = path, max_age
        self._lock = threading.Lock()
        self._live = _load(path)

    def begin(self, now: float) -> str:
        """A new live session at wall time ``now``: the nonce for the cookie."""
        nonce = secrets.token_urlsafe(24)
        with self._lock:
            live = {k: t for k, t in self._live.items() if now - t < self.max_age}
            live[_digest(nonce)] = now
            self._live = dict(sorted(live.items(), key=lambda kv: kv[1])[-MAX_LIVE:])
            self._save()
        return nonce

    def is_live(self, nonce: object, now: float) -> bool:
        """Whether ``nonce`` (from a cookie) belongs to a session that was not ended."""
        if not isinstance(nonce, str) or not nonce:
            return False
        started = self._live.get(_digest(nonce))
        return started is not None and now - started < self.max_age

    def end(self, nonce: object) -> None:
        """Forget ``nonce``: any copy of its cookie is dead from now on."""
        if not isinstance(nonce, str):
            return
        with self._lock:
            if self._live.pop(_digest(nonce), None) is not None:
                self._save()

    def _save(self) -> None:
        doc = {"format": FORMAT, "live": self._live}
        try:
            write_private(self.path, json.dumps(doc, sort_keys=True).encode())
        except OSError as exc:
            log.warning("chair sessions cannot be saved to %s (%s); kept in memory until they can be",
                        self.path.name, exc.strerror or exc)

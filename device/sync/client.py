"""The sync client: a thread that pulls the other units' records and posts them to the owner.

Every ``Delays.sync_every`` seconds it asks each peer at its package address (or, when the package gives
none or it does not answer, at the address mDNS found for it: ``discovery.py``), for every other unit of
the station, for the records after the last one this unit holds (``UnitLog.held``): a peer passes on
the records it holds of a third unit too, so a record reaches every unit that can reach any unit that
has it. Each record is checked (``wire.check_record``: station, enrolled key, signature); what checks
out goes to the owner as one ``PeerRecords`` input, what does not as ``PeerRefused`` (with the reason,
for the journal), and the peer's clock as ``PeerClock``. The client never calls into the owner: it posts,
then waits on the ``UnitLog`` until the owner applied the records (or ``Delays.sync_timeout`` passed),
so the next pull starts after them. A pull that fails leaves everything as it was: the next round
starts again from the last record held (resumable, idempotent).
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from device.core import session as ss
from device.core.delays import Delays

from . import wire
from .log import UnitLog
from .units import StationUnits

log = logging.getLogger("pollbox.sync")
Fetch = Callable[[str, float, dict[str, str]], bytes]


class Links:
    """Which peers' links are cut (simulation: the demo panel's switches); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cut: set[str] = set()

    def set(self, peer: str, up: bool) -> None:
        with self._lock:
            (self._cut.discard if up else self._cut.add)(peer)

    def is_cut(self, peer: str) -> bool:
        with self._lock:
            return peer in self._cut

    def cut(self) -> list[str]:
        with self._lock:
            return sorted(self._cut)


@dataclass
class PeerSeen:
    """What this unit knows of one peer: when it last answered, how far it held each unit, the last error."""

    reached_at: float | None = None
    answered: bool = False
    """Whether it answered in the last round that tried it (a cut link or a failed pull: not); a round in
    progress leaves the last one's word until it ends."""
    replies: int = 0
    """Messages received from it so far (a round that adds none did not reach it)."""
    held: dict[str, int] = field(default_factory=dict)
    error: str = ""
    reported: str = ""
    """The last whole-message refusal journaled for this peer (the same one is not journaled again)."""
    address: str = ""
    found_by: str = ""
    """How the address that last answered was known: ``package`` or ``mdns``."""


def http_fetch(url: str, timeout: float, headers: dict[str, str]) -> bytes:
    """GET ``url``; reads at most one byte more than ``wire.MAX_MESSAGE`` (a larger answer is refused unread)."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as answer:  # noqa: S310
        return bytes(answer.read(wire.MAX_MESSAGE + 1))


class SyncClient:
    """Pulls from the peers with an address; ``run_once`` is one round (tests drive it directly)."""

    def __init__(self, *, units: StationUnits, log_: UnitLog, links: Links, post: Callable[[ss.Input], None],
                 wall: Callable[[], float], delays: Delays, fetch: Fetch = http_fetch,
                 discovered: Callable[[str], str | None] = lambda unit: None) -> None:
        self.units, self.log, self.links, self._post = units, log_, links, post
        self._discovered = discovered
        self._wall, self._delays, self._fetch = wall, delays, fetch
        self.peers = {u.id: PeerSeen() for u in units.units.peers}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="pollbox-sync-client", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._delays.sync_timeout + 5.0)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the sync thread survives anything a peer sends; the next round starts afresh
                log.exception("sync round failed")
            self._stop.wait(self._delays.sync_every)

    def run_once(self) -> None:
        """One round: every reachable peer, every other unit, until nothing new."""
        for peer in self.units.units.peers:
            if self._stop.is_set():
                return
            with self._lock:
                before = self.peers[peer.id].replies
            if self.links.is_cut(peer.id):
                with self._lock:
                    self.peers[peer.id].answered = False
                continue
            for address, how in self.candidates(peer.id, peer.address):
                try:
                    others = [u.id for u in self.units.units.units if u.id != self.units.units.own]
                    for n, unit in enumerate(others):
                        self._pull(peer.id, address, unit, first=n == 0)
                except (OSError, urllib.error.URLError, wire.MessageRefused) as exc:
                    with self._lock:
                        self.peers[peer.id].error = f"{address}: {exc}"
                    continue
                with self._lock:
                    self.peers[peer.id].address, self.peers[peer.id].found_by = address, how
                break
            with self._lock:  # the last round's word stands while this one asks (the screen does not flicker)
                if self.peers[peer.id].replies == before:
                    self.peers[peer.id].answered = False  # no answer at any address in this round

    def candidates(self, peer: str, static: str) -> list[tuple[str, str]]:
        """Where to pull ``peer`` from this round, in order: the package's address first (CEC-signed), then
        the one mDNS found, if another."""
        out = [(static, "package")] if static else []
        found = self._discovered(peer)
        if found and found != static:
            out.append((found, "mdns"))
        return out

    def _pull(self, peer: str, address: str, unit: str, first: bool) -> None:
        while True:
            after = self.log.held(unit)
            t0 = self._wall()
            raw = self._fetch(f"http://{address}/units/records?unit={unit}&after={after}", self._delays.sync_timeout,
                              {"X-Pollbox-Unit": self.units.units.own})
            t1 = self._wall()
            try:
                msg = wire.read_message(raw, self.units.units.station)
            except wire.MessageRefused as exc:
                self._refused_message(peer, str(exc))
                raise
            with self._lock:
                seen = self.peers[peer]
                seen.reached_at, seen.held, seen.error, seen.answered = t1, dict(msg.held), "", True
                seen.replies += 1
            if first:
                self._post(ss.PeerClock(peer, msg.now - (t0 + t1) / 2))
            good = self._post_records(msg.records, unit)
            if good and not self.log.wait_held(unit, good, self._delays.sync_timeout):
                return
            if len(msg.records) < wire.MAX_RECORDS:
                self._post_close(msg.close, unit)
                return

    def _post_records(self, items: list[Any], unit: str) -> int:
        """Check and post the records; returns the highest seq of ``unit`` posted (0 if none)."""
        records, top = [], 0
        for item in items:
            checked = wire.check_record(item, self.units.keys, self.units.units.station)
            if isinstance(checked, wire.Refusal):
                self._post(ss.PeerRefused(checked.unit, checked.seq, checked.reason))
            else:
                records.append(checked)
                top = max(top, checked.seq) if checked.unit == unit else top
        if records:
            self._post(ss.PeerRecords(tuple(records)))
        return top

    def _post_close(self, item: Any, unit: str) -> None:
        """The unit's close record, once this unit holds its check-ins and not yet its close."""
        if item is None or unit in self.log.closed():
            return
        checked = wire.check_close(item, self.units.keys, self.units.units.station)
        if isinstance(checked, wire.Refusal):
            self._post(ss.PeerRefused(checked.unit, checked.seq, checked.reason))
        elif checked.unit == unit:
            self._post(ss.PeerRecords((), (checked,)))

    def _refused_message(self, peer: str, why: str) -> None:
        with self._lock:
            seen = self.peers[peer]
            if seen.reported == why:
                return
            seen.reported = why
        self._post(ss.PeerRefused(peer, None, f"a message from unit {peer}: {why}"))

    def status(self) -> dict[str, Any]:
        """Per peer: reachable, when last reached, how far this unit holds it against its own count."""
        held = self.log.held_all()
        out: dict[str, Any] = {}
        with self._lock:
            for peer, seen in self.peers.items():
                own = seen.held.get(peer)
                out[peer] = {"reached_at": seen.reached_at, "error": seen.error, "cut": self.links.is_cut(peer),
                             "address": seen.address, "found_by": seen.found_by,
                             "held": held.get(peer, 0), "their_count": own, "answered": seen.answered,
                             "up_to_date": seen.answered and own is not None and held.get(peer, 0) >= own}
        return out

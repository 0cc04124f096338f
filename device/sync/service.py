"""``UnitSync``: the sync layer of one unit, as the composition root builds it and the appliance drives it.

It bundles the ``UnitLog`` (what this unit serves, how far it holds each unit), the ``Links`` (cut
in simulation), the ``SyncServer`` on this unit's package address (or ``[unit] listen``), the
``SyncClient`` thread, and with ``discovery="mdns"`` the ``Discovery`` that announces this unit and finds
the others on the LAN (``discovery.py``; the package's addresses are still tried first). The
appliance calls ``catch_up`` on its owner thread after each commit, and ``start``/``close`` with its own
life cycle; the client posts its inputs through ``post``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from device.core import session as ss
from device.core.delays import Delays
from device.core.units import Replica
from protocol.errors import UserError
from protocol.keys import alg_of, key_id

from .client import Fetch, Links, SyncClient, http_fetch
from .discovery import Discovery
from .log import UnitLog
from .server import SyncServer
from .units import StationUnits
from .wire import RecordKey


class SyncListenError(UserError):
    """The sync server cannot listen where the package or ``[unit] listen`` says."""


class UnitSync:
    """Server, client and log of one unit of a station with several units."""

    def __init__(self, *, units: StationUnits, key: RecordKey, wall: Callable[[], float], delays: Delays,
                 listen: str = "", simulation: bool = False, fetch: Fetch = http_fetch,
                 discovery: str = "static") -> None:
        self.units = units
        self.log = UnitLog(units.units.station, units.units.own, key,
                           {uid: alg_of(k) for uid, k in units.keys.items()})
        self.links = Links()
        self._post: Callable[[ss.Input], None] = lambda inp: None
        address = listen or units.own.address
        self.discovery: Discovery | None = None
        if discovery == "mdns":
            self.discovery = Discovery(station=units.units.station, own=units.units.own,
                                       own_key_id=key_id(key.public_key()),
                                       enrolled={uid: key_id(k) for uid, k in units.keys.items()},
                                       listen=address, wall=wall)
        found = self.discovery.address if self.discovery is not None else (lambda unit: None)
        self.client = SyncClient(units=units, log_=self.log, links=self.links, post=lambda i: self._post(i),
                                 wall=wall, delays=delays, fetch=fetch, discovered=found)
        self.server: SyncServer | None = None
        if address:
            host, _, port = address.rpartition(":")
            try:
                self.server = SyncServer(host=host.strip("[]"), port=int(port), log_=self.log, links=self.links,
                                         wall=wall, status=self.status, simulation=simulation)
            except (OSError, ValueError) as exc:
                raise SyncListenError(f"unit {units.units.own} cannot listen for the other units on {address} "
                                      f"({exc}); check [unit] listen and the package's address for this unit") from None

    def attach(self, post: Callable[[ss.Input], None]) -> None:
        """Where the client posts its inputs (the appliance's owner)."""
        self._post = post

    def catch_up(self, replica: Replica) -> None:
        self.log.catch_up(replica)

    def start(self) -> None:
        if self.server is not None:
            self.server.start()
        if self.discovery is not None:
            self.discovery.start()
        self.client.start()

    def close(self) -> None:
        self.client.close()
        if self.discovery is not None:
            self.discovery.close()
        if self.server is not None:
            self.server.close()

    def status(self) -> dict[str, Any]:
        """This unit, how far it holds each unit, each peer's state; ``up_to_date`` when every peer is."""
        peers = self.client.status()
        return {"station": self.units.units.station, "unit": self.units.units.own,
                "role": self.units.own.role.value, "held": self.log.held_all(), "closed": self.log.closed(),
                "peers": peers,
                "up_to_date": all(p["up_to_date"] for p in peers.values())}

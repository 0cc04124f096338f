"""mDNS discovery of the station's other units on the station LAN (``[unit] discovery = "mdns"``).

Each unit advertises its sync server as a ``_pollbox._tcp`` service (multicast DNS, through the
``zeroconf`` library; Avahi and Bonjour see it too) whose TXT record names its ``station``, its ``unit``
id and the ``key`` id it was enrolled with, and browses for the others. A service of another station, of
a unit the package does not list, of this unit itself, or announcing a key that is not the one the package
enrolled for that unit, is ignored. What is found is only an address: every record pulled from it is still
checked against the unit's enrolled key (``wire.check_record``), so a forged announcement can at worst
point a unit at a server whose records are all refused (and journaled), as a cut link would.

**Which address wins.** The package's static address, when the package gives one, is tried first: it
is signed by the CEC, so an mDNS answer (which anyone on the LAN can send) can never divert a unit whose
static address answers. The address found by mDNS is tried when the package gives none for that unit, or
when its static address did not answer in that round (a unit that got another DHCP lease, a package
written before the LAN was known). ``SyncClient`` asks ``Discovery.address`` for each peer every round.

Wiring: ``UnitSync`` (``service.py``) builds a ``Discovery`` when the config asks for it, starts it with
the sync server and closes it with it. Registration probes the LAN for a few hundred milliseconds, so it
runs on the zeroconf threads, never on the owner's. ``zeroconf`` is imported only in this module, and
only when discovery is on.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from protocol.errors import UserError

log = logging.getLogger("pollbox.sync.discovery")

SERVICE_TYPE = "_pollbox._tcp.local."
TXT_VERSION = "1"
MAX_INSTANCE = 63  # bytes of a DNS label
RESOLVE_MS = 3000


class DiscoveryError(UserError):
    """mDNS discovery cannot start (the library is missing, or no interface can take multicast)."""


@dataclass(frozen=True)
class Found:
    """A peer unit announced on the LAN: its sync server's address and when it was last seen."""

    unit: str
    address: str
    seen_at: float


def instance_name(station: str, unit: str) -> str:
    """The service instance name of a unit: readable, within one DNS label."""
    name = f"pollbox {station} {unit}".encode()[:MAX_INSTANCE].decode("utf-8", "ignore")
    return f"{name}.{SERVICE_TYPE}"


def advertised_addresses(host: str) -> list[str]:
    """The IPv4 addresses to announce for a server listening on ``host``: that address, or for a wildcard
    (``0.0.0.0``, "") every non-loopback IPv4 address of the unit's interfaces."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and not ip.is_unspecified:
        return [str(ip)] if ip.version == 4 else []
    import ifaddr  # zeroconf's own dependency

    out: list[str] = []
    for adapter in ifaddr.get_adapters():
        for item in adapter.ips:
            if isinstance(item.ip, str) and not ipaddress.ip_address(item.ip).is_loopback:
                out.append(item.ip)
    return sorted(set(out))


def peer_from_txt(properties: Mapping[bytes, bytes | None], station: str, own: str,
                  enrolled: Mapping[str, str]) -> str | None:
    """The unit id a service's TXT record names, if it is another unit of this station with its enrolled key.

    ``enrolled`` maps each unit id of the package to its key id. None for anything else (another station, an
    unlisted unit, this unit, a different key, another TXT version).
    """
    txt = {k.decode("utf-8", "replace"): (v or b"").decode("utf-8", "replace") for k, v in properties.items()}
    unit = txt.get("unit", "")
    if txt.get("v") != TXT_VERSION or txt.get("station") != station or unit == own or unit not in enrolled:
        return None
    return unit if txt.get("key") == enrolled[unit] else None


class Discovery:
    """Announces this unit's sync server and keeps the addresses of the other units it hears of."""

    def __init__(self, *, station: str, own: str, own_key_id: str, enrolled: Mapping[str, str],
                 listen: str, wall: Callable[[], float] = time.time, interfaces: list[str] | None = None) -> None:
        """``listen`` is this unit's sync server ``host:port`` ("" for none: browse only); ``enrolled`` maps
        every unit id of the package to its key id; ``interfaces`` limits mDNS to those addresses."""
        self.station, self.own, self._enrolled, self._wall = station, own, dict(enrolled), wall
        self._own_key_id, self._listen, self._interfaces = own_key_id, listen, interfaces
        self._found: dict[str, Found] = {}
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()
        self._zc: Any = None
        self._info: Any = None
        self._browser: Any = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    # life cycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the mDNS socket, browse, and announce this unit (the announcement on a thread of its own)."""
        try:
            from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, Zeroconf
        except ImportError:
            raise DiscoveryError('[unit] discovery = "mdns" needs the zeroconf library (pip install zeroconf); '
                                 'install it or set discovery = "static"') from None
        try:
            self._zc = Zeroconf(interfaces=self._interfaces or InterfaceChoice.All, ip_version=IPVersion.V4Only)
        except OSError as exc:
            raise DiscoveryError(f"mDNS discovery cannot open its multicast socket ({exc}); set "
                                 '[unit] discovery = "static" to use the package\'s addresses only') from None
        self._browser = ServiceBrowser(self._zc, SERVICE_TYPE, handlers=[self._on_change])
        if self._listen:
            self._thread = threading.Thread(target=self._announce, name="pollbox-mdns-announce", daemon=True)
            self._thread.start()

    def _announce(self) -> None:
        from zeroconf import ServiceInfo

        host, _, port = self._listen.rpartition(":")
        addresses = advertised_addresses(host.strip("[]"))
        if not addresses:
            log.warning("mDNS: no IPv4 address to announce for %s; this unit only browses", self._listen)
            return
        self._info = ServiceInfo(
            SERVICE_TYPE, instance_name(self.station, self.own), port=int(port),
            addresses=[socket.inet_aton(a) for a in addresses],
            properties={"v": TXT_VERSION, "station": self.station, "unit": self.own, "key": self._own_key_id},
            server=f"pollbox-{self.own}-{self._own_key_id[:8]}.local.")
        try:
            self._zc.register_service(self._info, allow_name_change=True)
            log.info("mDNS: announced unit %s of %s on %s port %s", self.own, self.station, addresses, port)
        except Exception as exc:  # a closed socket at shutdown, a LAN refusing multicast: sync goes on statically
            if not self._closed.is_set():
                log.warning("mDNS: could not announce unit %s: %s", self.own, exc)
            self._info = None

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        zc, self._zc = self._zc, None
        if zc is None:
            return
        try:
            if self._browser is not None:
                self._browser.cancel()
            if self._info is not None:
                zc.unregister_service(self._info)
        finally:
            zc.close()

    # browsing --------------------------------------------------------------------------------------------

    def _on_change(self, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        """A service appeared, changed or left (zeroconf's browser thread)."""
        from zeroconf import ServiceStateChange

        if state_change is ServiceStateChange.Removed:
            with self._lock:
                unit = self._names.pop(name, None)
                if unit is not None:
                    self._found.pop(unit, None)
            return
        info = zeroconf.get_service_info(service_type, name, timeout=RESOLVE_MS)
        if info is None or info.port is None:
            return
        unit = peer_from_txt(info.properties or {}, self.station, self.own, self._enrolled)
        addresses = [a for a in info.parsed_addresses() if ipaddress.ip_address(a).version == 4]
        if unit is None or not addresses:
            log.debug("mDNS: ignored %s (not another unit of %s with its enrolled key)", name, self.station)
            return
        found = Found(unit, f"{addresses[0]}:{info.port}", self._wall())
        with self._lock:
            known = self._found.get(unit)
            self._found[unit] = found
            self._names[name] = unit
        if known is None or known.address != found.address:
            log.info("mDNS: unit %s of %s found at %s", unit, self.station, found.address)

    def address(self, unit: str) -> str | None:
        """The address last announced for ``unit`` (None if it was not heard of, or left)."""
        with self._lock:
            found = self._found.get(unit)
        return None if found is None else found.address

    def found(self) -> dict[str, Found]:
        with self._lock:
            return dict(self._found)

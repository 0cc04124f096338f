"""The uplink: HTTPS client that carries batches to the CEC receiver and brings back its answer.

``HttpUplink`` speaks the HTTP API of ``docs/protocol.md``: ``send`` POSTs a
gzip-compressed batch to ``/api/v1/records``; ``probe`` GETs the station's
current receipt (the cheap call used to notice that the link is back). TLS
trusts only the CEC's certificate authority from the station package (no
system CAs), checks the host name and requires TLS 1.2 or later. Plain
``http://`` is accepted only in simulation mode towards a loopback address.

A transport failure (no connection, reset, timeout) raises ``LinkDown``; a 5xx
or an answer that is not the protocol's JSON raises ``ReceiverTrouble``; 200
and 4xx answers come back as a ``Reply`` for ``service.Upstream`` to judge (it
verifies the receipt itself: the uplink is not trusted).

Wiring: the composition root builds one ``HttpUplink`` from the package's
``receiver`` section (``from_package``) and hands it to ``Upstream``; in
simulation it may be wrapped in ``switchable.SwitchableUplink``.
"""

from __future__ import annotations

import gzip
import http.client
import ipaddress
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from device.hardware.interfaces import UplinkError
from protocol.errors import UserError

CONTENT_TYPE = "application/x-pollbox-batch"
RECORDS_PATH = "/api/v1/records"
RECEIPT_PATH = "/api/v1/stations/{station}/receipt"
DEFAULT_TIMEOUT = 15.0
USER_AGENT = "pollbox-uplink/1"


class UplinkConfigError(UserError, ValueError):
    """The receiver URL or CA cannot be used; the message says what to fix."""


class LinkDown(UplinkError):
    """No answer came back: the connection failed, broke or timed out."""


class ReceiverTrouble(UplinkError):
    """The receiver answered, but with a server error or something that is not the protocol."""


@dataclass(frozen=True)
class Reply:
    """A 200 or 4xx answer of the receiver, as sent (the receipt is not verified yet)."""

    status: int
    receipt: str | None
    error: str | None = None
    reason: str = ""
    seq: int | None = None
    accepted: int = 0
    duplicates: int = 0

    @property
    def ok(self) -> bool:
        return self.status == 200


class Uplink(Protocol):
    """What ``Upstream`` needs from a link to the receiver."""

    def send(self, batch: bytes) -> Reply: ...

    def probe(self) -> Reply: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Target:
    """A checked receiver address."""

    scheme: str
    host: str
    port: int
    base_path: str


def check_url(url: str, mode: str) -> Target:
    """The receiver address, or UplinkConfigError saying why it is not allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UplinkConfigError(f"receiver URL {url!r} must be https://host[:port][/path]")
    if parts.scheme == "http" and not (mode == "simulation" and _is_loopback(parts.hostname)):
        raise UplinkConfigError(f"receiver URL {url!r} is plain HTTP: only https:// is allowed, except in "
                                "simulation mode towards a loopback address")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UplinkConfigError(f"receiver URL {url!r} has an invalid port") from None
    return Target(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pinned_context(ca_pem: str) -> ssl.SSLContext:
    """A client TLS context that trusts exactly the CAs in ``ca_pem``."""
    if "BEGIN CERTIFICATE" not in (ca_pem or ""):
        raise UplinkConfigError("the station package has no receiver CA certificate (receiver.ca_pem); "
                                "an https receiver cannot be trusted without it")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    try:
        context.load_verify_locations(cadata=ca_pem)
    except ssl.SSLError as exc:
        raise UplinkConfigError(f"the receiver CA certificate in the station package is unusable: {exc}") from None
    return context


class HttpUplink:
    """One keep-alive HTTP(S) connection to the receiver, reopened after any failure."""

    def __init__(self, *, url: str, station: str, mode: str, ca_pem: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, unit: str = "") -> None:
        self.target = check_url(url, mode)
        self.station = station
        self.unit = unit  # the probe asks for this unit's chain's receipt ("" : the station's main chain)
        self.timeout = timeout
        self._context = pinned_context(ca_pem or "") if self.target.scheme == "https" else None
        self._conn: http.client.HTTPConnection | None = None

    @classmethod
    def from_package(cls, payload: dict[str, Any], *, station: str, mode: str, url: str | None = None,
                     timeout: float = DEFAULT_TIMEOUT, unit: str = "") -> HttpUplink:
        """Build from the station package's ``receiver`` section (``url`` overrides its URL)."""
        receiver = payload.get("receiver") or {}
        target = url or receiver.get("url")
        if not target:
            raise UplinkConfigError("the station package has no receiver.url and none was configured")
        return cls(url=str(target), station=station, mode=mode, ca_pem=receiver.get("ca_pem"), timeout=timeout,
                   unit=unit)

    def send(self, batch: bytes) -> Reply:
        body = gzip.compress(batch, compresslevel=6, mtime=0)
        headers = {"Content-Type": CONTENT_TYPE, "Content-Encoding": "gzip", "Accept": "application/json"}
        return self._exchange("POST", self.target.base_path + RECORDS_PATH, body, headers)

    def probe(self) -> Reply:
        path = self.target.base_path + RECEIPT_PATH.format(station=quote(self.station, safe=""))
        if self.unit:
            path += f"?unit={quote(self.unit, safe='')}"
        return self._exchange("GET", path, None, {"Accept": "application/json"})

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _exchange(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Reply:
        headers = {**headers, "User-Agent": USER_AGENT}
        try:
            conn = self._connection()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            status, data = response.status, response.read()
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise LinkDown(f"the receiver's TLS certificate is not trusted: {exc.verify_message}") from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise LinkDown(f"no answer from the receiver at {self.target.host}:{self.target.port}: "
                           f"{_describe(exc)}") from None
        if response.will_close:
            self.close()
        try:
            return _reply(status, data)
        except ReceiverTrouble:
            self.close()
            raise

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._context is not None:
                self._conn = http.client.HTTPSConnection(self.target.host, self.target.port,
                                                         timeout=self.timeout, context=self._context)
            else:
                self._conn = http.client.HTTPConnection(self.target.host, self.target.port, timeout=self.timeout)
        return self._conn


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__


def _reply(status: int, data: bytes) -> Reply:
    if status != 200 and not 400 <= status < 500:
        raise ReceiverTrouble(f"the receiver answered HTTP {status}; it will be tried again later")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ReceiverTrouble(f"the receiver answered HTTP {status} without the protocol's JSON") from None
    if not isinstance(doc, dict):
        raise ReceiverTrouble(f"the receiver answered HTTP {status} with JSON that is not an object")
    return Reply(status=status, receipt=_opt_str(doc.get("receipt")), error=_opt_str(doc.get("error")),
                 reason=str(doc.get("reason") or ""), seq=_opt_int(doc.get("seq")),
                 accepted=_opt_int(doc.get("accepted")) or 0, duplicates=_opt_int(doc.get("duplicates")) or 0)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None

"""A stand-in that announces itself by mDNS as a unit of the station and serves forged records.

Run as ``python -m tests.units.mdns_impostor STATION UNIT KEY_ID HOST PORT VOTER`` (inside a network
namespace of the mDNS test): it announces ``UNIT`` of ``STATION`` with that unit's real, public key id
at ``HOST:PORT`` and answers every pull for ``UNIT``'s records with one admission of ``VOTER`` signed by
a key of its own. A unit that finds it must refuse the record (its signature is not the enrolled
key's) and apply nothing. Prints ``READY`` once the announcement is registered; stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.core.units import PeerCheckin
from device.sync import wire
from device.sync.discovery import Discovery


def main(argv: list[str]) -> int:
    station, unit, key_id, host, port, voter = argv
    impostor = Ed25519PrivateKey.generate()
    forged = wire.sign(PeerCheckin(station, unit, 1, voter, 1, time.time(), int(time.time() * 1000) << 16),
                       impostor)
    served = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server name)
            records = [forged] if f"unit={unit}&after=0" in self.path else []
            body = wire.message(station, unit, time.time(), records, {unit: 1})
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            served.set()

        def log_message(self, *args: Any) -> None:
            return

    httpd = ThreadingHTTPServer((host, int(port)), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    discovery = Discovery(station=station, own=unit, own_key_id=key_id, enrolled={unit: key_id},
                          listen=f"{host}:{port}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    discovery.start()
    print("READY", flush=True)
    stop.wait()
    discovery.close()
    httpd.shutdown()
    print("SERVED" if served.is_set() else "NEVER-ASKED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

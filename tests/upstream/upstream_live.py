"""The real receiver (``receiver.app.create_app``) served by waitress on 127.0.0.1, for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from device.keys import write_private
from device.webserver import ServerThread
from protocol.keys import key_id, public_b64


@dataclass
class LiveReceiver:
    url: str
    port: int
    key: Ed25519PrivateKey
    app: Any
    registry_path: Path | None = None
    cec: Ed25519PrivateKey | None = None

    @property
    def storage(self) -> Any:
        return self.app.extensions["pollbox_receiver"].storage


def _registry(directory: Path, station: str, device: Ed25519PrivateKey) -> tuple[Path, Ed25519PrivateKey]:
    from receiver.registry import DeviceEntry, Registry

    cec = Ed25519PrivateKey.generate()
    registry = Registry()
    registry.add(DeviceEntry(station=station, serial="SN-TEST-1", public_key=public_b64(device.public_key()),
                             key_id=key_id(device.public_key()), software="0.1.0",
                             enrolled_at="2026-11-20T10:00:00.000000Z"))
    path = directory / "registry.json"
    registry.sign_and_save(path, cec)
    return path, cec


@contextmanager
def live_receiver(directory: Path, station: str, device: Ed25519PrivateKey) -> Iterator[LiveReceiver]:
    """A receiver with ``device`` enrolled for ``station``, listening on a free loopback port."""
    import waitress

    from receiver.app import create_app

    directory.mkdir(parents=True, exist_ok=True)
    registry_path, cec = _registry(directory, station, device)
    key = Ed25519PrivateKey.generate()
    write_private(directory / "receiver.key", key)
    app = create_app({"DATABASE_URL": str(directory / "receiver.db"), "REGISTRY_PATH": str(registry_path),
                      "CEC_PUBLIC_KEY": public_b64(cec.public_key()),
                      "RECEIVER_KEY_PATH": str(directory / "receiver.key"), "TESTING": True})
    server = ServerThread(waitress.create_server(app, host="127.0.0.1", port=0, threads=4,
                                                 ident="pollbox-receiver")).start()
    try:
        yield LiveReceiver(f"http://127.0.0.1:{server.port}", server.port, key, app, registry_path, cec)
    finally:
        server.stop()
        app.extensions["pollbox_receiver"].storage.close()

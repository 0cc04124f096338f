"""The receiver's composition root: storage, registry, key, clock and ingest, built from one config dict.

``build_receiver(config)`` is called by ``create_app`` (HTTP) and by the CLI's
``import`` and ``ingest`` commands, so every path shares one ``Ingestor``.
Whenever the registry in force changes (``RegistryFile`` reloads it), its
stations are mirrored to the database and its revocations recorded there; a
receiver refuses to start on a registry lacking a revocation the database has
recorded (an older registry put back).
Config keys (all strings unless noted):

- ``DATABASE_URL``: ``postgresql://...``, ``sqlite:///path`` or a file path;
- ``REGISTRY_PATH``: the CEC-signed device registry (reloaded when it changes);
- ``CEC_PUBLIC_KEY``: base64 of the CEC's 32-byte Ed25519 public key;
- ``RECEIVER_KEY_PATH``: the receiver's raw private key file;
- ``SILENT_AFTER_MINUTES`` (number, default 15): a station still voting with no
  record for this long is shown as silent;
- ``CLOCK`` (callable returning wall seconds, default ``time.time``): tests pass a fake.
- ``SOFTWARE_LIST_PATH`` (optional): the CEC-signed list of certified unit software
  (``receiver/software_list.py``), read by the overview.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.batch import MAX_RECORDS
from protocol.errors import UserError
from protocol.export import ExportError, read_export
from receiver.ingest import Ingestor, Outcome, Rejection
from receiver.keys import ReceiverKeyError, load_receiver_key
from receiver.registry import AnyRegistry, RegistryError, RegistryFile, decode_public_key
from receiver.storage import Storage, open_storage
from receiver.store.db import StorageError

DEFAULT_SILENT_AFTER_MINUTES = 15

log = logging.getLogger("pollbox.receiver")


class ReceiverConfigError(UserError):
    """The receiver cannot start with this configuration; the message lists every problem."""


@dataclass
class Receiver:
    """Everything a receiver process needs, wired once."""

    storage: Storage
    registry_file: RegistryFile
    key: Ed25519PrivateKey
    clock: Callable[[], float]
    silent_after: float
    ingestor: Ingestor = field(init=False)
    _synced: AnyRegistry | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.ingestor = Ingestor(storage=self.storage, registry=self.registry, receiver_key=self.key,
                                 clock=self.clock)

    def registry(self) -> AnyRegistry:
        """The registry in force; its stations and revocations go to the database whenever it changes."""
        current = self.registry_file.current()
        if current is not self._synced:
            digest = current.digest
            if digest is None:
                raise RegistryError("the registry in force was not read from a file")
            self.storage.sync_enrolled(current.iter_stations(), digest)
            self.storage.record_revocations(current.revoked(), self.clock())
            self._synced = current
        return current

    def check_revocations_kept(self) -> None:
        """Refuse a registry that lacks a revocation this database has recorded."""
        registry = self.registry_file.registry
        for known in self.storage.revocations():
            revocation = registry.revocation_of(known["key_id"])
            if revocation is None:
                raise ReceiverConfigError(
                    f"the device registry {self.registry_file.path} does not revoke key {known['key_id']} of station "
                    f"{known['station']}, which was revoked at {known['revoked_at']} by {known['revoked_by']}: "
                    "an older registry? a revocation is never undone")

    def silent_before(self) -> float:
        return self.clock() - self.silent_after

    def import_export(self, data: bytes, source: str) -> list[Outcome]:
        """Ingest a ``pollbox-export/1`` file through the network's path, in batches of MAX_RECORDS."""
        try:
            header, records = read_export(data)
        except ExportError as exc:
            rejection = Rejection(exc.code, f"not a usable export file: {exc}")
            self.ingestor.log_rejection(rejection, source, self.clock())
            return [Outcome(None, 0, 0, None, rejection)]
        log.info("importing %d records of station %s from %s", len(records), header.station, source)
        outcomes = []
        for start in range(0, len(records), MAX_RECORDS):
            outcomes.append(self.ingestor.ingest_records(records[start:start + MAX_RECORDS], source))
            if outcomes[-1].rejection is not None:
                break
        return outcomes


def build_receiver(config: Mapping[str, Any]) -> Receiver:
    """Build a Receiver, reporting every configuration problem at once."""
    problems: list[str] = []
    for name in ("DATABASE_URL", "REGISTRY_PATH", "CEC_PUBLIC_KEY", "RECEIVER_KEY_PATH"):
        if not config.get(name):
            problems.append(f"{name} is not set")
    if problems:
        raise ReceiverConfigError("; ".join(problems))
    key = _collect(problems, lambda: load_receiver_key(Path(config["RECEIVER_KEY_PATH"])))
    cec = _collect(problems, lambda: decode_public_key(str(config["CEC_PUBLIC_KEY"])))
    silent = _collect(problems, lambda: _minutes(config.get("SILENT_AFTER_MINUTES", DEFAULT_SILENT_AFTER_MINUTES)))
    storage = None if problems else _collect(problems, lambda: open_storage(str(config["DATABASE_URL"])))
    clock = config.get("CLOCK") or time.time
    registry_file = None if problems or storage is None else _collect(
        problems, lambda: RegistryFile(Path(config["REGISTRY_PATH"]), cec, storage, clock))
    if problems or key is None or registry_file is None or silent is None or storage is None:
        if storage is not None:
            storage.close()
        raise ReceiverConfigError("; ".join(problems))
    receiver = Receiver(storage, registry_file, key, clock, silent)
    try:
        receiver.check_revocations_kept()
    except ReceiverConfigError:
        storage.close()
        raise
    receiver.registry()
    return receiver


def _collect(problems: list[str], make: Callable[[], Any]) -> Any:
    try:
        return make()
    except (ReceiverKeyError, RegistryError, StorageError, ValueError) as exc:
        problems.append(str(exc))
        return None


def _minutes(value: Any) -> float:
    minutes = float(value)
    if minutes <= 0:
        raise ValueError(f"SILENT_AFTER_MINUTES must be positive, not {value!r}")
    return minutes * 60

"""Zeroize: wiping a unit's secrets and personal data once the CEC has every record.

What is wiped: the device key and sealing key (``device.key``, ``seal.key``),
the list key (``list.key``) and the station package (it holds voters' names
and keyed hashes). What stays: the hash-chained journal (keyed hashes only,
unlinkable once the list key is gone; it is the unit's evidence), public keys
and the enrollment certificate. On a training unit (``device/training.py``)
the training journal is wiped too (practice data, already delivered to the
CEC), and the record is ``training-zeroize-record.json``: after that the
unit takes a live package.

``zeroize`` first asks the unit's upstream (``Appliance.upstream``) to send
everything waiting, then refuses (E050) while the outbox still has records
the receiver has not acknowledged with a receipt signed by its key, unless the
technician types the confirmation ``WIPE <station id>``. Before wiping, it
journals a note of record (an upstream record, signed by the device key while
it still exists) and sends it too: without force, the wipe happens only once
the receiver has acknowledged that note as well (else E052, nothing wiped).
It then writes ``zeroize-record.json`` (signed by the device key) so the
certificate survives the key. Each file is overwritten with random bytes and
flushed; then the file system's journal is flushed; only then are the files
removed (``wipe_files``).

Why that order: the unit's data partition is ext4 mounted ``data=journal``.
Every block a file ever had was first written to the file system's own journal,
a ring that keeps old copies until newer transactions overwrite them; and an
overwrite reaches the file's own blocks only when the journal writes it back
there (a checkpoint). A file removed before that checkpoint has its pending
write-back cancelled, so its blocks keep the old content: the booted unit showed
exactly that, both keys and the voter list readable in free blocks after a wipe
that removed each file straight after overwriting it. ``flush_filesystem_journal``
rewrites a scratch file through the journal until the ring has gone round twice:
the journal has to write every older transaction back to make room (so the
overwrites land on the files' blocks) and every old copy in the ring is
overwritten. The boot test reads every byte of the partition afterwards.

What this cannot reach: on an SD card or eMMC the controller maps blocks to
flash pages itself (wear levelling), and a rewritten block goes to a new page;
the old page is erased only when the card reclaims it, which the system cannot
see or force (a discard/TRIM only tells the card the block is free). The
partition holds no copy; the card's unmapped pages may, so the guide tells the
CEC to keep wiped cards in custody.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from device.config import Config
from device.files import sync_path
from device.keys import KeyError_
from device.signing import load_signer
from device.training import training_files, zeroize_record_name
from protocol.canonical import canonical
from protocol.envelope import iso_utc
from protocol.keys import ED25519, key_id, public_b64

from .errors import ProvisionError

SECRET_FILES = ("device.key", "device.tpm", "seal.key", "list.key")


class ApplianceView(Protocol):
    upstream: Any

    def status(self) -> dict[str, Any]: ...

    def annotate(self, topic: str, text: str) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Zeroized:
    station: str
    wiped: list[str]
    waiting: int | None
    forced: bool
    record_path: Path


def confirmation_phrase(station: str) -> str:
    return f"WIPE {station}"


def pending(status: dict[str, Any]) -> int | None:
    """Records not yet acknowledged by the receiver, or None when the unit has no upstream."""
    up = status.get("upstream")
    return None if not up else int(up.get("waiting", 0))


def _authorise(station: str, waiting: int | None, confirmation: str | None) -> bool:
    """True if forced; raises when records are pending and the confirmation does not match."""
    if waiting == 0:
        return False
    what = "the unit has no upstream link" if waiting is None else f"{waiting} record(s) are not acknowledged"
    if confirmation is None:
        raise ProvisionError("E050", f"{what} by the CEC receiver; zeroize refused. Restore the link (or export "
                                     f"the records to USB and have the CEC import them) and try again, or force "
                                     f"it with the confirmation '{confirmation_phrase(station)}'")
    if confirmation.strip() != confirmation_phrase(station):
        phrase = confirmation_phrase(station)
        raise ProvisionError("E051", f"the confirmation must be exactly '{phrase}'; nothing wiped")
    return True


def _targets(config: Config, training: bool) -> list[Path]:
    """What is wiped; on a training unit also its training journal (practice data, already with the CEC)."""
    extra = training_files(config.data_dir) if training else []
    return [config.data_dir / name for name in SECRET_FILES] + [config.station_package] + extra


def _signed_record(config: Config, station: str, waiting: int | None, left: int | None, forced: bool,
                   now: float, training: bool) -> dict[str, Any]:
    """The certificate of the wipe: ``waiting`` when it was judged, ``unacknowledged`` as it happened."""
    try:
        key = load_signer(config.data_dir, config.key.store, config.key.tcti)
    except KeyError_ as exc:
        raise ProvisionError("E020", str(exc)) from None
    try:
        body = {"type": "zeroize", "station": station, "at": iso_utc(now), "waiting": waiting,
                "unacknowledged": left, "forced": forced,
                "wiped": [p.name for p in _targets(config, training) if p.exists()],
                "key": key_id(key.public_key()), "public_key": public_b64(key.public_key())}
        if key.alg != ED25519:
            body["alg"] = key.alg
        return {**body, "signature": base64.b64encode(key.sign(canonical(body))).decode()}
    finally:
        key.close()


def overwrite_file(path: Path) -> bool:
    """Overwrite ``path`` in place with random bytes and flush it; False if it was not there."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    with path.open("r+b") as f:
        f.write(os.urandom(max(size, 1)))
        f.flush()
        os.fsync(f.fileno())
    return True


def remove_file(path: Path) -> None:
    path.unlink()
    sync_path(path.parent)


def wipe_file(path: Path) -> bool:
    """Overwrite ``path`` with random bytes, flush, remove; False if it was not there. On a file system
    that journals file data, use ``wipe_files`` (see the module docstring)."""
    if not overwrite_file(path):
        return False
    remove_file(path)
    return True


def wipe_files(paths: list[Path], directory: Path) -> list[Path]:
    """Overwrite every one of ``paths``, flush the journal of ``directory``'s file system (which writes
    the overwrites back to the files' blocks and overwrites the journal's old copies), then remove
    them; the files that were there."""
    present = [p for p in paths if overwrite_file(p)]
    flush_filesystem_journal(directory)
    for path in present:
        remove_file(path)
    return present


JOURNAL_ROUNDS = 2
"""How many times ext4's journal ring is rewritten after a wipe: its write position is anywhere in the
ring when the flush starts, so one full round from there plus one more covers every block."""


def _mount_of(directory: Path) -> tuple[str, str] | None:
    """(the block device's name, the file system's options) of the mount holding ``directory``."""
    st = os.stat(directory)
    wanted = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
        uevent = Path(f"/sys/dev/block/{wanted}/uevent").read_text()
    except OSError:
        return None
    device = dict(line.split("=", 1) for line in uevent.splitlines() if "=" in line).get("DEVNAME")
    for line in lines:
        fields = line.split()
        if fields[2] == wanted and " - " in line:
            fs_type, _source, options = line.split(" - ", 1)[1].split()[:3]
            return (device, options) if device and fs_type == "ext4" else None
    return None


def journal_bytes(directory: Path) -> int:
    """An upper bound of the size of ext4's journal on the file system holding ``directory``, when it
    journals file data (``data=journal``); 0 when file data never goes through a journal there.

    The kernel says how many blocks one transaction may hold (/proc/fs/jbd2/DEV-8/info); that is a
    quarter to a third of the journal, so four times it covers the whole ring.
    """
    mount = _mount_of(directory)
    if mount is None or "data=journal" not in mount[1].split(","):
        return 0
    device = mount[0].replace("/", "!")
    try:
        info = Path(f"/proc/fs/jbd2/{device}-8/info").read_text()
    except OSError:
        return 0
    blocks = int(info.split("each up to", 1)[1].split()[0])
    return 4 * blocks * os.statvfs(directory).f_bsize


def flush_filesystem_journal(directory: Path) -> int:
    """Overwrite every block of ext4's journal on ``directory``'s file system (``JOURNAL_ROUNDS`` times
    the ring, a committed transaction at a time) with a scratch file rewritten in place, then remove
    it. The scratch file needs a slice of the journal's size in free space, not all of it. Returns
    the bytes written (0 where file data is not journalled, e.g. ``data=ordered``)."""
    ring = journal_bytes(directory)
    if not ring:
        return 0
    chunk = max(ring // 16, 1 << 16)
    scratch = directory / ".zeroize-journal-flush"
    written = 0
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while written < JOURNAL_ROUNDS * ring:
            os.pwrite(fd, os.urandom(chunk), 0)
            os.fsync(fd)  # with data=journal: one committed transaction holding the chunk's blocks
            written += chunk
    finally:
        os.close(fd)
        scratch.unlink()
        sync_path(directory)
    return written


def deliver(appliance: ApplianceView) -> int | None:
    """Send everything waiting now; returns what is still unacknowledged (None without an upstream)."""
    if appliance.upstream is not None:
        appliance.upstream.drain_once(force=True)
    return pending(appliance.status())


def zeroize(config: Config, appliance: ApplianceView, now: float, confirmation: str | None = None) -> Zeroized:
    """Deliver, check, record, then wipe; see the module docstring for what and why.

    The appliance is stopped after a wipe; after a refusal it is left running for the caller to stop.
    """
    station = str(appliance.status()["station"]["id"])
    training = bool(appliance.status()["station"].get("training"))
    waiting = deliver(appliance)
    forced = _authorise(station, waiting, confirmation)
    how = f"FORCED with {waiting} unacknowledged record(s)" if forced else "after every record was acknowledged"
    appliance.annotate("zeroize", f"zeroize {how}; wiping {', '.join(SECRET_FILES)} and the station package")
    left = deliver(appliance)
    if not forced and left != 0:
        raise ProvisionError("E052", f"the receiver did not acknowledge the zeroize note ({left} record(s) waiting); "
                                     "nothing wiped. Try again once the link to the receiver is steady")
    record = _signed_record(config, station, waiting, left, forced, now, training)
    record_path = config.data_dir / zeroize_record_name(training)
    record_path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    appliance.stop()
    wiped = [p.name for p in wipe_files(_targets(config, training), config.data_dir)]
    return Zeroized(station, wiped, waiting, forced, record_path)

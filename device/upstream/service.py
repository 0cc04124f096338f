"""The upstream service: moves signed records from the outbox to the receiver until receipted.

``Upstream`` owns the outbox and the sending policy:

* ``attach()`` hooks the outbox into the journal, so every upstream event is
  signed in the transaction that records it;
* ``drain_once()`` sends everything after the last verified receipt, batch
  after batch, and stops at the first failure; the first attempt after a
  failure starts with the receipt GET, so records that arrived anyway (a lost
  answer, a USB import) are not sent again; records count as delivered only
  when a receipt signed by the receiver's key (from the station package) says
  so. The uplink is not trusted: a bad receipt is a failure, not a delivery;
* after a failure the next attempt waits with exponential backoff and full
  jitter (``Delays.uplink_backoff_base``/``_cap``). While the link is down (no
  connection at all) a cheap probe (the receipt GET) runs every
  ``probe_every`` seconds, jittered; when it answers, the whole backlog drains
  at once. A 5xx answer means the receiver is busy: then only backoff applies;
* ``start()``/``stop()`` run ``drain_once`` in a worker thread; ``wake()`` makes
  it send now, even during a backoff (the close report should not wait);
* ``export(path)`` writes the pending records to a ``pollbox-export/1`` file.

Wiring: built by the composition root with the journal, the device key, the
receiver key and an uplink; the appliance calls ``attach()`` before it appends
anything, ``start()`` when it starts, ``status()`` for the screen.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from device.core.backoff import full_jitter, jittered
from device.core.delays import DEFAULT_DELAYS, Delays
from device.hardware.interfaces import Clock, UplinkError
from device.store.journal import Journal
from device.upstream.export import write_export
from device.upstream.outbox import Outbox, OutboxError
from device.upstream.uplink import LinkDown, Reply, Uplink
from protocol.envelope import MAIN_UNIT, EnvelopeError, RecordSigner, iso_utc
from protocol.errors import PollboxError, UserError
from protocol.export import ExportError, export_chunks, iter_export
from protocol.receipts import verify_receipt

log = logging.getLogger("pollbox.upstream")

BATCH_RECORDS = 2000
BATCH_BYTES = 4 * 1024 * 1024 - 64 * 1024
DEFAULT_PROBE_EVERY = 15.0
IDLE_RECHECK = 1.0
"""How often the worker looks for records committed without a wake-up (seconds)."""


class UpstreamError(UserError):
    """An upstream action cannot be done; the message is for the operator."""


class RandomSource(Protocol):
    def random(self) -> float: ...


@dataclass(frozen=True)
class DrainResult:
    """What one ``drain_once`` did."""

    attempted: bool
    sent: int
    delivered_through: int
    waiting: int
    error: str | None


@dataclass
class _LinkState:
    failures: int = 0
    next_attempt_at: float = 0.0
    next_probe_at: float | None = None
    link_down: bool = False
    online: bool | None = None
    last_error: str | None = None
    refused: str | None = None
    resend_after: int | None = None


class _Refused(PollboxError):
    """The receiver answered but did not take the records; the message says why, ``code`` is the
    receiver's rejection code (``revoked_key``, ``unknown_key``, ...) when it gave one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class Upstream:
    """The outbox, the sending policy and the worker thread."""

    def __init__(self, *, journal: Journal, key: RecordSigner, station_id: str,
                 receiver_public_key: Ed25519PublicKey, uplink: Uplink, clock: Clock,
                 delays: Delays = DEFAULT_DELAYS, rng: RandomSource | None = None,
                 probe_every: float = DEFAULT_PROBE_EVERY, batch_records: int = BATCH_RECORDS,
                 software: Mapping[str, str] | None = None, unit: str = MAIN_UNIT) -> None:
        self.journal = journal
        self.station_id = station_id
        self.unit = unit  # "" for the station's main unit; else the unit id its own chain carries (docs/units.md)
        self.outbox = Outbox(journal.path, key=key, station_id=station_id, software=software, unit=unit)
        self._key = key  # the record key: closed with the upstream (a TPM signer unloads its key)
        self._receiver = receiver_public_key
        self._uplink = uplink
        self._clock = clock
        self._delays = delays
        self._rng: RandomSource = rng if rng is not None else random.SystemRandom()
        self._probe_every = probe_every
        self._batch_records = min(batch_records, BATCH_RECORDS)
        self._state = _LinkState()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._force = False
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # Wiring ------------------------------------------------------------------------

    def attach(self) -> int:
        """Hook the outbox into the journal; returns how many missing records were signed."""
        made = self.outbox.attach(self.journal)
        self.journal.add_hook(self._after_records)
        if made:
            log.info("signed %d upstream records the outbox did not yet hold", made)
        return made

    def _after_records(self, conn: object, recorded: object) -> None:
        self._wake.set()

    # Sending -----------------------------------------------------------------------

    def drain_once(self, *, force: bool = False) -> DrainResult:
        """Send what is waiting if it is time (or ``force``); stop at the first failure."""
        with self._lock:
            force = force or self._take_force()
            now = self._clock.monotonic()
            if force or now >= self._state.next_attempt_at:
                return self._send_all(resync=self._state.failures > 0)
            if self._probe_succeeds(now):
                return self._send_all(resync=False)
            return self._result(False, 0)

    def _take_force(self) -> bool:
        force, self._force = self._force, False
        return force

    def _send_all(self, *, resync: bool) -> DrainResult:
        """Send batch after batch; after a failure, first ask the receiver what it already holds."""
        sent = 0
        try:
            if resync:
                self._apply_receipt(self._uplink.probe())
            while batch := self._next_batch():
                sent += len(batch)
                self._deliver(batch)
        except (UplinkError, _Refused, OutboxError, EnvelopeError) as exc:
            self._failed(exc)
            return self._result(True, sent)
        self._succeeded()
        return self._result(True, sent)

    def _next_batch(self) -> list[tuple[int, str]]:
        after = self.outbox.delivered_through()
        if self._state.resend_after is not None:
            after = min(after, self._state.resend_after)
        return self.outbox.lines_after(after, self._batch_records, BATCH_BYTES)

    def _deliver(self, batch: list[tuple[int, str]]) -> None:
        body = "\n".join(line for _, line in batch).encode("utf-8")
        reply = self._uplink.send(body)
        self._state.online = True
        highest = self._apply_receipt(reply)
        if reply.ok and highest >= batch[-1][0]:
            self._state.failures = 0
            return
        if reply.error == "gap" and highest < batch[0][0] - 1:
            log.warning("the receiver holds records only up to %d; resending from there", highest)
            self._state.resend_after = highest
            return
        if reply.ok:
            raise _Refused(f"the receiver accepted the batch {batch[0][0]}..{batch[-1][0]} "
                           f"but its receipt only reaches {highest}")
        raise _Refused(f"the receiver refused record {reply.seq}: {reply.error} ({reply.reason})", reply.error)

    def _apply_receipt(self, reply: Reply) -> int:
        """Verify the reply's receipt, store it, and return its highest seq (-1 without receipt)."""
        if reply.receipt is None:
            return -1
        highest = verify_receipt(reply.receipt, self._receiver, self.station_id, self.unit)
        if self.outbox.accept_receipt(highest, reply.receipt, self._clock.wall()):
            log.debug("receipt: delivered through %d", highest)
        resend = self._state.resend_after
        if resend is not None and highest > resend:
            self._state.resend_after = None if highest >= self.outbox.delivered_through() else highest
        return highest

    def _probe_succeeds(self, now: float) -> bool:
        """While the link is down, a due probe that answers ends the backoff."""
        state = self._state
        if not state.link_down or state.next_probe_at is None or now < state.next_probe_at:
            return False
        try:
            self._apply_receipt(self._uplink.probe())
        except (UplinkError, OutboxError, EnvelopeError) as exc:
            state.next_probe_at = now + jittered(self._probe_every, self._rng.random())
            state.last_error = str(exc)
            return False
        log.info("the link to the receiver is back; draining the backlog")
        return True

    def _failed(self, exc: Exception) -> None:
        state = self._state
        now = self._clock.monotonic()
        state.failures += 1
        state.link_down = isinstance(exc, LinkDown)
        state.online = not state.link_down
        state.last_error = str(exc)
        state.refused = exc.code if isinstance(exc, _Refused) else None
        wait = full_jitter(state.failures, self._delays.uplink_backoff_base, self._delays.uplink_backoff_cap,
                           self._rng.random())
        state.next_attempt_at = now + wait
        state.next_probe_at = now + jittered(self._probe_every, self._rng.random()) if state.link_down else None
        log.warning("upstream attempt %d failed: %s; next attempt in %.1f s", state.failures, exc, wait)

    def _succeeded(self) -> None:
        if self._state.failures:
            log.info("upstream delivery works again after %d failed attempts", self._state.failures)
        self._state = _LinkState(online=self._state.online, resend_after=self._state.resend_after)

    def _result(self, attempted: bool, sent: int) -> DrainResult:
        delivered = self.outbox.delivered_through()
        return DrainResult(attempted, sent, delivered, self.outbox.last_seq() - delivered, self._state.last_error)

    # Worker thread -------------------------------------------------------------------

    def start(self) -> None:
        """Run the sending loop in a background thread."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="pollbox-upstream", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (after the current attempt) and close the link."""
        thread, self._thread = self._thread, None
        self._stopping.set()
        self._wake.set()
        if thread is not None:
            thread.join(timeout)
        self._uplink.close()

    def wake(self) -> None:
        """Send now, even during a backoff wait."""
        self._force = True
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.drain_once()
            except Exception:  # the loop must outlive any surprise; the error is logged
                log.exception("upstream loop error")
            self._wake.wait(self._idle_wait())
            self._wake.clear()

    def _idle_wait(self) -> float:
        with self._lock:
            waits = [IDLE_RECHECK, self.next_attempt_in()]
            if self._state.next_probe_at is not None:
                waits.append(max(0.0, self._state.next_probe_at - self._clock.monotonic()))
        positive = [w for w in waits if w > 0]
        return min(positive) if positive else IDLE_RECHECK

    # Status and export -----------------------------------------------------------------

    def next_attempt_in(self) -> float:
        return max(0.0, self._state.next_attempt_at - self._clock.monotonic())

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot for the chair's screen and the CLI.

        It does not wait for a send in progress (which may take up to the uplink's
        timeout): it reads the outbox and the last known link state.
        """
        state = self._state
        delivered, last = self.outbox.delivered_through(), self.outbox.last_seq()
        receipt = self.outbox.last_receipt()
        return {"waiting": last - delivered, "delivered_through": delivered, "last_seq": last,
                "last_receipt_at": iso_utc(receipt[2]) if receipt else None, "online": state.online,
                "last_error": state.last_error, "refused": state.refused, "failures": state.failures,
                "next_attempt_in": round(max(0.0, state.next_attempt_at - self._clock.monotonic()), 3)}

    def signed_line_for(self, journal_seq: int) -> str | None:
        """The signed upstream line for a journal event (e.g. the close report), or None."""
        return self.outbox.line_for_journal_seq(journal_seq)

    def export(self, path: Path, *, everything: bool = False) -> Path:
        """Write pending records (or all, with ``everything``) to an export file; returns its path.

        ``path`` is a directory (the USB stick) or a file name. The records are
        streamed from the outbox a chunk at a time into ``<file>.part``, which is
        synced, read back line by line and compared with the outbox before it is
        renamed to its name: memory stays the same whatever the outbox holds, and
        a file that is cut or does not read back never takes the export's name.
        """
        last = self.outbox.last_seq()
        first = 1 if everything else self.outbox.delivered_through() + 1
        if first > last:
            raise UpstreamError("nothing to export: the receiver has acknowledged every record")
        return export_outbox(self.outbox, path, first, last, created_at=self._clock.wall())

    def close(self) -> None:
        self.stop()
        self.outbox.close()
        release = getattr(self._key, "close", None)  # a TPM signer lets go of the TPM (a key object has no close)
        if release is not None:
            release()


def export_outbox(outbox: Outbox, path: Path, first: int, last: int, *, created_at: float) -> Path:
    """Stream records ``first..last`` of ``outbox`` to an export file at ``path`` (a folder or a file name).

    The body of ``Upstream.export`` (the benchmark runs it on its own outbox):
    lines go from the outbox, ``iter_records`` chunk by chunk, through
    ``export_chunks`` into ``<file>.part``; the synced ``.part`` is read back
    with ``iter_export`` and compared record by record with a second pass over
    the outbox; only then is it renamed. Returns the file's path.
    """
    name = f"{outbox.station_id}-{outbox.unit}" if outbox.unit else outbox.station_id
    target = path / f"pollbox-export-{name}-{first}-{last}.txt" if path.is_dir() else path
    chunks = export_chunks(outbox.iter_records(first, last), station=outbox.station_id, key=outbox.key_id,
                           created_at=created_at, from_seq=first, to_seq=last)

    def read_back(written: Path) -> None:
        with written.open("rb") as fh:
            try:
                header, back = iter_export(fh)
                same = (header.from_seq, header.to_seq) == (first, last) and all(
                    got == want for got, want in zip_longest(back, outbox.iter_records(first, last)))
            except ExportError as exc:
                raise UpstreamError(f"the export file {target} did not read back correctly ({exc}); "
                                    "use another USB stick") from None
        if not same:
            raise UpstreamError(f"the export file {target} did not read back correctly; use another USB stick")

    write_export(target, chunks, check=read_back)
    return target

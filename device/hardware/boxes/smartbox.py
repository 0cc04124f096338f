"""The smart ballot box: an RP2040 unit running ``device/firmware`` on the other end of a UART.

Chosen by ``ballot_box = "smartbox"``; built as ``SmartBallotBox(clock=, delays=, port=, baudrate=)``
(tests pass ``link=``). The firmware debounces, counts drops (its counter survives its restarts), times
the lock and detects jams; this backend speaks ``device.firmware.boxproto`` to it and turns its STATUS
snapshots into the ``BoxSignal``s the GPIO backend emits.

Exactly once: every STATUS carries the unit's cumulative drop and lid-opening counters, so each increment
becomes one BEAM_BLOCKED (then BEAM_CLEARED) or LID_OPENED (then LID_CLOSED) however frames are lost,
duplicated or reordered: frames whose sequence is not newer are ignored, a gap asks for a fresh status
(STATUS_REQ). A new boot number means the firmware restarted: UNIT_LOST then UNIT_FOUND, the session is
renewed (HELLO) and counting continues from the saved counter. No valid frame for
``Delays.heartbeat_timeout`` is UNIT_LOST.

Every STATUS also carries the unit's unique id (the RP2040's flash id): a status from another unit (a
replacement plugged in while the station runs) is a new unit whatever its boot number, UNIT_LOST then
UNIT_FOUND with its counter and id, and none of its earlier drops become signals; the appliance decides
what the new counter means (``station.decide_unit_count``). Older firmware sends no id.

The counter travels with the signals (``OnBoxSignal``): each BEAM_BLOCKED carries the counter after that
drop, UNIT_FOUND the counter up to which every drop has been signalled, and ``start`` returns it in
``BoxInputs.unit_drops``, so drops made while the station software was down are counted exactly once.

Fail-safe: ``start`` sends HELLO (which locks) first; heartbeats from the station are forwarded as
HEARTBEAT frames, and both the firmware and this backend lock when they stop. A beam blocked when the
firmware booted is not counted; it shows in ``health()`` as ``uncounted_block``, keeps the slot locked,
and is reported at start as ``BoxInputs.beam_blocked``, later as JAMMED, then BEAM_CLEARED when it clears.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from device.core.delays import Delays
from device.firmware import boxproto as bp
from device.hardware.interfaces import BoxInputs, BoxSignal, Clock, OnBoxSignal

from .errors import BoxError
from .uart import Link, open_uart
from .unit import TEST_OUTPUTS
from .watchdog import HeartbeatWatchdog, Ticker

log = logging.getLogger("pollbox.box.smart")

OnSignal = OnBoxSignal
_TEST_IDS = {"green": bp.OUT_GREEN, "red": bp.OUT_RED, "buzzer": bp.OUT_BUZZER}
_READ_BACK = {"lock": bp.F_SLOT, "green": bp.F_GREEN, "red": bp.F_RED, "buzzer": bp.F_BUZZER}


class SmartBallotBox:
    """The Pi's side of the smart box protocol."""

    name = "smartbox"

    def __init__(self, *, clock: Clock, delays: Delays, port: str | None = None, baudrate: int = 115200,
                 link: Link | None = None, tick_every: float | None = 0.005,
                 wait: Callable[[float], None] = time.sleep) -> None:
        if link is None and port is None:
            raise BoxError("the smart box needs a serial port (hardware.smartbox.port)")
        self._clock = clock
        self._delays = delays
        self._port, self._baudrate, self._link = port, baudrate, link
        self._tick_every = tick_every
        self._wait = wait
        self._watchdog = HeartbeatWatchdog(clock=clock, timeout=delays.heartbeat_timeout)
        self._decoder = bp.FrameDecoder()
        self._session = int.from_bytes(os.urandom(2), "big")
        self._seq = int.from_bytes(os.urandom(2), "big")
        self._on_signal: OnSignal | None = None
        self._starting = False
        self._ticker: Ticker | None = None
        self.stats: Counter[str] = Counter()
        self._reset_unit_view()

    def _reset_unit_view(self) -> None:
        self._boot: int | None = None
        self._unit: str | None = None
        self._last_seq = 0
        self._drops = 0
        self._lid_opens = 0
        self._flags = 0
        self._beam = False
        self._lid = False
        self._present = False
        self._lost_unreported = False
        self._last_rx = self._clock.monotonic()
        self._want_open = False
        self._arm_seq = 0
        self.drops_at_start: int | None = None

    # BallotBox -----------------------------------------------------------------------------

    def start(self, on_signal: OnSignal) -> BoxInputs:
        """Lock (HELLO) first, then wait up to ``heartbeat_timeout`` for the unit's first status.

        Nothing is signalled while starting: what the unit reports then is the
        returned ``BoxInputs`` (its drop counter in ``unit_drops``).
        """
        if self._link is None:
            assert self._port is not None
            self._link = open_uart(self._port, self._baudrate)
        self._watchdog.wait_first()  # its clock starts with the core's first heartbeat
        self._send_hello()
        self._starting = True
        deadline = self._clock.monotonic() + self._delays.heartbeat_timeout
        try:
            while self._boot is None and self._clock.monotonic() < deadline:
                self._pump()
                if self._boot is None:
                    self._wait(0.01)
        finally:
            self._starting = False
        self._on_signal = on_signal
        if self._boot is None:
            log.error("no answer from the smart box within %g s", self._delays.heartbeat_timeout)
            self._lost_unreported = True
        self._start_ticker()
        unit_drops = self._drops if self._boot is not None else None
        return BoxInputs(beam_blocked=self._beam, lid_open=self._lid, unit_drops=unit_drops, unit_id=self._unit)

    def arm(self) -> None:
        self._watchdog.beat()
        refusal = self.arm_refusal()
        if refusal:
            self.stats["arms_refused"] += 1
            log.warning("slot not opened: %s", refusal)
            return
        self._want_open = True
        self._arm_seq = self._send(bp.ARM, _arm_payload(self._delays.arm_timeout))
        self.stats["arms"] += 1

    def arm_refusal(self) -> str:
        if not self._present:
            return "the smart box is not answering"
        if self._lid:
            return "the lid is open"
        if self._flags & bp.F_JAM:
            return "the slot is jammed"
        return ""

    def lock(self) -> None:
        self._want_open = False
        self._send(bp.LOCK)

    def heartbeat(self) -> None:
        self._watchdog.beat()
        self._send(bp.HEARTBEAT)

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        if self._link is not None:
            self._want_open = False
            self._send(bp.LOCK)
            self._link.close()
        self._on_signal = None

    def health(self) -> dict[str, Any]:
        return {
            "backend": self.name, "present": self._present, "slot_open": bool(self._flags & bp.F_SLOT),
            "beam_blocked": self._beam, "lid_open": self._lid, "jammed": bool(self._flags & bp.F_JAM),
            "unit_watchdog_tripped": bool(self._flags & bp.F_TRIPPED),
            "uncounted_block": bool(self._flags & bp.F_UNCOUNTED),
            "watchdog_tripped": self._watchdog.tripped, "watchdog_trips": self._watchdog.trips,
            "unit_id": self._unit, "unit_boot": self._boot, "unit_drops": self._drops,
            "drops_at_start": self.drops_at_start,
            "crc_errors": self._decoder.crc_errors, "skipped_bytes": self._decoder.skipped_bytes,
            **dict(self.stats),
        }

    # Timer -------------------------------------------------------------------------------------

    def check(self) -> None:
        """Report a unit silent since start, read what arrived, then run the timers: unit silence, heartbeat loss."""
        if self._lost_unreported:
            self._lost_unreported = False
            self._emit(BoxSignal.UNIT_LOST, self._clock.monotonic())
        self._pump()
        now = self._clock.monotonic()
        if self._present and now - self._last_rx >= self._delays.heartbeat_timeout:
            self._lose("no frame from the smart box", now)
        if self._watchdog.check():
            log.error("no heartbeat for %g s: slot locked", self._delays.heartbeat_timeout)
            self.lock()

    def _start_ticker(self) -> None:
        if self._tick_every is not None:
            self._ticker = Ticker("pollbox-smartbox", self._tick_every, self.check, self._ticker_failed)
            self._ticker.start()

    def _ticker_failed(self, exc: BaseException) -> None:
        self.stats["errors"] += 1
        self.lock()

    # Receiving ---------------------------------------------------------------------------------

    def _pump(self) -> None:
        if self._link is None:
            return
        data = self._link.read()
        if not data:
            return
        for frame in self._decoder.feed(data):
            self.stats["frames"] += 1
            if frame.kind == bp.STATUS:
                self._on_status(frame)
            else:
                self.stats["unknown_frames"] += 1

    def _on_status(self, frame: bp.Frame) -> None:
        fields = bp.unpack_status(frame.payload)
        if fields is None:
            self.stats["malformed"] += 1
            return
        boot, drops, lid_opens, flags, ack, unit_number = fields
        unit = f"{unit_number:016x}" if unit_number else None
        now = self._clock.monotonic()
        if self._boot is None:
            self._baseline(frame.seq, boot, drops, lid_opens, flags, unit)
        elif unit is not None and self._unit is not None and unit != self._unit:
            self._replaced(frame.seq, boot, drops, lid_opens, unit, now)
        elif boot != self._boot:
            if not bp.seq_newer(boot, self._boot):
                self.stats["stale"] += 1
                return
            self._restarted(frame.seq, boot, drops, lid_opens, now)
        elif not self._in_order(frame.seq):
            return
        self._last_rx = now
        if not self._present:
            self._present = True
            self._emit(BoxSignal.UNIT_FOUND, now, self._drops, self._unit)
        self._apply(drops, lid_opens, flags, now)
        self._reconcile(flags, ack)

    def _in_order(self, seq: int) -> bool:
        if not bp.seq_newer(seq, self._last_seq):
            self.stats["stale_or_duplicate"] += 1
            return False
        if bp.seq_gap(seq, self._last_seq):
            self.stats["gaps"] += 1
            self._send(bp.STATUS_REQ)
        self._last_seq = seq
        return True

    def _baseline(self, seq: int, boot: int, drops: int, lid_opens: int, flags: int, unit: str | None) -> None:
        """The first status: its counters are the reference, handed over as counts, not as signals.

        While starting, the inputs go back in ``BoxInputs``; a unit that first
        answers later is signalled (UNIT_FOUND with its counter, then its lid
        and beam as they stand).
        """
        self._boot, self._last_seq, self._drops, self._lid_opens = boot, seq, drops, lid_opens
        self._unit = unit
        if self._starting:
            self._beam, self._lid, self._present = bool(flags & bp.F_BEAM), bool(flags & bp.F_LID), True
        self.drops_at_start = drops

    def _restarted(self, seq: int, boot: int, drops: int, lid_opens: int, now: float) -> None:
        self.stats["unit_restarts"] += 1
        log.warning("the smart box restarted (boot %d -> %d)", self._boot, boot)
        if drops < self._drops:
            self.stats["counter_regressions"] += 1
            log.error("smart box drop counter went back from %d to %d", self._drops, drops)
            self._drops = drops
        self._new_session("smart box restarted", seq, boot, lid_opens, now)

    def _replaced(self, seq: int, boot: int, drops: int, lid_opens: int, unit: str, now: float) -> None:
        """Another unit answers: its counters become the reference; UNIT_FOUND hands them to the appliance."""
        self.stats["unit_replacements"] += 1
        log.warning("another smart box answers (unit %s, was %s)", unit, self._unit)
        self._unit, self._drops = unit, drops
        self._new_session("smart box replaced", seq, boot, lid_opens, now)

    def _new_session(self, why: str, seq: int, boot: int, lid_opens: int, now: float) -> None:
        """Lose the unit (if it was present), take its new boot and sequence, and renew the session (HELLO)."""
        if self._present:
            self._lose(why, now)
        self._boot, self._last_seq, self._lid_opens = boot, seq, lid_opens
        self._want_open = False
        self._send_hello()

    def _lose(self, why: str, now: float) -> None:
        log.warning("%s: unit lost", why)
        self._present = False
        self._want_open = False
        self._emit(BoxSignal.UNIT_LOST, now)

    def _apply(self, drops: int, lid_opens: int, flags: int, now: float) -> None:
        while self._drops < drops:  # one BEAM_BLOCKED per drop, carrying the unit's count after it
            self._want_open = False
            self._set_beam(False, now)
            self._drops += 1
            self._beam = True
            self._emit(BoxSignal.BEAM_BLOCKED, now, self._drops)
        if not flags & bp.F_BEAM:
            self._set_beam(False, now)
        elif not self._beam:  # blocked, but by nothing the unit counted: a jam, never a ballot
            self._beam = True
            self.stats["jams_reported"] += 1
            self._emit(BoxSignal.JAMMED, now)
        for _ in range((lid_opens - self._lid_opens) & 0xFFFF):
            self._set_lid(False, now)
            self._set_lid(True, now)
        self._lid_opens = lid_opens
        self._set_lid(bool(flags & bp.F_LID), now)
        self._flags = flags

    def _set_beam(self, blocked: bool, now: float) -> None:
        if self._beam != blocked:
            self._beam = blocked
            self._emit(BoxSignal.BEAM_BLOCKED if blocked else BoxSignal.BEAM_CLEARED, now)

    def _set_lid(self, open_: bool, now: float) -> None:
        if self._lid != open_:
            self._lid = open_
            self._emit(BoxSignal.LID_OPENED if open_ else BoxSignal.LID_CLOSED, now)

    def _reconcile(self, flags: int, ack: int) -> None:
        """Repeat a command the unit has not acted on (a lost LOCK, ARM or HELLO)."""
        if not flags & bp.F_SESSION:
            self._send_hello()
        elif flags & bp.F_SLOT and not self._want_open:
            self.stats["lock_repeats"] += 1
            self._send(bp.LOCK)
        elif self._want_open and not flags & bp.F_SLOT and bp.seq_newer(self._arm_seq, ack):
            self.stats["arm_repeats"] += 1
            self._arm_seq = self._send(bp.ARM, _arm_payload(self._delays.arm_timeout))

    # Sending -------------------------------------------------------------------------------------

    def _send_hello(self) -> None:
        d = self._delays
        payload = bp.hello_payload(_ms(d.debounce), _ms(d.jam_after), _ms(d.heartbeat_timeout),
                                   int(round(d.arm_timeout * 1000)), self._session)
        self._send(bp.HELLO, payload)

    def _send(self, kind: int, payload: bytes = b"") -> int:
        """Send one frame; returns its sequence number.

        A frame the link cannot take (a write timeout: the UART's transmitter is stuck, a USB adapter is
        gone) is a lost frame, which the protocol already survives: a lost LOCK, ARM or HELLO is repeated
        from the unit's next status, and a unit that stays unreachable goes silent and is UNIT_LOST. So
        the failure is counted and logged, never raised into the caller (the owner thread's step)."""
        self._seq = bp.seq_next(self._seq)
        if self._link is not None:
            try:
                self._link.write(bp.encode(self._seq, kind, payload))
            except OSError as exc:  # pyserial's SerialException and SerialTimeoutException are OSErrors
                self.stats["write_failures"] += 1
                if self.stats["write_failures"] == 1 or self.stats["write_failures"] % 100 == 0:
                    log.warning("frame to the smart box not sent (%s); %d so far", exc, self.stats["write_failures"])
        return self._seq

    def _emit(self, signal: BoxSignal, at: float, count: int | None = None, unit: str | None = None) -> None:
        if self._on_signal is None or self._starting:
            return
        if count is None:
            self._on_signal(signal, at)
        elif unit is None:
            self._on_signal(signal, at, count)
        else:
            self._on_signal(signal, at, count, unit)

    # Self-test hooks -----------------------------------------------------------------------------

    def output_names(self) -> tuple[str, ...]:
        return TEST_OUTPUTS

    def input_names(self) -> tuple[str, ...]:
        return ("beam", "lid", "present")

    def set_output(self, name: str, active: bool) -> None:
        if name == "lock" and active:
            self.arm()
        elif name == "lock":
            self.lock()
        elif name in _TEST_IDS:
            self._send(bp.OUTPUT, bp.output_payload(_TEST_IDS[name], active))
        else:
            raise ValueError(f"no output named {name!r} (outputs: {', '.join(TEST_OUTPUTS)})")

    def read_back(self, name: str) -> bool | None:
        """What the unit reports its output to be (from its latest status)."""
        self._pump()
        return bool(self._flags & _READ_BACK[name])

    def read_input(self, name: str) -> bool:
        self._pump()
        return {"beam": bool(self._flags & bp.F_BEAM), "lid": self._lid, "present": self._present}[name]

    def expect_input(self, name: str, active: bool) -> None:
        """Real inputs are exercised by the technician; nothing to do here."""


def _ms(seconds: float) -> int:
    """Seconds as the 16-bit milliseconds of HELLO (at most 65.535 s)."""
    return max(0, min(0xFFFF, int(round(seconds * 1000))))


def _arm_payload(seconds: float) -> bytes:
    return bp.arm_payload(int(round(seconds * 1000)))

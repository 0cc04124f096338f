"""The smart box's real-time logic: debouncing, the drop counter, lock timing, jam, heartbeat.

Pure: it reads no pins and no clock. ``board.py`` feeds it the raw input levels
and a millisecond clock and drives the outputs it computes; frames from the
Pi arrive through ``on_frame``. Common subset of CPython and MicroPython, so
the same code is tested under both.

Rules it keeps:

- the slot starts locked, and locks on every drop, on a jam, when the lid
  opens, when the arm window ends, and when heartbeats stop;
- every debounced clear->blocked edge of the drop sensor is a drop; the
  counter is saved to flash before it is reported, so it survives restarts;
- a beam already blocked at boot is not counted (``F_UNCOUNTED``);
- commands are accepted only with a sequence number newer than the last
  accepted one (a stale or duplicated ARM never reopens the slot).
"""

import boxproto as bp
from debounce import Debouncer

DEFAULT_DEBOUNCE_MS = 20
DEFAULT_JAM_MS = 3000
DEFAULT_HEARTBEAT_MS = 5000
DEFAULT_ARM_MS = 90000


class BoxLogic:
    """One unit. Outputs: ``slot_open``, ``green``, ``red``, ``buzzer``; ``dirty`` asks for a status frame.

    ``unit_id`` (the chip's unique id) goes out in every STATUS, so the Pi can
    tell a replaced unit from drops it did not hear.
    """

    def __init__(self, store: object, now: int, beam: bool, lid: bool, unit_id: int = 0) -> None:
        self.slot_open = False
        self.unit_id = unit_id
        self.store = store
        boot, drops = store.load()  # type: ignore[attr-defined]
        self.boot = (boot + 1) & 0xFFFF
        self.drops = drops
        store.save(self.boot, self.drops)  # type: ignore[attr-defined]
        self.lid_opens = 0
        self.debounce_ms = DEFAULT_DEBOUNCE_MS
        self.jam_ms = DEFAULT_JAM_MS
        self.heartbeat_ms = DEFAULT_HEARTBEAT_MS
        self.arm_ms = DEFAULT_ARM_MS
        self.beam = Debouncer(beam, self.debounce_ms)
        self.lid = Debouncer(lid, self.debounce_ms)
        self.blocked_since = now if beam else None
        self.uncounted = beam
        self.jammed = False
        self.arm_until = None
        self.last_heartbeat = None
        self.tripped = False
        self.session = None
        self.last_seq = None
        self.tests = {}
        self.dirty = True

    # Inputs ---------------------------------------------------------------------

    def sense(self, beam_raw: bool, lid_raw: bool, now: int) -> None:
        """Feed the raw input levels read at ``now`` (ms)."""
        if self.beam.feed(beam_raw, now):
            self._beam_changed(now)
        if self.lid.feed(lid_raw, now):
            self._lid_changed()
        self.tick(now)

    def tick(self, now: int) -> None:
        """Let time pass: confirm held edges, end the arm window, detect jams and heartbeat loss."""
        if self.beam.settle(now):
            self._beam_changed(now)
        if self.lid.settle(now):
            self._lid_changed()
        self._check_jam(now)
        self._check_arm(now)
        self._check_heartbeat(now)

    def _beam_changed(self, now: int) -> None:
        if self.beam.level:
            self.blocked_since = self.beam.changed_at
            self._count_drop()
        else:
            self.blocked_since = None
            self.jammed = False
            self.uncounted = False
        self.dirty = True

    def _count_drop(self) -> None:
        self.drops += 1
        self.store.save(self.boot, self.drops)  # type: ignore[attr-defined]
        self._lock()

    def _lid_changed(self) -> None:
        if self.lid.level:
            self.lid_opens = (self.lid_opens + 1) & 0xFFFF
            self._lock()
        self.dirty = True

    def _check_jam(self, now: int) -> None:
        if self.blocked_since is not None and not self.jammed and now - self.blocked_since >= self.jam_ms:
            self.jammed = True
            self._lock()
            self.dirty = True

    def _check_arm(self, now: int) -> None:
        if self.slot_open and self.arm_until is not None and now >= self.arm_until:
            self._lock()
            self.dirty = True

    def _check_heartbeat(self, now: int) -> None:
        late = self.last_heartbeat is None or now - self.last_heartbeat >= self.heartbeat_ms
        if late and not self.tripped and self.last_heartbeat is not None:
            self.tripped = True
            self._lock()
            self.dirty = True

    # Frames from the Pi -----------------------------------------------------------

    def on_frame(self, frame: bp.Frame, now: int) -> bool:
        """Apply one frame from the Pi; False if it was stale, duplicated or malformed."""
        if frame.kind == bp.HELLO:
            return self._hello(frame, now)
        if self.last_seq is None or not bp.seq_newer(frame.seq, self.last_seq):
            return False
        handler = _HANDLERS.get(frame.kind)
        if handler is None or not handler(self, frame.payload, now):
            return False
        self.last_seq = frame.seq
        return True

    def _hello(self, frame: bp.Frame, now: int) -> bool:
        fields = bp.unpack(bp.HELLO_FMT, frame.payload)
        if fields is None:
            return False
        session = fields[4]
        if session == self.session and self.last_seq is not None and not bp.seq_newer(frame.seq, self.last_seq):
            return False
        self.debounce_ms, self.jam_ms, self.heartbeat_ms, self.arm_ms = fields[0], fields[1], fields[2], fields[3]
        self.beam.hold = self.debounce_ms
        self.lid.hold = self.debounce_ms
        self.session = session
        self.last_seq = frame.seq
        self._lock()
        # A new session: the heartbeat clock starts with the Pi's first heartbeat (or arm), not with
        # HELLO, because the station checks its journal in between and that may take longer.
        self.last_heartbeat = None
        if self.tripped:
            self.tripped = False
            self.dirty = True
        return True

    def _heard(self, now: int) -> None:
        self.last_heartbeat = now
        if self.tripped:
            self.tripped = False
            self.dirty = True

    def _on_heartbeat(self, payload: bytes, now: int) -> bool:
        self._heard(now)
        return True

    def _on_arm(self, payload: bytes, now: int) -> bool:
        fields = bp.unpack(bp.ARM_FMT, payload)
        if fields is None:
            return False
        self._heard(now)
        if self.may_arm():
            self.slot_open = True
            self.arm_until = now + min(fields[0], self.arm_ms)
            self.tests = {}
        self.dirty = True
        return True

    def may_arm(self) -> bool:
        """The slot may open only with the lid shut, no jam and a live heartbeat."""
        return not (self.lid.level or self.jammed or self.tripped or self.session is None)

    def _on_lock(self, payload: bytes, now: int) -> bool:
        self._lock()
        self.dirty = True
        return True

    def _on_status_req(self, payload: bytes, now: int) -> bool:
        self.dirty = True
        return True

    def _on_output(self, payload: bytes, now: int) -> bool:
        fields = bp.unpack(bp.OUTPUT_FMT, payload)
        if fields is None or fields[0] not in (bp.OUT_GREEN, bp.OUT_RED, bp.OUT_BUZZER):
            return False
        self.tests[fields[0]] = bool(fields[1])
        self.dirty = True
        return True

    def _lock(self) -> None:
        self.slot_open = False
        self.arm_until = None

    # Outputs ------------------------------------------------------------------------

    @property
    def fault(self) -> bool:
        return bool(self.lid.level or self.jammed or self.tripped or self.uncounted)

    @property
    def green(self) -> bool:
        return self.tests.get(bp.OUT_GREEN, self.slot_open)

    @property
    def red(self) -> bool:
        return self.tests.get(bp.OUT_RED, not self.slot_open and self.fault)

    @property
    def buzzer(self) -> bool:
        return self.tests.get(bp.OUT_BUZZER, bool(self.lid.level or self.jammed))

    def flags(self) -> int:
        bits = (
            (self.beam.level, bp.F_BEAM), (self.lid.level, bp.F_LID), (self.slot_open, bp.F_SLOT),
            (self.jammed, bp.F_JAM), (self.tripped, bp.F_TRIPPED), (self.uncounted, bp.F_UNCOUNTED),
            (self.green, bp.F_GREEN), (self.red, bp.F_RED), (self.buzzer, bp.F_BUZZER),
            (self.session is not None, bp.F_SESSION),
        )
        value = 0
        for on, bit in bits:
            if on:
                value |= bit
        return value

    def status(self) -> bytes:
        """The STATUS payload; clears ``dirty``."""
        self.dirty = False
        ack = self.last_seq if self.last_seq is not None else 0
        return bp.status_payload(self.boot, self.drops & 0xFFFFFFFF, self.lid_opens, self.flags(), ack, self.unit_id)


_HANDLERS = {
    bp.HEARTBEAT: BoxLogic._on_heartbeat,
    bp.ARM: BoxLogic._on_arm,
    bp.LOCK: BoxLogic._on_lock,
    bp.STATUS_REQ: BoxLogic._on_status_req,
    bp.OUTPUT: BoxLogic._on_output,
}

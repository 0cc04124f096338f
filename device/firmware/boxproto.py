"""The framed UART protocol between the Raspberry Pi and the smart ballot box (RP2040).

One implementation serves both ends: the firmware imports it as ``boxproto``
on the Pico, the Pi imports it as ``device.firmware.boxproto``. It is written
in the subset of Python that CPython 3.11 and MicroPython both run: no
``__future__``, no dataclasses, no ``typing`` at runtime, no f-strings with
``=``, no ``del`` on bytearray slices; ``const()`` comes from a shim.

A frame on the wire::

    0xB0 0x0B | LEN | SEQ (2, big-endian) | TYPE | payload (LEN bytes) | CRC (2, big-endian)

``LEN`` is the payload length (0-64). ``CRC`` is CRC-16/CCITT-FALSE (poly
0x1021, init 0xFFFF) over LEN, SEQ, TYPE and the payload. Each side numbers its
own frames; sequence numbers wrap at 65536 and compare with serial-number
arithmetic (``seq_newer``). ``FrameDecoder`` finds frames in a byte stream,
skipping noise and corrupted frames (it resynchronises on the next sync pair).

Messages are listed below with their payload layout (``struct`` formats,
big-endian); the specification in docs/ballot-box.md mirrors this file.
"""

import struct

try:
    from micropython import const  # pyright: ignore[reportAssignmentType]
except ImportError:  # CPython: const() is only an optimisation hint on MicroPython
    def const(value: int) -> int:
        return value

SYNC0 = const(0xB0)
SYNC1 = const(0x0B)
MAX_PAYLOAD = const(64)
HEADER_LEN = const(6)   # sync pair, LEN, SEQ (2), TYPE
OVERHEAD = const(8)     # header plus CRC

# Pi -> box ------------------------------------------------------------------
HELLO = const(0x01)      # '>HHHIH' debounce_ms, jam_ms, heartbeat_ms, arm_ms, session
HEARTBEAT = const(0x02)  # empty: the station core is alive
ARM = const(0x03)        # '>I' arm_ms: open the slot for one ballot
LOCK = const(0x04)       # empty: close the slot
STATUS_REQ = const(0x05)  # empty: send a status now (after a gap)
OUTPUT = const(0x06)     # '>BB' output id, on: self-test of lamps and buzzer

# Box -> Pi ------------------------------------------------------------------
STATUS = const(0x81)     # '>HIHHHQ' boot, drops, lid_opens, flags, ack (last accepted Pi seq), unit id

HELLO_FMT = ">HHHIH"
ARM_FMT = ">I"
OUTPUT_FMT = ">BB"
STATUS_FMT = ">HIHHHQ"
STATUS_FMT_NO_ID = ">HIHHH"  # firmware before unit ids: read as unit id 0 (unknown)

# Status flags
F_BEAM = const(0x0001)       # drop sensor blocked (debounced)
F_LID = const(0x0002)        # lid open (debounced)
F_SLOT = const(0x0004)       # slot lock energised (open)
F_JAM = const(0x0008)        # beam blocked longer than jam_ms
F_TRIPPED = const(0x0010)    # no heartbeat for heartbeat_ms: slot held locked
F_UNCOUNTED = const(0x0020)  # beam was blocked at boot: not counted as a drop
F_GREEN = const(0x0040)
F_RED = const(0x0080)
F_BUZZER = const(0x0100)
F_SESSION = const(0x0200)    # a HELLO was received since boot

# Output ids for OUTPUT
OUT_GREEN = const(1)
OUT_RED = const(2)
OUT_BUZZER = const(3)

STATUS_PERIOD_MS = const(250)  # the box sends a status at least this often


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (check value of b'123456789' is 0x29B1)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def encode(seq: int, kind: int, payload: bytes = b"") -> bytes:
    """One frame carrying ``payload`` as message ``kind`` with sequence number ``seq``."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("payload too long")
    body = bytes([len(payload), (seq >> 8) & 0xFF, seq & 0xFF, kind]) + payload
    crc = crc16(body)
    return bytes([SYNC0, SYNC1]) + body + bytes([crc >> 8, crc & 0xFF])


def seq_next(seq: int) -> int:
    return (seq + 1) & 0xFFFF


def seq_newer(seq: int, than: int) -> bool:
    """True if ``seq`` comes after ``than`` (serial-number arithmetic, half the space ahead)."""
    diff = (seq - than) & 0xFFFF
    return 0 < diff < 0x8000


def seq_gap(seq: int, after: int) -> int:
    """How many frames were skipped between ``after`` and a newer ``seq`` (0 when consecutive)."""
    return ((seq - after) & 0xFFFF) - 1


class Frame:
    """A decoded frame."""

    def __init__(self, seq: int, kind: int, payload: bytes) -> None:
        self.seq = seq
        self.kind = kind
        self.payload = payload

    def __repr__(self) -> str:
        return f"Frame(seq={self.seq}, kind=0x{self.kind:02x}, len={len(self.payload)})"


class FrameDecoder:
    """Turns a byte stream into frames; counts what it had to throw away."""

    def __init__(self) -> None:
        self._buf = b""
        self.crc_errors = 0
        self.bad_length = 0
        self.skipped_bytes = 0

    def feed(self, data: bytes) -> "list[Frame]":
        """Add received bytes; returns the complete, valid frames found, in order."""
        self._buf = self._buf + bytes(data)
        frames: list[Frame] = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _next(self) -> "Frame | None":
        while True:
            if not self._align():
                return None
            if len(self._buf) < 3:
                return None
            length = self._buf[2]
            if length > MAX_PAYLOAD:
                self.bad_length += 1
                self._skip(1)
                continue
            total = length + OVERHEAD
            if len(self._buf) < total:
                return None
            frame = self._check(self._buf[:total], length)
            if frame is None:
                self._skip(1)
                continue
            self._buf = self._buf[total:]
            return frame

    def _align(self) -> bool:
        """Drop bytes before the next sync pair; False if none is complete yet."""
        start = self._buf.find(bytes([SYNC0, SYNC1]))
        if start < 0:
            keep = 1 if self._buf[-1:] == bytes([SYNC0]) else 0
            self._skip(len(self._buf) - keep)
            return False
        self._skip(start)
        return True

    def _skip(self, count: int) -> None:
        if count > 0:
            self.skipped_bytes += count
            self._buf = self._buf[count:]

    def _check(self, raw: bytes, length: int) -> "Frame | None":
        body = raw[2:HEADER_LEN + length]
        crc = (raw[HEADER_LEN + length] << 8) | raw[HEADER_LEN + length + 1]
        if crc16(body) != crc:
            self.crc_errors += 1
            return None
        seq = (raw[3] << 8) | raw[4]
        return Frame(seq, raw[5], bytes(raw[HEADER_LEN:HEADER_LEN + length]))


# Message payloads -------------------------------------------------------------

def hello_payload(debounce_ms: int, jam_ms: int, heartbeat_ms: int, arm_ms: int, session: int) -> bytes:
    return struct.pack(HELLO_FMT, debounce_ms, jam_ms, heartbeat_ms, arm_ms, session)


def arm_payload(arm_ms: int) -> bytes:
    return struct.pack(ARM_FMT, arm_ms)


def output_payload(output: int, on: bool) -> bytes:
    return struct.pack(OUTPUT_FMT, output, 1 if on else 0)


def status_payload(boot: int, drops: int, lid_opens: int, flags: int, ack: int, unit_id: int = 0) -> bytes:
    """``unit_id``: the unit's 64-bit unique id (the RP2040's flash id); 0 when it has none."""
    return struct.pack(STATUS_FMT, boot, drops, lid_opens, flags, ack, unit_id)


def unpack_status(payload: bytes) -> "tuple[int, int, int, int, int, int] | None":
    """(boot, drops, lid_opens, flags, ack, unit_id) from a STATUS payload of either length, or None."""
    fields = unpack(STATUS_FMT, payload)
    if fields is not None:
        return fields[0], fields[1], fields[2], fields[3], fields[4], fields[5]
    old = unpack(STATUS_FMT_NO_ID, payload)
    if old is None:
        return None
    return old[0], old[1], old[2], old[3], old[4], 0


def unpack(fmt: str, payload: bytes) -> "tuple[int, ...] | None":
    """The payload's fields, or None if its length does not match ``fmt``."""
    if len(payload) != struct.calcsize(fmt):
        return None
    return struct.unpack(fmt, payload)

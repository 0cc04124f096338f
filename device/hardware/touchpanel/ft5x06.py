"""The FT5x06 touch controller's registers read as contacts, and contacts written as input events. Pure.

The Raspberry Pi 7-inch panel's controller (FocalTech FT5406, the FT5x06 family) keeps the touches
in a register block that ``poller`` reads over I2C from ``FIRST_REGISTER`` on, ``BLOCK`` bytes:

- 0x02 ``TD_STATUS``: the number of contacts in its low four bits;
- from 0x03, six bytes per contact: ``XH`` (bits 7-6 the event flag, 3-0 the high bits of X),
  ``XL``, ``YH`` (bits 7-4 the touch id, 3-0 the high bits of Y), ``YL``, weight and area.
  The flag is 0 put down, 1 lifted, 2 in contact, 3 nothing.

``parse`` turns a block into the contacts now on the glass, by touch id, in the panel's own
coordinates turned by a ``Geometry`` (a panel mounted upside down in its case is flipped both ways).
``Touches.step`` compares them with the contacts before and gives the Linux multi-touch events
(protocol B: one slot per touch id, a new tracking id per new contact, the single-touch
``BTN_TOUCH``, ``ABS_X`` and ``ABS_Y`` for the first contact) that make the change, ending with a
``SYN_REPORT``; none when nothing changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from protocol.errors import PollboxError

FIRST_REGISTER = 0x02
MAX_CONTACTS = 5
"""Contacts the controller reports at once (the FT5406's five touch point registers)."""
BLOCK = 1 + 6 * MAX_CONTACTS
"""Bytes read from ``FIRST_REGISTER``: ``TD_STATUS`` and the contact registers (31, within SMBus's 32)."""
MAX_TOUCH_ID = 9
TRACKING_IDS = 0xFFFF
"""Tracking ids run 0..TRACKING_IDS-1, then start again (a reader only needs them unique among live contacts)."""

EV_SYN, EV_KEY, EV_ABS = 0x00, 0x01, 0x03
SYN_REPORT = 0
BTN_TOUCH = 0x14A
ABS_X, ABS_Y = 0x00, 0x01
ABS_MT_SLOT, ABS_MT_POSITION_X, ABS_MT_POSITION_Y, ABS_MT_TRACKING_ID = 0x2F, 0x35, 0x36, 0x39
"""The kernel's input event codes (``linux/input-event-codes.h``), as the uinput device is given them."""

DOWN, UP, CONTACT, NONE = 0, 1, 2, 3

Point = tuple[int, int]
Event = tuple[int, int, int]
"""(type, code, value), as ``struct input_event`` carries them."""


class FrameError(PollboxError, ValueError):
    """A register block that cannot be the controller's (a glitch on the bus, or another chip)."""


@dataclass(frozen=True)
class Geometry:
    """The panel's resolution and how its coordinates are turned to the screen's."""

    width: int = 800
    height: int = 480
    flip_x: bool = False
    flip_y: bool = False
    swap_xy: bool = False

    def __post_init__(self) -> None:
        if not (1 <= self.width <= 4096 and 1 <= self.height <= 4096):
            raise ValueError(f"a touch panel of {self.width}x{self.height} is not possible (1 to 4096 each way)")

    @property
    def size(self) -> Point:
        """(width, height) of the screen the touches land on."""
        return (self.height, self.width) if self.swap_xy else (self.width, self.height)

    def place(self, x: int, y: int) -> Point:
        """The panel's (x, y) on the screen, clamped to it."""
        x, y = min(max(x, 0), self.width - 1), min(max(y, 0), self.height - 1)
        if self.flip_x:
            x = self.width - 1 - x
        if self.flip_y:
            y = self.height - 1 - y
        return (y, x) if self.swap_xy else (x, y)


def parse(block: bytes, geometry: Geometry) -> dict[int, Point]:
    """The contacts on the glass, by touch id, from a register block read at ``FIRST_REGISTER``."""
    if len(block) != BLOCK:
        raise FrameError(f"the touch controller gave {len(block)} bytes, not {BLOCK}")
    count = block[0] & 0x0F
    if count > MAX_CONTACTS:
        raise FrameError(f"the touch controller reports {count} contacts; it has registers for {MAX_CONTACTS}")
    contacts: dict[int, Point] = {}
    for n in range(count):
        xh, xl, yh, yl = block[1 + 6 * n: 5 + 6 * n]
        flag, touch_id = xh >> 6, yh >> 4
        if flag in (UP, NONE):
            continue
        if touch_id > MAX_TOUCH_ID:
            raise FrameError(f"contact {n} has touch id {touch_id}; the controller numbers them 0 to {MAX_TOUCH_ID}")
        if touch_id in contacts:
            raise FrameError(f"touch id {touch_id} is reported twice in one frame")
        contacts[touch_id] = geometry.place(((xh & 0x0F) << 8) | xl, ((yh & 0x0F) << 8) | yl)
    return contacts


@dataclass(frozen=True)
class Touches:
    """What the uinput device last said: each live slot's (tracking id, point), and the next tracking id."""

    slots: Mapping[int, tuple[int, Point]] = field(default_factory=dict)
    next_id: int = 0

    def step(self, contacts: Mapping[int, Point]) -> tuple[Touches, list[Event]]:
        """The state after ``contacts`` and the events that say the change (none when nothing changed)."""
        events: list[Event] = []
        slots = dict(self.slots)
        next_id = self.next_id
        for slot in sorted(set(slots) - set(contacts)):
            events += [(EV_ABS, ABS_MT_SLOT, slot), (EV_ABS, ABS_MT_TRACKING_ID, -1)]
            del slots[slot]
        for slot in sorted(contacts):
            (x, y), before = contacts[slot], slots.get(slot)
            if before is None:
                events += [(EV_ABS, ABS_MT_SLOT, slot), (EV_ABS, ABS_MT_TRACKING_ID, next_id),
                           (EV_ABS, ABS_MT_POSITION_X, x), (EV_ABS, ABS_MT_POSITION_Y, y)]
                slots[slot] = (next_id, (x, y))
                next_id = (next_id + 1) % TRACKING_IDS
            elif before[1] != (x, y):
                events.append((EV_ABS, ABS_MT_SLOT, slot))
                if x != before[1][0]:
                    events.append((EV_ABS, ABS_MT_POSITION_X, x))
                if y != before[1][1]:
                    events.append((EV_ABS, ABS_MT_POSITION_Y, y))
                slots[slot] = (before[0], (x, y))
        if not events:
            return self, []
        if bool(slots) != bool(self.slots):
            events.append((EV_KEY, BTN_TOUCH, int(bool(slots))))
        if slots:
            first = slots[min(slots)][1]
            old = self.slots[min(self.slots)][1] if self.slots else None
            if old is None or first[0] != old[0]:
                events.append((EV_ABS, ABS_X, first[0]))
            if old is None or first[1] != old[1]:
                events.append((EV_ABS, ABS_Y, first[1]))
        events.append((EV_SYN, SYN_REPORT, 0))
        return Touches(slots, next_id), events

    def lift_all(self) -> tuple[Touches, list[Event]]:
        """Every contact lifted: what is said when the panel stops answering or the poller stops."""
        return self.step({})

"""What the station session is told, and what it tells the hardware to do.

Every input the station can receive is a frozen dataclass here: a document
read (``Identify``), a box signal (``BoxSaw``), the scanner's state, a chair
action, the passage of time (``Tick``), the journal's free space, a storage
fault ending. ``Action`` names what the driver does to the hardware once a step
is committed. ``Context`` holds the station's fixed facts and ``Now`` one
reading of the injected clock. The rules live in ``session.py``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import station as st
from . import units as un
from .delays import Delays
from .enrollment import EnrollmentFound, EnrollmentRefusalFound, EnrollmentStepFailed
from .events import CheckinMethod
from .update import UpdateChecked, UpdateFinished


class BoxSignal(str, enum.Enum):
    """What a ballot box unit reports, after debouncing."""

    BEAM_BLOCKED = "beam_blocked"
    BEAM_CLEARED = "beam_cleared"
    LID_OPENED = "lid_opened"
    LID_CLOSED = "lid_closed"
    UNIT_LOST = "unit_lost"
    UNIT_FOUND = "unit_found"
    JAMMED = "jammed"
    """The unit reports its drop sensor blocked by something it did not count as a ballot
    (it restarted with the beam blocked): a jam, never a drop."""


# What does not change during the day ------------------------------------------------

@dataclass(frozen=True)
class Context:
    """The station's fixed facts: its voter list (hash -> entry), list lines, delays, its units."""

    voters: Mapping[str, st.VoterEntry]
    delays: Delays
    lines: Mapping[int, str] = field(default_factory=dict)
    units: un.Units = field(default_factory=un.Units.single)

    @classmethod
    def of(cls, voters: Mapping[str, st.VoterEntry], delays: Delays) -> Context:
        return cls(voters, delays, {entry.line: voter for voter, entry in voters.items()})


@dataclass(frozen=True)
class Now:
    """A reading of the injected clock: ``mono`` for timers, ``wall`` for records."""

    mono: float
    wall: float


# Inputs ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StartUp:
    """The station software started: the box's inputs as read at start."""

    software: str
    station_id: str
    beam_blocked: bool = False
    lid_open: bool = False
    unit_drops: int | None = None
    unit_id: str | None = None
    slot: str = ""
    """The root slot the unit booted (``A``/``B``), "" when no updater knows it (``device/updates``)."""
    slot_version: str = ""
    """The version of the bundle written into that slot, "" when unknown (the image as flashed)."""


@dataclass(frozen=True)
class Identify:
    """A document read or a number typed: ``voter`` is its keyed hash (None if unreadable)."""

    voter: str | None
    desk_key: str
    method: CheckinMethod
    detail: str = ""


@dataclass(frozen=True)
class BoxSaw:
    """A box signal at monotonic time ``at``, with the unit's drop counter and identity where it has them."""

    signal: BoxSignal
    at: float
    count: int | None = None
    unit_id: str | None = None


@dataclass(frozen=True)
class ScannerChanged:
    """The scanner's state: connected, disconnected or reading."""

    state: str


@dataclass(frozen=True)
class OpenPolls:
    pass


@dataclass(frozen=True)
class PausePolls:
    reason: str = ""


@dataclass(frozen=True)
class ResumePolls:
    pass


@dataclass(frozen=True)
class ClosePolls:
    pass


@dataclass(frozen=True)
class Acknowledge:
    alarm: int
    note: str = ""


@dataclass(frozen=True)
class Undo:
    """Undo the standing check-in of the voter on list line ``line``."""

    line: int
    reason: str


@dataclass(frozen=True)
class Note:
    """A note of record (readiness, enrollment, PIN lockout, USB export)."""

    topic: str
    text: str


@dataclass(frozen=True)
class Tick:
    """Time passed: token expiry, jam detection, heartbeat, turnout snapshot."""


@dataclass(frozen=True)
class SpaceChecked:
    """The journal's free space against its reserve: ``low`` raises the low-storage alarm once."""

    low: bool
    sentence: str


@dataclass(frozen=True)
class StorageRecovered:
    """The journal takes writes again after it could not: what happened goes on the record first."""

    detail: str


@dataclass(frozen=True)
class PeerRecords:
    """Check-in records of other units of the station, received over the LAN, signatures verified."""

    records: tuple[un.PeerCheckin, ...]
    closes: tuple[un.PeerClose, ...] = ()


@dataclass(frozen=True)
class CloseWithout:
    """The chair closes without another unit's final records (that unit is out of reach), with a reason."""

    unit: str
    reason: str


@dataclass(frozen=True)
class PeerRefused:
    """A record (or a whole message) from the LAN the sync layer refused: its unit and seq if known, and why."""

    unit: str | None
    seq: int | None
    reason: str


@dataclass(frozen=True)
class PeerClock:
    """Another unit's wall clock as its sync answer gave it, minus this unit's at the same moment (seconds)."""

    unit: str
    offset: float


Input = (StartUp | Identify | BoxSaw | ScannerChanged | OpenPolls | PausePolls | ResumePolls | ClosePolls
         | Acknowledge | Undo | Note | Tick | SpaceChecked | StorageRecovered | PeerRecords | PeerRefused | PeerClock
         | CloseWithout | UpdateChecked | UpdateFinished | EnrollmentFound | EnrollmentRefusalFound
         | EnrollmentStepFailed)


# Actions -----------------------------------------------------------------------------------

class Action(str, enum.Enum):
    """What the driver does to the hardware. ``LOCK_SLOT`` comes before the commit, the rest after."""

    LOCK_SLOT = "lock_slot"
    ARM_SLOT = "arm_slot"
    HEARTBEAT = "heartbeat"
    WAKE_UPSTREAM = "wake_upstream"

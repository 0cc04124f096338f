"""The events of a polling day, as frozen dataclasses.

An event is a fact the station has committed to its journal. Each class has a
``kind`` (its stable name in the journal and upstream) and only plain fields
(str, int, float, bool, None) so that its canonical bytes are well defined.
``encode``/``decode`` turn an event into its journal body and back; the
catalogue (``catalogue.py``) gives every kind a code and a sentence for
operators.

No event ever carries a raw personal number or a voter's name: voters appear
only as keyed hashes (hex) and list line numbers.
"""

from __future__ import annotations

import enum
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

from protocol.canonical import canonical as canonical  # the journal hashes its rows in the wire format's JSON

from .errors import InvalidEvent


class Refusal(str, enum.Enum):
    """Why a voter was not admitted."""

    ALREADY_VOTED = "already_voted"
    NOT_ON_LIST = "not_on_list"
    INVALID_DOCUMENT = "invalid_document"
    POLLS_NOT_OPEN = "polls_not_open"
    ADMITTED_ELSEWHERE = "admitted_elsewhere"
    """Another unit of the station admitted the voter (its record is in this unit's replica)."""
    HOME_VOTING = "home_voting"
    """A desk: the voter is registered for home voting, which only the mobile unit admits."""
    NOT_HOME_VOTING = "not_home_voting"
    """The mobile unit: the voter is not registered for home voting and votes at the station."""


class AlarmKind(str, enum.Enum):
    """Incidents that need the chair's attention until acknowledged."""

    DROP_WITHOUT_TOKEN = "drop_without_token"
    SECOND_BALLOT = "second_ballot"
    LID_OPENED = "lid_opened"
    JAM = "jam"
    BOX_UNIT_LOST = "box_unit_lost"
    BOX_UNIT_REPLACED = "box_unit_replaced"
    SCANNER_LOST = "scanner_lost"
    STORAGE_LOW = "storage_low"
    STORAGE_FAILED = "storage_failed"
    UNIT_CONFLICT = "unit_conflict"
    UNIT_CLOCK_DRIFT = "unit_clock_drift"


class CheckinMethod(str, enum.Enum):
    """How a voter was identified."""

    SCAN = "scan"
    MANUAL = "manual"


@dataclass(frozen=True)
class Event:
    """Base class: every journal event."""

    kind: ClassVar[str] = ""


@dataclass(frozen=True)
class DeviceStarted(Event):
    kind: ClassVar[str] = "device_started"
    software: str
    station_id: str


@dataclass(frozen=True)
class PollsOpened(Event):
    kind: ClassVar[str] = "polls_opened"
    identified: int
    ballots: int


@dataclass(frozen=True)
class PollsPaused(Event):
    kind: ClassVar[str] = "polls_paused"
    reason: str


@dataclass(frozen=True)
class PollsResumed(Event):
    kind: ClassVar[str] = "polls_resumed"


@dataclass(frozen=True)
class PollsClosed(Event):
    kind: ClassVar[str] = "polls_closed"
    identified: int
    ballots: int
    difference: int
    alarms_total: int
    alarms_open: int


@dataclass(frozen=True)
class VoterAdmitted(Event):
    kind: ClassVar[str] = "voter_admitted"
    voter: str
    line: int
    method: str
    token: int


@dataclass(frozen=True)
class CheckinRefused(Event):
    kind: ClassVar[str] = "checkin_refused"
    reason: str
    voter: str | None = None
    first_seq: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class CheckinUndone(Event):
    kind: ClassVar[str] = "checkin_undone"
    voter: str
    reason: str


@dataclass(frozen=True)
class BallotCounted(Event):
    """A ballot went in. ``unit_count`` is the box unit's own drop counter after
    this ballot, when the unit keeps one (a smart box); None otherwise."""

    kind: ClassVar[str] = "ballot_counted"
    token: int | None
    unit_count: int | None = None


@dataclass(frozen=True)
class BoxCounterNoted(Event):
    """The box unit's drop counter taken as the reference without counting a ballot.

    Recorded when the journal holds no counter yet (``previous`` None: the
    first time the station hears a unit with a counter), when the unit
    reports less than the journal holds (an erased unit), and when another
    unit answers (``unit_id`` differs from the journal's: a replaced unit,
    whatever its counter). Nothing is ever subtracted or added. ``unit_id``
    is the unit's identity where it reports one; the first time a unit with
    an identity is heard, its identity is noted with an unchanged counter.
    """

    kind: ClassVar[str] = "box_counter_noted"
    unit_count: int
    previous: int | None
    unit_id: str | None = None


@dataclass(frozen=True)
class ArmExpired(Event):
    kind: ClassVar[str] = "arm_expired"
    token: int


@dataclass(frozen=True)
class ArmCancelled(Event):
    kind: ClassVar[str] = "arm_cancelled"
    token: int
    reason: str


@dataclass(frozen=True)
class ArmResumed(Event):
    """The ballot box unit was heard again while ``token`` was open: the slot opened again for that voter."""

    kind: ClassVar[str] = "arm_resumed"
    token: int


@dataclass(frozen=True)
class AlarmRaised(Event):
    kind: ClassVar[str] = "alarm_raised"
    alarm: int
    alarm_kind: str
    detail: str = ""


@dataclass(frozen=True)
class AlarmAcknowledged(Event):
    kind: ClassVar[str] = "alarm_acknowledged"
    alarm: int
    note: str = ""


@dataclass(frozen=True)
class LidClosed(Event):
    kind: ClassVar[str] = "lid_closed"


@dataclass(frozen=True)
class JamCleared(Event):
    kind: ClassVar[str] = "jam_cleared"


@dataclass(frozen=True)
class DeviceStatusChanged(Event):
    """A part of the unit came or went (scanner, box unit, uplink)."""

    kind: ClassVar[str] = "device_status_changed"
    part: str
    status: str


@dataclass(frozen=True)
class TurnoutSnapshot(Event):
    """The hourly turnout figure, produced while polls are open."""

    kind: ClassVar[str] = "turnout_snapshot"
    identified: int
    ballots: int
    registered: int


@dataclass(frozen=True)
class Annotation(Event):
    """A technician or system note of record (readiness, enrollment, zeroize)."""

    kind: ClassVar[str] = "annotation"
    topic: str
    text: str


@dataclass(frozen=True)
class PeerCheckinApplied(Event):
    """Another unit's admission, from its signed record, applied to this unit's replica (``core/units.py``).

    ``unit_seq`` is the admission's number at that unit; ``hlc`` its hybrid logical clock stamp;
    ``signature`` the unit's signature (base64) over the record's canonical bytes, made with the key the
    package enrolled for it: Ed25519 for a key file, ECDSA P-256 for a key held in its TPM."""

    kind: ClassVar[str] = "peer_checkin_applied"
    station: str
    unit: str
    unit_seq: int
    voter: str
    line: int
    at: float
    hlc: int
    signature: str
    undoes: int = 0
    """0 for an admission; for that unit's undo of one of its admissions, the admission's ``unit_seq``."""


@dataclass(frozen=True)
class PeerRecordRefused(Event):
    """A record from the station LAN was not applied; ``reason`` says why. Nothing of it was applied."""

    kind: ClassVar[str] = "peer_record_refused"
    unit: str | None
    unit_seq: int | None
    reason: str


@dataclass(frozen=True)
class UnitConflict(Event):
    """The same voter admitted by two units of the station (``first`` is the earlier by the units' clock)."""

    kind: ClassVar[str] = "unit_conflict"
    voter: str
    line: int
    first_unit: str
    first_seq: int
    first_at: float
    second_unit: str
    second_seq: int
    second_at: float


@dataclass(frozen=True)
class PeerClosed(Event):
    """Another unit closed its polls: its signed close record (its admissions, voters identified and ballots),
    applied once this unit held all those admissions."""

    kind: ClassVar[str] = "peer_closed"
    station: str
    unit: str
    admissions: int
    identified: int
    ballots: int
    at: float
    signature: str


@dataclass(frozen=True)
class UnitAbsentAtClose(Event):
    """The chair closes without another unit's final records; ``reason`` as the chair gave it."""

    kind: ClassVar[str] = "unit_absent_at_close"
    unit: str
    reason: str


@dataclass(frozen=True)
class UnitsReconciled(Event):
    """The main unit's close over all the station's units: the desks' part, the mobile box's part
    (identified against ballots of that box), the combined total, and the units closed without."""

    kind: ClassVar[str] = "units_reconciled"
    desks_identified: int
    desks_ballots: int
    mobile_identified: int
    mobile_ballots: int
    identified: int
    ballots: int
    conflicts: int
    absent: str
    """Units closed without, comma-separated ("" when every unit's close is held)."""
    parts: str
    """Each unit's part as ``unit identified/ballots``, comma-separated, in the package's order."""


@dataclass(frozen=True)
class UpdateRefused(Event):
    """A software update was refused before anything was written (``core/update.py``); ``reason`` is an
    ``UpdateRefusal`` value, ``detail`` the sentence the technician read."""

    kind: ClassVar[str] = "update_refused"
    reason: str
    detail: str
    version: str
    size: int


@dataclass(frozen=True)
class UpdateStarted(Event):
    """A signed bundle for this hardware was accepted and is being written into the other root slot."""

    kind: ClassVar[str] = "update_started"
    version: str
    compatible: str
    size: int
    signer: str


@dataclass(frozen=True)
class UpdateInstalled(Event):
    """The bundle was written into ``slot``, which boots once on trial at the next start."""

    kind: ClassVar[str] = "update_installed"
    version: str
    slot: str


@dataclass(frozen=True)
class UpdateFailed(Event):
    """The install did not finish (``detail``: the updater's sentence); the other slot is not booted."""

    kind: ClassVar[str] = "update_failed"
    version: str
    detail: str


@dataclass(frozen=True)
class UpdateBooted(Event):
    """The unit started from ``slot``, which the install of ``version`` wrote: the new software runs (on trial
    until the appliance is ready, then kept: docs/updates.md)."""

    kind: ClassVar[str] = "update_booted"
    version: str
    slot: str


@dataclass(frozen=True)
class UpdateRolledBack(Event):
    """The unit started from ``booted`` (running ``booted_version``, "" if unknown), not from ``slot``, which
    ran or was to run ``version``: the install never booted, or its trial boot ended without the appliance
    becoming ready, and the boot loader went back."""

    kind: ClassVar[str] = "update_rolled_back"
    version: str
    slot: str
    booted: str
    booted_version: str


@dataclass(frozen=True)
class PollsHeldForUpdate(Event):
    """The chair asked to ``action`` (open or resume) the polls while the bundle ``version`` was being written
    into the other root slot: refused until the install ends (``core/update.py``)."""

    kind: ClassVar[str] = "polls_held_for_update"
    action: str
    version: str


@dataclass(frozen=True)
class DeviceKeyEnrolled(Event):
    """The unit holds the CEC's enrollment certificate for its record key (``core/enrollment.py``): ``certificate``
    is the SHA-256 (hex) of the stored certificate, ``station``, ``serial`` and ``enrolled_at`` what it says."""

    kind: ClassVar[str] = "device_key_enrolled"
    key_id: str
    alg: str
    store: str
    certificate: str
    station: str
    serial: str
    enrolled_at: str


@dataclass(frozen=True)
class DeviceKeyEnrollmentRefused(Event):
    """An enrollment certificate (SHA-256 ``certificate``) was not taken for the record key ``key_id``:
    ``source`` says where it was (``stick`` or ``card``), ``reason`` why (``core/enrollment.py``)."""

    kind: ClassVar[str] = "device_key_enrollment_refused"
    key_id: str
    certificate: str
    source: str
    reason: str
    refused_at: str


@dataclass(frozen=True)
class DeviceKeyEnrollmentFailed(Event):
    """The enrollment step failed for the record key ``key_id`` before it read any certificate (``core/enrollment.py``):
    ``attempt`` is the SHA-256 (hex) naming that attempt, ``reason`` why, ``failed_at`` when."""

    kind: ClassVar[str] = "device_key_enrollment_failed"
    key_id: str
    attempt: str
    reason: str
    failed_at: str


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        DeviceStarted, PollsOpened, PollsPaused, PollsResumed, PollsClosed,
        VoterAdmitted, CheckinRefused, CheckinUndone, BallotCounted, BoxCounterNoted, ArmExpired,
        ArmCancelled, ArmResumed, AlarmRaised, AlarmAcknowledged, LidClosed, JamCleared,
        DeviceStatusChanged, TurnoutSnapshot, Annotation, PeerCheckinApplied, PeerRecordRefused, UnitConflict,
        PeerClosed, UnitAbsentAtClose, UnitsReconciled,
        UpdateRefused, UpdateStarted, UpdateInstalled, UpdateFailed, PollsHeldForUpdate, UpdateBooted,
        UpdateRolledBack, DeviceKeyEnrolled, DeviceKeyEnrollmentRefused, DeviceKeyEnrollmentFailed,
    )
}


def body_of(event: Event) -> dict[str, Any]:
    """The event's fields as a plain dict (its journal body); fields are plain values, so no deep copy."""
    return {name: getattr(event, name) for name in _field_names(type(event))}


_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """The field names of an event class, computed once per class (the journal's hot path)."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def decode(kind: str, body: dict[str, Any]) -> Event:
    """Rebuild an event from its kind and body; raises InvalidEvent on mismatch.

    Every field without a default must be present and no unknown field may be.
    A field added to a kind later always has a default, so bodies written
    before it existed (``ballot_counted`` without ``unit_count``) still decode;
    the journal hashes the stored text, so nothing is re-encoded.
    """
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        raise InvalidEvent(f"unknown event kind {kind!r}")
    names = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    if not required <= set(body) <= names:
        raise InvalidEvent(f"{kind}: fields {sorted(body)} do not match {sorted(names)}")
    try:
        return cls(**body)
    except TypeError as exc:
        raise InvalidEvent(f"{kind}: {exc}") from exc


@dataclass(frozen=True)
class Recorded:
    """An event as committed: its gapless sequence number and wall-clock time."""

    seq: int
    at: float
    event: Event

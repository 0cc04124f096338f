"""The station: what the journal says, and what to record next.

``StationState`` is the fold of every recorded event (``apply``); it is the
only source of the counters the chair, observers and the CEC see. The
``decide_*`` functions take the state and a request and return the events to
record, or raise ``IllegalTransition`` without changing anything. The
appliance commits the returned events to the journal first, applies them
second, and acts (arms the slot, shows "admitted") third.

``apply`` also checks that each event fits what came before (a ballot token that was issued, an
alarm that exists, zero counts at opening): the verifier names the first event that does not add up.

A smart ballot box keeps its own drop counter: ``decide_unit_count`` turns drops
it counted while nobody was listening into ballots and alarms, exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from . import events as ev
from . import units as un
from .enrollment import certificate_mark
from .errors import IllegalTransition, InvalidEvent, RefusalCode
from .events import AlarmKind, CheckinMethod, Refusal
from .poll import PollAction, PollState, next_poll_state
from .update import UPDATE_EVENTS, SlotRecord, UpdateOutcome, UpdatePhase, UpdateStep, next_phase, outcome_of


class VoterEntry(NamedTuple):
    """One line of the station's voter list (the name is for the screen only)."""

    line: int
    name: str


@dataclass(frozen=True)
class OpenAlarm:
    alarm: int
    kind: AlarmKind
    detail: str
    seq: int
    at: float


@dataclass
class StationState:
    """Counters and registers folded from the journal."""

    poll: PollState = PollState.SETUP
    last_seq: int = 0
    identified: int = 0
    ballots: int = 0
    admissions_ever: int = 0
    undone: int = 0
    checkins: dict[str, tuple[int, float]] = field(default_factory=dict)
    token_of: dict[str, int] = field(default_factory=dict)
    open_tokens: set[int] = field(default_factory=set)
    next_token: int = 1
    alarms: dict[int, OpenAlarm] = field(default_factory=dict)
    alarms_total: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    lid_open: bool = False
    jammed: bool = False
    box_lost: bool = False
    """The ballot box unit stopped answering and has not answered since (``DeviceStatusChanged``)."""
    unit_count: int | None = None
    unit_id: str | None = None
    """The box unit's drop counter as of the last ballot it counted (or the last ``BoxCounterNoted``)."""
    replica: un.Replica = field(default_factory=un.Replica)
    """This unit's admissions and the other units' (``core/units.py``), for a station with several units."""
    update: UpdatePhase = UpdatePhase.IDLE
    """Whether a software update is being written into the other root slot (``core/update.py``)."""
    update_version: str = ""
    """The version of the bundle being written while ``update`` is installing, else empty."""
    slots: SlotRecord = SlotRecord()
    last_update: UpdateOutcome | None = None
    """The last update event's outcome (refused and why, installed, rolled back...), for the screens."""
    """The install waiting for its boot and the slot last started from (``core/update.py``: ``decide_boot``)."""
    key_certificates: set[str] = field(default_factory=set)
    """Enrollment certificates of the record key the journal holds, as ``core/enrollment.py``'s
    ``certificate_mark`` (its kind, taken or refused, and the certificate's SHA-256)."""

    @property
    def difference(self) -> int:
        """Ballots counted minus voters identified: zero when all is well."""
        return self.ballots - self.identified

    @property
    def anything_recorded(self) -> bool:
        """True once any admission or ballot exists: the zero report is then void."""
        return self.admissions_ever > 0 or self.ballots > 0


# Applying recorded events -----------------------------------------------------

def apply(state: StationState, rec: ev.Recorded) -> None:
    """Fold one recorded event into ``state``; raises InvalidEvent if it does not fit."""
    if rec.seq != state.last_seq + 1:
        raise InvalidEvent(f"sequence {rec.seq} follows {state.last_seq}")
    handler = _APPLY.get(type(rec.event))
    if handler is not None:
        handler(state, rec)
    if isinstance(rec.event, UPDATE_EVENTS):
        state.last_update = outcome_of(rec.event)
    mark = certificate_mark(rec.event)
    if mark is not None:
        state.key_certificates.add(mark)
    state.last_seq = rec.seq


Applier = Callable[[StationState, ev.Recorded], None]


def _poll_move(action: PollAction) -> Applier:
    def move(state: StationState, rec: ev.Recorded) -> None:
        _move(state, rec, action)
    return move


def _opened(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.PollsOpened)
    if state.anything_recorded or e.identified or e.ballots:
        raise InvalidEvent("polls opened with counts already recorded")
    _move(state, rec, PollAction.OPEN)


def _closed(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.PollsClosed)
    got = (e.identified, e.ballots, e.difference, e.alarms_total, e.alarms_open)
    want = (state.identified, state.ballots, state.difference, state.alarms_total, len(state.alarms))
    if got != want:
        raise InvalidEvent(f"close report {got} does not match the journal {want}")
    _move(state, rec, PollAction.CLOSE)
    state.replica.own_close = (state.replica.last_seq, e.identified, e.ballots, rec.at)


def _move(state: StationState, rec: ev.Recorded, action: PollAction) -> None:
    try:
        state.poll = next_poll_state(state.poll, action)
    except IllegalTransition as exc:
        raise InvalidEvent(str(exc)) from None


def _admitted(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.VoterAdmitted)
    if state.poll is not PollState.OPEN:
        raise InvalidEvent("voter admitted while polls not open")
    if e.voter in state.checkins:
        raise InvalidEvent("voter admitted twice")
    if e.token != state.next_token:
        raise InvalidEvent(f"token {e.token} issued out of order (expected {state.next_token})")
    state.checkins[e.voter] = (rec.seq, rec.at)
    un.own_admitted(state.replica, e.voter, e.line, rec.at)
    state.token_of[e.voter] = e.token
    state.open_tokens.add(e.token)
    state.next_token += 1
    state.identified += 1
    state.admissions_ever += 1


def _refused(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.CheckinRefused)
    state.refusals[e.reason] = state.refusals.get(e.reason, 0) + 1


def _undone(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.CheckinUndone)
    if e.voter not in state.checkins:
        raise InvalidEvent("undo of a check-in that is not standing")
    del state.checkins[e.voter]
    un.own_undone(state.replica, e.voter, rec.at)
    state.token_of.pop(e.voter, None)  # an open token is closed by the ArmCancelled that follows
    state.identified -= 1
    state.undone += 1


def _counted(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.BallotCounted)
    if e.token is not None and e.token not in state.open_tokens:
        raise InvalidEvent(f"ballot consumed token {e.token}, which is not open")
    if e.unit_count is not None and state.unit_count is not None and e.unit_count != state.unit_count + 1:
        raise InvalidEvent(f"ballot carries box unit count {e.unit_count}, which does not follow {state.unit_count}")
    if e.token is not None:
        state.open_tokens.discard(e.token)
    if e.unit_count is not None:
        state.unit_count = e.unit_count
    state.ballots += 1


def _counter_noted(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.BoxCounterNoted)
    if e.previous != state.unit_count:
        raise InvalidEvent(f"box counter noted after {e.previous}, but the journal holds {state.unit_count}")
    if e.unit_count < 0:
        raise InvalidEvent(f"box counter {e.unit_count} is negative")
    other_unit = e.unit_id is not None and state.unit_id is not None and e.unit_id != state.unit_id
    identity_learned = e.unit_id is not None and state.unit_id is None and e.unit_count == e.previous
    if e.previous is not None and e.unit_count >= e.previous and not (other_unit or identity_learned):
        raise InvalidEvent(f"box counter {e.unit_count} noted although it is not lower than {e.previous}")
    state.unit_count = e.unit_count
    if e.unit_id is not None:
        state.unit_id = e.unit_id


def _token_closed(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, (ev.ArmExpired, ev.ArmCancelled))
    if e.token not in state.open_tokens:
        raise InvalidEvent(f"token {e.token} closed but not open")
    state.open_tokens.discard(e.token)


def _alarm(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.AlarmRaised)
    if e.alarm != state.alarms_total + 1:
        raise InvalidEvent(f"alarm {e.alarm} out of order")
    kind = AlarmKind(e.alarm_kind)
    state.alarms[e.alarm] = OpenAlarm(e.alarm, kind, e.detail, rec.seq, rec.at)
    state.alarms_total += 1
    if kind is AlarmKind.LID_OPENED:
        state.lid_open = True
    if kind is AlarmKind.JAM:
        state.jammed = True


def _acknowledged(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.AlarmAcknowledged)
    if state.alarms.pop(e.alarm, None) is None:
        raise InvalidEvent(f"acknowledged alarm {e.alarm}, which is not open")


def _lid_closed(state: StationState, rec: ev.Recorded) -> None:
    state.lid_open = False


def _jam_cleared(state: StationState, rec: ev.Recorded) -> None:
    state.jammed = False


def _started(state: StationState, rec: ev.Recorded) -> None:
    """A restart: the slot is locked and the lid, the sensor and the box unit are read afresh."""
    state.lid_open = False
    state.jammed = False
    state.box_lost = False
    if state.update is UpdatePhase.INSTALLING:  # an install the restart cut short failed: its slot stays bad
        state.last_update = UpdateOutcome("failed", state.update_version)
    state.update = UpdatePhase.IDLE
    state.update_version = ""


def _update_move(step: UpdateStep) -> Applier:
    def move(state: StationState, rec: ev.Recorded) -> None:
        try:
            state.update = next_phase(state.update, step)
        except IllegalTransition as exc:
            raise InvalidEvent(str(exc)) from None
        e = rec.event
        state.update_version = e.version if isinstance(e, ev.UpdateStarted) else ""
    return move


def _installed(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.UpdateInstalled)
    _update_move(UpdateStep.FINISH)(state, rec)
    state.slots = SlotRecord((e.version, e.slot), state.slots.running)


def _booted(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.UpdateBooted)
    state.slots = SlotRecord(None, (e.slot, e.version))


def _rolled_back(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.UpdateRolledBack)
    state.slots = SlotRecord(None, (e.booted, e.booted_version))


def _nothing(state: StationState, rec: ev.Recorded) -> None:
    """An event of record that changes nothing the station folds (a slot reopened for a token still open)."""


def _device_status(state: StationState, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.DeviceStatusChanged)
    if e.part == "ballot_box":
        state.box_lost = e.status == "lost"


_APPLY: Mapping[type, Applier] = {
    ev.DeviceStarted: _started,
    ev.PollsOpened: _opened,
    ev.PollsPaused: _poll_move(PollAction.PAUSE),
    ev.PollsResumed: _poll_move(PollAction.RESUME),
    ev.PollsClosed: _closed,
    ev.VoterAdmitted: _admitted,
    ev.CheckinRefused: _refused,
    ev.CheckinUndone: _undone,
    ev.BallotCounted: _counted,
    ev.BoxCounterNoted: _counter_noted,
    ev.ArmExpired: _token_closed,
    ev.ArmCancelled: _token_closed,
    ev.ArmResumed: _nothing,
    ev.AlarmRaised: _alarm,
    ev.AlarmAcknowledged: _acknowledged,
    ev.LidClosed: _lid_closed,
    ev.JamCleared: _jam_cleared,
    ev.DeviceStatusChanged: _device_status,
    ev.UpdateStarted: _update_move(UpdateStep.START),
    ev.UpdateInstalled: _installed,
    ev.UpdateBooted: _booted,
    ev.UpdateRolledBack: _rolled_back,
    ev.UpdateFailed: _update_move(UpdateStep.FINISH),
    **{kind: (lambda fold: lambda state, rec: fold(state.replica, rec))(f) for kind, f in un.FOLDS.items()},
}


# Decisions ----------------------------------------------------------------------

def decide_checkin(
    state: StationState,
    voter: str | None,
    voters: Mapping[str, VoterEntry],
    method: CheckinMethod,
    invalid_detail: str = "",
) -> ev.Event:
    """The one event that answers an identification attempt.

    ``voter`` is the keyed hash of the presented number, or None when the
    document could not be read or failed its checks (``invalid_detail`` says why).
    """
    if state.poll is not PollState.OPEN:
        return ev.CheckinRefused(Refusal.POLLS_NOT_OPEN.value, voter)
    if voter is None:
        return ev.CheckinRefused(Refusal.INVALID_DOCUMENT.value, None, None, invalid_detail)
    entry = voters.get(voter)
    if entry is None:
        return ev.CheckinRefused(Refusal.NOT_ON_LIST.value, voter)
    first = state.checkins.get(voter)
    if first is not None:
        return ev.CheckinRefused(Refusal.ALREADY_VOTED.value, voter, first[0])
    return ev.VoterAdmitted(voter, entry.line, method.value, state.next_token)


def decide_undo(state: StationState, voter: str, reason: str) -> list[ev.Event]:
    """Undo a standing check-in, with a reason; closes its token if still open."""
    if state.poll not in (PollState.OPEN, PollState.PAUSED):
        raise IllegalTransition("check-in", state.poll.value, "undo a check-in")
    if not reason.strip():
        raise IllegalTransition("check-in", state.poll.value, "undo a check-in", "a reason is required",
                                code=RefusalCode.REASON_REQUIRED, params={})
    if voter not in state.checkins:
        raise IllegalTransition("check-in", "not checked in", "undo a check-in", "this voter has no standing check-in",
                                code=RefusalCode.NO_STANDING_CHECKIN, params={})
    return [ev.CheckinUndone(voter, reason.strip())]


def decide_open(state: StationState) -> ev.Event:
    """Open the polls; refused unless the zero report holds."""
    next_poll_state(state.poll, PollAction.OPEN)
    if state.anything_recorded:
        raise IllegalTransition(
            "polls", state.poll.value, "open the polls",
            f"the zero report fails: {state.identified} identified, {state.ballots} ballots already recorded",
            code=RefusalCode.ZERO_REPORT_FAILS, params={"identified": state.identified, "ballots": state.ballots},
        )
    return ev.PollsOpened(0, 0)


def decide_pause(state: StationState, reason: str) -> ev.Event:
    next_poll_state(state.poll, PollAction.PAUSE)
    return ev.PollsPaused(reason.strip())


def decide_resume(state: StationState) -> ev.Event:
    next_poll_state(state.poll, PollAction.RESUME)
    return ev.PollsResumed()


def decide_close(state: StationState) -> list[ev.Event]:
    """Close the polls: cancel open tokens, then the close report."""
    next_poll_state(state.poll, PollAction.CLOSE)
    out: list[ev.Event] = [ev.ArmCancelled(t, "polls closed") for t in sorted(state.open_tokens)]
    out.append(ev.PollsClosed(
        state.identified, state.ballots, state.difference, state.alarms_total, len(state.alarms)))
    return out


_PERSISTS: Mapping[AlarmKind, Callable[[StationState], bool]] = {
    AlarmKind.LID_OPENED: lambda s: s.lid_open,
    AlarmKind.JAM: lambda s: s.jammed,
    AlarmKind.BOX_UNIT_LOST: lambda s: s.box_lost,
}
"""Alarms whose cause the journal still shows: they stay open until the sensor says it is resolved."""


def decide_acknowledge(state: StationState, alarm: int, note: str = "") -> ev.Event:
    """Acknowledge open alarm ``alarm``; refused while the cause it reports persists (a lid still open,
    a slot still jammed, a box unit still silent): acknowledging would say "no open alarms" about a box
    that is still open."""
    if alarm not in state.alarms:
        raise IllegalTransition("alarms", "no such open alarm", "acknowledge", f"alarm {alarm} is not open",
                                code=RefusalCode.ALARM_NOT_OPEN, params={"alarm": alarm})
    kind = state.alarms[alarm].kind
    still = _PERSISTS.get(kind)
    if still is not None and still(state):
        raise IllegalTransition("alarms", "cause persists", "acknowledge",
                                f"alarm {alarm} ({kind.value}): its cause is still there",
                                code=RefusalCode.CONDITION_PERSISTS, params={"alarm": alarm, "kind": kind.value})
    return ev.AlarmAcknowledged(alarm, note.strip())


def decide_unit_count(state: StationState, unit_count: int, detail: str,
                      unit_id: str | None = None, offset: int = 0) -> list[ev.Event]:
    """Bring the journal up to the box unit's own drop counter ``unit_count``.

    Each drop the unit counted above the journal's last unit count is recorded
    once, as a ballot without a token plus a DROP_WITHOUT_TOKEN alarm that
    says ``detail`` (where the drop went unheard). A journal without a unit
    count takes the counter as its reference. A counter lower than the
    journal's (an erased unit), or any counter from another unit than the
    journal's (``unit_id`` differs: a replaced unit), is noted as the new
    reference with a BOX_UNIT_REPLACED alarm: nothing is subtracted or added.
    Equal counters from the same unit record nothing, so this is safe to repeat.
    ``offset`` is the number of alarms already raised in the same step.
    """
    if unit_count < 0:
        raise IllegalTransition("ballot box", "unit counter", "reconcile", f"unit counter {unit_count} is negative",
                                code=RefusalCode.BAD_UNIT_COUNT, params={"count": unit_count})
    last, known = state.unit_count, state.unit_id
    if last is None:
        return [ev.BoxCounterNoted(unit_count, None, unit_id)]
    why = None
    if unit_id is not None and known is not None and unit_id != known:
        why = (f"ballot box unit {unit_id} answers instead of unit {known}: the unit was replaced; its drop "
               f"counter {unit_count} is the new reference (this station recorded {last}); nothing was added "
               "or subtracted")
    elif unit_count < last:
        why = (f"the unit's drop counter is {unit_count}, lower than the {last} this station recorded: "
               "the unit was replaced or its memory erased; nothing was subtracted")
    if why is not None:
        replaced = alarm_event(state, AlarmKind.BOX_UNIT_REPLACED, why, offset)
        return [ev.BoxCounterNoted(unit_count, last, unit_id), replaced]
    out: list[ev.Event] = []
    if unit_id is not None and known is None:
        out.append(ev.BoxCounterNoted(last, last, unit_id))  # the unit's identity, first heard
    for n, count in enumerate(range(last + 1, unit_count + 1)):
        out.append(ev.BallotCounted(None, count))
        out.append(alarm_event(state, AlarmKind.DROP_WITHOUT_TOKEN, detail, offset + n))
    return out


def alarm_event(state: StationState, kind: AlarmKind, detail: str, offset: int = 0) -> ev.AlarmRaised:
    """The journal event for a new alarm; ``offset`` numbers several raised together."""
    return ev.AlarmRaised(state.alarms_total + 1 + offset, kind.value, detail)

"""The station session: one pure step for everything that happens at a station.

``step(state, session, input, context, now)`` answers every input the station
can receive (a document read, a box signal, a chair action, a scanner state,
the passage of time) with a ``Step``: the new ``Session``, the events to
record, the actions for the hardware, and the desk's ``Decision`` if there is
one. It changes nothing it is given and does no I/O, so every rule of the day
is tested here without threads, a journal or a box.

Two kinds of state take part:

* ``StationState`` (``station.py``): the fold of the journal. The step reads
  it; the driver changes it only by applying the events it committed.
* ``Session``: what the journal does not hold (the interlock's tokens and
  sensors, the desk's dedupe window and decision queue, the next turnout
  snapshot). It is transient: after a restart it starts afresh, locked.

The driver (``device/appliance.py``) follows one rule: if the actions hold
``LockSlot``, lock first; then commit the events; then take the new session and
do the other actions (``ArmSlot``, ``Heartbeat``, ``WakeUpstream``). An input
that is illegal now raises ``IllegalTransition`` and nothing changes.

Each decision's ``seq`` is the journal sequence number its event will get: the
journal is gapless and the driver commits exactly the events returned, so the
``n``-th event of a step gets ``state.last_seq + n``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from . import desk as dk
from . import events as ev
from . import interlock as il
from . import station as st
from . import units as un
from .decision import Decision
from .delays import Delays
from .enrollment import EnrollmentFound, EnrollmentRefusalFound, EnrollmentStepFailed, decide_enrollment
from .errors import IllegalTransition, RefusalCode
from .events import AlarmKind, CheckinMethod
from .inputs import (
    Acknowledge,
    Action,
    BoxSaw,
    BoxSignal,
    ClosePolls,
    CloseWithout,
    Context,
    Identify,
    Input,
    Note,
    Now,
    OpenPolls,
    PausePolls,
    PeerClock,
    PeerRecords,
    PeerRefused,
    ResumePolls,
    ScannerChanged,
    SpaceChecked,
    StartUp,
    StorageRecovered,
    Tick,
    Undo,
)
from .poll import PollAction, PollState, next_poll_state
from .update import UpdateChecked, UpdateFinished, decide_boot, decide_checked, decide_finished, held_for_update

DOWN_DETAIL = "counted by the ballot box while the station software was down"
UNHEARD_DETAIL = "counted by the ballot box while the station was not hearing it"


__all__ = [
    "Acknowledge",
    "Action",
    "BoxSaw",
    "BoxSignal",
    "ClosePolls",
    "Context",
    "Identify",
    "Input",
    "Note",
    "Now",
    "OpenPolls",
    "PausePolls",
    "ResumePolls",
    "ScannerChanged",
    "Session",
    "SpaceChecked",
    "StartUp",
    "Step",
    "StorageRecovered",
    "Tick",
    "Undo",
    "PeerClock",
    "CloseWithout",
    "PeerRecords",
    "PeerRefused",
    "step",
    "DOWN_DETAIL",
    "UNHEARD_DETAIL",
]

_INTERLOCK_INPUT = {
    BoxSignal.BEAM_BLOCKED: il.BeamBlocked,
    BoxSignal.BEAM_CLEARED: il.BeamCleared,
    BoxSignal.LID_OPENED: il.LidOpened,
    BoxSignal.LID_CLOSED: il.LidClosed,
    BoxSignal.JAMMED: il.JamReported,
}


# The session ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Session:
    """The transient part of the station: interlock, desk, answers by desk key, next snapshot."""

    interlock: il.InterlockState
    desk: dk.DeskState[Decision]
    answers: tuple[tuple[str, Decision], ...] = ()
    last_decision: Decision | None = None
    next_snapshot: float | None = None
    sent_counts: tuple[int, int] = (0, 0)
    """(identified, ballots) as the last turnout snapshot sent them upstream."""
    next_count: float = 0.0
    """Monotonic time from which a changed count may be sent again (``Delays.count_update_every``)."""
    storage_low: bool = False
    drift_noted: frozenset[str] = frozenset()
    """Units whose clock drift was already raised as an alarm since the start."""

    @classmethod
    def new(cls, delays: Delays) -> Session:
        return cls(il.InterlockState(), dk.new_desk(delays))


@dataclass(frozen=True)
class Step:
    """The answer to one input. ``ignored`` says why a box input changed nothing (for the debug log)."""

    session: Session
    events: tuple[ev.Event, ...] = ()
    actions: tuple[Action, ...] = ()
    decision: Decision | None = None
    ignored: str = ""
    refused: IllegalTransition | None = None
    """A chair action refused *and journaled* (the polls held while an update installs): the driver commits
    ``events`` like any step's, then reports this refusal to the chair."""


# The step ------------------------------------------------------------------------------------

@dataclass
class _Out:
    """Events and actions as a step builds them; numbers alarms raised together."""

    state: st.StationState
    events: list[ev.Event] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    ignored: str = ""

    @property
    def alarms(self) -> int:
        return sum(isinstance(e, ev.AlarmRaised) for e in self.events)

    def alarm(self, kind: AlarmKind, detail: str) -> None:
        self.events.append(st.alarm_event(self.state, kind, detail, self.alarms))

    def act(self, action: Action) -> None:
        if action not in self.actions:
            self.actions.append(action)

    def done(self, session: Session, decision: Decision | None = None) -> Step:
        return Step(session, tuple(self.events), tuple(self.actions), decision, self.ignored)


def step(state: st.StationState, session: Session, inp: Input, ctx: Context, now: Now) -> Step:
    """Answer one input; raises IllegalTransition (nothing changes) for a chair action not allowed now."""
    out = _Out(state)
    handler = _STEPS[type(inp)]
    return handler(out, session, inp, ctx, now)


def _feed(out: _Out, session: Session, inp: il.Input, delays: Delays, unit_count: int | None = None) -> Session:
    """Step the interlock; its outcomes become events, its slot an action. An illegal input is ignored."""
    try:
        new, outcomes = il.step(session.interlock, inp, delays)
    except IllegalTransition as exc:
        out.ignored = str(exc)
        return session
    for o in outcomes:
        if isinstance(o, il.Counted):
            out.events.append(ev.BallotCounted(o.token, unit_count))
        elif isinstance(o, il.Expired):
            out.events.append(ev.ArmExpired(o.token))
        elif isinstance(o, il.Alarm):
            out.alarm(o.kind, o.detail)
        elif isinstance(o, il.JamEnded):
            out.events.append(ev.JamCleared())
        elif isinstance(o, il.LidShut):
            out.events.append(ev.LidClosed())
        elif isinstance(o, il.Resumed):
            out.events.append(ev.ArmResumed(o.token))
        elif isinstance(o, il.Withdrawn):
            out.events.append(ev.ArmCancelled(o.token, il.WITHDRAWN_REASON))
    consumed = any(isinstance(o, il.Counted) and o.token is not None for o in outcomes)
    if not new.slot_should_open:
        out.act(Action.LOCK_SLOT)
        if Action.ARM_SLOT in out.actions:
            out.actions.remove(Action.ARM_SLOT)
    elif consumed or not session.interlock.slot_should_open:
        out.act(Action.ARM_SLOT)  # the box opens for one ballot per arm
    return replace(session, interlock=new)


def _unit_count(out: _Out, count: int, detail: str, unit_id: str | None) -> None:
    """Journal the drops the unit counted that the journal does not hold yet; a bad counter is ignored."""
    try:
        out.events += st.decide_unit_count(out.state, count, detail, unit_id, out.alarms)
    except IllegalTransition as exc:
        out.ignored = f"box unit counter not reconciled: {exc}"


def _start(out: _Out, session: Session, inp: StartUp, ctx: Context, now: Now) -> Step:
    out.act(Action.LOCK_SLOT)
    out.events.append(ev.DeviceStarted(inp.software, inp.station_id))
    out.events += decide_boot(out.state.slots, inp.slot, inp.slot_version)
    out.events += [ev.ArmCancelled(t, "restart") for t in sorted(out.state.open_tokens)]
    if inp.unit_drops is not None:
        _unit_count(out, inp.unit_drops, DOWN_DETAIL, inp.unit_id)
    session = Session.new(ctx.delays)
    if out.state.poll is PollState.OPEN:
        session = replace(session, next_snapshot=now.mono + ctx.delays.turnout_snapshot_every)
    if inp.lid_open:
        session = _feed(out, session, il.LidOpened(now.mono), ctx.delays)
    if inp.beam_blocked:
        session = _feed(out, session, il.BeamBlocked(now.mono, at_startup=True), ctx.delays)
    return out.done(session)


def _identify(out: _Out, session: Session, inp: Identify, ctx: Context, now: Now) -> Step:
    desk, fresh = dk.read(session.desk, inp.desk_key, now.mono)
    first = dict(session.answers).get(inp.desk_key)
    if not fresh and first is not None:
        again = Decision("duplicate_read", now.wall, first.method, first.line, first.name, first.at,
                         f"same document read again; counted once ({first.outcome})", first.seq)
        return out.done(replace(session, desk=desk, last_decision=again), again)
    event = st.decide_checkin(out.state, inp.voter, ctx.voters, inp.method, inp.detail)
    if isinstance(event, ev.VoterAdmitted):  # another unit's admission, home voting (several units only)
        event = un.decide_admission(out.state.replica, ctx.units, event.voter) or event
    out.events.append(event)
    decision = _decision(out.state, event, ctx, inp.method, now.wall)
    if isinstance(event, ev.VoterAdmitted):
        session = _feed(out, session, il.Arm(event.token, now.mono), ctx.delays)
    live = {k for k, _ in desk.recent}
    answers = tuple((k, d) for k, d in session.answers if k in live and k != inp.desk_key)
    session = replace(session, desk=dk.show(desk, decision, now.mono), answers=answers + ((inp.desk_key, decision),),
                      last_decision=decision)
    return out.done(session, decision)


def _decision(state: st.StationState, e: ev.Event, ctx: Context, method: CheckinMethod, wall: float) -> Decision:
    seq = state.last_seq + 1
    if isinstance(e, ev.VoterAdmitted):
        entry = ctx.voters[e.voter]
        return Decision("admitted", wall, method.value, entry.line, entry.name, seq=seq)
    assert isinstance(e, ev.CheckinRefused)
    known = ctx.voters.get(e.voter) if e.voter else None
    first_at = state.checkins[e.voter][1] if e.voter and e.reason == "already_voted" else None
    elsewhere = state.replica.admitted_elsewhere(e.voter) if e.voter and e.reason == "admitted_elsewhere" else None
    first_at = elsewhere.at if elsewhere is not None else first_at
    return Decision(e.reason, wall, method.value, known.line if known else None,
                    known.name if known else None, first_at, e.detail, seq)


def _box(out: _Out, session: Session, inp: BoxSaw, ctx: Context, now: Now) -> Step:
    if inp.signal is BoxSignal.BEAM_BLOCKED and inp.count is not None:
        _unit_count(out, inp.count - 1, UNHEARD_DETAIL, None)  # a drop the station missed is still counted, once
        return out.done(_feed(out, session, il.BeamBlocked(inp.at), ctx.delays, unit_count=inp.count))
    if inp.signal in _INTERLOCK_INPUT:
        return out.done(_feed(out, session, _INTERLOCK_INPUT[inp.signal](inp.at), ctx.delays))
    lost = inp.signal is BoxSignal.UNIT_LOST
    out.events.append(ev.DeviceStatusChanged("ballot_box", "lost" if lost else "present"))
    if lost:
        out.act(Action.LOCK_SLOT)
        out.alarm(AlarmKind.BOX_UNIT_LOST, "no answer from the ballot box unit")
        return out.done(_feed(out, session, il.BoxLost(inp.at), ctx.delays))
    counted = len(out.events)
    if inp.count is not None and inp.count >= 0:
        _unit_count(out, inp.count, UNHEARD_DETAIL, inp.unit_id)
    if not session.interlock.box_lost:  # heard without having been lost: nothing to resume, no lock to repeat
        return out.done(session)
    unheard = sum(isinstance(e, ev.BallotCounted) for e in out.events[counted:])
    return out.done(_feed(out, session, il.BoxFound(inp.at, unheard), ctx.delays))  # the open tokens resumed


def _scanner(out: _Out, session: Session, inp: ScannerChanged, ctx: Context, now: Now) -> Step:
    if inp.state == "reading":
        return out.done(session)
    out.events.append(ev.DeviceStatusChanged("scanner", inp.state))
    if inp.state == "disconnected" and out.state.poll is PollState.OPEN:
        out.alarm(AlarmKind.SCANNER_LOST, "scanner disconnected")
    return out.done(session)


def _chair(out: _Out, session: Session, events: list[ev.Event], ctx: Context) -> Step:
    """A chair action's events; the next read is new, and tokens they cancel close the slot."""
    out.events += events
    session = replace(session, desk=dk.forget(session.desk))
    for e in events:
        if isinstance(e, ev.ArmCancelled):
            session = _feed(out, session, il.Cancel(e.token), ctx.delays)
    return out.done(session)


def _held(out: _Out, session: Session, action: PollAction) -> Step | None:
    """The step that journals ``action`` held back by an install, or None when no install holds it. An action
    the poll table refuses anyway is refused as before (raises, nothing journaled)."""
    next_poll_state(out.state.poll, action)
    held = held_for_update(out.state.update, action, out.state.update_version)
    if held is None:
        return None
    out.events.append(held.event)
    return replace(out.done(session), refused=held.refusal)


def _open(out: _Out, session: Session, inp: OpenPolls, ctx: Context, now: Now) -> Step:
    held = _held(out, session, PollAction.OPEN)
    if held is not None:
        return held
    done = _chair(out, session, [st.decide_open(out.state)], ctx)
    return replace(done, session=replace(done.session, next_snapshot=now.mono + ctx.delays.turnout_snapshot_every))


def _pause(out: _Out, session: Session, inp: PausePolls, ctx: Context, now: Now) -> Step:
    return _chair(out, session, [st.decide_pause(out.state, inp.reason)], ctx)


def _resume(out: _Out, session: Session, inp: ResumePolls, ctx: Context, now: Now) -> Step:
    held = _held(out, session, PollAction.RESUME)
    if held is not None:
        return held
    return _chair(out, session, [st.decide_resume(out.state)], ctx)


def _close(out: _Out, session: Session, inp: ClosePolls, ctx: Context, now: Now) -> Step:
    out.act(Action.WAKE_UPSTREAM)  # the close report goes at once, even during a backoff
    closing = st.decide_close(out.state)
    s = out.state
    closing[-1:-1] = un.decide_reconcile(s.replica, ctx.units, s.identified, s.ballots)  # several units only
    return _chair(out, session, closing, ctx)


def _close_without(out: _Out, session: Session, inp: CloseWithout, ctx: Context, now: Now) -> Step:
    if out.state.poll not in (PollState.OPEN, PollState.PAUSED):
        raise IllegalTransition("polls", out.state.poll.value, "close without a unit")
    return _chair(out, session, [un.decide_close_without(out.state.replica, ctx.units, inp.unit, inp.reason)], ctx)


def _acknowledge(out: _Out, session: Session, inp: Acknowledge, ctx: Context, now: Now) -> Step:
    return _chair(out, session, [st.decide_acknowledge(out.state, inp.alarm, inp.note)], ctx)


def _undo(out: _Out, session: Session, inp: Undo, ctx: Context, now: Now) -> Step:
    voter = ctx.lines.get(inp.line)
    if voter is None:
        raise IllegalTransition("check-in", "no such line", "undo a check-in",
                                f"there is no line {inp.line} in this station's voter list",
                                code=RefusalCode.NO_SUCH_LINE, params={"line": inp.line})
    events = st.decide_undo(out.state, voter, inp.reason)
    token = out.state.token_of.get(voter)
    if token is not None and token in out.state.open_tokens:
        events.append(ev.ArmCancelled(token, "check-in undone"))
    return _chair(out, session, events, ctx)


def _note(out: _Out, session: Session, inp: Note, ctx: Context, now: Now) -> Step:
    out.events.append(ev.Annotation(inp.topic, inp.text))
    return out.done(session)


def _update_checked(out: _Out, session: Session, inp: UpdateChecked, ctx: Context, now: Now) -> Step:
    out.events.append(decide_checked(out.state.poll, out.state.update, inp))
    return out.done(session)


def _update_finished(out: _Out, session: Session, inp: UpdateFinished, ctx: Context, now: Now) -> Step:
    out.events.append(decide_finished(out.state.update, inp))
    return out.done(session)


def _enrollment(out: _Out, session: Session, inp: EnrollmentFound | EnrollmentRefusalFound | EnrollmentStepFailed,
                ctx: Context, now: Now) -> Step:
    out.events += decide_enrollment(out.state.key_certificates, inp)
    return out.done(session)


def _tick(out: _Out, session: Session, inp: Tick, ctx: Context, now: Now) -> Step:
    session = _feed(out, session, il.Tick(now.mono), ctx.delays)
    out.act(Action.HEARTBEAT)
    if out.state.poll is not PollState.OPEN:
        return out.done(session)
    s = out.state
    hourly = session.next_snapshot is not None and now.mono >= session.next_snapshot
    changed = (s.identified, s.ballots) != session.sent_counts and now.mono >= session.next_count
    if hourly or changed:  # the CEC's overview follows the day: every hour, and soon after counts change
        out.events.append(ev.TurnoutSnapshot(s.identified, s.ballots, len(ctx.voters)))
        session = replace(session, sent_counts=(s.identified, s.ballots),
                          next_count=now.mono + ctx.delays.count_update_every)
    if hourly:
        session = replace(session, next_snapshot=now.mono + ctx.delays.turnout_snapshot_every)
    return out.done(session)


def _space(out: _Out, session: Session, inp: SpaceChecked, ctx: Context, now: Now) -> Step:
    if inp.low and not session.storage_low:
        out.alarm(AlarmKind.STORAGE_LOW, inp.sentence)
    return out.done(replace(session, storage_low=inp.low))


def _recovered(out: _Out, session: Session, inp: StorageRecovered, ctx: Context, now: Now) -> Step:
    out.alarm(AlarmKind.STORAGE_FAILED, inp.detail)
    return out.done(session)


def _peer(out: _Out, session: Session, inp: PeerRecords, ctx: Context, now: Now) -> Step:
    """Other units' records: applied once and in order, or refused; a voter admitted twice is a conflict."""
    done = un.decide_peer(out.state.replica, ctx.units, ctx.voters, inp.records, now.wall,
                          ctx.delays.unit_clock_drift, inp.closes)
    out.events += done.events
    for c in done.conflicts:
        out.alarm(AlarmKind.UNIT_CONFLICT, f"one voter was admitted by unit {c.first_unit} (its admission "
                                           f"{c.first_seq}) and by unit {c.second_unit} (its admission {c.second_seq})")
    for unit in done.ahead:
        session = _drift(out, session, unit, "its records carry a time ahead of this unit's clock")
    return out.done(session)


def _drift(out: _Out, session: Session, unit: str, how: str) -> Session:
    if unit in session.drift_noted:
        return session
    out.alarm(AlarmKind.UNIT_CLOCK_DRIFT, f"the clock of unit {unit} differs from this unit's: {how}")
    return replace(session, drift_noted=session.drift_noted | {unit})


def _peer_refused(out: _Out, session: Session, inp: PeerRefused, ctx: Context, now: Now) -> Step:
    out.events.append(ev.PeerRecordRefused(inp.unit, inp.seq, inp.reason))
    return out.done(session)


def _peer_clock(out: _Out, session: Session, inp: PeerClock, ctx: Context, now: Now) -> Step:
    if abs(inp.offset) > ctx.delays.unit_clock_drift:
        way = "ahead of" if inp.offset > 0 else "behind"
        session = _drift(out, session, inp.unit, f"{abs(inp.offset):.0f} s {way} this unit's")
    return out.done(session)


_STEPS: dict[type, Callable[[_Out, Session, Any, Context, Now], Step]] = {
    StartUp: _start, Identify: _identify, BoxSaw: _box, ScannerChanged: _scanner, OpenPolls: _open,
    PausePolls: _pause, ResumePolls: _resume, ClosePolls: _close, Acknowledge: _acknowledge, Undo: _undo,
    Note: _note, Tick: _tick, SpaceChecked: _space, StorageRecovered: _recovered,
    PeerRecords: _peer, PeerRefused: _peer_refused, PeerClock: _peer_clock, CloseWithout: _close_without,
    UpdateChecked: _update_checked, UpdateFinished: _update_finished,
    EnrollmentFound: _enrollment, EnrollmentRefusalFound: _enrollment, EnrollmentStepFailed: _enrollment,
}

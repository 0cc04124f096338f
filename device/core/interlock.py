"""The ballot box interlock: one admission opens the slot for exactly one ballot.

Inputs are what the box and the check-in desk report (``Arm``, ``BeamBlocked``,
``BeamCleared``, ``JamReported``, ``LidOpened``, ``LidClosed``, ``Cancel``) plus
``Tick`` for the passage of time; outputs are ``Outcome`` values that the station turns into
journal events. The machine is the ``TRANSITIONS`` table: a row per
(input type, ``Condition``) names the handler; an input whose row says ``None``
is illegal, raises, and leaves the state unchanged. Which condition an input
meets is named by that input type's classifier in ``CLASSIFY``, beside the table.

Time is a monotonic reading in seconds passed in by the caller. The machine is
transient: after a restart it starts locked, and the station cancels any token
the journal still shows as open.

A drop is always counted, armed or not: the count never depends on the slot
having been armed. A drop with no token is an alarm; a drop shortly after a
token was consumed is a second ballot on one identification. A jam is
either timed here (the beam held for ``Delays.jam_after``) or reported by a
unit that judges it itself (``JamReported``: a smart box restarted with its
beam blocked); either way it is an alarm and never a ballot.

A box unit that stops answering (``BoxLost``: a smart box's cable pulled, its
power cut) keeps the slot locked; the open tokens stay, and so does a voter
admitted meanwhile, who then waits at a locked slot (the unit could not take an
arm anyway). When the unit is heard again (``BoxFound``) within a token's
``arm_timeout``, the slot opens again for the open tokens (``Resumed``, each
journaled), as after the lid is closed: nobody has to be identified twice or
wait out the timeout. If the unit counted drops the station did not hear
meanwhile, one of them may be an admitted voter's ballot, and no machine can
tell whose: the open tokens are withdrawn instead (``Withdrawn``), the slot
stays locked, and the chair decides with the drop-without-token alarm on screen
(undo a check-in and identify the voter again if they still hold a ballot).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace

from .delays import Delays
from .errors import IllegalTransition
from .events import AlarmKind


@dataclass(frozen=True)
class InterlockState:
    """Where the slot stands. ``tokens`` holds (token, deadline) oldest first."""

    tokens: tuple[tuple[int, float], ...] = ()
    last_consumed_at: float | None = None
    beam_blocked_since: float | None = None
    jammed: bool = False
    lid_open: bool = False
    box_lost: bool = False
    """The box unit does not answer (it cannot take an arm; the slot stays locked until it is heard again)."""

    @property
    def armed(self) -> bool:
        """True while at least one admitted voter may still drop a ballot."""
        return bool(self.tokens)

    @property
    def slot_should_open(self) -> bool:
        """What the lock output must be: open only when armed and nothing is wrong."""
        return self.armed and not self.jammed and not self.lid_open and not self.box_lost

    @property
    def phase(self) -> str:
        return "armed" if self.armed else "locked"


# Inputs ---------------------------------------------------------------------

@dataclass(frozen=True)
class Arm:
    token: int
    now: float


@dataclass(frozen=True)
class Cancel:
    token: int


@dataclass(frozen=True)
class BeamBlocked:
    now: float
    at_startup: bool = False


@dataclass(frozen=True)
class BeamCleared:
    now: float


@dataclass(frozen=True)
class JamReported:
    """The unit says its drop sensor is blocked by something it did not count."""

    now: float


@dataclass(frozen=True)
class LidOpened:
    now: float


@dataclass(frozen=True)
class LidClosed:
    now: float


@dataclass(frozen=True)
class BoxLost:
    """The box unit stopped answering."""

    now: float


@dataclass(frozen=True)
class BoxFound:
    """The box unit is heard again; ``unheard_drops``: drops its own counter shows that the station did not hear."""

    now: float
    unheard_drops: int = 0


@dataclass(frozen=True)
class Tick:
    now: float


Input = Arm | Cancel | BeamBlocked | BeamCleared | JamReported | LidOpened | LidClosed | BoxLost | BoxFound | Tick


# Outcomes -------------------------------------------------------------------

@dataclass(frozen=True)
class Counted:
    """A ballot went in; ``token`` is the admission it consumed, or None."""

    token: int | None


@dataclass(frozen=True)
class Expired:
    token: int


@dataclass(frozen=True)
class Alarm:
    kind: AlarmKind
    detail: str = ""


@dataclass(frozen=True)
class Resumed:
    """The slot opens again for ``token``, whose arm the unit could not take while it did not answer."""

    token: int


@dataclass(frozen=True)
class Withdrawn:
    """``token`` is no longer open: the unit counted drops the station did not hear while it was lost."""

    token: int


WITHDRAWN_REASON = "the ballot box unit counted drops the station did not hear while it was not answering"


@dataclass(frozen=True)
class JamEnded:
    pass


@dataclass(frozen=True)
class LidShut:
    pass


Outcome = Counted | Expired | Alarm | JamEnded | LidShut | Resumed | Withdrawn
Step = tuple[InterlockState, tuple[Outcome, ...]]
Handler = Callable[[InterlockState, Input, Delays], Step]


# Handlers -------------------------------------------------------------------

def _arm(s: InterlockState, i: Input, d: Delays) -> Step:
    assert isinstance(i, Arm)
    return replace(s, tokens=s.tokens + ((i.token, i.now + d.arm_timeout),)), ()


def _cancel(s: InterlockState, i: Input, d: Delays) -> Step:
    assert isinstance(i, Cancel)
    return replace(s, tokens=tuple(t for t in s.tokens if t[0] != i.token)), ()


def _drop_armed(s: InterlockState, i: Input, d: Delays) -> Step:
    assert isinstance(i, BeamBlocked)
    (token, _), rest = s.tokens[0], s.tokens[1:]
    new = replace(s, tokens=rest, last_consumed_at=i.now, beam_blocked_since=i.now)
    return new, (Counted(token),)


def _drop_locked(s: InterlockState, i: Input, d: Delays) -> Step:
    assert isinstance(i, BeamBlocked)
    recent = s.last_consumed_at is not None and 0 <= i.now - s.last_consumed_at <= d.double_drop_window
    alarm = Alarm(AlarmKind.SECOND_BALLOT) if recent else Alarm(AlarmKind.DROP_WITHOUT_TOKEN)
    return replace(s, beam_blocked_since=i.now), (Counted(None), alarm)


def _blocked_at_startup(s: InterlockState, i: Input, d: Delays) -> Step:
    assert isinstance(i, BeamBlocked)
    detail = "drop sensor blocked at start-up"
    return replace(s, beam_blocked_since=i.now, jammed=True), (Alarm(AlarmKind.JAM, detail),)


UNIT_JAM_DETAIL = "the ballot box unit reports its drop sensor blocked without a ballot counted"


def _jam_reported(s: InterlockState, i: Input, d: Delays) -> Step:
    """A jam the unit saw first: locked, alarmed, not counted; a later BeamCleared ends it."""
    assert isinstance(i, JamReported)
    since = s.beam_blocked_since if s.beam_blocked_since is not None else i.now
    return replace(s, beam_blocked_since=since, jammed=True), (Alarm(AlarmKind.JAM, UNIT_JAM_DETAIL),)


def _cleared(s: InterlockState, i: Input, d: Delays) -> Step:
    out: tuple[Outcome, ...] = (JamEnded(),) if s.jammed else ()
    return replace(s, beam_blocked_since=None, jammed=False), out


def _lid_opened(s: InterlockState, i: Input, d: Delays) -> Step:
    detail = "while armed" if s.armed else "while idle"
    return replace(s, lid_open=True), (Alarm(AlarmKind.LID_OPENED, detail),)


def _lid_closed(s: InterlockState, i: Input, d: Delays) -> Step:
    return replace(s, lid_open=False), (LidShut(),)


def _box_lost(s: InterlockState, i: Input, d: Delays) -> Step:
    return replace(s, box_lost=True), ()


def _box_found(s: InterlockState, i: Input, d: Delays) -> Step:
    """Heard again: the open tokens are resumed, or withdrawn if a drop went unheard meanwhile."""
    assert isinstance(i, BoxFound)
    if i.unheard_drops > 0:
        return replace(s, box_lost=False, tokens=()), tuple(Withdrawn(t[0]) for t in s.tokens)
    return replace(s, box_lost=False), tuple(Resumed(t[0]) for t in s.tokens)


def _box_still_present(s: InterlockState, i: Input, d: Delays) -> Step:
    """Heard without having been lost (a unit that first answers after the start): nothing to resume."""
    return s, ()


def _tick(s: InterlockState, i: Input, d: Delays) -> Step:
    assert isinstance(i, Tick)
    live = tuple(t for t in s.tokens if t[1] > i.now)
    out: list[Outcome] = [Expired(t[0]) for t in s.tokens if t[1] <= i.now]
    jam = (
        s.beam_blocked_since is not None
        and not s.jammed
        and i.now - s.beam_blocked_since >= d.jam_after
    )
    if jam:
        out.append(Alarm(AlarmKind.JAM, f"drop sensor blocked for {d.jam_after:g} s"))
    return replace(s, tokens=live, jammed=s.jammed or jam), tuple(out)


# The table --------------------------------------------------------------------
# Key: (input type, the condition the machine is in for that input). Each input
# type has one small classifier (``CLASSIFY``) that names its condition; a value
# of None in ``TRANSITIONS`` marks an input that is illegal in that condition.

class Condition(enum.Enum):
    """What decides how an input is handled: the sensors, the tokens, the lid."""

    NEW_TOKEN = "new_token"
    KNOWN_TOKEN = "known_token"
    UNKNOWN_TOKEN = "unknown_token"
    STARTUP_PRISTINE = "startup_pristine"
    """The first reading at start-up, before anything happened (a lid read open at the same start aside)."""
    STARTUP_LATE = "startup_late"
    BEAM_CLEAR_ARMED = "beam_clear_armed"
    BEAM_CLEAR_LOCKED = "beam_clear_locked"
    BEAM_BLOCKED = "beam_blocked"
    BEAM_CLEAR = "beam_clear"
    JAMMED = "jammed"
    LID_OPEN = "lid_open"
    LID_CLOSED = "lid_closed"
    BOX_PRESENT = "box_present"
    BOX_LOST = "box_lost"
    ALWAYS = "always"


C = Condition

TRANSITIONS: dict[tuple[type, Condition], Handler | None] = {
    (Arm, C.NEW_TOKEN): _arm,
    (Arm, C.KNOWN_TOKEN): None,
    (Cancel, C.KNOWN_TOKEN): _cancel,
    (Cancel, C.UNKNOWN_TOKEN): None,
    (BeamBlocked, C.STARTUP_LATE): None,
    (BeamBlocked, C.STARTUP_PRISTINE): _blocked_at_startup,
    (BeamBlocked, C.BEAM_CLEAR_ARMED): _drop_armed,
    (BeamBlocked, C.BEAM_CLEAR_LOCKED): _drop_locked,
    (BeamBlocked, C.BEAM_BLOCKED): None,
    (BeamCleared, C.BEAM_BLOCKED): _cleared,
    (BeamCleared, C.BEAM_CLEAR): None,
    (JamReported, C.BEAM_CLEAR): _jam_reported,
    (JamReported, C.BEAM_BLOCKED): _jam_reported,
    (JamReported, C.JAMMED): None,
    (LidOpened, C.LID_CLOSED): _lid_opened,
    (LidOpened, C.LID_OPEN): None,
    (LidClosed, C.LID_OPEN): _lid_closed,
    (LidClosed, C.LID_CLOSED): None,
    (BoxLost, C.BOX_PRESENT): _box_lost,
    (BoxLost, C.BOX_LOST): None,
    (BoxFound, C.BOX_LOST): _box_found,
    (BoxFound, C.BOX_PRESENT): _box_still_present,
    (Tick, C.ALWAYS): _tick,
}


def _token(s: InterlockState, i: Input) -> Condition:
    assert isinstance(i, (Arm, Cancel))
    if any(t[0] == i.token for t in s.tokens):
        return C.KNOWN_TOKEN
    return C.NEW_TOKEN if isinstance(i, Arm) else C.UNKNOWN_TOKEN


def _drop(s: InterlockState, i: Input) -> Condition:
    assert isinstance(i, BeamBlocked)
    if s.beam_blocked_since is not None:
        return C.BEAM_BLOCKED
    if i.at_startup:  # the lid's own start-up reading comes first and changes nothing about the beam
        return C.STARTUP_PRISTINE if replace(s, lid_open=False) == InterlockState() else C.STARTUP_LATE
    return C.BEAM_CLEAR_ARMED if s.armed else C.BEAM_CLEAR_LOCKED


def _beam(s: InterlockState, i: Input) -> Condition:
    return C.BEAM_BLOCKED if s.beam_blocked_since is not None else C.BEAM_CLEAR


def _jam(s: InterlockState, i: Input) -> Condition:
    return C.JAMMED if s.jammed else _beam(s, i)


def _lid(s: InterlockState, i: Input) -> Condition:
    return C.LID_OPEN if s.lid_open else C.LID_CLOSED


def _unit(s: InterlockState, i: Input) -> Condition:
    return C.BOX_LOST if s.box_lost else C.BOX_PRESENT


CLASSIFY: dict[type, Callable[[InterlockState, Input], Condition]] = {
    Arm: _token, Cancel: _token, BeamBlocked: _drop, BeamCleared: _beam, JamReported: _jam,
    LidOpened: _lid, LidClosed: _lid, BoxLost: _unit, BoxFound: _unit, Tick: lambda s, i: C.ALWAYS,
}


def step(state: InterlockState, event: Input, delays: Delays) -> Step:
    """Apply one input; returns the new state and its outcomes, or raises."""
    cond = CLASSIFY[type(event)](state, event)
    handler = TRANSITIONS.get((type(event), cond))
    if handler is None:
        raise IllegalTransition("interlock", f"{state.phase} ({cond.value})", type(event).__name__)
    return handler(state, event, delays)

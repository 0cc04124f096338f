"""The ballot box interlock: one admission opens the slot for exactly one ballot.

Inputs are what the box and the check-in desk report (``Arm``, ``BeamBlocked``,
``BeamCleared``, ``JamReported``, ``LidOpened``, ``LidClosed``, ``Cancel``) plus
``Tick`` for the passage of time; outputs are ``Outcome`` values that the station turns into
journal events. The machine is the ``TRANSITIONS`` table: a row per
(input type, condition) names the handler; an input whose row says ``None``
is illegal, raises, and leaves the state unchanged.

Time is a monotonic reading in seconds passed in by the caller. The machine is
transient: after a restart it starts locked, and the station cancels any token
the journal still shows as open.

A drop is always counted, armed or not: the count never depends on the slot
having been armed. A drop with no token is an alarm; a drop shortly after a
token was consumed is a second ballot on one identification. A jam is
either timed here (the beam held for ``Delays.jam_after``) or reported by a
unit that judges it itself (``JamReported``: a smart box restarted with its
beam blocked); either way it is an alarm and never a ballot.
"""

from __future__ import annotations

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

    @property
    def armed(self) -> bool:
        """True while at least one admitted voter may still drop a ballot."""
        return bool(self.tokens)

    @property
    def slot_should_open(self) -> bool:
        """What the lock output must be: open only when armed and nothing is wrong."""
        return self.armed and not self.jammed and not self.lid_open

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
class Tick:
    now: float


Input = Arm | Cancel | BeamBlocked | BeamCleared | JamReported | LidOpened | LidClosed | Tick


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
class JamEnded:
    pass


@dataclass(frozen=True)
class LidShut:
    pass


Outcome = Counted | Expired | Alarm | JamEnded | LidShut
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
# Key: (input type, condition name). Conditions are evaluated by ``_condition``.
# A value of None marks an illegal input in that condition.

TRANSITIONS: dict[tuple[type, str], Handler | None] = {
    (Arm, "new_token"): _arm,
    (Arm, "known_token"): None,
    (Cancel, "known_token"): _cancel,
    (Cancel, "unknown_token"): None,
    (BeamBlocked, "startup_clear"): None,
    (BeamBlocked, "startup_blocked"): _blocked_at_startup,
    (BeamBlocked, "beam_clear_armed"): _drop_armed,
    (BeamBlocked, "beam_clear_locked"): _drop_locked,
    (BeamBlocked, "beam_blocked"): None,
    (BeamCleared, "beam_blocked"): _cleared,
    (BeamCleared, "beam_clear"): None,
    (JamReported, "beam_clear"): _jam_reported,
    (JamReported, "beam_blocked"): _jam_reported,
    (JamReported, "jammed"): None,
    (LidOpened, "lid_closed"): _lid_opened,
    (LidOpened, "lid_open"): None,
    (LidClosed, "lid_open"): _lid_closed,
    (LidClosed, "lid_closed"): None,
    (Tick, "always"): _tick,
}


def _condition(s: InterlockState, i: Input) -> str:
    blocked = s.beam_blocked_since is not None
    if isinstance(i, (Arm, Cancel)):
        known = any(t[0] == i.token for t in s.tokens)
        if isinstance(i, Arm):
            return "known_token" if known else "new_token"
        return "known_token" if known else "unknown_token"
    if isinstance(i, BeamBlocked):
        if blocked:
            return "beam_blocked"
        if i.at_startup:
            return "startup_blocked" if s == InterlockState() else "startup_clear"
        return "beam_clear_armed" if s.armed else "beam_clear_locked"
    if isinstance(i, BeamCleared):
        return "beam_blocked" if blocked else "beam_clear"
    if isinstance(i, JamReported):
        return "jammed" if s.jammed else "beam_blocked" if blocked else "beam_clear"
    if isinstance(i, (LidOpened, LidClosed)):
        return "lid_open" if s.lid_open else "lid_closed"
    return "always"


def step(state: InterlockState, event: Input, delays: Delays) -> Step:
    """Apply one input; returns the new state and its outcomes, or raises."""
    cond = _condition(state, event)
    handler = TRANSITIONS.get((type(event), cond))
    if handler is None:
        raise IllegalTransition("interlock", f"{state.phase} ({cond})", type(event).__name__)
    return handler(state, event, delays)

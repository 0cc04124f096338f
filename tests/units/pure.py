"""Several units of one station played purely: each unit a folded state and a session, records passed by hand.

No journal, thread or network: ``Unit.feed`` steps the core and folds the events as the appliance
does after a commit; ``Unit.records_for`` is what a unit's sync server would answer (its own
admissions as records, from a seq on).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from device.core import events as ev
from device.core import session as ss
from device.core import station as st
from device.core import units as un
from device.core.delays import Delays
from device.core.events import CheckinMethod

D = Delays()
STATION = "S-7"
VOTERS = {f"{n:064x}": st.VoterEntry(n, f"Voter {n}") for n in range(1, 41)}
HOME = frozenset(v for v, e in VOTERS.items() if e.line > 30)
"""Lines 31-40 are registered for home voting."""
UNITS = (un.Unit("desk-1", un.UnitRole.DESK), un.Unit("desk-2", un.UnitRole.DESK),
         un.Unit("mobile", un.UnitRole.MOBILE))


def voter(line: int) -> str:
    return f"{line:064x}"


def context(own: str, station: str = STATION) -> ss.Context:
    base = ss.Context.of(VOTERS, D)
    return ss.Context(base.voters, D, base.lines, un.Units(station, own, UNITS, HOME))


@dataclass
class Unit:
    """One unit: its fold and session, fed input by input with its own clock (``skew`` seconds off)."""

    id: str
    skew: float = 0.0
    station: str = STATION
    state: st.StationState = field(default_factory=st.StationState)
    session: ss.Session = field(default_factory=lambda: ss.Session.new(D))
    recorded: list[ev.Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ctx = context(self.id, self.station)

    def feed(self, inp: ss.Input, wall: float) -> ss.Step:
        now = ss.Now(wall, wall + self.skew)
        done = ss.step(self.state, self.session, inp, self.ctx, now)
        for e in done.events:
            rec = ev.Recorded(self.state.last_seq + 1, now.wall, e)
            st.apply(self.state, rec)
            self.recorded.append(rec)
        self.session = done.session
        return done

    def start(self, wall: float) -> Unit:
        self.feed(ss.StartUp("t", self.station), wall)
        self.feed(ss.OpenPolls(), wall)
        return self

    def scan(self, line: int, wall: float) -> str:
        done = self.feed(ss.Identify(voter(line), f"{self.id}-{line}-{wall}", CheckinMethod.SCAN), wall)
        assert done.decision is not None
        return done.decision.outcome

    def records_for(self, after: int = 0) -> list[un.PeerCheckin]:
        """This unit's own admissions from ``after`` on, as signed records would carry them."""
        return [un.PeerCheckin(self.station, self.id, r.seq, r.voter, r.line, r.at, r.hlc, "sig", r.undoes)
                for r in self.state.replica.own[after:]]

    def pull(self, other: Unit, wall: float) -> ss.Step:
        """Take ``other``'s new records, from the last one this unit holds."""
        held = self.state.replica.held.get(other.id, 0)
        return self.feed(ss.PeerRecords(tuple(other.records_for(held))), wall)

    def events(self, kind: type[ev.Event]) -> list[ev.Event]:
        return [r.event for r in self.recorded if isinstance(r.event, kind)]

    def refolded(self) -> st.StationState:
        """The state folded afresh from everything recorded (what a restart rebuilds)."""
        state = st.StationState()
        for rec in self.recorded:
            st.apply(state, rec)
        return state


def close_of(unit: Unit) -> un.PeerClose:
    """``unit``'s close record as its sync server would serve it (after its polls closed)."""
    assert unit.state.replica.own_close is not None
    admissions, identified, ballots, at = unit.state.replica.own_close
    return un.PeerClose(unit.station, unit.id, admissions, identified, ballots, at, "sig")

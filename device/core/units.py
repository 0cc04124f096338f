"""Several units at one station: the units, the replica of the others' check-ins, and their rules.

A station may have more than one unit: identification desks and the mobile
(home-voting) unit. Each unit keeps its own journal; each also holds a
**replica** of the others' admissions, built from their signed check-in
records (``PeerCheckin``) as the sync layer (``device/sync/``) verified them.
The replica is part of the journal's fold: an applied record is journaled as a
``PeerCheckinApplied`` event, so a restart rebuilds the replica from the
journal and ``apply`` never needs anything else.

The rules here are pure:

* ``decide_admission``: a desk refuses a voter another unit admitted (naming
  the unit and its record) and a voter registered for home voting; the mobile
  unit admits only voters registered for home voting.
* ``decide_peer``: which received records apply (in order per unit, each
  once), which are refused and why, and which make a **conflict**: the same
  voter admitted by two units. A conflict pairs the newly known admission with
  the earliest admission of that voter already known (by hybrid logical clock),
  so after a full exchange every admission of a voter admitted twice is in a
  conflict on every unit.

A clerk's undo is a record of the unit that admitted (``undoes``: the admission's
number); the other units apply it in order, and the voter may be admitted again.

Ordering across units is by a hybrid logical clock (``hlc_*``): a stamp is an
int, ``wall milliseconds << 16 | counter``. Each own record and each applied
peer record advance the unit's clock as it folds its journal, so the stamps
are the same on every replay.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from . import events as ev
from .errors import IllegalTransition, InvalidEvent, RefusalCode

_COUNTER_BITS = 16
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1


# The hybrid logical clock ---------------------------------------------------------------

def hlc_stamp(wall_ms: int, counter: int = 0) -> int:
    """A stamp from its physical part (milliseconds) and its counter."""
    return (wall_ms << _COUNTER_BITS) | min(counter, _COUNTER_MAX)


def hlc_wall_ms(stamp: int) -> int:
    """The physical part of a stamp, in milliseconds."""
    return stamp >> _COUNTER_BITS


def hlc_send(last: int, wall: float) -> int:
    """The stamp of a local event at wall time ``wall`` (seconds), after the clock stood at ``last``."""
    pt = int(wall * 1000)
    if pt > hlc_wall_ms(last):
        return hlc_stamp(pt)
    return last + 1


def hlc_receive(last: int, remote: int, wall: float) -> int:
    """The clock after receiving a stamp ``remote`` at wall time ``wall``: above both, never backwards."""
    return max(hlc_send(last, wall), remote + 1)


# The units of a station -----------------------------------------------------------------------

class UnitRole(str, enum.Enum):
    """What a unit is for: an identification desk in the room, or the mobile (home-voting) unit."""

    DESK = "desk"
    MOBILE = "mobile"


@dataclass(frozen=True)
class Unit:
    """One unit of the station as the package lists it."""

    id: str
    role: UnitRole
    address: str = ""
    """``host:port`` where its sync server listens on the station LAN ("" if it has none)."""


@dataclass(frozen=True)
class Units:
    """The units of this station and which one this is; ``single()`` for a station with one unit."""

    station: str = ""
    own: str = ""
    units: tuple[Unit, ...] = ()
    home_voters: frozenset[str] = frozenset()
    """Keyed hashes of the voters registered for home voting."""

    @classmethod
    def single(cls) -> Units:
        return cls()

    @property
    def several(self) -> bool:
        return len(self.units) > 1

    @property
    def peers(self) -> tuple[Unit, ...]:
        return tuple(u for u in self.units if u.id != self.own)

    def role_of(self, unit: str) -> UnitRole | None:
        return next((u.role for u in self.units if u.id == unit), None)


# Records and the replica ----------------------------------------------------------------------

@dataclass(frozen=True)
class PeerCheckin:
    """One unit's admission as its signed record says it (the sync layer checked the signature)."""

    station: str
    unit: str
    seq: int
    """The record's number at its unit: 1, 2, 3... with no gap."""
    voter: str
    line: int
    at: float
    hlc: int
    signature: str = ""
    undoes: int = 0
    """0 for an admission; for the undo of one (a clerk's, with a reason, at that unit), the admission's seq."""


@dataclass(frozen=True)
class PeerClose:
    """One unit's close of polls as its signed close record says it: its last record's seq (``admissions``:
    every record it made before closing) and its counts."""

    station: str
    unit: str
    admissions: int
    identified: int
    ballots: int
    at: float
    signature: str = ""


class Admission(NamedTuple):
    """An admission of a voter by a unit, as the replica holds it."""

    unit: str
    seq: int
    at: float
    hlc: int


OWN = ""
"""The unit key of this unit's own admissions in the replica (the fold does not know its own id)."""


@dataclass
class Replica:
    """This unit's own admissions and the others' (from their records), folded from the journal."""

    clock: int = 0
    own: list[PeerCheckin] = field(default_factory=list)
    """This unit's records in order, admissions and undos (``station`` and ``unit`` left empty; ``seq`` is the
    index + 1)."""
    held: dict[str, int] = field(default_factory=dict)
    """The last record applied from each other unit."""
    records: dict[str, list[PeerCheckin]] = field(default_factory=dict)
    admissions: dict[str, list[Admission]] = field(default_factory=dict)
    conflicts: int = 0
    refused: int = 0
    own_close: tuple[int, int, int, float] | None = None
    """This unit's close: (its last record's seq, identified, ballots, wall time), once its polls closed."""
    closed: dict[str, PeerClose] = field(default_factory=dict)
    """The other units' close records, as applied."""
    absent: dict[str, str] = field(default_factory=dict)
    """Units the chair closed without, with the reason."""

    @property
    def last_seq(self) -> int:
        """The number of this unit's last own record (admissions and undos)."""
        return len(self.own)

    def admitted_elsewhere(self, voter: str) -> Admission | None:
        """The earliest admission of ``voter`` by another unit, if the replica holds one."""
        others = [a for a in self.admissions.get(voter, ()) if a.unit != OWN]
        return min(others, key=lambda a: a.hlc) if others else None


def own_admitted(replica: Replica, voter: str, line: int, at: float) -> None:
    """Fold one of this unit's own admissions: its number, its stamp."""
    replica.clock = hlc_send(replica.clock, at)
    seq = len(replica.own) + 1
    replica.own.append(PeerCheckin("", OWN, seq, voter, line, at, replica.clock))
    replica.admissions.setdefault(voter, []).append(Admission(OWN, seq, at, replica.clock))


def own_undone(replica: Replica, voter: str, at: float) -> None:
    """An own check-in undone: a record that says so (so the other units admit the voter again), and the
    admission no longer stands against another unit's."""
    known = replica.admissions.get(voter, [])
    mine = [a for a in known if a.unit == OWN]
    _keep(replica, voter, [a for a in known if a.unit != OWN])
    if mine:
        replica.clock = hlc_send(replica.clock, at)
        line = replica.own[mine[-1].seq - 1].line
        replica.own.append(PeerCheckin("", OWN, len(replica.own) + 1, voter, line, at, replica.clock, "", mine[-1].seq))


def _keep(replica: Replica, voter: str, standing: list[Admission]) -> None:
    if standing:
        replica.admissions[voter] = standing
    else:
        replica.admissions.pop(voter, None)


def apply_peer(replica: Replica, rec: ev.Recorded) -> None:
    """Fold an applied record of another unit; the seq must follow the last one held from that unit."""
    e, at = rec.event, rec.at
    assert isinstance(e, ev.PeerCheckinApplied)
    last = replica.held.get(e.unit, 0)
    if e.unit_seq != last + 1:
        raise InvalidEvent(f"record {e.unit_seq} of unit {e.unit} applied after record {last}")
    replica.held[e.unit] = e.unit_seq
    replica.clock = hlc_receive(replica.clock, e.hlc, at)
    record = PeerCheckin(e.station, e.unit, e.unit_seq, e.voter, e.line, e.at, e.hlc, e.signature, e.undoes)
    replica.records.setdefault(e.unit, []).append(record)
    if e.undoes:
        known = replica.admissions.get(e.voter, [])
        _keep(replica, e.voter, [a for a in known if (a.unit, a.seq) != (e.unit, e.undoes)])
    else:
        replica.admissions.setdefault(e.voter, []).append(Admission(e.unit, e.unit_seq, e.at, e.hlc))


def _conflict(replica: Replica, rec: ev.Recorded) -> None:
    replica.conflicts += 1


def _refused(replica: Replica, rec: ev.Recorded) -> None:
    replica.refused += 1


def _peer_closed(replica: Replica, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.PeerClosed)
    if e.unit in replica.closed:
        raise InvalidEvent(f"unit {e.unit} closed twice")
    if replica.held.get(e.unit, 0) != e.admissions:
        raise InvalidEvent(f"close of unit {e.unit} with {e.admissions} admissions applied while "
                           f"{replica.held.get(e.unit, 0)} are held")
    replica.closed[e.unit] = PeerClose(e.station, e.unit, e.admissions, e.identified, e.ballots, e.at, e.signature)


def _absent(replica: Replica, rec: ev.Recorded) -> None:
    e = rec.event
    assert isinstance(e, ev.UnitAbsentAtClose)
    replica.absent[e.unit] = e.reason


FOLDS: dict[type[ev.Event], Callable[[Replica, ev.Recorded], None]] = {
    ev.PeerCheckinApplied: apply_peer, ev.UnitConflict: _conflict, ev.PeerRecordRefused: _refused,
    ev.PeerClosed: _peer_closed, ev.UnitAbsentAtClose: _absent,
}
"""How the station's fold (``station.apply``) applies the units' events to its replica."""


# Decisions -------------------------------------------------------------------------------------

def decide_admission(replica: Replica, units: Units, voter: str) -> ev.CheckinRefused | None:
    """Why this unit may not admit ``voter`` (on the list, not admitted here), or None if it may."""
    if not units.several:
        return None
    elsewhere = replica.admitted_elsewhere(voter)
    if elsewhere is not None:
        return ev.CheckinRefused(ev.Refusal.ADMITTED_ELSEWHERE.value, voter, None,
                                 f"admitted by unit {elsewhere.unit} (its admission {elsewhere.seq})")
    home = voter in units.home_voters
    mobile = units.role_of(units.own) is UnitRole.MOBILE
    if home and not mobile:
        return ev.CheckinRefused(ev.Refusal.HOME_VOTING.value, voter, None,
                                 "registered for home voting: only the mobile unit admits this voter")
    if mobile and not home:
        return ev.CheckinRefused(ev.Refusal.NOT_HOME_VOTING.value, voter, None,
                                 "not registered for home voting: the voter votes at the station")
    return None


@dataclass(frozen=True)
class PeerOutcome:
    """What a batch of received records comes to: events to journal (in order) and conflicts among them."""

    events: tuple[ev.Event, ...]
    conflicts: tuple[ev.UnitConflict, ...]
    ahead: tuple[str, ...]
    """Units whose records carry a clock beyond ``drift`` ahead of this unit's."""


def decide_peer(replica: Replica, units: Units, voters: Mapping[str, object], records: Sequence[PeerCheckin],
                wall: float, drift: float, closes: Sequence[PeerClose] = ()) -> PeerOutcome:
    """The events for received, verified records: each applied once, in order, or refused with a reason."""
    held = dict(replica.held)
    known = {v: list(a) for v, a in replica.admissions.items()}
    out: list[ev.Event] = []
    conflicts: list[ev.UnitConflict] = []
    ahead: list[str] = []
    for r in sorted(records, key=lambda r: (r.unit, r.seq)):
        why = _refusal(r, units, voters, held.get(r.unit, 0))
        if why:
            out.append(ev.PeerRecordRefused(r.unit, r.seq, why))
            continue
        before = known.setdefault(r.voter, [])
        if r.undoes and not any((a.unit, a.seq) == (r.unit, r.undoes) for a in before):
            out.append(ev.PeerRecordRefused(r.unit, r.seq, f"record {r.seq} of unit {r.unit} undoes its admission "
                                                           f"{r.undoes}, which does not stand for that voter here"))
            continue
        held[r.unit] = r.seq
        out.append(ev.PeerCheckinApplied(r.station, r.unit, r.seq, r.voter, r.line, r.at, r.hlc, r.signature,
                                         r.undoes))
        if hlc_wall_ms(r.hlc) > (wall + drift) * 1000 and r.unit not in ahead:
            ahead.append(r.unit)
        if r.undoes:
            before[:] = [a for a in before if (a.unit, a.seq) != (r.unit, r.undoes)]
            continue
        new = Admission(r.unit, r.seq, r.at, r.hlc)
        if before:
            first = min(before, key=lambda a: a.hlc)
            a, b = sorted((first, new), key=lambda x: x.hlc)
            conflict = ev.UnitConflict(r.voter, r.line, a.unit or units.own, a.seq, a.at,
                                       b.unit or units.own, b.seq, b.at)
            out.append(conflict)
            conflicts.append(conflict)
        before.append(new)
    closed = set(replica.closed)
    for c in closes:
        why = _close_refusal(c, units, closed, held.get(c.unit, 0))
        if not why:
            closed.add(c.unit)
        out.append(ev.PeerRecordRefused(c.unit, None, why) if why else
                   ev.PeerClosed(c.station, c.unit, c.admissions, c.identified, c.ballots, c.at, c.signature))
    return PeerOutcome(tuple(out), tuple(conflicts), tuple(ahead))


def _close_refusal(c: PeerClose, units: Units, closed: set[str], held: int) -> str:
    if c.station != units.station or c.unit == units.own or units.role_of(c.unit) is None:
        return f"a close record of unit {c.unit!r} of station {c.station!r}, not a peer of this unit"
    if c.unit in closed:
        return f"replayed: the close of unit {c.unit} is already held"
    if held != c.admissions:
        return (f"the close of unit {c.unit} counts {c.admissions} admissions and this unit holds {held}: "
                "its check-ins come first")
    return ""


def main_unit(units: Units) -> str:
    """The unit whose close reconciles the station: the first desk the package lists."""
    return next((u.id for u in units.units if u.role is UnitRole.DESK), "")


def decide_close_without(replica: Replica, units: Units, unit: str, reason: str) -> ev.UnitAbsentAtClose:
    """The chair closes without ``unit``'s final records (it is out of reach), with a reason."""
    if unit == units.own or units.role_of(unit) is None:
        raise IllegalTransition("units", "close", "close without a unit", f"{unit!r} is not another unit of "
                                "this station", code=RefusalCode.NO_SUCH_UNIT, params={"unit": unit})
    if not reason.strip():
        raise IllegalTransition("units", "close", "close without a unit", "a reason is required",
                                code=RefusalCode.REASON_REQUIRED, params={})
    if unit in replica.closed or unit in replica.absent:
        raise IllegalTransition("units", "close", "close without a unit", f"unit {unit} is already accounted for",
                                code=RefusalCode.NO_SUCH_UNIT, params={"unit": unit})
    return ev.UnitAbsentAtClose(unit, reason.strip())


def decide_reconcile(replica: Replica, units: Units, identified: int, ballots: int) -> list[ev.Event]:
    """At the main unit's close: every other unit's final records held or its absence recorded, then the
    station's parts and totals. Other units (and a one-unit station) close on their own: nothing here."""
    if not units.several or units.own != main_unit(units):
        return []
    waiting = [u.id for u in units.peers if u.id not in replica.closed and u.id not in replica.absent]
    if waiting:
        names = ", ".join(waiting)
        raise IllegalTransition("polls", "open", "close the polls", f"the final records of {names} are not here: "
                                "wait for them, or close without them giving a reason",
                                code=RefusalCode.UNITS_NOT_CLOSED, params={"units": names})
    parts = {units.own: (identified, ballots)}
    parts.update({u: (c.identified, c.ballots) for u, c in replica.closed.items()})
    desks = [parts[u.id] for u in units.units if u.id in parts and u.role is UnitRole.DESK]
    mobile = [parts[u.id] for u in units.units if u.id in parts and u.role is UnitRole.MOBILE]
    listed = ", ".join(f"{u.id} {parts[u.id][0]}/{parts[u.id][1]}" for u in units.units if u.id in parts)
    absent = ", ".join(u.id for u in units.units if u.id in replica.absent)
    return [ev.UnitsReconciled(sum(d[0] for d in desks), sum(d[1] for d in desks), sum(m[0] for m in mobile),
                               sum(m[1] for m in mobile), sum(p[0] for p in parts.values()),
                               sum(p[1] for p in parts.values()), replica.conflicts, absent, listed)]


def _refusal(r: PeerCheckin, units: Units, voters: Mapping[str, object], last: int) -> str:
    if r.station != units.station:
        return f"the record is from station {r.station!r}, not this station {units.station!r}"
    if r.unit == units.own:
        return f"the record claims to be from this unit ({r.unit})"
    if units.role_of(r.unit) is None:
        return f"unit {r.unit!r} is not a unit of this station"
    if r.seq <= last:
        return f"replayed: record {r.seq} of unit {r.unit} is already held (up to {last})"
    if r.seq != last + 1:
        return f"out of order: record {r.seq} of unit {r.unit} does not follow record {last}; nothing skipped over"
    if r.voter not in voters:
        return f"record {r.seq} of unit {r.unit} names a voter who is not on this station's list"
    return ""

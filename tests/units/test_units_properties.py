"""Properties of the replica under any partition: random admissions (and undos) at three units, random
partial, duplicated and reordered exchanges, then a full exchange. Nothing is lost, every double admission
(every standing one, with undos) is a conflict on every unit, and each unit's fold rebuilds exactly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as hs

from device.core import events as ev
from device.core import session as ss

from .pure import HOME, VOTERS, Unit

T = 1_800_000_000.0
IDS = ("desk-1", "desk-2", "mobile")
LINES = [e.line for e in VOTERS.values()]

admit = hs.tuples(hs.just("admit"), hs.sampled_from(IDS), hs.sampled_from(LINES[25:36]))
exchange = hs.tuples(hs.just("sync"), hs.sampled_from(IDS), hs.sampled_from(IDS),
                     hs.lists(hs.integers(0, 30), max_size=8))
"""Records from one unit to another: a random selection (with repeats, any order) of its records."""
undo = hs.tuples(hs.just("undo"), hs.sampled_from(IDS), hs.integers(0, 10))
"""A unit undoes one of its standing check-ins (picked by index), if it has any."""
ops = hs.lists(hs.one_of(admit, exchange), max_size=60)
ops_with_undo = hs.lists(hs.one_of(admit, admit, exchange, undo), max_size=60)


def full_exchange(units: dict[str, Unit], wall: float) -> None:
    for _ in range(2):
        for a in units.values():
            for b in units.values():
                if a is not b:
                    a.pull(b, wall)


def play(steps: list[tuple], skews: list[float]) -> dict[str, Unit]:
    """The units after the steps (admissions, undos, partial exchanges) and a full exchange."""
    units = {u: Unit(u, skew=s).start(T) for u, s in zip(IDS, skews, strict=True)}
    wall = T
    for op in steps:
        wall += 7.0
        if op[0] == "admit":
            units[op[1]].scan(op[2], wall)
        elif op[0] == "undo":
            unit = units[op[1]]
            lines = sorted(VOTERS[v].line for v in unit.state.checkins)
            if lines:
                unit.feed(ss.Undo(lines[op[2] % len(lines)], "wrong card"), wall)
        else:
            src, dst, picks = units[op[1]], units[op[2]], op[3]
            if src is dst:
                continue
            recs = src.records_for()
            chosen = tuple(recs[i % len(recs)] for i in picks) if recs else ()
            dst.feed(ss.PeerRecords(chosen), wall)
    full_exchange(units, wall + 1)
    return units


def conflicts_by_voter(u: Unit) -> dict[str, set[tuple[str, int]]]:
    """Per voter, the admissions (unit, seq) that ``u``'s conflicts name."""
    out: dict[str, set[tuple[str, int]]] = {}
    for c in u.events(ev.UnitConflict):
        assert isinstance(c, ev.UnitConflict)
        out.setdefault(c.voter, set()).update({(c.first_unit, c.first_seq), (c.second_unit, c.second_seq)})
    return out


@given(ops, hs.lists(hs.floats(-300, 300), min_size=3, max_size=3))
def test_partitions_and_merges_lose_nothing_and_every_double_admission_is_a_conflict_everywhere(
        steps: list[tuple], skews: list[float]) -> None:
    units = play(steps, skews)
    admissions: dict[str, set[tuple[str, int]]] = {}
    for u in units.values():
        for r in u.state.replica.own:
            admissions.setdefault(r.voter, set()).add((u.id, r.seq))
            assert (r.voter in HOME) == (u.id == "mobile")  # the home-voting list holds at every unit
    for u in units.values():
        held = u.state.replica.held
        for other in units.values():
            if other is not u:
                assert held.get(other.id, 0) == len(other.state.replica.own)  # no admission lost
        doubles = {v: a for v, a in admissions.items() if len(a) > 1}
        assert conflicts_by_voter(u) == doubles
        assert u.state.replica.conflicts == len(u.events(ev.UnitConflict))
        alarms = [a for a in u.events(ev.AlarmRaised) if isinstance(a, ev.AlarmRaised)]
        assert sum(a.alarm_kind == "unit_conflict" for a in alarms) == u.state.replica.conflicts
        assert u.refolded().replica == u.state.replica


@given(ops_with_undo, hs.lists(hs.floats(-300, 300), min_size=3, max_size=3))
def test_with_undos_nothing_is_lost_and_every_standing_double_admission_is_a_conflict_everywhere(
        steps: list[tuple], skews: list[float]) -> None:
    units = play(steps, skews)
    standing: dict[str, set[tuple[str, int]]] = {}
    ever: dict[str, set[tuple[str, int]]] = {}
    for u in units.values():
        undone = {r.undoes for r in u.state.replica.own if r.undoes}
        for r in u.state.replica.own:
            if not r.undoes:
                ever.setdefault(r.voter, set()).add((u.id, r.seq))
                if r.seq not in undone:
                    standing.setdefault(r.voter, set()).add((u.id, r.seq))
    for u in units.values():
        for other in units.values():
            if other is not u:
                assert u.state.replica.held.get(other.id, 0) == len(other.state.replica.own)
        in_conflict = conflicts_by_voter(u)
        for voter, admissions in standing.items():
            if len(admissions) > 1:
                assert admissions <= in_conflict.get(voter, set()), (u.id, voter)
        for voter, named in in_conflict.items():
            assert named <= ever[voter]
        for voter in ever:  # refused here exactly while another unit's admission of the voter stands
            others = {a for a in standing.get(voter, ()) if a[0] != u.id}
            assert (u.state.replica.admitted_elsewhere(voter) is not None) == bool(others), (u.id, voter)
        assert u.refolded().replica == u.state.replica

"""Properties of the replica under any partition: random admissions at three units, random partial,
duplicated and reordered exchanges, then a full exchange. Nothing is lost, every double admission is a
conflict on every unit, and each unit's fold rebuilds exactly from its events."""

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
ops = hs.lists(hs.one_of(admit, exchange), max_size=60)


def full_exchange(units: dict[str, Unit], wall: float) -> None:
    for _ in range(2):
        for a in units.values():
            for b in units.values():
                if a is not b:
                    a.pull(b, wall)


@given(ops, hs.lists(hs.floats(-300, 300), min_size=3, max_size=3))
def test_partitions_and_merges_lose_nothing_and_every_double_admission_is_a_conflict_everywhere(
        steps: list[tuple], skews: list[float]) -> None:
    units = {u: Unit(u, skew=s).start(T) for u, s in zip(IDS, skews, strict=True)}
    wall = T
    for op in steps:
        wall += 7.0
        if op[0] == "admit":
            units[op[1]].scan(op[2], wall)
        else:
            src, dst, picks = units[op[1]], units[op[2]], op[3]
            if src is dst:
                continue
            recs = src.records_for()
            chosen = tuple(recs[i % len(recs)] for i in picks) if recs else ()
            dst.feed(ss.PeerRecords(chosen), wall)
    full_exchange(units, wall + 1)

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
        in_conflict: dict[str, set[tuple[str, int]]] = {}
        for c in u.events(ev.UnitConflict):
            assert isinstance(c, ev.UnitConflict)
            in_conflict.setdefault(c.voter, set()).update({(c.first_unit, c.first_seq), (c.second_unit, c.second_seq)})
        doubles = {v: a for v, a in admissions.items() if len(a) > 1}
        assert in_conflict == doubles
        assert u.state.replica.conflicts == len(u.events(ev.UnitConflict))
        alarms = [a for a in u.events(ev.AlarmRaised) if isinstance(a, ev.AlarmRaised)]
        assert sum(a.alarm_kind == "unit_conflict" for a in alarms) == u.state.replica.conflicts
        assert u.refolded().replica == u.state.replica

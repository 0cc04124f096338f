"""The rules of several units at one station, in the pure core: admission across units, home voting,
records applied once and in order, conflicts, bad records, the hybrid logical clock."""

from __future__ import annotations

import pytest

from device.core import events as ev
from device.core import session as ss
from device.core import units as un
from device.core.errors import InvalidEvent

from .pure import STATION, Unit, voter

T = 1_800_000_000.0


def three() -> tuple[Unit, Unit, Unit]:
    return Unit("desk-1").start(T), Unit("desk-2").start(T), Unit("mobile").start(T)


def test_a_voter_admitted_at_another_desk_is_refused_naming_the_unit() -> None:
    d1, d2, _ = three()
    assert d1.scan(5, T + 1) == "admitted"
    d2.pull(d1, T + 2)
    done = d2.feed(ss.Identify(voter(5), "k", ev.CheckinMethod.SCAN), T + 3)
    assert done.decision is not None and done.decision.outcome == "admitted_elsewhere"
    assert "desk-1" in done.decision.reason and done.decision.first_at == T + 1
    assert d2.state.identified == 0 and not d2.events(ev.UnitConflict)


def test_home_voting_list_only_the_mobile_unit_admits_it() -> None:
    d1, _, mobile = three()
    assert d1.scan(33, T + 1) == "home_voting"
    assert mobile.scan(33, T + 2) == "admitted"
    assert mobile.scan(4, T + 3) == "not_home_voting"
    refused = d1.events(ev.CheckinRefused)[-1]
    assert isinstance(refused, ev.CheckinRefused) and "home voting" in refused.detail


def test_a_single_unit_station_keeps_its_rules() -> None:
    from device.core import station as st

    from .pure import VOTERS, D
    ctx = ss.Context.of(VOTERS, D)
    state, session = st.StationState(), ss.Session.new(D)
    for inp in (ss.StartUp("t", STATION), ss.OpenPolls(), ss.Identify(voter(33), "k", ev.CheckinMethod.SCAN)):
        done = ss.step(state, session, inp, ctx, ss.Now(T, T))
        for e in done.events:
            st.apply(state, ev.Recorded(state.last_seq + 1, T, e))
        session = done.session
    assert state.identified == 1  # no units section: no home-voting rule


def test_a_double_admission_in_a_partition_is_a_conflict_on_both_units() -> None:
    d1, d2, _ = three()
    assert d1.scan(7, T + 1) == "admitted"
    assert d2.scan(7, T + 5) == "admitted"  # cut off from each other
    done = d2.pull(d1, T + 10)
    d1.pull(d2, T + 11)
    for unit in (d1, d2):
        [c] = unit.events(ev.UnitConflict)
        assert isinstance(c, ev.UnitConflict)
        assert (c.first_unit, c.first_seq, c.second_unit, c.second_seq) == ("desk-1", 1, "desk-2", 1)
        assert unit.state.replica.conflicts == 1
        [alarm] = [a for a in unit.events(ev.AlarmRaised) if isinstance(a, ev.AlarmRaised)]
        assert alarm.alarm_kind == "unit_conflict" and "desk-1" in alarm.detail and "desk-2" in alarm.detail
    assert not done.decision
    assert d1.state.identified == 1 and d2.state.identified == 1  # both admissions stand, each unit its own


def test_the_third_unit_sees_the_conflict_too() -> None:
    d1, d2, mobile = three()
    d1.scan(8, T + 1)
    d2.scan(8, T + 2)
    mobile.pull(d1, T + 3)
    assert not mobile.events(ev.UnitConflict)
    mobile.pull(d2, T + 4)
    [c] = mobile.events(ev.UnitConflict)
    assert isinstance(c, ev.UnitConflict) and {c.first_unit, c.second_unit} == {"desk-1", "desk-2"}


def test_records_apply_once_in_order_and_a_replay_is_refused_with_a_reason() -> None:
    d1, d2, _ = three()
    for line in (1, 2, 3):
        d1.scan(line, T + line)
    recs = d1.records_for()
    d2.feed(ss.PeerRecords((recs[2], recs[0], recs[1], recs[0])), T + 5)  # reordered, duplicated
    assert d2.state.replica.held == {"desk-1": 3}
    [refused] = d2.events(ev.PeerRecordRefused)
    assert isinstance(refused, ev.PeerRecordRefused) and "replayed" in refused.reason
    d2.feed(ss.PeerRecords((recs[1],)), T + 6)
    assert d2.state.replica.held == {"desk-1": 3} and len(d2.events(ev.PeerCheckinApplied)) == 3


def test_a_gap_is_refused_and_nothing_after_it_applies() -> None:
    d1, d2, _ = three()
    for line in (1, 2, 3):
        d1.scan(line, T + line)
    recs = d1.records_for()
    d2.feed(ss.PeerRecords((recs[0], recs[2])), T + 5)
    assert d2.state.replica.held == {"desk-1": 1}
    reasons = [e.reason for e in d2.events(ev.PeerRecordRefused) if isinstance(e, ev.PeerRecordRefused)]
    assert reasons and "does not follow record 1" in reasons[0]
    d2.pull(d1, T + 6)  # resumable: pulled again from the last held
    assert d2.state.replica.held == {"desk-1": 3}


@pytest.mark.parametrize(("record", "why"), [
    (un.PeerCheckin("S-other", "desk-1", 1, voter(1), 1, T, 1, "s"), "station"),
    (un.PeerCheckin(STATION, "desk-9", 1, voter(1), 1, T, 1, "s"), "not a unit of this station"),
    (un.PeerCheckin(STATION, "desk-2", 1, voter(1), 1, T, 1, "s"), "this unit"),
    (un.PeerCheckin(STATION, "desk-1", 1, "f" * 64, 1, T, 1, "s"), "not on this station's list"),
])
def test_a_bad_record_is_refused_with_a_reason_and_nothing_applied(record: un.PeerCheckin, why: str) -> None:
    _, d2, _ = three()
    d2.feed(ss.PeerRecords((record,)), T + 1)
    [refused] = d2.events(ev.PeerRecordRefused)
    assert isinstance(refused, ev.PeerRecordRefused) and why in refused.reason
    assert d2.state.replica.held == {} and d2.state.replica.refused == 1


def test_a_refusal_from_the_sync_layer_is_journaled() -> None:
    _, d2, _ = three()
    d2.feed(ss.PeerRefused("desk-1", 4, "the signature does not verify"), T)
    [refused] = d2.events(ev.PeerRecordRefused)
    assert isinstance(refused, ev.PeerRecordRefused) and refused.unit_seq == 4


def test_a_unit_an_hour_ahead_raises_one_drift_alarm_and_its_records_still_apply() -> None:
    d1, _, _ = three()
    fast = Unit("desk-2", skew=3600.0).start(T)
    fast.scan(2, T + 1)
    d1.pull(fast, T + 2)
    fast.scan(3, T + 3)
    d1.pull(fast, T + 4)
    d1.feed(ss.PeerClock("desk-2", 3600.0), T + 5)
    drift = [a for a in d1.events(ev.AlarmRaised) if isinstance(a, ev.AlarmRaised)]
    assert [a.alarm_kind for a in drift] == ["unit_clock_drift"]
    assert d1.state.replica.held == {"desk-2": 2}


def test_a_clock_within_the_bound_raises_nothing() -> None:
    d1, _, _ = three()
    d1.feed(ss.PeerClock("desk-2", -30.0), T)
    assert not d1.events(ev.AlarmRaised)


def test_the_clock_orders_across_units_and_never_goes_back() -> None:
    slow = Unit("desk-1", skew=-600.0).start(T)
    d2 = Unit("desk-2").start(T)
    d2.scan(1, T + 1)
    slow.pull(d2, T + 2)
    slow.scan(2, T + 3)  # its wall clock is ten minutes behind, its stamp still after desk-2's
    assert slow.state.replica.own[0].hlc > d2.state.replica.own[0].hlc


def test_a_restart_rebuilds_the_same_replica_and_stamps() -> None:
    d1, d2, _ = three()
    d1.scan(1, T + 1)
    d2.scan(1, T + 2)
    d2.scan(2, T + 3)
    d1.pull(d2, T + 4)
    again = d1.refolded().replica
    assert again == d1.state.replica


def test_the_fold_refuses_a_record_out_of_order() -> None:
    from device.core import station as st
    state = st.StationState()
    e = ev.PeerCheckinApplied(STATION, "desk-1", 2, voter(1), 1, T, 5, "s")
    with pytest.raises(InvalidEvent, match="applied after record 0"):
        st.apply(state, ev.Recorded(1, T, e))


def test_an_undone_admission_no_longer_conflicts() -> None:
    d1, d2, _ = three()
    d1.scan(6, T + 1)
    d1.feed(ss.Undo(6, "wrong person"), T + 2)
    d2.scan(6, T + 3)
    d1.pull(d2, T + 4)
    assert not d1.events(ev.UnitConflict)


def test_an_undo_at_the_admitting_unit_lets_the_other_units_admit_the_voter_again() -> None:
    d1, d2, mobile = three()
    d1.scan(9, T + 1)
    d2.pull(d1, T + 2)
    assert d2.scan(9, T + 3) == "admitted_elsewhere"
    d1.feed(ss.Undo(9, "the clerk scanned the wrong card"), T + 4)
    [undo] = d1.records_for(1)
    assert (undo.seq, undo.undoes, undo.voter) == (2, 1, voter(9))
    d2.pull(d1, T + 5)
    assert d2.scan(9, T + 6) == "admitted"
    mobile.pull(d1, T + 7)  # the admission and its undo arrive together: nothing stands, nothing conflicts
    mobile.pull(d2, T + 8)
    assert not mobile.events(ev.UnitConflict) and not d2.events(ev.UnitConflict)
    assert d2.refolded().replica == d2.state.replica


def test_an_undo_of_an_admission_not_held_is_refused() -> None:
    _, d2, _ = three()
    bogus = un.PeerCheckin(STATION, "desk-1", 1, voter(3), 3, T, 5, "s", undoes=1)
    d2.feed(ss.PeerRecords((bogus,)), T + 1)
    [refused] = d2.events(ev.PeerRecordRefused)
    assert isinstance(refused, ev.PeerRecordRefused) and "does not stand" in refused.reason
    assert d2.state.replica.held == {}

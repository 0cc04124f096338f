"""Close of polls at a station with several units: the main desk waits for every unit's close record or a
recorded absence; the mobile box is reconciled on its own and in the combined total."""

from __future__ import annotations

import pytest

from device.core import events as ev
from device.core import session as ss
from device.core import units as un
from device.core.errors import IllegalTransition, RefusalCode

from .pure import Unit, close_of

T = 1_800_000_000.0


def day() -> tuple[Unit, Unit, Unit]:
    d1, d2, mobile = Unit("desk-1").start(T), Unit("desk-2").start(T), Unit("mobile").start(T)
    d1.scan(1, T + 1)
    d1.scan(2, T + 2)
    d2.scan(3, T + 3)
    mobile.scan(31, T + 4)
    mobile.scan(32, T + 5)
    d1.feed(ss.BoxSaw(ss.BoxSignal.BEAM_BLOCKED, T + 6), T + 6)  # one ballot at desk-1's box
    return d1, d2, mobile


def test_the_main_desk_waits_for_every_unit_and_says_which() -> None:
    d1, d2, _ = day()
    with pytest.raises(IllegalTransition) as refused:
        d1.feed(ss.ClosePolls(), T + 10)
    assert refused.value.code is RefusalCode.UNITS_NOT_CLOSED and refused.value.params["units"] == "desk-2, mobile"
    assert d1.state.poll.value == "open"


def test_other_units_close_on_their_own_and_the_main_desk_reconciles_them() -> None:
    d1, d2, mobile = day()
    for unit in (d2, mobile):
        unit.feed(ss.ClosePolls(), T + 10)
        assert unit.state.poll.value == "closed" and not unit.events(ev.UnitsReconciled)
    for unit in (d2, mobile):
        d1.pull(unit, T + 11)
    d1.feed(ss.PeerRecords((), (close_of(d2), close_of(mobile))), T + 12)
    d1.feed(ss.ClosePolls(), T + 13)
    [r] = d1.events(ev.UnitsReconciled)
    assert isinstance(r, ev.UnitsReconciled)
    assert (r.desks_identified, r.desks_ballots, r.mobile_identified, r.mobile_ballots) == (3, 1, 2, 0)
    assert (r.identified, r.ballots, r.absent) == (5, 1, "")
    assert r.parts == "desk-1 2/1, desk-2 1/0, mobile 2/0"
    kinds = [type(e) for e in d1.events(ev.Event)]
    assert kinds.index(ev.UnitsReconciled) == kinds.index(ev.PollsClosed) - 1


def test_a_close_record_before_the_check_ins_it_counts_is_refused() -> None:
    d1, d2, _ = day()
    d2.feed(ss.ClosePolls(), T + 10)
    d1.feed(ss.PeerRecords((), (close_of(d2),)), T + 11)
    [refused] = d1.events(ev.PeerRecordRefused)
    assert isinstance(refused, ev.PeerRecordRefused) and "check-ins come first" in refused.reason
    d1.pull(d2, T + 12)
    d1.feed(ss.PeerRecords((), (close_of(d2), close_of(d2))), T + 13)  # the second is a replay
    assert "desk-2" in d1.state.replica.closed
    assert "replayed" in d1.events(ev.PeerRecordRefused)[-1].reason  # type: ignore[attr-defined]


def test_close_without_the_mobile_unit_is_journaled_with_its_reason() -> None:
    d1, d2, _ = day()
    d2.feed(ss.ClosePolls(), T + 10)
    d1.pull(d2, T + 11)
    d1.feed(ss.PeerRecords((), (close_of(d2),)), T + 12)
    with pytest.raises(IllegalTransition) as no_reason:
        d1.feed(ss.CloseWithout("mobile", "  "), T + 13)
    assert no_reason.value.code is RefusalCode.REASON_REQUIRED
    with pytest.raises(IllegalTransition) as unknown:
        d1.feed(ss.CloseWithout("desk-7", "gone"), T + 13)
    assert unknown.value.code is RefusalCode.NO_SUCH_UNIT
    d1.feed(ss.CloseWithout("mobile", "the mobile team's unit fell in a river"), T + 14)
    d1.feed(ss.ClosePolls(), T + 15)
    [absent] = d1.events(ev.UnitAbsentAtClose)
    assert isinstance(absent, ev.UnitAbsentAtClose) and absent.unit == "mobile"
    [r] = d1.events(ev.UnitsReconciled)
    assert isinstance(r, ev.UnitsReconciled) and r.absent == "mobile" and r.mobile_identified == 0
    assert r.identified == 3


def test_close_counts_conflicts() -> None:
    d1, d2, mobile = day()
    d2.scan(1, T + 7)  # desk-1 admitted line 1 too, out of reach
    for unit in (d2, mobile):
        unit.feed(ss.ClosePolls(), T + 10)
        d1.pull(unit, T + 11)
    d1.feed(ss.PeerRecords((), (close_of(d2), close_of(mobile))), T + 12)
    d1.feed(ss.ClosePolls(), T + 13)
    [r] = d1.events(ev.UnitsReconciled)
    assert isinstance(r, ev.UnitsReconciled) and r.conflicts == 1
    assert d1.refolded().replica == d1.state.replica


def test_the_main_unit_is_the_first_desk() -> None:
    units = un.Units("S", "mobile", (un.Unit("mobile", un.UnitRole.MOBILE), un.Unit("d", un.UnitRole.DESK)))
    assert un.main_unit(units) == "d"

"""The desk: double reads count once, decisions arriving during another are queued, not lost."""

from __future__ import annotations

from device.core.delays import Delays
from device.core.desk import DeskState, advance, dismiss, new_desk, read, show

D = Delays(duplicate_read_window=4.0, decision_display=3.0)


def desk() -> DeskState[str]:
    return new_desk(D)


def test_same_document_twice_within_the_window_counts_once() -> None:
    s, first = read(desk(), "voter-a", 100.0)
    s, second = read(s, "voter-a", 100.0 + D.duplicate_read_window - 0.01)
    assert first and not second


def test_back_of_card_read_after_the_front_counts_once() -> None:
    # The MRZ on the front and the 1D barcode on the back hash to the same voter key.
    s, front = read(desk(), "hash-of-pin", 10.0)
    s, back = read(s, "hash-of-pin", 11.5)
    assert front and not back


def test_same_document_after_the_window_is_a_new_read() -> None:
    s, _ = read(desk(), "voter-a", 100.0)
    s, again = read(s, "voter-a", 100.0 + D.duplicate_read_window)
    assert again


def test_a_document_held_in_view_stays_one_read() -> None:
    s, fresh = read(desk(), "voter-a", 0.0)
    flags = []
    for step in range(1, 10):
        s, flag = read(s, "voter-a", step * (D.duplicate_read_window / 2))
        flags.append(flag)
    assert fresh and not any(flags)


def test_different_documents_are_each_new() -> None:
    s, a = read(desk(), "voter-a", 5.0)
    s, b = read(s, "voter-b", 5.1)
    s, a2 = read(s, "voter-a", 5.2)
    assert a and b and not a2


def test_old_identities_are_forgotten() -> None:
    s = desk()
    for i in range(50):
        s, _ = read(s, f"voter-{i}", float(i * 10))
    assert len(s.recent) == 1


def test_decision_is_shown_for_the_display_time() -> None:
    s = show(desk(), "admitted", 0.0)
    assert s.current(D.decision_display - 0.01) == "admitted"
    assert s.current(D.decision_display) is None


def test_scan_during_a_decision_is_queued_not_lost() -> None:
    s = show(desk(), "first", 0.0)
    s = show(s, "second", 1.0)
    s = show(s, "third", 1.5)
    assert s.current(1.5) == "first" and s.pending(1.5) == ("second", "third")
    assert s.current(D.decision_display) == "second"
    assert s.current(2 * D.decision_display) == "third" and s.pending(2 * D.decision_display) == ()
    assert s.current(3 * D.decision_display) is None


def test_queued_decision_gets_the_full_display_time() -> None:
    s = show(desk(), "first", 0.0)
    s = show(s, "second", 0.5)
    later = advance(s, D.decision_display + 0.1)
    assert later.showing == ("second", D.decision_display)


def test_clerk_dismisses_to_the_next_decision() -> None:
    s = show(show(desk(), "first", 0.0), "second", 0.2)
    s = dismiss(s, 1.0)
    assert s.current(1.0) == "second" and s.current(1.0 + D.decision_display - 0.01) == "second"
    assert dismiss(s, 1.5).current(1.5) is None


def test_state_is_immutable() -> None:
    s = desk()
    show(s, "x", 0.0)
    read(s, "voter-a", 0.0)
    assert s.showing is None and s.recent == ()

"""The body schema: one table that both ends read and docs/protocol.md shows; the device's bodies fit it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device.core import events as ev
from device.upstream.records import Tally, body_for
from protocol.schema import BODIES, body_problem, schema_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
JOURNAL = {"journal_seq": 12, "journal_hash": "0f" * 32}

DEVICE_EVENTS: list[tuple[ev.Event, Tally | None]] = [
    (ev.PollsOpened(identified=0, ballots=0), None),
    (ev.PollsPaused(reason="lunch with Aibek 123456"), None),
    (ev.PollsResumed(), None),
    (ev.PollsClosed(identified=61, ballots=60, difference=-1, alarms_total=2, alarms_open=1), None),
    (ev.CheckinUndone(voter="a" * 64, reason="wrong person"), Tally(admitted=5, undone=1, ballots=4)),
    (ev.AlarmRaised(alarm=3, alarm_kind="lid_opened", detail="lid sensor 2 " + "x" * 400), None),
    (ev.AlarmAcknowledged(alarm=3, note="seen"), None),
    (ev.TurnoutSnapshot(identified=40, ballots=39, registered=900), None),
    (ev.Annotation(topic="zeroize", text="keys wiped " * 40), None),
    (ev.UnitConflict("a" * 64, 7, "desk-1", 3, 1_800_000_000.5, "desk-2", 9, 1_800_000_100.25), None),
    (ev.UnitAbsentAtClose("mobile", "out of reach"), None),
    (ev.UnitsReconciled(10, 9, 3, 3, 13, 12, 1, "mobile", "desk-1 6/5, desk-2 4/4, mobile 3/3"), None),
    (ev.UpdateRefused("bad_signature", "not signed by the CEC's update key", "9" * 80 + "\x07", 4096), None),
    (ev.UpdateStarted("0.2.0+20261206.dd90745", "pollbox-amd64", 2**30, "O=CEC, CN=pollbox update signer"), None),
    (ev.UpdateInstalled("0.2.0", "B"), None),
    (ev.UpdateFailed("0.2.0", "RAUC did not install the bundle: " + "x" * 300), None),
    (ev.PollsHeldForUpdate("open", "0.2.0"), None),
    (ev.UpdateBooted("0.2.0", "B"), None),
    (ev.UpdateRolledBack("0.2.0", "B", "A", ""), None),
]


def test_the_document_shows_the_schema_as_the_code_states_it() -> None:
    assert schema_table() in DOC.read_text(encoding="utf-8")


def test_every_upstream_body_the_device_builds_fits_the_schema() -> None:
    seen = set()
    for event, tally in DEVICE_EVENTS:
        body = {**body_for(event, tally), **JOURNAL}
        assert body_problem(event.kind, body) is None, (event.kind, body)
        seen.add(event.kind)
    assert seen == set(BODIES)


@pytest.mark.parametrize(("type_", "body", "words"), [
    ("polls_opened", {"identified": 0, "ballots": 0, **JOURNAL, "extra": 1}, "unknown field(s) extra"),
    ("polls_opened", {"identified": 0, **JOURNAL}, "lacks ballots"),
    ("polls_closed", {}, "lacks journal_seq, journal_hash, identified"),
    ("polls_paused", {"journal_seq": 0, "journal_hash": "0f" * 32}, "journal_seq must be integer 1"),
    ("polls_paused", {"journal_seq": 1, "journal_hash": "0F" * 32}, "journal_hash must be 64 lowercase hex"),
    ("alarm_acknowledged", {"alarm": 1, "note_given": 0, **JOURNAL}, "note_given must be true or false"),
    ("alarm_raised", {"alarm": 1, "alarm_kind": "Lid!", "detail": "", **JOURNAL}, "alarm_kind must be name"),
    ("polls_closed", {"identified": 1, "ballots": 1, "difference": 2**53, "alarms_total": 0, "alarms_open": 0,
                      **JOURNAL}, "difference must be integer -(2^53-1)"),
    ("annotation", [], "must be a JSON object"),
    ("future_kind", {"journal_seq": 1}, "lacks journal_hash"),
])
def test_a_body_that_breaks_the_schema_is_named(type_: str, body: Any, words: str) -> None:
    problem = body_problem(type_, body)
    assert problem is not None and words in problem, problem


def test_a_type_the_schema_does_not_know_keeps_its_own_fields() -> None:
    assert body_problem("future_kind", {**JOURNAL, "anything": [1, {"x": None}]}) is None


values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                 max_size=3), max_leaves=6)


@given(type_=st.sampled_from([*BODIES, "future_kind"]), body=values | st.dictionaries(st.text(max_size=12), values))
def test_any_value_gets_an_answer_and_never_an_exception(type_: str, body: Any) -> None:
    problem = body_problem(type_, body)
    assert problem is None or (isinstance(problem, str) and len(problem) < 400)
